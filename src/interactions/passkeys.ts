// Passkeys in the sign-in pages: as the second step after a password (only the pending account's
// passkeys), and as a passwordless sign-in with a discoverable credential (the "Sign in with a
// passkey" button and the browser's autofill on the Email field). The page's script asks for
// options, runs the ceremony and posts the result; it then navigates to the URL we return, since
// a script-driven POST cannot follow the interaction's redirect itself.
import type Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context, Middleware } from 'koa';
import { z } from 'zod';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { findAccountRow } from '../db/accounts.ts';
import { recordAudit } from '../domain/audit.ts';
import { lockState, recordFailedLogin, recordSuccessfulLogin } from '../domain/lockout.ts';
import { maySignIn } from '../domain/users.ts';
import { authenticationOptions, verifyAuthentication, type AuthenticationBinding, type PasskeyFailure } from '../domain/webauthn.ts';
import { AppError, isAppError } from '../errors.ts';
import { verifyCsrf } from '../security/csrf.ts';
import { setRetryAfter } from '../security/rate-limit.ts';
import { auditMeta, loadInteraction, type InteractionDetails } from './context.ts';
import { limitAttempt } from './guards.ts';
import { completeLogin, pendingLogin, type PendingLogin } from './mfa.ts';

/** JSON bodies of the passkey endpoints (a registration response with attestation fits easily). */
export function passkeyJsonBody(): Middleware {
  return bodyParser({ enableTypes: ['json'], jsonLimit: '64kb' });
}

/**
 * Wraps a JSON endpoint: expected failures answer `{ error, error_description }` with their
 * status whatever the Accept header says, so the page's script always gets JSON to show.
 */
export function jsonEndpoint(handler: (ctx: Context) => Promise<void>): Middleware {
  return async (ctx) => {
    ctx.set('cache-control', 'no-store');
    try {
      await handler(ctx);
    } catch (err) {
      if (!isAppError(err) || err.status >= 500) throw err;
      ctx.status = err.status;
      if (err.code === 'rate_limited') setRetryAfter(ctx, Number(err.details?.retryAfterSeconds ?? 60));
      ctx.body = { error: err.code, error_description: err.message };
    }
  };
}

/** The parsed JSON body (`{}` when there is none). */
export function jsonBody(ctx: Context): Record<string, unknown> {
  const body = (ctx.request as { body?: unknown }).body;
  return body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}

const Purpose = z.enum(['second-factor', 'passwordless']);
type Purpose = z.infer<typeof Purpose>;

const MESSAGES: Partial<Record<PasskeyFailure | 'not_allowed', string>> = {
  challenge_invalid: 'This passkey request expired. Try again.',
  unknown_credential: 'This passkey is not registered here (it may have been removed). Sign in with your email and password instead.',
  foreign_credential: 'That passkey belongs to a different account. Use a passkey of the account you are signing in to.',
  user_not_verified: 'Your device did not confirm it is you (PIN, fingerprint or face). Try again.',
};
const DEFAULT_MESSAGE = 'The passkey could not be verified. Try again, or use another way to sign in.';

// Failures that say something about the person at the keyboard (as opposed to an expired
// request or a malformed post) count toward the account lockout, as wrong codes do.
const COUNTS_TOWARD_LOCKOUT = new Set<PasskeyFailure>(['foreign_credential', 'verification_failed', 'backup_eligibility_changed', 'counter_regression']);

function refused(reason: PasskeyFailure | 'not_allowed'): AppError {
  return new AppError('passkey_failed', MESSAGES[reason] ?? DEFAULT_MESSAGE, 400, { reason });
}

/** The pending login a second-factor passkey may finish (not during enrollment). */
function secondFactorPending(details: InteractionDetails): PendingLogin {
  const pending = pendingLogin(details);
  if (!pending || pending.enroll || pending.enrolled) {
    throw new AppError('no_pending_login', 'This sign-in is not waiting for a second step. Reload the page.', 400);
  }
  return pending;
}

function requireLoginPrompt(details: InteractionDetails): void {
  if (details.prompt.name !== 'login') throw new AppError('not_signing_in', 'This sign-in is past the sign-in step. Reload the page.', 400);
}

