// Password recovery pages: "Forgot password?" (inside a sign-in, or standalone) and the reset
// page a mailed link opens. The request page answers the same for every address.
import type { Context } from 'koa';
import type { Services } from '../services.ts';
import { completePasswordReset, requestPasswordReset, resetLinkIsUsable, INVALID_LINK } from '../domain/password-reset.ts';
import { csrfToken } from '../security/csrf.ts';
import { auditMeta } from './context.ts';
import { checkedForm, formErrors, text } from './forms.ts';
import { checkCaptcha, limitAttempt, offerCaptcha } from './guards.ts';

const SENT = 'If an account uses this address, we sent it a link to choose a new password. The link works once and expires in a little while.';

function secure(services: Services): boolean {
  return services.config.issuer.startsWith('https:');
}

export async function renderForgot(services: Services, ctx: Context, paths: { action: string; back: string | undefined }, state: { email?: string; error?: string } = {}): Promise<void> {
  offerCaptcha(services, ctx);
  await ctx.render('forgot', {
    action: paths.action,
    backHref: paths.back,
    csrfToken: csrfToken(ctx, secure(services)),
    email: state.email ?? '',
    error: state.error,
    captcha: ctx.state.captcha,
  });
}

export async function submitForgot(services: Services, ctx: Context, paths: { action: string; back: string | undefined }, clientId?: string): Promise<void> {
  const body = checkedForm(ctx);
  const email = text(body, 'email', 320).trim();
  await limitAttempt(services, 'recoveryIp', ctx.ip);
  try {
    await checkCaptcha(services, ctx, body);
  } catch (err) {
    const { error, status } = formErrors(err);
    ctx.status = status;
    return renderForgot(services, ctx, paths, { email, error });
  }
  await requestPasswordReset(services, email, auditMeta(ctx, clientId));
  await ctx.render('check-email', { message: SENT, email, resendAction: undefined, csrfToken: undefined, backHref: paths.back, backLabel: 'Back to sign in' });
}

async function renderReset(services: Services, ctx: Context, token: string, state: { errors?: Record<string, string>; error?: string } = {}): Promise<void> {
  await ctx.render('set-password', {
    heading: 'Choose a new password',
    intro: 'After you save it, every device signed in to your account is signed out.',
    action: '/reset-password',
    token,
    askName: false,
    name: '',
    submitLabel: 'Save new password',
    csrfToken: csrfToken(ctx, secure(services)),
    errors: state.errors ?? {},
    error: state.error,
  });
}

function invalidLink(ctx: Context): Promise<void> {
  ctx.status = 400;
  return ctx.render('notice', { heading: 'This link cannot be used', message: INVALID_LINK, problem: true, links: [{ href: '/forgot-password', label: 'Send a new reset link' }] });
}

export async function showReset(services: Services, ctx: Context): Promise<void> {
  ctx.set('cache-control', 'no-store');
  const token = typeof ctx.query.token === 'string' ? ctx.query.token : '';
  if (!(await resetLinkIsUsable(services, token))) return invalidLink(ctx);
  await renderReset(services, ctx, token);
}

export async function submitReset(services: Services, ctx: Context): Promise<void> {
  const body = checkedForm(ctx);
  const token = text(body, 'token', 256);
  try {
    await completePasswordReset(services, token, text(body, 'new_password'), auditMeta(ctx));
  } catch (err) {
    const { errors, error, status } = formErrors(err);
    if (error) return invalidLink(ctx);
    ctx.status = status;
    return renderReset(services, ctx, token, { errors: { password: Object.values(errors)[0] ?? '' } });
  }
  await ctx.render('notice', { heading: 'Password changed', message: 'Your new password is saved and every other device was signed out. Go back to the application you were using and sign in with it.' });
}
