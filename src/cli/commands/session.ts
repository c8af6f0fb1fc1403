import type { Command } from 'commander';
import type { Services } from '../../services.ts';
import { accountSessions, activeSessionAccount } from '../../domain/sessions.ts';
import { findAccountByEmail } from '../../domain/users.ts';
import { AppError } from '../../errors.ts';
import type { CliContext } from '../context.ts';

// Revoking needs oidc-provider (to end the session, its grants and tokens, and send back-channel
// logouts); it is built only for these commands.
async function provider(services: Services) {
  const { loadSigningKeys } = await import('../../oidc/keys.ts');
  const { createProvider } = await import('../../oidc/provider.ts');
  return createProvider(services, (await loadSigningKeys(services)).jwks);
}

async function accountId(services: Services, email: string): Promise<string> {
  const account = await findAccountByEmail(services.knex, email);
  if (!account) throw new AppError('account_not_found', 'no account has this email', 404);
  return account.id;
}

export function registerSession(program: Command, ctx: CliContext): void {
  const session = program.command('session').description('list and revoke sign-in sessions');

  session
    .command('list')
    .description("list an account's active sessions")
    .requiredOption('--user <email>', 'email address of the account')
    .action((options: { user: string }) => ctx.run(async (services) => ({ sessions: await accountSessions(services.knex, await accountId(services, options.user)) })));

  session
    .command('revoke <id>')
    .description('end one session: its tokens stop working and its apps get a back-channel logout')
    .action((id: string) => ctx.run(async (services) => {
      const owner = await activeSessionAccount(services.knex, id);
      if (!owner) throw new AppError('session_not_found', 'no active session has this id', 404);
      const { revokeSessions } = await import('../../oidc/sessions.ts');
      return { revoked: await revokeSessions(services, await provider(services), { accountId: owner, uid: id }, 'revoked_by_admin') };
    }));

  session
    .command('revoke-all')
    .description("end every session of an account")
    .requiredOption('--user <email>', 'email address of the account')
    .action((options: { user: string }) => ctx.run(async (services) => {
      const { revokeSessions } = await import('../../oidc/sessions.ts');
      return { revoked: await revokeSessions(services, await provider(services), { accountId: await accountId(services, options.user) }, 'revoked_by_admin') };
    }));
}
