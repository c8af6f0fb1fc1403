import type { Command } from 'commander';
import { createUser, listUsers, setPassword } from '../../domain/users.ts';
import { CLI_AUDIT, type CliContext } from '../context.ts';

export function registerUser(program: Command, ctx: CliContext): void {
  const user = program.command('user').description('manage accounts');

  user
    .command('create')
    .description('create an active account with a password')
    .requiredOption('--email <email>', 'email address (sign-in name)')
    .requiredOption('--password <password>', 'initial password, 8 to 1024 characters')
    .option('--name <name>', 'display name')
    .option('--verified', 'mark the email address as verified')
    .action((options: { email: string; password: string; name?: string; verified?: boolean }) =>
      ctx.run((services) =>
        createUser(services, { email: options.email, password: options.password, name: options.name, emailVerified: options.verified === true }, CLI_AUDIT),
      ),
    );

  user
    .command('list')
    .description('list accounts')
    .action(() => ctx.run(async (services) => ({ users: await listUsers(services) })));

  user
    .command('set-password')
    .description("replace an account's password")
    .requiredOption('--email <email>', 'email address of the account')
    .requiredOption('--password <password>', 'new password, 8 to 1024 characters')
    .action((options: { email: string; password: string }) =>
      ctx.run(async (services) => ({ password_set: true, account: await setPassword(services, options.email, options.password, CLI_AUDIT) })),
    );
}
