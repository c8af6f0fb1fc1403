// With MFA_POLICY=required, a person without a second factor sets one up (an authenticator app)
// right after the password, inside the same sign-in.
import type { Context } from 'koa';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { beginTotpEnrollment, confirmTotpEnrollment, pendingTotpEnrollment, type TotpEnrollment } from '../domain/totp.ts';
import { factorAdded } from '../domain/mfa.ts';
import { findAccountById } from '../domain/users.ts';
import { AppError } from '../errors.ts';
import { csrfToken } from '../security/csrf.ts';
import { auditMeta, loadInteraction, saveInteractionResult, type InteractionDetails } from './context.ts';
import { checkedForm, text } from './forms.ts';
import { finishLogin, pendingLogin, type PendingLogin } from './mfa.ts';

export function groupSecret(secret: string): string {
  return secret.replace(/(.{4})/g, '$1 ').trim();
}

export async function renderTotpEnroll(services: Services, ctx: Context, enrollment: TotpEnrollment, opts: { action: string; intro?: string; error?: string; cancelHref?: string }): Promise<void> {
  ctx.set('cache-control', 'no-store');
  await ctx.render('totp-enroll', {
    ...enrollment,
    secretGrouped: groupSecret(enrollment.secret),
    action: opts.action,
    intro: opts.intro,
    error: opts.error,
    cancelHref: opts.cancelHref,
    csrfToken: csrfToken(ctx, services.config.issuer.startsWith('https:')),
  });
}

const INTRO = 'This service asks for a second step when you sign in. Set up an authenticator app now; it takes a minute.';

export async function showEnrollmentStep(services: Services, host: ProviderHost, ctx: Context, details: InteractionDetails, pending: PendingLogin): Promise<void> {
  const account = await findAccountById(services.knex, pending.accountId);
  if (!account) throw new AppError('account_not_found', 'Your account no longer exists.', 400);
  let enrollment = pending.enrollFactorId ? await pendingTotpEnrollment(services, account, pending.enrollFactorId) : undefined;
  if (!enrollment) {
    enrollment = await beginTotpEnrollment(services, account);
    await saveInteractionResult(details, { gatehouse: { ...pending, enrollFactorId: enrollment.factorId } }, { mergeWithLastSubmission: false });
  }
  await renderTotpEnroll(services, ctx, enrollment, { action: `/interaction/${details.uid}/mfa/enroll`, intro: INTRO });
}

export async function submitEnrollmentStep(services: Services, host: ProviderHost, ctx: Context): Promise<void> {
  const details = await loadInteraction(host.provider, ctx);
  const pending = pendingLogin(details);
  const form = checkedForm(ctx);
  if (!pending?.enroll || !pending.enrollFactorId) {
    ctx.status = 303;
    ctx.redirect(`/interaction/${details.uid}`);
    return;
  }
  const accountId = pending.accountId;
  const codes = await services.knex.transaction(async (trx) => {
    if (!(await confirmTotpEnrollment(services, trx, accountId, pending.enrollFactorId!, text(form, 'code', 16), auditMeta(ctx, String(details.params.client_id))))) return undefined;
    return (await factorAdded(services, trx, accountId, { type: 'totp', name: 'Authenticator app' }, auditMeta(ctx, String(details.params.client_id)))) ?? [];
  });
  if (!codes) {
    ctx.status = 400;
    const account = await findAccountById(services.knex, accountId);
    const enrollment = account ? await pendingTotpEnrollment(services, account, pending.enrollFactorId) : undefined;
    if (!enrollment) throw new AppError('enrollment_expired', 'This set-up expired. Start signing in again.', 400);
    await renderTotpEnroll(services, ctx, enrollment, { action: `/interaction/${details.uid}/mfa/enroll`, intro: INTRO, error: 'That code is not correct. Check the app and try again.' });
    return;
  }
  services.notifier.kick();
  if (codes.length === 0) {
    await finishLogin(services, ctx, details, { accountId, amr: [...pending.amr, 'otp'], remember: pending.remember });
    return;
  }
  // The login is finished only after the codes were shown, from the "continue" button.
  await saveInteractionResult(details, { gatehouse: { accountId, amr: [...pending.amr, 'otp'], remember: pending.remember, enroll: false, enrolled: true } }, { mergeWithLastSubmission: false });
  await ctx.render('recovery-codes', {
    heading: 'Two-step verification is on',
    message: 'Your authenticator app is set up.',
    codes,
    continueAction: `/interaction/${details.uid}/mfa/enroll/done`,
    csrfToken: csrfToken(ctx, services.config.issuer.startsWith('https:')),
  });
}

export async function finishEnrollmentStep(services: Services, host: ProviderHost, ctx: Context): Promise<void> {
  const details = await loadInteraction(host.provider, ctx);
  const pending = pendingLogin(details);
  checkedForm(ctx);
  if (!pending?.enrolled) {
    ctx.status = 303;
    ctx.redirect(`/interaction/${details.uid}`);
    return;
  }
  await finishLogin(services, ctx, details, pending);
}
