// /account: the signed-in person's own page. Each change is a form POST (CSRF-checked) that
// redirects back with a notice, so reloading never repeats it.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { csrfToken } from '../security/csrf.ts';
import { checkedForm, formErrors, text } from '../interactions/forms.ts';
import { auditMeta } from '../interactions/context.ts';
import { changeName, changePassword } from '../domain/profile.ts';
import { addPhone, confirmPhone, removePhone, resendPhoneCode } from '../domain/phone.ts';
import { limitAttempt } from '../interactions/guards.ts';
import { renderTotpEnroll } from '../interactions/mfa-enroll.ts';
import { beginTotpEnrollment, confirmTotpEnrollment, pendingTotpEnrollment } from '../domain/totp.ts';
import { enableSmsFactor, factorAdded, mfaSummary, newRecoveryCodes, removeFactor } from '../domain/mfa.ts';
import { forgetDevices, rememberedDevices } from '../domain/remembered-devices.ts';
import { AppError } from '../errors.ts';
import { accountSessions } from '../domain/sessions.ts';
import { revokeSessions } from '../oidc/sessions.ts';
import { registerPasskeyAccountRoutes } from './passkeys.ts';
import { registerActivityRoutes } from './activity.ts';
import { registerPrivacyAccountRoutes } from './privacy.ts';
import { registerFederationAccountRoutes } from './federation.ts';
import { registerGuestUpgradeRoutes } from './guest-upgrade.ts';
import { ACCOUNT_CLIENT_ID, currentAccount, finishAccountLogin, startAccountLogin, takeAccountReturnPath, type SignedIn } from './session.ts';

const NOTICES: Record<string, string> = {
  name: 'Your name is saved.',
  password: 'Your password is changed. We sent a confirmation to your email address.',
  totp: 'Your authenticator app is set up.',
  'phone-added': 'We sent a 6-digit code to your phone. Enter it below to confirm the number.',
  'phone-resent': 'We sent a new code to your phone.',
  'phone-verified': 'Your phone number is confirmed.',
  'phone-removed': 'Your phone number is removed.',
  'factor-removed': 'The sign-in method is removed.',
  'sms-factor': 'Text message codes are on for two-step verification.',
  'devices-forgotten': 'Every device will ask for the second step again.',
  'passkey-added': 'Your passkey is added.',
  'session-revoked': 'That session is signed out.',
  'sessions-revoked': 'Every other session is signed out.',
};

interface PageState {
  errors?: Record<string, string>;
  error?: string;
}

