// Guest (anonymous) accounts, for applications that let people start before signing up. A guest
// is an ordinary account row with a fresh id (the `sub` applications see), no password and no
// address; `email` holds a placeholder in the reserved .invalid domain (RFC 2606) that lookups by
// address never find and nothing can be delivered to. Saving the account (adding an email and
// password) keeps the id, so the application's data stays attached. Guests never saved expire.
import crypto from 'node:crypto';
import { findAccountRowByEmail } from '../db/accounts.ts';
import { insertGuestAccount, lockGuestAccount, lockStaleGuest, saveGuestAccount, staleGuestIds } from '../db/guest-accounts.ts';
import { deleteAccountRow, deletePersonalRows } from '../db/personal-data.ts';
import { AppError } from '../errors.ts';
import { endAccountProtocolState } from '../oidc/grants.ts';
import type { Services } from '../services.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { wholeUnits } from './durations.ts';
import { normalizeEmail } from './emails.ts';
import { pageLink } from './links.ts';
import { issueToken } from './one-time-tokens.ts';
import { assertStrongPassword } from './password-policy.ts';
import { hashPassword } from './passwords.ts';
import type { LifecycleServices } from './signup.ts';

const PLACEHOLDER_DOMAIN = 'guest.invalid';

function placeholderEmail(id: string): string {
  return `guest-${id}@${PLACEHOLDER_DOMAIN}`;
}

/** Creates a guest account and returns its id. */
export async function createGuestAccount(services: Pick<Services, 'knex'>, meta: AuditMeta = {}): Promise<string> {
  // The id is chosen here so the placeholder can carry it: unique like the id, for the index.
  const id = crypto.randomUUID();
  await services.knex.transaction(async (trx) => {
    await insertGuestAccount(trx, { id, placeholderEmail: placeholderEmail(id) });
    await recordAudit(trx, { type: 'guest.created', outcome: 'success', accountId: id, ...auditContext(meta) });
  });
  return id;
}

export interface GuestUpgradeInput {
  email: string;
  password: string;
}

function fieldError(field: string, err: unknown): never {
  if (err instanceof AppError) throw new AppError(err.code, err.message, 400, { field });
  throw err;
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown }).code === '23505';
}

/**
 * Saves a guest account: it keeps its id, gets the address (unverified) and the password, and a
 * verification link is mailed. An address that already has an account gets signup's
 * "someone tried to sign up with your address" mail instead and the guest stays a guest; the
 * caller answers "check your email" either way, as signup does.
 */
export async function upgradeGuestAccount(services: LifecycleServices, accountId: string, input: GuestUpgradeInput, meta: AuditMeta = {}): Promise<void> {
  // Saving creates a sign-in by email and password: the same switch as self-service signup.
  if (!services.config.signupEnabled) throw new AppError('signup_disabled', 'Saving a guest account is turned off here. Ask your administrator for an invitation.', 403);
  let email: string;
  try {
    email = normalizeEmail(input.email);
  } catch (err) {
    fieldError('email', err);
  }
  if (email.toLowerCase().endsWith('.invalid')) fieldError('email', new AppError('invalid_email', 'enter a valid email address', 400));
  assertStrongPassword(input.password, [email]);
  const passwordHash = await hashPassword(input.password, services.config.passwordHash);
  const { config } = services;

  const mailOwner = async (): Promise<void> => {
    await services.knex.transaction(async (trx) => {
      const guest = await lockGuestAccount(trx, accountId);
      if (!guest) throw new AppError('not_a_guest', 'This account is already saved.', 409);
      const existing = await findAccountRowByEmail(trx, email);
      if (existing && existing.status !== 'deleted') {
        await services.notifier.queueMail(trx, {
          to: existing.email,
          template: 'signup-existing',
          data: { name: existing.name, loginLink: pageLink(config, 'account'), resetLink: pageLink(config, 'forgot-password') },
        });
      }
      await recordAudit(trx, { type: 'guest.upgraded', outcome: 'failure', accountId, ...auditContext(meta, { reason: 'email_exists' }) });
    });
  };

  const saved = await services.knex.transaction(async (trx) => {
    const guest = await lockGuestAccount(trx, accountId);
    if (!guest) throw new AppError('not_a_guest', 'This account is already saved.', 409);
    if (await findAccountRowByEmail(trx, email)) return false;
    const row = await saveGuestAccount(trx, accountId, { email, passwordHash });
    if (!row) throw new AppError('not_a_guest', 'This account is already saved.', 409);
    const token = await issueToken(trx, 'verify_email', row.id, config.lifecycle.emailVerificationTtl);
    await services.notifier.queueMail(trx, {
      to: row.email,
      template: 'verify-email',
      data: { name: row.name, link: pageLink(config, 'verify-email', token), expiresInHours: wholeUnits(config.lifecycle.emailVerificationTtl, 3600) },
    });
    await recordAudit(trx, { type: 'guest.upgraded', outcome: 'success', accountId, ...auditContext(meta) });
    return true;
  }).catch((err: unknown) => {
    // Someone signed up with the address between the check and the update.
    if (isUniqueViolation(err)) return false;
    throw err;
  });
  if (!saved) await mailOwner();
  services.notifier.kick();
}

export interface GuestSweepOptions {
  /** Guests handled per batch. */
  batchSize?: number;
  /** Batches per run, so one run never holds an instance for long; the next run goes on. */
  maxBatches?: number;
}

/**
 * Deletes guests unused for `ttlDays` (0: keep forever) with their sessions, grants and tokens;
 * returns how many went. Safe on several instances at once: each guest is deleted under a row
 * lock taken with SKIP LOCKED, after re-checking that it is still an unused guest.
 */
export async function sweepExpiredGuests(services: Pick<Services, 'knex' | 'redis'>, ttlDays: number, options: GuestSweepOptions = {}): Promise<number> {
  if (ttlDays <= 0) return 0;
  const batchSize = options.batchSize ?? 100;
  const maxBatches = options.maxBatches ?? 10;
  let deleted = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const ids = await staleGuestIds(services.knex, ttlDays, batchSize);
    let progressed = false;
    for (const id of ids) {
      // Protocol state first, outside the transaction: the embedded store is the same database,
      // and PGlite has a single connection that the open transaction would be holding.
      await endAccountProtocolState(services, id);
      const gone = await services.knex.transaction(async (trx) => {
        const guest = await lockStaleGuest(trx, id, ttlDays);
        if (!guest) return false;
        await deletePersonalRows(trx, { id, email: guest.email, phone: guest.phone_number });
        await deleteAccountRow(trx, id);
        await recordAudit(trx, { type: 'guest.expired', outcome: 'success', accountId: id, details: { ttl_days: ttlDays } });
        return true;
      });
      if (gone) {
        deleted++;
        progressed = true;
      }
    }
    // A short batch was the last; a batch where nothing went (another instance is on it) ends the run.
    if (ids.length < batchSize || !progressed) break;
  }
  return deleted;
}
