// "Save your account" in /account for a guest: an email address and a password turn the guest
// into an ordinary account with the same id. Until then a guest may only do what needs no
// address or credential (its name, sessions, connected apps, export, deletion): the rest would
// add sign-in methods to an account nobody can sign in to, or mail its placeholder address.
import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { upgradeGuestAccount } from '../domain/guest-accounts.ts';
import { resendVerification } from '../domain/email-verification.ts';
import { AppError } from '../errors.ts';
import { csrfToken } from '../security/csrf.ts';
import { auditMeta } from '../interactions/context.ts';
import { checkedForm, formErrors, text } from '../interactions/forms.ts';
import { limitAttempt } from '../interactions/guards.ts';
import { currentAccount } from './session.ts';

/** POSTs a guest may make; anything else under /account is refused until the account is saved. */
const GUEST_POSTS = [/^\/account\/save(\/|$)/, /^\/account\/name$/, /^\/account\/sessions\//, /^\/account\/apps\//, /^\/account\/export$/, /^\/account\/delete$/];

const CHECK_EMAIL = 'If the address can receive mail, a message is on its way. Open the link in it to confirm your address; after that you can sign in with it and your password.';

interface FormState {
  values?: { email: string };
  errors?: Record<string, string>;
  error?: string;
}

/**
 * The guest guard (registered first, so it runs before every /account route) and the
 * /account/save routes.
 */
export function registerGuestUpgradeRoutes(router: Router, services: Services, host: ProviderHost, body: Middleware): void {
  const secure = services.config.issuer.startsWith('https:');

  router.use(async (ctx, next) => {
    if (ctx.method === 'POST' && !GUEST_POSTS.some((allowed) => allowed.test(ctx.path))) {
      const signedIn = await currentAccount(services, host, ctx);
      if (signedIn?.account.isGuest) throw new AppError('guest_account', 'Save your account first: add an email address and a password, then try again.', 403);
    }
    await next();
  });

  const render = async (ctx: Context, state: FormState = {}) => {
    ctx.set('cache-control', 'no-store');
    await ctx.render('account-guest-upgrade', {
      csrfToken: csrfToken(ctx, secure),
      values: state.values ?? { email: '' },
      errors: state.errors ?? {},
      error: state.error,
      ttlDays: services.config.guestAccountTtlDays,
    });
  };

  const renderCheckEmail = async (ctx: Context, email: string, message = CHECK_EMAIL) => {
    ctx.set('cache-control', 'no-store');
    await ctx.render('check-email', {
      message,
      email,
      resendAction: '/account/save/resend',
      csrfToken: csrfToken(ctx, secure),
      backHref: '/account',
      backLabel: 'Back to your account',
    });
  };

  /** The signed-in guest; otherwise a redirect to /account (which signs in or shows the account). */
  const signedInGuest = async (ctx: Context) => {
    const signedIn = await currentAccount(services, host, ctx);
    if (signedIn?.account.isGuest) return signedIn;
    ctx.status = 303;
    ctx.redirect('/account');
    return undefined;
  };

  router.get('/save', async (ctx) => {
    if (await signedInGuest(ctx)) await render(ctx);
  });

  router.post('/save', body, async (ctx) => {
    const signedIn = await signedInGuest(ctx);
    if (!signedIn) return;
    const form = checkedForm(ctx);
    const values = { email: text(form, 'email', 320).trim() };
    try {
      // Saving gives an address to an account, like a signup: the same per-address limit.
      await limitAttempt(services, 'signupIp', ctx.ip);
      await upgradeGuestAccount(services, signedIn.account.id, { email: values.email, password: text(form, 'password') }, auditMeta(ctx));
    } catch (err) {
      const { errors, error, status } = formErrors(err);
      ctx.status = status;
      await render(ctx, { values, errors, error });
      return;
    }
    await renderCheckEmail(ctx, values.email);
  });

  router.post('/save/resend', body, async (ctx) => {
    const signedIn = await currentAccount(services, host, ctx);
    if (!signedIn) {
      ctx.status = 303;
      ctx.redirect('/account');
      return;
    }
    const form = checkedForm(ctx);
    const email = text(form, 'email', 320);
    await limitAttempt(services, 'verifyIp', ctx.ip);
    await resendVerification(services, email, auditMeta(ctx));
    await renderCheckEmail(ctx, email, 'If the address is waiting for confirmation, we sent a new link (at most one a minute). Open it, then sign in with your email and password.');
  });
}