export function accountRouter(services: Services, host: ProviderHost): Router {
  const router = new Router({ prefix: '/account' });
  const body = bodyParser({ enableTypes: ['form'], formLimit: '32kb' });
  // First: it includes the guard that keeps guests to what needs no address (guest-upgrade.ts).
  registerGuestUpgradeRoutes(router, services, host, body);

  const render = async (ctx: Context, signedIn: SignedIn, state: PageState = {}) => {
    ctx.set('cache-control', 'no-store');
    const done = typeof ctx.query.done === 'string' ? NOTICES[ctx.query.done] : undefined;
    const signOut = new URL(`${services.config.issuer}/session/end`);
    signOut.search = new URLSearchParams({ client_id: ACCOUNT_CLIENT_ID, post_logout_redirect_uri: `${services.config.issuer}/account/signed-out` }).toString();
    await ctx.render('account', {
      account: signedIn.account,
      mfa: await mfaSummary(services, signedIn.account.id),
      devices: await rememberedDevices(services.knex, signedIn.account.id),
      sessions: await accountSessions(services.knex, signedIn.account.id, signedIn.sessionUid),
      csrfToken: csrfToken(ctx, services.config.issuer.startsWith('https:')),
      notice: state.error || state.errors ? undefined : done,
      error: state.error,
      errors: state.errors ?? {},
      signOutHref: `${signOut.pathname}${signOut.search}`,
    });
  };

  /** The signed-in account, or a redirect to sign in (undefined). */
  const requireSignedIn = async (ctx: Context): Promise<SignedIn | undefined> => {
    const signedIn = await currentAccount(services, host, ctx);
    if (!signedIn) {
      ctx.status = 303;
      ctx.redirect('/account');
    }
    return signedIn;
  };

  type ErrorPage = (ctx: Context, signedIn: SignedIn, state: PageState) => Promise<void>;

  /** A POST handler that needs a signed-in account; form errors re-render `page`. */
  const change = (action: (signedIn: SignedIn, form: Record<string, unknown>, ctx: Context) => Promise<string>, page: ErrorPage = render) => async (ctx: Context) => {
    const signedIn = await requireSignedIn(ctx);
    if (!signedIn) return;
    const form = checkedForm(ctx);
    try {
      const done = await action(signedIn, form, ctx);
      ctx.status = 303;
      ctx.redirect(done.startsWith('/') ? done : `/account?done=${done}`);
    } catch (err) {
      const { errors, error, status } = formErrors(err);
      ctx.status = status;
      const fresh = (await currentAccount(services, host, ctx)) ?? signedIn;
      await page(ctx, fresh, { errors, error });
    }
  };

  const renderPassword: ErrorPage = async (ctx, _signedIn, state) => {
    ctx.set('cache-control', 'no-store');
    await ctx.render('account-password', { csrfToken: csrfToken(ctx, services.config.issuer.startsWith('https:')), errors: state.errors ?? {}, error: state.error });
  };

  const renderPhone: ErrorPage = async (ctx, signedIn, state) => {
    ctx.set('cache-control', 'no-store');
    if (!signedIn.account.phoneNumber || signedIn.account.phoneNumberVerified) {
      ctx.status = 303;
      ctx.redirect('/account');
      return;
    }
    const done = typeof ctx.query.done === 'string' ? NOTICES[ctx.query.done] : undefined;
    await ctx.render('account-phone', {
      phone: signedIn.account.phoneNumber,
      csrfToken: csrfToken(ctx, services.config.issuer.startsWith('https:')),
      notice: state.error || state.errors ? undefined : done,
      errors: state.errors ?? {},
      error: state.error,
    });
  };

  router.get('/', async (ctx) => {
    const signedIn = await currentAccount(services, host, ctx);
    if (!signedIn) return startAccountLogin(services, ctx);
    await render(ctx, signedIn);
  });

  router.get('/callback', async (ctx) => {
    const outcome = finishAccountLogin(ctx);
    if (outcome === 'ok' || outcome === 'bad_state') {
      // A stale or foreign state only means this round trip was not ours: start over.
      const back = takeAccountReturnPath(ctx);
      ctx.redirect(outcome === 'ok' ? back : '/account');
      return;
    }
    await ctx.render('notice', { heading: 'Not signed in', message: 'Sign-in was cancelled.', links: [{ href: '/account', label: 'Sign in to your account' }] });
  });

  router.get('/signed-out', (ctx) => ctx.render('notice', { heading: 'You are signed out', message: 'You have signed out of your account on this device.', links: [{ href: '/account', label: 'Sign in again' }] }));

  router.post('/name', body, change(async ({ account }, form, ctx) => {
    await changeName(services, account.id, text(form, 'name', 400), auditMeta(ctx));
    return 'name';
  }));
  router.get('/password', async (ctx) => {
    const signedIn = await requireSignedIn(ctx);
    if (signedIn) await renderPassword(ctx, signedIn, {});
  });
  router.post('/password', body, change(async ({ account }, form, ctx) => {
    await changePassword(services, account.id, text(form, 'current_password'), text(form, 'new_password'), auditMeta(ctx));
    return 'password';
  }, renderPassword));
  router.get('/phone', async (ctx) => {
    const signedIn = await requireSignedIn(ctx);
    if (signedIn) await renderPhone(ctx, signedIn, {});
  });
  router.post('/phone', body, change(async ({ account }, form, ctx) => {
    await addPhone(services, account.id, text(form, 'phone', 64), auditMeta(ctx));
    return '/account/phone?done=phone-added';
  }));
  router.post('/phone/resend', body, change(async ({ account }) => {
    await limitAttempt(services, 'verifyIp', account.id);
    await resendPhoneCode(services, account.id);
    return '/account/phone?done=phone-resent';
  }, renderPhone));
  router.post('/phone/confirm', body, change(async ({ account }, form, ctx) => {
    await limitAttempt(services, 'otpAccount', account.id);
    await confirmPhone(services, account.id, text(form, 'code', 16), auditMeta(ctx));
    return 'phone-verified';
  }, renderPhone));
  router.post('/phone/remove', body, change(async ({ account }, _form, ctx) => {
    await removePhone(services, account.id, auditMeta(ctx));
    return 'phone-removed';
  }));
  router.post('/totp', body, async (ctx) => {
    const signedIn = await requireSignedIn(ctx);
    if (!signedIn) return;
    checkedForm(ctx);
    const enrollment = await beginTotpEnrollment(services, signedIn.account);
    await renderTotpEnroll(services, ctx, enrollment, { action: '/account/totp/confirm', cancelHref: '/account' });
  });

  router.post('/totp/confirm', body, async (ctx) => {
    const signedIn = await requireSignedIn(ctx);
    if (!signedIn) return;
    const form = checkedForm(ctx);
    const factorId = text(form, 'factor_id', 64);
    const accountId = signedIn.account.id;
    const codes = await services.knex.transaction(async (trx) => {
      if (!(await confirmTotpEnrollment(services, trx, accountId, factorId, text(form, 'code', 16), auditMeta(ctx)))) return undefined;
      return (await factorAdded(services, trx, accountId, { type: 'totp', name: 'Authenticator app' }, auditMeta(ctx))) ?? [];
    });
    if (!codes) {
      const enrollment = await pendingTotpEnrollment(services, signedIn.account, factorId);
      if (!enrollment) throw new AppError('enrollment_expired', 'This set-up was replaced or finished. Start again from your account page.', 400);
      ctx.status = 400;
      await renderTotpEnroll(services, ctx, enrollment, { action: '/account/totp/confirm', cancelHref: '/account', error: 'That code is not correct. Check the app and try again.' });
      return;
    }
    services.notifier.kick();
    if (codes.length === 0) {
      ctx.status = 303;
      ctx.redirect('/account?done=totp');
      return;
    }
    await ctx.render('recovery-codes', { heading: 'Authenticator app enabled', message: 'Two-step verification is on: sign-ins now ask for a code from your app.', codes, continueAction: undefined, csrfToken: undefined });
  });

  router.post('/recovery-codes', body, async (ctx) => {
    const signedIn = await requireSignedIn(ctx);
    if (!signedIn) return;
    checkedForm(ctx);
    const codes = await newRecoveryCodes(services, signedIn.account.id, auditMeta(ctx));
    await ctx.render('recovery-codes', { heading: 'New recovery codes', message: 'Your earlier recovery codes no longer work.', codes, continueAction: undefined, csrfToken: undefined });
  });

  router.post('/factors/:id/remove', body, change(async ({ account }, _form, ctx) => {
    await removeFactor(services, account.id, String(ctx.params.id), auditMeta(ctx));
    return 'factor-removed';
  }));
  router.post('/sms-factor', body, change(async ({ account }, _form, ctx) => {
    await enableSmsFactor(services, account.id, auditMeta(ctx));
    return 'sms-factor';
  }));
  router.post('/sessions/:id/revoke', body, change(async ({ account, sessionUid }, _form, ctx) => {
    const uid = String(ctx.params.id);
    if (uid === sessionUid) throw new AppError('current_session', 'To end this session, use Sign out.', 400);
    await revokeSessions(services, host.provider, { accountId: account.id, uid }, 'revoked_by_user', { ip: ctx.ip, userAgent: ctx.get('user-agent') });
    return 'session-revoked';
  }));
  router.post('/sessions/revoke-others', body, change(async ({ account, sessionUid }, _form, ctx) => {
    await revokeSessions(services, host.provider, { accountId: account.id, exceptUid: sessionUid }, 'revoked_by_user', { ip: ctx.ip, userAgent: ctx.get('user-agent') });
    return 'sessions-revoked';
  }));
  router.post('/devices/forget', body, change(async ({ account }) => {
    await forgetDevices(services.knex, account.id);
    return 'devices-forgotten';
  }));
  registerPasskeyAccountRoutes(router, services, host, body);
  registerPrivacyAccountRoutes(router, services, host, body);
  registerActivityRoutes(router, services, host);
  registerFederationAccountRoutes(router, services, host, body);

  return router;
}
