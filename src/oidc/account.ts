// oidc-provider's view of an account: claims for ID tokens and userinfo. Only active accounts
// are found, so a suspended or deleted account's tokens stop working at the next refresh or
// userinfo call.
import type { Account } from 'oidc-provider';
import type { Services } from '../services.ts';
import { findAccountById } from '../domain/users.ts';

export async function findAccount(services: Services, sub: string): Promise<Account | undefined> {
  const account = await findAccountById(services.knex, sub);
  if (!account || account.status !== 'active') return undefined;
  return {
    accountId: account.id,
    async claims() {
      return {
        sub: account.id,
        email: account.email,
        email_verified: account.emailVerified,
        ...(account.name ? { name: account.name } : {}),
      };
    },
  };
}
