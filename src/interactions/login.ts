// Email + password step. Wrong email and wrong password get the same answer and the same
// status, and the domain spends the same argon2 time on both, so the page reveals nothing about
// which accounts exist.
import type { Context } from 'koa';
import { z } from 'zod';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { authenticateWithPassword } from '../domain/users.ts';
import { csrfToken, verifyCsrf } from '../security/csrf.ts';
import { auditMeta, clientNameOf, loadInteraction, type InteractionDetails } from './context.ts';
import { checkCaptcha, loginNeedsCaptcha, offerCaptcha, refuseWhileLimited } from './guards.ts';
import { emailOrUndefined } from '../domain/emails.ts';
import { AppError } from '../errors.ts';
import { afterFirstFactor } from './mfa.ts';
import { guestOption } from './guest.ts';

const LoginForm = z.object({
  email: z.string().trim().max(320).default(''),
  password: z.string().max(1024).default(''),
  remember: z.string().optional(),
});

const BAD_CREDENTIALS = 'Incorrect email or password.';

export async function renderLogin(services: Services, host: ProviderHost, ctx: Context, details: InteractionDetails, form: { email?: string; remember?: boolean; error?: string; unverifiedEmail?: string } = {}): Promise<void> {
  if (await loginNeedsCaptcha(services, ctx.ip)) offerCaptcha(services, ctx);
  await ctx.render('login', {
    uid: details.uid,
    clientName: await clientNameOf(host.provider, details),
    csrfToken: csrfToken(ctx, services.config.issuer.startsWith('https:')),
    email: form.email ?? (typeof details.params.login_hint === 'string' ? details.params.login_hint : ''),
    remember: form.remember ?? false,
    error: form.error,
    signupHref: services.config.signupEnabled ? `/interaction/${details.uid}/signup` : undefined,
    forgotHref: `/interaction/${details.uid}/forgot`,
    magicLinkAction: services.config.magicLink.enabled ? `/interaction/${details.uid}/magic-link` : undefined,
    captcha: ctx.state.captcha,
    unverifiedEmail: form.unverifiedEmail,
    resendAction: `/interaction/${details.uid}/signup/resend`,
    guest: await guestOption(services, host, details),
  });
}

export async function submitLogin(services: Services, host: ProviderHost, ctx: Context): Promise<void> {
  const provider = host.provider;
  const details = await loadInteraction(provider, ctx);
  const body = (ctx.request as { body?: unknown }).body as Record<string, unknown> | undefined;
  verifyCsrf(ctx, body?._csrf);
  if (details.prompt.name !== 'login') {
    ctx.redirect(`/interaction/${details.uid}`);
    return;
  }
  const parsed = LoginForm.safeParse(body ?? {});
  const form = parsed.success ? parsed.data : { email: '', password: '', remember: undefined };
  const remember = form.remember === '1' || form.remember === 'on';
  const clientId = String(details.params.client_id);
  const ip = ctx.ip;
  const accountKey = `${emailOrUndefined(form.email) ?? 'invalid'}|${ip}`;
  // Limits count failures only, so people who type their password right are never slowed down.
  await refuseWhileLimited(services, ['loginIp', ip], ['loginAccountIp', accountKey]);
  if (await loginNeedsCaptcha(services, ip)) {
    try {
      await checkCaptcha(services, ctx, body ?? {});
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      ctx.status = 400;
      await renderLogin(services, host, ctx, details, { email: form.email, remember, error: err.message });
      return;
    }
  }
  const outcome = form.email && form.password
    ? await authenticateWithPassword(services, { email: form.email, password: form.password }, auditMeta(ctx, clientId))
    : { ok: false as const };
  if (!outcome.ok) {
    if (!('unverifiedEmail' in outcome && outcome.unverifiedEmail)) {
      await services.rateLimits.consume('loginIp', ip);
      await services.rateLimits.consume('loginAccountIp', accountKey);
    }
    ctx.status = 401;
    const unverifiedEmail = 'unverifiedEmail' in outcome ? outcome.unverifiedEmail : undefined;
    await renderLogin(services, host, ctx, details, {
      email: form.email,
      remember,
      error: unverifiedEmail ? 'Verify your email address first: open the link we sent you, then sign in again.' : BAD_CREDENTIALS,
      unverifiedEmail,
    });
    return;
  }
  await afterFirstFactor(services, host, ctx, details, { accountId: outcome.account.id, amr: ['pwd'], remember });
}
