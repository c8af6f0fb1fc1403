// The second step of a sign-in. After the password (or, for a step-up, from the existing
// session) the interaction carries a pending login under our own key in its result; only when a
// second factor succeeds does it get the `login` oidc-provider acts on. The resume endpoint
// accepts any `result.login`, so nothing short of the full check may ever write one.
import type { Context } from 'koa';
import { z } from 'zod';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { ACR_MFA, acrFor, withMfa } from '../oidc/acr.ts';
import { secondFactorMethods, type SecondFactorMethod } from '../domain/mfa.ts';
import { verifyTotpCode } from '../domain/totp.ts';
import { redeemRecoveryCode } from '../domain/recovery-codes.ts';
import { sendSmsChallenge, checkSmsChallenge } from '../domain/sms-factor.ts';
import { recordAudit } from '../domain/audit.ts';
import { findAccountById } from '../domain/users.ts';
import { accountIsLocked, recordFailedLogin } from '../domain/lockout.ts';
import { AppError } from '../errors.ts';
import { csrfToken } from '../security/csrf.ts';
import { auditMeta, clientNameOf, loadInteraction, saveInteractionResult, type InteractionDetails } from './context.ts';
import { checkedForm, text } from './forms.ts';
import { limitAttempt } from './guards.ts';
import { isRememberedDevice, rememberDevice } from './remembered-device.ts';

const Pending = z.object({
  accountId: z.string(),
  amr: z.array(z.string()),
  remember: z.boolean(),
  enroll: z.boolean().optional(),
  enrollFactorId: z.string().optional(),
  /** Set once enrollment confirmed a factor in this sign-in; `amr` then includes it. */
  enrolled: z.boolean().optional(),
});
export type PendingLogin = z.infer<typeof Pending>;

export function pendingLogin(details: InteractionDetails): PendingLogin | undefined {
  const parsed = Pending.safeParse((details.result as { gatehouse?: unknown } | undefined)?.gatehouse);
  return parsed.success ? parsed.data : undefined;
}

