// "Create account" inside an authorization request, so the person returns to the application
// after verifying and signing in.
import type { Context } from 'koa';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { signup } from '../domain/signup.ts';
import { resendVerification } from '../domain/email-verification.ts';
import { AppError } from '../errors.ts';
import { csrfToken } from '../security/csrf.ts';
import { auditMeta, clientNameOf, loadInteraction } from './context.ts';
import { checkedForm, formErrors, text } from './forms.ts';
import { checkCaptcha, limitAttempt, offerCaptcha } from './guards.ts';

const CHECK_EMAIL = 'If the address can receive mail, a message is on its way. Open the link in it to verify your address, then come back here and sign in.';

function secure(services: Services): boolean {
  return services.config.issuer.startsWith('https:');
}

export async function renderSignup(services: Services, host: ProviderHost, ctx: Context, state: { values?: { email: string; name: string }; errors?: Record<string, string>; error?: string } = {}): Promise<void> {
  if (!services.config.signupEnabled) throw new AppError('signup_disabled', 'Creating accounts here is turned off. Ask your administrator for an invitation.', 404);
  const details = await loadInteraction(host.provider, ctx);
  offerCaptcha(services, ctx);
  await ctx.render('signup', {
    action: `/interaction/${details.uid}/signup`,
    loginHref: `/interaction/${details.uid}`,
    clientName: await clientNameOf(host.provider, details),
    csrfToken: csrfToken(ctx, secure(services)),
    values: state.values ?? { email: '', name: '' },
    errors: state.errors ?? {},
    error: state.error,
    captcha: ctx.state.captcha,
  });
}

async function renderCheckEmail(services: Services, ctx: Context, uid: string, email: string, message = CHECK_EMAIL): Promise<void> {
  await ctx.render('check-email', {
    message,
    email,
    resendAction: `/interaction/${uid}/signup/resend`,
    csrfToken: csrfToken(ctx, secure(services)),
    backHref: `/interaction/${uid}`,
    backLabel: 'Back to sign in',
  });
}

export async function submitSignup(services: Services, host: ProviderHost, ctx: Context): Promise<void> {
  const details = await loadInteraction(host.provider, ctx);
  const body = checkedForm(ctx);
  const values = { email: text(body, 'email', 320).trim(), name: text(body, 'name', 400) };
  await limitAttempt(services, 'signupIp', ctx.ip);
  try {
    await checkCaptcha(services, ctx, body);
    await signup(services, { email: values.email, password: text(body, 'password'), name: values.name }, auditMeta(ctx, String(details.params.client_id)));
  } catch (err) {
    const { errors, error, status } = formErrors(err);
    ctx.status = status;
    await renderSignup(services, host, ctx, { values, errors, error });
    return;
  }
  await renderCheckEmail(services, ctx, details.uid, values.email);
}

export async function submitResend(services: Services, host: ProviderHost, ctx: Context): Promise<void> {
  const details = await loadInteraction(host.provider, ctx);
  const body = checkedForm(ctx);
  const email = text(body, 'email', 320);
  await limitAttempt(services, 'verifyIp', ctx.ip);
  await resendVerification(services, email, auditMeta(ctx, String(details.params.client_id)));
  await renderCheckEmail(services, ctx, details.uid, email, 'If the address is waiting for verification, we sent a new link (at most one a minute). Open it, then come back here and sign in.');
}
