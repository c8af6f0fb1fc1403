// Everything stored about one person, in one place: the data export reads it and erasure
// removes it, so a table added for accounts is added to both here (docs/privacy.md).
import type { Knex } from 'knex';
import type { FederatedIdentityRow } from './federated-identities.ts';
import type { AccountSessionRow } from './account-sessions.ts';
import type { AuditEventRow } from './audit.ts';
import type { RememberedDeviceRow } from './remembered-devices.ts';

type Db = Knex | Knex.Transaction;

/** Ids of the account's sign-in sessions that have not expired, revoked or not. */
export async function unexpiredSessionIds(db: Db, accountId: string): Promise<string[]> {
  return db('account_sessions')
    .where({ account_id: accountId })
    .andWhere((q) => q.whereNull('expires_at').orWhere('expires_at', '>', db.fn.now()))
    .pluck('id');
}

export async function listAllSessions(db: Db, accountId: string): Promise<AccountSessionRow[]> {
  return db<AccountSessionRow>('account_sessions').where({ account_id: accountId }).orderBy('created_at');
}

export async function listAllRememberedDevices(db: Db, accountId: string): Promise<RememberedDeviceRow[]> {
  return db<RememberedDeviceRow>('remembered_devices').where({ account_id: accountId }).orderBy('created_at');
}

export interface RefreshTokenRecord {
  client_id: string;
  grant_id: string | null;
  ua_family: string | null;
  remember: boolean;
  created_at: Date;
  rotated_at: Date | null;
  expires_at: Date;
}

/** Where refresh tokens were issued (token_bindings), without the token hashes. */
export async function listRefreshTokenRecords(db: Db, accountId: string): Promise<RefreshTokenRecord[]> {
  return db('token_bindings')
    .where({ account_id: accountId })
    .select<RefreshTokenRecord[]>('client_id', 'grant_id', 'ua_family', 'remember', 'created_at', 'rotated_at', 'expires_at')
    .orderBy('created_at');
}

export type LinkedIdentityRecord = Omit<FederatedIdentityRow, 'id' | 'account_id'>;

/** Accounts at upstream identity providers linked for signing in. */
export async function listLinkedIdentities(db: Db, accountId: string): Promise<LinkedIdentityRecord[]> {
  return db('federated_identities')
    .where({ account_id: accountId })
    .select<LinkedIdentityRecord[]>('provider', 'subject', 'email', 'email_verified', 'display_name', 'created_at', 'last_used_at')
    .orderBy('created_at');
}

export interface OneTimeLinkRecord {
  purpose: string;
  created_at: Date;
  expires_at: Date;
  consumed_at: Date | null;
}

/** Links and codes sent to the person (verification, reset ...), without their hashes or contents. */
export async function listOneTimeLinks(db: Db, accountId: string): Promise<OneTimeLinkRecord[]> {
  return db('one_time_tokens')
    .where({ account_id: accountId })
    .select<OneTimeLinkRecord[]>('purpose', 'created_at', 'expires_at', 'consumed_at')
    .orderBy('created_at');
}

export interface MessageRecord {
  channel: 'mail' | 'sms';
  template: string;
  recipient: string;
  created_at: Date;
  sent_at: Date | null;
  failed_at: Date | null;
}

function messagesTo(db: Db, contact: { email: string; phone: string | null }): Knex.QueryBuilder {
  return db('notifications').where((q) => {
    q.where({ channel: 'mail' }).andWhereRaw('lower(recipient) = lower(?)', [contact.email]);
    if (contact.phone) q.orWhere({ channel: 'sms', recipient: contact.phone });
  });
}

/** Mail and SMS to the person's address and number, queued or sent (the contents are encrypted). */
export async function listMessages(db: Db, contact: { email: string; phone: string | null }): Promise<MessageRecord[]> {
  return messagesTo(db, contact).select<MessageRecord[]>('channel', 'template', 'recipient', 'created_at', 'sent_at', 'failed_at').orderBy('created_at');
}

/** Every audit event of the account, oldest first. */
export async function listAccountAuditEvents(db: Db, accountId: string): Promise<AuditEventRow[]> {
  return db<AuditEventRow>('audit_events').where({ account_id: accountId }).orderBy('id');
}

/** Audit events that name the person: theirs, or naming their id or address in the details. */
export async function auditEventsNaming(db: Db, accountId: string, needles: string[]): Promise<AuditEventRow[]> {
  const like = (s: string) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  return db<AuditEventRow>('audit_events')
    .where({ account_id: accountId })
    .orWhere((q) => {
      for (const needle of needles) q.orWhereRaw('details::text ILIKE ?', [like(needle)]);
    })
    .orderBy('id');
}

export async function pseudonymizeAuditEvent(trx: Knex.Transaction, id: string, changes: { accountId: string | null; ip: string | null; userAgent: string | null; details: Record<string, unknown> }): Promise<void> {
  await trx('audit_events').where({ id }).update({ account_id: changes.accountId, ip: changes.ip, user_agent: changes.userAgent, details: JSON.stringify(changes.details) });
}

/**
 * Deletes the person's rows from every table that holds them. Most would also go with the
 * accounts row (ON DELETE CASCADE); naming them keeps erasure correct if a key changes, and
 * covers the rows no foreign key reaches (role assignments, ACL subjects, the outbox, protocol
 * state in the embedded store).
 */
export async function deletePersonalRows(trx: Knex.Transaction, account: { id: string; email: string; phone: string | null }): Promise<void> {
  const id = account.id;
  await trx('account_grants').where({ account_id: id }).delete();
  await trx('account_sessions').where({ account_id: id }).delete();
  await trx('token_bindings').where({ account_id: id }).delete();
  await trx('remembered_devices').where({ account_id: id }).delete();
  await trx('recovery_codes').where({ account_id: id }).delete();
  await trx('mfa_factors').where({ account_id: id }).delete();
  await trx('one_time_tokens').where({ account_id: id }).delete();
  await trx('federated_identities').where({ account_id: id }).delete();
  await trx('api_keys').where({ owner_account_id: id }).delete();
  await trx('role_assignments').where({ subject_type: 'user', subject_id: id }).delete();
  await trx('acl_entries').where({ subject: `user:${id}` }).delete();
  await messagesTo(trx, { email: account.email, phone: account.phone }).delete();
  // With Redis configured this table is unused; on the embedded store it holds sessions, grants,
  // tokens and interactions naming the account, which the provider would otherwise keep to expiry.
  await trx('oidc_payloads').whereRaw("payload->>'accountId' = ?", [id]).orWhereRaw("payload->'session'->>'accountId' = ?", [id]).delete();
}

export async function deleteAccountRow(trx: Knex.Transaction, accountId: string): Promise<void> {
  await trx('accounts').where({ id: accountId }).delete();
}
