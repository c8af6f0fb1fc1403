// Accounts: creation, password changes and password sign-in. Sign-in answers only ok / not ok;
// why it failed goes to the audit log and nowhere else, so callers cannot reveal whether an
// email has an account.
import type { Knex } from 'knex';
import {
  findAccountRow,
  findAccountRowByEmail,
  insertAccount,
  listAccountRows,
  searchAccountRows,
  updateAccount,
  updatePasswordHashByEmail,
  type AccountRow,
  type AccountSearch,
  type AccountStatus,
} from '../db/accounts.ts';
import { AppError } from '../errors.ts';
import type { Services } from '../services.ts';
import type { Notifier } from '../notify/notifier.ts';
import { auditContext, recordAudit, recordAuditWith, type AuditMeta } from './audit.ts';
import { emailOrUndefined, normalizeEmail } from './emails.ts';
import { pageLink } from './links.ts';
import { lockState, recordFailedLogin } from './lockout.ts';
import { successfulLoginUpdate } from '../db/lockout.ts';
import { assertPasswordAcceptable, hashPassword, MAX_PASSWORD_LENGTH, needsRehash, verifyPassword, type PasswordHashParams } from './passwords.ts';

export type { AccountStatus };

/** What callers outside the domain may see of an account (CLI output, admin API). */
export interface PublicAccount {
  id: string;
  email: string;
  name: string | null;
  email_verified: boolean;
  status: AccountStatus;
  created_at: string;
}

export interface Account {
  id: string;
  email: string;
  emailVerified: boolean;
  name: string | null;
  status: AccountStatus;
  phoneNumber: string | null;
  phoneNumberVerified: boolean;
  /** Sessions and tokens issued before this instant are no longer honoured. */
  tokensValidAfter: Date | null;
  /** Present (true) only for a guest account, whose email is a placeholder (guest-accounts.ts). */
  isGuest?: true;
}

/**
 * `unverifiedEmail` is set only when the password was right but the address still needs
 * verifying: the caller may then say so, since only the owner could have got this far.
 */
export type PasswordAuthResult = { ok: true; account: Account } | { ok: false; unverifiedEmail?: string };

type UserServices = Pick<Services, 'knex' | 'config'>;
// Sign-in only queues a lockout notice in its transaction and kicks delivery afterwards.
type SignInServices = Pick<Services, 'knex' | 'config'> & { notifier: Pick<Notifier, 'queueMail' | 'kick'> };

const MAX_NAME_LENGTH = 200;

export function toPublicAccount(row: AccountRow): PublicAccount {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    email_verified: row.email_verified,
    status: row.status,
    created_at: new Date(row.created_at).toISOString(),
  };
}

function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    email: row.email,
    emailVerified: row.email_verified,
    name: row.name,
    status: row.status,
    phoneNumber: row.phone_number,
    phoneNumberVerified: row.phone_number_verified,
    tokensValidAfter: row.tokens_valid_after ? new Date(row.tokens_valid_after) : null,
    ...(row.is_guest ? { isGuest: true as const } : {}),
  };
}

export function normalizeName(name: string | undefined | null): string | null {
  if (name === undefined || name === null) return null;
  const trimmed = String(name).trim().normalize('NFC');
  // eslint-disable-next-line no-control-regex
  if ([...trimmed].length > MAX_NAME_LENGTH || /[\u0000-\u001f\u007f]/.test(trimmed)) {
    throw new AppError('invalid_name', `names must be at most ${MAX_NAME_LENGTH} characters without control characters`, 400);
  }
  return trimmed === '' ? null : trimmed;
}

export async function createUser(
  services: UserServices,
  input: { email: string; password: string; name?: string; emailVerified?: boolean },
  meta?: AuditMeta,
): Promise<PublicAccount> {
  const email = normalizeEmail(input.email);
  const name = normalizeName(input.name);
  assertPasswordAcceptable(input.password);
  // Hashing takes tens of milliseconds; keep it outside the transaction.
  const passwordHash = await hashPassword(input.password, services.config.passwordHash);
  const row = await services.knex.transaction(async (trx) => {
    const inserted = await insertAccount(trx, { email, passwordHash, name, emailVerified: input.emailVerified === true });
    if (!inserted) return undefined;
    await recordAudit(trx, { type: 'user.created', outcome: 'success', accountId: inserted.id, ...auditContext(meta) });
    return inserted;
  });
  if (!row) throw new AppError('email_taken', 'an account with this email already exists', 409);
  return toPublicAccount(row);
}

