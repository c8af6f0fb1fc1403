import type { Command } from 'commander';
import { createUser, listUsers, setPassword } from '../../domain/users.ts';
import { changeAccountStatus, type StatusAction } from '../../domain/account-status.ts';
import { inviteUser } from '../../domain/invitations.ts';
import { eraseAccount } from '../../domain/erasure.ts';
import { findAccountByEmail } from '../../domain/users.ts';
import { AppError } from '../../errors.ts';
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

  user
    .command('invite')
    .description('create a pending account and email it a link (valid 7 days) to choose a password')
    .requiredOption('--email <email>', 'email address of the invitee')
    .option('--name <name>', 'display name')
    .action((options: { email: string; name?: string }) =>
      ctx.run(async (services) => ({ invited: true, account: await inviteUser(services, { email: options.email, name: options.name }, CLI_AUDIT) })),
    );

  const states: [StatusAction, string][] = [
    ['suspend', 'suspend an account: it cannot sign in and its sessions and refresh tokens stop working'],
    ['reactivate', 'make a suspended, blocked or locked account active again'],
    ['block', 'block an account (like suspend, for abuse): it cannot sign in and its tokens stop working'],
    ['unlock', 'end a temporary lockout after failed sign-ins'],
  ];
  for (const [action, description] of states) {
    user
      .command(`${action} <email>`)
      .description(description)
      .action((email: string) => ctx.run(async (services) => ({ account: await changeAccountStatus(services, email, action, CLI_AUDIT) })));
  }

  user
    .command('delete <email>')
    .description('erase an account: sessions and tokens end, personal data is deleted, audit rows are pseudonymized; the email can sign up again')
    .action((email: string) =>
      ctx.run(async (services) => {
        const account = await findAccountByEmail(services.knex, email);
        if (!account) throw new AppError('account_not_found', 'no account has this email', 404);
        return { erased: true, ...(await eraseAccount(services, account.id, CLI_AUDIT)) };
      }),
    );
}
