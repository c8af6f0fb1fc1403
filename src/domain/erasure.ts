// Erasure (GDPR art. 17): deleting an account at its holder's or an administrator's request.
// Everything that describes the person goes; the audit trail stays, pseudonymised: its rows
// keep what happened and when, under a random id that nothing else in any system knows
// (docs/privacy.md, docs/decisions.md).
//
// Order matters. First the account is deleted the usual way (account-status.ts): from then on no
// sign-in or token is honoured and the address is free. Then the provider's sessions, grants
// and tokens end, and the apps are told. Last, one transaction pseudonymises the audit rows,
// deletes every personal row and the account itself, and records the erasure.
import crypto from 'node:crypto';
import type Provider from 'oidc-provider';
import type { Knex } from 'knex';
import type { Services } from '../services.ts';
import { AppError } from '../errors.ts';
import { findAccountRow } from '../db/accounts.ts';
import { withAuditMaintenance } from '../db/audit-maintenance.ts';
import type { AuditEventRow } from '../db/audit.ts';
import {
  auditEventsNaming,
  deleteAccountRow,
  deletePersonalRows,
  listAllRememberedDevices,
  listAllSessions,
  listLinkedIdentities,
  pseudonymizeAuditEvent,
} from '../db/personal-data.ts';
import { endAccountProtocolState } from '../oidc/grants.ts';
import { notifyClient } from '../oidc/sessions.ts';
import { changeAccountStatusById } from './account-status.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { verifyPassword } from './passwords.ts';

/** How recent a sign-in must be to stand in for the password of an account without one. */
export const FRESH_SIGN_IN_SECONDS = 5 * 60;

const ERASED = '[erased]';

/** Detail keys whose values describe the person (on the person's own audit rows). */
const PERSONAL_KEYS = new Set(['email', 'name', 'phone', 'phone_number', 'ip', 'user_agent', 'device', 'location', 'login_hint', 'recipient', 'to']);

/** How the holder proves it is them before erasing: their password, or a sign-in just now. */
export type ErasureProof = 'password' | 'fresh_sign_in';

export async function erasureProof(services: Pick<Services, 'knex'>, accountId: string): Promise<ErasureProof> {
  const account = await findAccountRow(services.knex, accountId);
  if (!account) throw new AppError('account_not_found', 'Your account no longer exists.', 404);
  return account.password_hash ? 'password' : 'fresh_sign_in';
}

/** Whether a sign-in at `authTime` (epoch seconds) is recent enough to confirm an erasure. */
export function signInIsFresh(authTime: number | undefined, now = Date.now()): boolean {
  return authTime !== undefined && now / 1000 - authTime <= FRESH_SIGN_IN_SECONDS;
}

/** Checks the holder's password before an erasure; a wrong one is audited and refused. */
export async function confirmErasurePassword(services: Pick<Services, 'knex'>, accountId: string, password: string, meta: AuditMeta = {}): Promise<void> {
  const account = await findAccountRow(services.knex, accountId);
  if (!account) throw new AppError('account_not_found', 'Your account no longer exists.', 404);
  if (!account.password_hash || !(await verifyPassword(account.password_hash, password))) {
    await recordAudit(services.knex, { type: 'account.erasure_refused', outcome: 'failure', accountId, ...auditContext(meta, { reason: 'bad_password' }) });
    throw new AppError('bad_password', 'That password is not correct.', 400, { field: 'password' });
  }
}

interface Person {
  id: string;
  email: string;
  name: string | null;
  phone: string | null;
  /** Addresses of linked upstream accounts, which may differ from the account's own. */
  otherEmails: string[];
  /** Upstream subjects and display names: personal only as whole values. */
  otherIdentifiers: string[];
}

