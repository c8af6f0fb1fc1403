import type { Knex } from 'knex';
import { isUuid } from '../uuid.ts';

export interface FederatedIdentityRow {
  id: string;
  account_id: string;
  provider: string;
  subject: string;
  email: string | null;
  email_verified: boolean;
  display_name: string | null;
  created_at: Date;
  last_used_at: Date | null;
}

type Db = Knex | Knex.Transaction;


export async function findIdentity(db: Db, provider: string, subject: string): Promise<FederatedIdentityRow | undefined> {
  return db<FederatedIdentityRow>('federated_identities').where({ provider, subject }).first();
}

export async function listIdentities(db: Db, accountId: string): Promise<FederatedIdentityRow[]> {
  return db<FederatedIdentityRow>('federated_identities').where({ account_id: accountId }).orderBy([{ column: 'created_at' }, { column: 'id' }]);
}

/** Returns undefined when this upstream account is already linked (to any account). */
export async function insertIdentity(
  db: Db,
  identity: { accountId: string; provider: string; subject: string; email: string | null; emailVerified: boolean; displayName: string | null },
): Promise<FederatedIdentityRow | undefined> {
  // ON CONFLICT DO NOTHING: two callbacks racing for one upstream account cannot both link it,
  // and the surrounding transaction is not aborted by the violation.
  const [row] = await db('federated_identities')
    .insert({
      account_id: identity.accountId,
      provider: identity.provider,
      subject: identity.subject,
      email: identity.email,
      email_verified: identity.emailVerified,
      display_name: identity.displayName,
      last_used_at: db.fn.now(),
    })
    .onConflict(['provider', 'subject'])
    .ignore()
    .returning<FederatedIdentityRow[]>('*');
  return row;
}

/** Records a sign-in and refreshes what the upstream now says about the person. */
export async function touchIdentity(db: Db, id: string, seen: { email: string | null; emailVerified: boolean; displayName: string | null }): Promise<void> {
  await db('federated_identities').where({ id }).update({ email: seen.email, email_verified: seen.emailVerified, display_name: seen.displayName, last_used_at: db.fn.now() });
}

/** Deletes one of the account's identities; undefined when it has no such identity. */
export async function deleteIdentity(db: Db, accountId: string, id: string): Promise<FederatedIdentityRow | undefined> {
  if (!isUuid(id)) return undefined;
  const [row] = await db('federated_identities').where({ id, account_id: accountId }).delete().returning<FederatedIdentityRow[]>('*');
  return row;
}

/**
 * What the account can sign in with besides its linked identities, with the account row locked
 * for the rest of the transaction, so two unlinks at once cannot both pass the "not the last
 * method" check.
 */
export async function signInMethodsForUpdate(trx: Knex.Transaction, accountId: string): Promise<{ hasPassword: boolean; passkeys: number; identities: number } | undefined> {
  if (!isUuid(accountId)) return undefined;
  const account = await trx('accounts').where({ id: accountId }).forUpdate().first<{ password_hash: string | null } | undefined>('password_hash');
  if (!account) return undefined;
  const [passkeys] = await trx('mfa_factors').where({ account_id: accountId, type: 'webauthn' }).whereNotNull('confirmed_at').count<{ count: string }[]>({ count: '*' });
  const [identities] = await trx('federated_identities').where({ account_id: accountId }).count<{ count: string }[]>({ count: '*' });
  return { hasPassword: account.password_hash !== null, passkeys: Number(passkeys?.count ?? 0), identities: Number(identities?.count ?? 0) };
}
