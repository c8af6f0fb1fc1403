// oidc-provider's view of an account: claims for ID tokens and userinfo. An account that may not
// sign in (suspended, blocked, deleted, or pending while verification is required) is not
// found, and neither is one whose sessions and tokens were revoked after the session or token
// at hand was issued (password reset, suspension). So those tokens fail at their next use:
// refresh answers invalid_grant, userinfo 401, and the browser session asks to sign in again.
import type { Account, KoaContextWithOIDC } from 'oidc-provider';
import type { Services } from '../services.ts';
import { findAccountById, maySignIn } from '../domain/users.ts';
import { subjectRoleNames } from '../domain/roles.ts';

/** When the session or token on this request was issued, in seconds, if known. */
function issuedAt(ctx: KoaContextWithOIDC | undefined, token: unknown): number | undefined {
  const iat = (token as { iat?: unknown } | undefined)?.iat;
  if (typeof iat === 'number') return iat;
  const loginTs = ctx?.oidc?.session?.loginTs;
  return typeof loginTs === 'number' ? loginTs : undefined;
}

export async function findAccount(services: Services, ctx: KoaContextWithOIDC | undefined, sub: string, token?: unknown): Promise<Account | undefined> {
  const account = await findAccountById(services.knex, sub);
  if (!account || !maySignIn(account, services.config.requireVerifiedEmail)) return undefined;
  if (account.tokensValidAfter) {
    const issued = issuedAt(ctx, token);
    // Second granularity on both sides: anything issued in the same second as the revocation
    // counts as issued before it.
    if (issued === undefined || issued <= Math.floor(account.tokensValidAfter.getTime() / 1000)) return undefined;
  }
  return {
    accountId: account.id,
    // Read by the guest check of the login prompt (oidc/guest.ts).
    ...(account.isGuest ? { guest: true } : {}),
    async claims(_use, scope) {
      // Roles are looked up only when the `roles` scope was granted.
      const roles = scope.split(' ').includes('roles') ? await subjectRoleNames(services.knex, { type: 'user', id: account.id }) : undefined;
      return {
        ...(roles ? { roles } : {}),
        sub: account.id,
        // A guest's address is a placeholder that names no one: no email claims, and `guest`.
        ...(account.isGuest ? { guest: true } : { email: account.email, email_verified: account.emailVerified }),
        ...(account.name ? { name: account.name } : {}),
        ...(account.phoneNumber ? { phone_number: account.phoneNumber, phone_number_verified: account.phoneNumberVerified } : {}),
      };
    },
  };
}