export async function listUsers(services: Pick<Services, 'knex'>): Promise<PublicAccount[]> {
  return (await listAccountRows(services.knex)).map(toPublicAccount);
}

const SORT_KEY = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

export type UserSearch = AccountSearch;

/** A position in the newest-first listing of accounts (see searchUsers). */
export interface UserPosition {
  sortKey: string;
  id: string;
}

/** One page of accounts, newest first; `next` continues the listing when more may follow. */
export async function searchUsers(
  services: Pick<Services, 'knex'>,
  search: UserSearch,
  page: { after?: UserPosition; limit: number },
): Promise<{ users: PublicAccount[]; next: UserPosition | undefined }> {
  if (page.after !== undefined && !SORT_KEY.test(page.after.sortKey)) throw new AppError('invalid_cursor', 'the cursor is not one this listing returned', 400);
  // One row more than asked tells whether another page exists without a count query.
  const rows = await searchAccountRows(services.knex, search, { after: page.after, limit: page.limit + 1 });
  const shown = rows.slice(0, page.limit);
  const last = shown.at(-1);
  return { users: shown.map(toPublicAccount), next: rows.length > page.limit && last ? { sortKey: last.sort_key, id: last.id } : undefined };
}

export async function getUser(services: Pick<Services, 'knex'>, id: string): Promise<PublicAccount> {
  const row = await findAccountRow(services.knex, id);
  if (!row || row.status === 'deleted') throw new AppError('account_not_found', 'no account has this id', 404);
  return toPublicAccount(row);
}

/** What an administrator may change about an account's profile. */
export interface UserChanges {
  email?: string;
  name?: string | null;
  emailVerified?: boolean;
}

export async function updateUser(services: Pick<Services, 'knex'>, id: string, changes: UserChanges, meta?: AuditMeta): Promise<PublicAccount> {
  const email = changes.email === undefined ? undefined : normalizeEmail(changes.email);
  const name = changes.name === undefined ? undefined : normalizeName(changes.name);
  const row = await services.knex.transaction(async (trx) => {
    const current = await findAccountRow(trx, id);
    if (!current || current.status === 'deleted') throw new AppError('account_not_found', 'no account has this id', 404);
    const emailChanged = email !== undefined && email.toLowerCase() !== current.email.toLowerCase();
    if (emailChanged) {
      const holder = await findAccountRowByEmail(trx, email);
      if (holder) throw new AppError('email_taken', 'an account with this email already exists', 409);
    }
    const updated = await updateAccount(trx, id, {
      ...(email !== undefined ? { email } : {}),
      ...(name !== undefined ? { name } : {}),
      // A new address is unverified unless the administrator says otherwise.
      ...(changes.emailVerified !== undefined ? { email_verified: changes.emailVerified } : emailChanged ? { email_verified: false } : {}),
    });
    const changed = [
      ...(emailChanged ? ['email'] : []),
      ...(name !== undefined && name !== current.name ? ['name'] : []),
      ...(changes.emailVerified !== undefined && changes.emailVerified !== current.email_verified ? ['email_verified'] : []),
    ];
    await recordAudit(trx, { type: 'user.updated', outcome: 'success', accountId: id, ...auditContext(meta, { changed }) });
    return updated;
  }).catch((err: unknown) => {
    // Another account took the address between the check and the update.
    if ((err as { code?: unknown }).code === '23505') throw new AppError('email_taken', 'an account with this email already exists', 409);
    throw err;
  });
  if (!row) throw new AppError('account_not_found', 'no account has this id', 404);
  return toPublicAccount(row);
}

export async function setPassword(services: UserServices, email: string, password: string, meta?: AuditMeta): Promise<PublicAccount> {
  const normalized = normalizeEmail(email);
  assertPasswordAcceptable(password);
  const passwordHash = await hashPassword(password, services.config.passwordHash);
  const row = await services.knex.transaction(async (trx) => {
    const updated = await updatePasswordHashByEmail(trx, normalized, passwordHash);
    if (!updated) return undefined;
    await recordAudit(trx, { type: 'user.password_set', outcome: 'success', accountId: updated.id, ...auditContext(meta) });
    return updated;
  });
  if (!row) throw new AppError('account_not_found', 'no account has this email', 404);
  return toPublicAccount(row);
}

export async function findAccountByEmail(knex: Knex | Knex.Transaction, rawEmail: string): Promise<Account | undefined> {
  const row = await findAccountRowByEmail(knex, normalizeEmail(rawEmail));
  return row ? toAccount(row) : undefined;
}

