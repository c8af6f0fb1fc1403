// Self-service signup. A new email gets a pending account and a verification link; an email that
// already has an account gets a "someone tried to sign up with your address" mail instead. The
// caller sees the same answer either way, and both paths do the same expensive work (one argon2
// hash), so neither the page nor its timing reveals which emails are registered.
import { findAccountRowByEmail, insertAccount } from '../db/accounts.ts';
import { AppError } from '../errors.ts';
import type { Services } from '../services.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { normalizeEmail } from './emails.ts';
import { pageLink } from './links.ts';
import { issueToken } from './one-time-tokens.ts';
import { assertStrongPassword } from './password-policy.ts';
import { hashPassword } from './passwords.ts';
import { normalizeName } from './users.ts';
import { wholeUnits } from './durations.ts';

export type LifecycleServices = Pick<Services, 'knex' | 'config' | 'notifier' | 'secrets'>;

export interface SignupInput {
  email: string;
  password: string;
  name?: string;
}

function fieldError(field: string, err: unknown): never {
  if (err instanceof AppError) throw new AppError(err.code, err.message, 400, { field });
  throw err;
}

export async function signup(services: LifecycleServices, input: SignupInput, meta: AuditMeta = {}): Promise<void> {
  if (!services.config.signupEnabled) throw new AppError('signup_disabled', 'Creating accounts here is turned off. Ask your administrator for an invitation.', 403);
  let email: string;
  try {
    email = normalizeEmail(input.email);
  } catch (err) {
    fieldError('email', err);
  }
  let name: string | null;
  try {
    name = normalizeName(input.name);
  } catch (err) {
    fieldError('name', err);
  }
  assertStrongPassword(input.password, [email, name]);
  const passwordHash = await hashPassword(input.password, services.config.passwordHash);
  const { config } = services;
  await services.knex.transaction(async (trx) => {
    const created = await insertAccount(trx, { email, passwordHash, name, emailVerified: false, status: 'pending' });
    if (created) {
      const token = await issueToken(trx, 'verify_email', created.id, config.lifecycle.emailVerificationTtl);
      await services.notifier.queueMail(trx, {
        to: created.email,
        template: 'verify-email',
        data: { name: created.name, link: pageLink(config, 'verify-email', token), expiresInHours: wholeUnits(config.lifecycle.emailVerificationTtl, 3600) },
      });
      await recordAudit(trx, { type: 'user.signup', outcome: 'success', accountId: created.id, ...auditContext(meta) });
      return;
    }
    const existing = await findAccountRowByEmail(trx, email);
    if (existing && existing.status !== 'deleted') {
      await services.notifier.queueMail(trx, {
        to: existing.email,
        template: 'signup-existing',
        data: { name: existing.name, loginLink: pageLink(config, 'account'), resetLink: pageLink(config, 'forgot-password') },
      });
    }
    await recordAudit(trx, { type: 'user.signup', outcome: 'failure', accountId: existing?.id, ...auditContext(meta, { reason: 'email_exists' }) });
  });
  services.notifier.kick();
}
