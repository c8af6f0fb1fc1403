// /account/linked: the upstream accounts (Google, GitHub, a company's SSO ...) that can sign in
// to this account. Linking while signed in goes through the same round trip as signing in
// (federation/flow.ts) and comes back to /account/linked/continue; unlinking is refused when it
// would leave the account without any way to sign in.
import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { linkedIdentities, linkToAccount, unlinkIdentity } from '../domain/federation.ts';
import { csrfToken } from '../security/csrf.ts';
import { auditMeta } from '../interactions/context.ts';
import { checkedForm, formErrors } from '../interactions/forms.ts';
import { beginFlow, clearResult, readResult } from '../federation/flow.ts';
import { failureMessage } from '../federation/interaction.ts';
import { federationProviders, providerById, providerName } from '../federation/registry.ts';
import { UpstreamError } from '../federation/upstream.ts';
import { currentAccount, startAccountLogin, type SignedIn } from './session.ts';

const NOTICES: Record<string, string> = {
  linked: 'The sign-in method is linked. You can now use it to sign in.',
  'already-linked': 'That account was already linked.',
  unlinked: 'The sign-in method is unlinked.',
};

export function registerFederationAccountRoutes(router: Router, services: Services, host: ProviderHost, body: Middleware): void {
  const render = async (ctx: Context, signedIn: SignedIn, state: { error?: string } = {}) => {
    ctx.set('cache-control', 'no-store');
    const identities = await linkedIdentities(services, signedIn.account.id);
    const linkedProviders = new Set(identities.map((i) => i.provider));
    await ctx.render('federation-linked', {
      identities: identities.map((i) => ({ ...i, providerName: providerName(services, i.provider) })),
      // One upstream account per provider is what people expect; another one needs an unlink first.
      linkable: federationProviders(services).filter((p) => !linkedProviders.has(p.id)).map((p) => ({ id: p.id, name: p.name })),
      csrfToken: csrfToken(ctx, services.config.issuer.startsWith('https:')),
      notice: state.error ? undefined : typeof ctx.query.done === 'string' ? NOTICES[ctx.query.done] : undefined,
      error: state.error,
    });
  };

  const signedInOrRedirect = async (ctx: Context): Promise<SignedIn | undefined> => {
    const signedIn = await currentAccount(services, host, ctx);
    if (!signedIn) {
      ctx.status = 303;
      ctx.redirect('/account');
    }
    return signedIn;
  };

  router.get('/linked', async (ctx) => {
    const signedIn = await currentAccount(services, host, ctx);
    if (!signedIn) return startAccountLogin(services, ctx, { returnTo: '/account/linked' });
    await render(ctx, signedIn);
  });

  router.get('/linked/continue', async (ctx) => {
    const signedIn = await signedInOrRedirect(ctx);
    if (!signedIn) return;
    const result = readResult(services, ctx, { kind: 'link' });
    if (!result || result.purpose.kind !== 'link') {
      ctx.status = 303;
      ctx.redirect('/account/linked');
      return;
    }
    clearResult(ctx, result.purpose);
    const provider = providerById(services, result.provider);
    if (result.purpose.accountId !== signedIn.account.id) {
      ctx.status = 400;
      await render(ctx, signedIn, { error: 'You signed in as someone else while linking. Try again.' });
      return;
    }
    if (!result.identity) {
      if (result.failure !== 'access_denied') ctx.status = 400;
      await render(ctx, signedIn, { error: failureMessage(provider, result.failure ?? 'upstream_error') });
      return;
    }
    try {
      const done = await linkToAccount(services, signedIn.account.id, provider, result.identity, auditMeta(ctx));
      ctx.status = 303;
      ctx.redirect(`/account/linked?done=${done}`);
    } catch (err) {
      const { error, status } = formErrors(err);
      ctx.status = status;
      await render(ctx, signedIn, { error });
    }
  });

  router.post('/linked/:id/unlink', body, async (ctx) => {
    const signedIn = await signedInOrRedirect(ctx);
    if (!signedIn) return;
    checkedForm(ctx);
    try {
      await unlinkIdentity(services, signedIn.account.id, String(ctx.params.id), auditMeta(ctx));
      ctx.status = 303;
      ctx.redirect('/account/linked?done=unlinked');
    } catch (err) {
      const { error, status } = formErrors(err);
      ctx.status = status;
      await render(ctx, signedIn, { error });
    }
  });

  router.post('/linked/:provider/link', body, async (ctx) => {
    const signedIn = await signedInOrRedirect(ctx);
    if (!signedIn) return;
    checkedForm(ctx);
    const provider = providerById(services, ctx.params.provider);
    try {
      const url = await beginFlow(services, ctx, provider, { kind: 'link', accountId: signedIn.account.id });
      ctx.status = 303;
      ctx.redirect(url.toString());
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      ctx.status = 503;
      await render(ctx, signedIn, { error: failureMessage(provider, err.reason) });
    }
  });
}