export async function findAccountById(knex: Knex | Knex.Transaction, id: string): Promise<Account | undefined> {
  const row = await findAccountRow(knex, id);
  return row ? toAccount(row) : undefined;
}

// A hash made with the configured parameters, so a sign-in for an unknown email costs what a
// real verification costs. Computed once per parameter set and process.
const dummyHashes = new Map<string, Promise<string>>();

function dummyHash(params: PasswordHashParams): Promise<string> {
  const key = `${params.memoryCost}:${params.timeCost}:${params.parallelism}`;
  let hash = dummyHashes.get(key);
  if (!hash) {
    hash = hashPassword('gatehouse-timing-equaliser', params);
    hash.catch(() => dummyHashes.delete(key));
    dummyHashes.set(key, hash);
  }
  return hash;
}

/** Which states may finish signing in: active, and pending ones when verification is optional. */
export function maySignIn(account: { status: AccountStatus }, requireVerifiedEmail: boolean): boolean {
  return account.status === 'active' || (account.status === 'pending' && !requireVerifiedEmail);
}

export async function authenticateWithPassword(
  services: SignInServices,
  credentials: { email: string; password: string },
  meta: { ip?: string; userAgent?: string; clientId?: string } = {},
): Promise<PasswordAuthResult> {
  const { config } = services;
  const params = config.passwordHash;
  // A malformed email cannot name an account; it fails like an unknown one.
  const email = emailOrUndefined(credentials.email);
  const row = email ? await findAccountRowByEmail(services.knex, email) : undefined;
  const password = typeof credentials.password === 'string' ? credentials.password : '';
  // Longer than any acceptable password (at most two UTF-16 units per character): it matches no
  // stored hash, and hashing it would only spend CPU.
  const candidate = password.length > MAX_PASSWORD_LENGTH * 2 ? '' : password;
  const storedHash = row?.password_hash ?? null;
  // Always one verification, whatever the account's state, so timing reveals nothing.
  const verified = await verifyPassword(storedHash ?? (await dummyHash(params)), candidate);

  const context = { ip: meta.ip, userAgent: meta.userAgent, clientId: meta.clientId };
  const fail = async (reason: string, accountId?: string): Promise<PasswordAuthResult> => {
    await recordAudit(services.knex, { type: 'login.password', outcome: 'failure', accountId, ...context, details: { reason } });
    return { ok: false };
  };
  if (!row) return fail('unknown_email');
  if (lockState(row).locked) return fail('locked', row.id);
  if (storedHash === null) return fail('no_password', row.id);
  if (!verified) {
    const lock = await services.knex.transaction(async (trx) => {
      const outcome = await recordFailedLogin(trx, row.id, config.lockout);
      await recordAudit(trx, { type: 'login.password', outcome: 'failure', accountId: row.id, ...context, details: { reason: 'bad_password' } });
      if (outcome.lockedNow && outcome.until) {
        await recordAudit(trx, { type: 'user.locked', outcome: 'success', accountId: row.id, ...context, details: { until: outcome.until.toISOString() } });
        await services.notifier.queueMail(trx, {
          to: row.email,
          template: 'account-locked',
          data: { name: row.name, until: outcome.until, resetLink: pageLink(config, 'forgot-password') },
        });
      }
      return outcome;
    });
    if (lock.lockedNow) services.notifier.kick();
    return { ok: false };
  }
  // A saved guest account is active (its session goes on), but its new address is as unproven as
  // a fresh signup's, so signing in with the password waits for the same verification.
  if ((row.status === 'pending' || row.guest_upgraded_at !== null) && !row.email_verified && config.requireVerifiedEmail) {
    await fail('email_not_verified', row.id);
    return { ok: false, unverifiedEmail: row.email };
  }
  if (!maySignIn(row, config.requireVerifiedEmail)) return fail(`status:${row.status}`, row.id);

  const upgradedHash = needsRehash(storedHash, params) ? await hashPassword(candidate, params) : undefined;
  // Counters, sign-in time, any upgraded hash and the audit event: one statement, so they commit
  // together without a transaction around them (one round trip instead of four).
  await recordAuditWith(services.knex, successfulLoginUpdate(services.knex, row.id, { passwordHash: upgradedHash }), {
    type: 'login.password', outcome: 'success', accountId: row.id, ...context, details: upgradedHash ? { rehashed: true } : {},
  });
  return { ok: true, account: toAccount(row) };
}
