// The privacy pages of /account: the apps the person has let in (and revoking them), a
// download of everything stored about them, and deleting the account. Deleting asks for the
// password again, or for accounts without one a sign-in made just now.
import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { csrfToken } from '../security/csrf.ts';
import { checkedForm, formErrors, text } from '../interactions/forms.ts';
import { auditMeta } from '../interactions/context.ts';
import { refuseWhileLimited } from '../interactions/guards.ts';
import { SCOPE_WORDS } from '../interactions/consent.ts';
import { connectedApps, type ConnectedApp } from '../domain/connected-apps.ts';
import { exportAccountData } from '../domain/data-export.ts';
import { confirmErasurePassword, eraseAccount, erasureProof, signInIsFresh } from '../domain/erasure.ts';
import { revokeAppAccess } from '../oidc/grants.ts';
import { AppError } from '../errors.ts';
import { currentAccount, startAccountLogin, type SignedIn } from './session.ts';

const NOTICES: Record<string, string> = {
  'app-revoked': 'The app no longer has access to your account.',
};

/** What a connected app may do, in the words of the consent page. */
function permissionsOf(app: ConnectedApp): string[] {
  const words = app.scopes.map((s) => SCOPE_WORDS[s] ?? `Use the "${s}" permission`);
  for (const [resource, scopes] of Object.entries(app.resourceScopes)) {
    for (const scope of scopes) words.push(`Use the "${scope}" permission of ${resource}`);
  }
  return [...new Set(words)];
}

function day(date: Date): string {
  return date.toISOString().slice(0, 10);
}

export function registerPrivacyAccountRoutes(router: Router, services: Services, host: ProviderHost, body: Middleware): void {
  const secure = services.config.issuer.startsWith('https:');

  /** The signed-in account; otherwise the browser is sent to sign in and back to this page. */
  const signedInOrLogin = async (ctx: Context): Promise<SignedIn | undefined> => {
    const signedIn = await currentAccount(services, host, ctx);
    if (!signedIn) {
      if (ctx.method === 'GET') {
        startAccountLogin(services, ctx, { returnTo: ctx.path });
      } else {
        ctx.status = 303;
        ctx.redirect('/account');
      }
    }
    return signedIn;
  };

  const renderApps = async (ctx: Context, signedIn: SignedIn, error?: string) => {
    ctx.set('cache-control', 'no-store');
    const apps = await connectedApps(services.knex, signedIn.account.id);
    await ctx.render('account-apps', {
      apps: apps.map((app) => ({
        clientId: app.clientId,
        name: app.name,
        permissions: permissionsOf(app),
        grantedOn: day(app.grantedAt),
        lastUsedOn: app.lastUsedAt ? day(app.lastUsedAt) : undefined,
      })),
      csrfToken: csrfToken(ctx, secure),
      notice: !error && typeof ctx.query.done === 'string' ? NOTICES[ctx.query.done] : undefined,
      error,
    });
  };

  router.get('/apps', async (ctx) => {
    const signedIn = await signedInOrLogin(ctx);
    if (signedIn) await renderApps(ctx, signedIn);
  });

  router.post('/apps/:clientId/revoke', body, async (ctx) => {
    const signedIn = await signedInOrLogin(ctx);
    if (!signedIn) return;
    checkedForm(ctx);
    try {
      await revokeAppAccess(services, host.provider, signedIn.account.id, String(ctx.params.clientId), auditMeta(ctx));
    } catch (err) {
      const { error, status } = formErrors(err);
      ctx.status = status;
      await renderApps(ctx, signedIn, error);
      return;
    }
    ctx.status = 303;
    ctx.redirect('/account/apps?done=app-revoked');
  });

  router.get('/export', async (ctx) => {
    const signedIn = await signedInOrLogin(ctx);
    if (!signedIn) return;
    const document = await exportAccountData(services, signedIn.account.id, auditMeta(ctx));
    ctx.set('cache-control', 'no-store');
    ctx.set('content-disposition', `attachment; filename="gatehouse-export-${document.exported_at.slice(0, 10)}.json"`);
    ctx.type = 'application/json';
    ctx.body = `${JSON.stringify(document, null, 2)}\n`;
  });

  const renderDelete = async (ctx: Context, signedIn: SignedIn, state: { errors?: Record<string, string>; error?: string } = {}) => {
    ctx.set('cache-control', 'no-store');
    const proof = await erasureProof(services, signedIn.account.id);
    await ctx.render('account-delete', {
      email: signedIn.account.email,
      proof,
      freshSignIn: signInIsFresh(signedIn.authTime),
      csrfToken: csrfToken(ctx, secure),
      errors: state.errors ?? {},
      error: state.error,
    });
  };

  router.get('/delete', async (ctx) => {
    const signedIn = await signedInOrLogin(ctx);
    if (signedIn) await renderDelete(ctx, signedIn);
  });

  // Accounts without a password prove themselves by signing in again, whatever way they sign in.
  router.get('/delete/sign-in', (ctx) => startAccountLogin(services, ctx, { returnTo: '/account/delete', forceLogin: true }));

  router.post('/delete', body, async (ctx) => {
    const signedIn = await signedInOrLogin(ctx);
    if (!signedIn) return;
    const form = checkedForm(ctx);
    const { account } = signedIn;
    const limitKey = `${account.email}|${ctx.ip}`;
    try {
      if ((await erasureProof(services, account.id)) === 'password') {
        // The login limits: a stolen session cannot be used to guess the password here either.
        await refuseWhileLimited(services, ['loginAccountIp', limitKey]);
        try {
          await confirmErasurePassword(services, account.id, text(form, 'password'), auditMeta(ctx));
        } catch (err) {
          if (err instanceof AppError && err.code === 'bad_password') await services.rateLimits.consume('loginAccountIp', limitKey);
          throw err;
        }
      } else if (!signInIsFresh(signedIn.authTime)) {
        throw new AppError('sign_in_again', 'Sign in again to confirm, then delete your account within five minutes.', 400);
      }
    } catch (err) {
      const { errors, error, status } = formErrors(err);
      ctx.status = status;
      await renderDelete(ctx, signedIn, { errors, error });
      return;
    }
    await eraseAccount(services, account.id, auditMeta(ctx), host.provider);
    ctx.set('cache-control', 'no-store');
    await ctx.render('notice', {
      heading: 'Your account is deleted',
      message: 'Your account and the personal data we held about it are deleted, and you are signed out everywhere. You can create a new account with the same email address at any time.',
    });
  });
}