function bindingFor(purpose: Purpose, details: InteractionDetails): { binding: AuthenticationBinding; pending?: PendingLogin } {
  if (purpose === 'second-factor') {
    const pending = secondFactorPending(details);
    return { binding: { purpose, accountId: pending.accountId, interactionUid: details.uid }, pending };
  }
  return { binding: { purpose, interactionUid: details.uid } };
}

/**
 * GET /passkey/options?purpose=second-factor|passwordless and POST /passkey/verify under the
 * interaction router. `_formBody` is that router's form parser: these endpoints take JSON and
 * bring their own parser.
 */
export function registerPasskeyInteractionRoutes(router: Router, services: Services, host: ProviderHost, _formBody: Middleware): void {
  const json = passkeyJsonBody();

  router.get('/passkey/options', jsonEndpoint(async (ctx) => {
    const details = await loadInteraction(host.provider, ctx);
    requireLoginPrompt(details);
    const purpose = Purpose.safeParse(ctx.query.purpose);
    if (!purpose.success) throw new AppError('invalid_request', 'Unknown passkey purpose.', 400);
    ctx.body = await authenticationOptions(services, bindingFor(purpose.data, details).binding);
  }));

  router.post('/passkey/verify', json, jsonEndpoint(async (ctx) => {
    const details = await loadInteraction(host.provider, ctx);
    verifyCsrf(ctx, ctx.get('x-csrf-token'));
    requireLoginPrompt(details);
    const body = jsonBody(ctx);
    const purpose = Purpose.safeParse(body.purpose);
    if (!purpose.success) throw new AppError('invalid_request', 'Unknown passkey purpose.', 400);
    const { binding, pending } = bindingFor(purpose.data, details);
    const clientId = String(details.params.client_id);
    const meta = auditMeta(ctx, clientId);
    const eventType = purpose.data === 'second-factor' ? 'mfa.webauthn' : 'login.passkey';
    const audit = (outcome: 'success' | 'failure', accountId: string | undefined, extra: Record<string, unknown>) =>
      recordAudit(services.knex, { type: eventType, outcome, accountId, clientId, ip: meta.ip, userAgent: meta.userAgent, details: extra });

    if (pending) await limitAttempt(services, 'otpAccount', pending.accountId);
    const check = await verifyAuthentication(services, binding, body.response, {
      // Passwordless learns the account from the credential; its attempts count from there.
      beforeSignatureCheck: pending ? undefined : (accountId) => limitAttempt(services, 'otpAccount', accountId),
    });

    if (!check.ok) {
      await audit('failure', check.accountId, { reason: check.reason, ...(check.factorId ? { factorId: check.factorId } : {}), ...check.details });
      if (pending && COUNTS_TOWARD_LOCKOUT.has(check.reason)) {
        const lock = await recordFailedLogin(services.knex, pending.accountId, services.config.lockout);
        if (lock.lockedNow) await recordAudit(services.knex, { type: 'user.locked', outcome: 'success', accountId: pending.accountId, clientId, ip: meta.ip, userAgent: meta.userAgent, details: { reason: 'second_factor' } });
      }
      throw refused(check.reason);
    }

    // The account may have changed since the passkey was made (or since the password step).
    const account = await findAccountRow(services.knex, check.accountId);
    const barred = !account ? 'account_missing'
      : !maySignIn(account, services.config.requireVerifiedEmail) ? `status:${account.status}`
      : lockState(account).locked ? 'locked' : undefined;
    if (barred) {
      await audit('failure', check.accountId, { reason: barred, factorId: check.factorId });
      throw refused('not_allowed');
    }

    await services.knex.transaction(async (trx) => {
      // A passwordless sign-in is a complete sign-in, so it clears failures as a password does.
      if (!pending) await recordSuccessfulLogin(trx, check.accountId);
      await recordAudit(trx, { type: eventType, outcome: 'success', accountId: check.accountId, clientId, ip: meta.ip, userAgent: meta.userAgent, details: { factorId: check.factorId, amr: check.amr } });
    });
    await services.rateLimits.reset('otpAccount', check.accountId);
    const redirect = pending
      ? await completeLogin(services, ctx, details, { accountId: pending.accountId, amr: [...pending.amr, ...check.amr], remember: pending.remember })
      : await completeLogin(services, ctx, details, { accountId: check.accountId, amr: check.amr, remember: body.remember === true });
    ctx.body = { redirect };
  }));
}