/** Addresses and user agents the person was seen with, to find them inside audit details. */
async function tracesOf(db: Knex.Transaction, accountId: string, events: AuditEventRow[]): Promise<Set<string>> {
  const traces = new Set<string>();
  const add = (value: string | null) => {
    if (value) traces.add(value);
  };
  for (const s of await listAllSessions(db, accountId)) [s.login_ip, s.last_ip, s.login_user_agent, s.last_user_agent].forEach(add);
  for (const d of await listAllRememberedDevices(db, accountId)) [d.ip, d.user_agent].forEach(add);
  for (const e of events) if (e.account_id === accountId) [e.ip, e.user_agent].forEach(add);
  return traces;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

class Scrubber {
  readonly #person: Person;
  readonly #pseudonym: string;
  readonly #traces: Set<string>;
  readonly #embedded: RegExp[];

  constructor(person: Person, pseudonym: string, traces: Set<string>) {
    this.#person = person;
    this.#pseudonym = pseudonym;
    this.#traces = traces;
    this.#embedded = [person.email, person.phone, ...person.otherEmails].filter((v): v is string => Boolean(v)).map((v) => new RegExp(escapeRegExp(v), 'gi'));
  }

  #string(value: string): string {
    if (this.#traces.has(value) || value === this.#person.name || this.#person.otherIdentifiers.includes(value)) return ERASED;
    let out = value.split(this.#person.id).join(this.#pseudonym);
    for (const pattern of this.#embedded) out = out.replace(pattern, ERASED);
    return out;
  }

  /** A copy of `value` without the person in it; on their own rows personal keys go entirely. */
  scrub(value: unknown, own: boolean): unknown {
    if (typeof value === 'string') return this.#string(value);
    if (Array.isArray(value)) return value.map((v) => this.scrub(v, own));
    if (value && typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const [key, v] of Object.entries(value)) out[key] = own && PERSONAL_KEYS.has(key) && v !== null ? ERASED : this.scrub(v, own);
      return out;
    }
    return value;
  }
}

function actedAs(details: Record<string, unknown>, accountId: string): boolean {
  const actor = details.actor as { type?: unknown; id?: unknown } | undefined;
  return actor?.type === 'user' && actor.id === accountId;
}

/**
 * Rewrites the audit rows about the person: the account id becomes the pseudonym, addresses and
 * user agents go, and details lose whatever names them. Rows of other accounts that mention the
 * person (an administrator assigning them a role) keep their own data.
 */
async function pseudonymizeAuditTrail(trx: Knex.Transaction, person: Person, pseudonym: string): Promise<void> {
  const events = await auditEventsNaming(trx, person.id, [person.id, person.email, ...(person.phone ? [person.phone] : []), ...person.otherEmails]);
  const scrubber = new Scrubber(person, pseudonym, await tracesOf(trx, person.id, events));
  for (const event of events) {
    const own = event.account_id === person.id || actedAs(event.details, person.id);
    await pseudonymizeAuditEvent(trx, event.id, {
      accountId: event.account_id === person.id ? pseudonym : event.account_id,
      ip: own ? null : event.ip,
      userAgent: own ? null : event.user_agent,
      details: scrubber.scrub(event.details, own) as Record<string, unknown>,
    });
  }
}

export interface ErasureResult {
  /** The id the account's audit rows carry from now on. */
  pseudonym: string;
}

/**
 * Erases the account. `provider`, when given, tells each app the person was signed in to by
 * back-channel logout; without it sessions and tokens still end, the apps just learn it later.
 * Safe to repeat after a failure part-way: a deleted account is erased the same way.
 */
export async function eraseAccount(services: Services, accountId: string, meta: AuditMeta = {}, provider?: Provider): Promise<ErasureResult> {
  const account = await findAccountRow(services.knex, accountId);
  if (!account) throw new AppError('account_not_found', 'no account has this id', 404);
  // Read before the status change below replaces them in the row.
  const linked = await listLinkedIdentities(services.knex, accountId);
  const person: Person = {
    id: account.id,
    email: account.email,
    name: account.name,
    phone: account.phone_number,
    otherEmails: linked.flatMap((l) => (l.email && l.email.toLowerCase() !== account.email.toLowerCase() ? [l.email] : [])),
    otherIdentifiers: linked.flatMap((l) => [l.subject, ...(l.display_name ? [l.display_name] : [])]),
  };
  if (account.status !== 'deleted') await changeAccountStatusById(services, accountId, 'delete', meta);

  const signedIn = await endAccountProtocolState(services, accountId);
  if (provider) await Promise.all(signedIn.map((a) => notifyClient(services, provider, a.clientId, accountId, a.sid)));

  const pseudonym = crypto.randomUUID();
  // Who asked is kept when an administrator did; the holder's own address and agent are personal.
  const context = auditContext(meta, { requested_by: meta.actor ? 'administrator' : 'account holder' });
  await services.knex.transaction(async (trx) => {
    await withAuditMaintenance(trx, 'erasure');
    await pseudonymizeAuditTrail(trx, person, pseudonym);
    await deletePersonalRows(trx, { id: person.id, email: person.email, phone: person.phone });
    await deleteAccountRow(trx, accountId);
    await recordAudit(trx, { type: 'account.erased', outcome: 'success', accountId: pseudonym, ...context, ...(meta.actor ? {} : { ip: undefined, userAgent: undefined }) });
  });
  services.logger.info({ pseudonym }, 'account erased');
  return { pseudonym };
}
