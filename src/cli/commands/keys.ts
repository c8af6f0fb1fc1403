import type { Command } from 'commander';
import type { CliContext } from '../context.ts';

// The key module is loaded only by these commands: it pulls in key generation and JOSE, which
// the other commands do not need at start-up.
export function registerKeys(program: Command, ctx: CliContext): void {
  const keys = program.command('keys').description('manage token signing keys');

  keys
    .command('list')
    .description('list signing keys, active and retired')
    .action(() =>
      ctx.run(async (services) => {
        const { listSigningKeys } = await import('../../oidc/keys.ts');
        return { keys: await listSigningKeys(services) };
      }),
    );

  keys
    .command('rotate')
    .description('create new signing keys and retire the current ones (they stay published until their tokens expire)')
    .action(() =>
      ctx.run(async (services) => {
        const { rotateSigningKeys } = await import('../../oidc/keys.ts');
        return rotateSigningKeys(services);
      }),
    );
}