/** Stores the pending login in the interaction and shows its next step. */
export async function continueWith(ctx: Context, details: InteractionDetails, pending: PendingLogin): Promise<void> {
  await saveInteractionResult(details, { gatehouse: pending }, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(`/interaction/${details.uid}`);
}

export interface CompletedLogin {
  accountId: string;
  amr: string[];
  remember: boolean;
  rememberDevice?: boolean;
}

/**
 * Completes the sign-in: stores the login oidc-provider records in the session (with amr and
 * acr) and returns where the browser goes next. For pages driven by script (passkeys), which
 * navigate themselves.
 */
export async function completeLogin(services: Services, ctx: Context, details: InteractionDetails, login: CompletedLogin): Promise<string> {
  const amr = withMfa(login.amr);
  if (login.rememberDevice && amr.includes('mfa')) await rememberDevice(services, ctx, login.accountId);
  return saveInteractionResult(details, {
    login: { accountId: login.accountId, amr, acr: acrFor(amr), remember: login.remember },
  }, { mergeWithLastSubmission: false });
}

/** completeLogin for form posts: redirects there. */
export async function finishLogin(services: Services, ctx: Context, details: InteractionDetails, login: CompletedLogin): Promise<void> {
  const redirectTo = await completeLogin(services, ctx, details, login);
  ctx.status = 303;
  ctx.redirect(redirectTo);
}

/**
 * After the first factor (password, or an email link): ask for a second factor when the account
 * has one, walk through enrollment when policy requires one, or finish.
 */
export async function afterFirstFactor(services: Services, host: ProviderHost, ctx: Context, details: InteractionDetails, login: { accountId: string; amr: string[]; remember: boolean }): Promise<void> {
  const policy = services.config.mfa.policy;
  const methods = await secondFactorMethods(services, login.accountId);
  const pending = { accountId: login.accountId, amr: login.amr, remember: login.remember };
  if (policy !== 'off' && methods.length > 0) {
    const stepUpAsked = String(details.params.acr_values ?? '').split(' ').includes(ACR_MFA);
    if (!stepUpAsked && (await isRememberedDevice(services, ctx, login.accountId))) {
      return finishLogin(services, ctx, details, pending);
    }
    return continueWith(ctx, details, pending);
  }
  if (policy === 'required') return continueWith(ctx, details, { ...pending, enroll: true });
  return finishLogin(services, ctx, details, pending);
}

const METHOD_LABELS: Record<SecondFactorMethod, string> = {
  webauthn: 'Use a passkey',
  totp: 'Use your authenticator app',
  sms: 'Text me a code',
  recovery: 'Use a recovery code',
};

export async function renderMfa(services: Services, host: ProviderHost, ctx: Context, details: InteractionDetails, pending: PendingLogin, state: { error?: string; method?: SecondFactorMethod; smsSent?: boolean } = {}): Promise<void> {
  const methods = await secondFactorMethods(services, pending.accountId);
  const requested = (state.method ?? ctx.query.method) as SecondFactorMethod | undefined;
  const method = requested && methods.includes(requested) ? requested : methods[0];
  if (!method) throw new AppError('no_second_factor', 'This account has no second factor to check.', 400);
  await ctx.render('mfa', {
    uid: details.uid,
    clientName: await clientNameOf(host.provider, details),
    csrfToken: csrfToken(ctx, services.config.issuer.startsWith('https:')),
    method,
    others: methods.filter((m) => m !== method).map((m) => ({ method: m, label: METHOD_LABELS[m] })),
    error: state.error,
    smsSent: state.smsSent ?? false,
    rememberDays: services.config.mfa.rememberDeviceDays,
  });
}

const WRONG_CODE = 'That code is not correct. Check your device and try again.';

/** POST /interaction/:uid/mfa: checks a TOTP, SMS or recovery code. */
export async function submitMfa(services: Services, host: ProviderHost, ctx: Context): Promise<void> {
  const details = await loadInteraction(host.provider, ctx);
  const pending = pendingLogin(details);
  const form = checkedForm(ctx);
  if (!pending || pending.enroll || pending.enrolled) {
    ctx.status = 303;
    ctx.redirect(`/interaction/${details.uid}`);
    return;
  }
  const method = text(form, 'method', 20) as SecondFactorMethod;
  const code = text(form, 'code', 64).trim();
  const clientId = String(details.params.client_id);
  const meta = auditMeta(ctx, clientId);
  await limitAttempt(services, 'otpAccount', pending.accountId);
  const amrFor: Record<string, string> = { totp: 'otp', recovery: 'otp', sms: 'sms' };
  const amr = await services.knex.transaction(async (trx) => {
    // A locked account gets the same answer as a wrong code, right code or not.
    if (await accountIsLocked(trx, pending.accountId)) return undefined;
    let ok = false;
    if (method === 'totp') ok = await verifyTotpCode(services, trx, pending.accountId, code);
    else if (method === 'recovery') ok = await redeemRecoveryCode(services, trx, pending.accountId, code);
    else if (method === 'sms') ok = await checkSmsChallenge(services, trx, pending.accountId, code);
    await recordAudit(trx, { type: `mfa.${method === 'recovery' ? 'recovery_code' : method}`, outcome: ok ? 'success' : 'failure', accountId: pending.accountId, clientId, ip: meta.ip, userAgent: meta.userAgent });
    return ok ? amrFor[method] : undefined;
  });
  if (!amr) {
    // Wrong codes count toward the same lockout as wrong passwords.
    const lock = await recordFailedLogin(services.knex, pending.accountId, services.config.lockout);
    if (lock.lockedNow) await recordAudit(services.knex, { type: 'user.locked', outcome: 'success', accountId: pending.accountId, clientId, ip: meta.ip, userAgent: meta.userAgent, details: { reason: 'second_factor' } });
    ctx.status = 401;
    await renderMfa(services, host, ctx, details, pending, { error: WRONG_CODE, method, smsSent: method === 'sms' });
    return;
  }
  await services.rateLimits.reset('otpAccount', pending.accountId);
  await finishLogin(services, ctx, details, { accountId: pending.accountId, amr: [...pending.amr, amr], remember: pending.remember, rememberDevice: text(form, 'remember_device', 4) === '1' });
}

/** POST /interaction/:uid/mfa/sms: texts a code to the account's verified phone. */
export async function sendMfaSms(services: Services, host: ProviderHost, ctx: Context): Promise<void> {
  const details = await loadInteraction(host.provider, ctx);
  const pending = pendingLogin(details);
  checkedForm(ctx);
  if (!pending) {
    ctx.status = 303;
    ctx.redirect(`/interaction/${details.uid}`);
    return;
  }
  await limitAttempt(services, 'verifyIp', `${pending.accountId}|${ctx.ip}`);
  await sendSmsChallenge(services, pending.accountId);
  await renderMfa(services, host, ctx, details, pending, { method: 'sms', smsSent: true });
}

/** The account whose second factor a step-up asks for, from the existing session. */
export async function startStepUp(services: Services, host: ProviderHost, ctx: Context, details: InteractionDetails): Promise<boolean> {
  const accountId = details.session?.accountId;
  if (!accountId || !(await findAccountById(services.knex, accountId))) return false;
  if ((await secondFactorMethods(services, accountId)).length === 0) return false;
  // The session already proved the password (its amr); the step adds the second factor.
  const session = await host.provider.Session.findByUid(details.session!.uid);
  const amr = (session?.amr as string[] | undefined) ?? ['pwd'];
  await continueWith(ctx, details, { accountId, amr: amr.filter((m) => m !== 'mfa'), remember: !session?.transient });
  return true;
}
