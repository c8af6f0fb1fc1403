// "Continue with <provider>" in the sign-in pages: starting the round trip from the login page,
// continuing after the callback (sign in, create and link an account, or ask the owner of the
// account with that email to prove it), and the password proof that links an existing account.
// A finished federated sign-in goes through the same second-factor and enrollment steps as a
// password (afterFirstFactor), with amr "fed".
import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { linkWithPassword, signInWithUpstream, verifiedEmailOf, type FederatedSignIn } from '../domain/federation.ts';
import { emailOrUndefined } from '../domain/emails.ts';
import { csrfToken } from '../security/csrf.ts';
import { auditMeta, loadInteraction, type InteractionDetails } from '../interactions/context.ts';
import { checkedForm, text } from '../interactions/forms.ts';
import { refuseWhileLimited } from '../interactions/guards.ts';
import { renderLogin } from '../interactions/login.ts';
import { afterFirstFactor } from '../interactions/mfa.ts';
import { beginFlow, clearResult, readResult, type FlowResult } from './flow.ts';
import { federationProviders, providerById } from './registry.ts';
import type { FederationProvider } from './settings.ts';
import { UpstreamError, type UpstreamFailure } from './upstream.ts';

const AMR = ['fed'];

/** What the login page says when a round trip failed; the person can try again or another way. */
export function failureMessage(provider: FederationProvider, failure: string): string {
  const messages: Record<UpstreamFailure, string> = {
    access_denied: `Sign-in with ${provider.name} was cancelled.`,
    upstream_error: `${provider.name} could not sign you in. Try again, or sign in another way.`,
    unavailable: `${provider.name} cannot be reached right now. Try again in a moment, or sign in another way.`,
    token_exchange: `${provider.name} did not confirm the sign-in. Try again, or sign in another way.`,
    id_token_invalid: `The answer from ${provider.name} could not be verified, so it was not used. Try again, or sign in another way.`,
    profile_unavailable: `${provider.name} did not tell us who you are. Try again, or sign in another way.`,
  };
  return messages[failure as UpstreamFailure] ?? messages.upstream_error;
}

function refusalMessage(provider: FederationProvider, reason: Extract<FederatedSignIn, { kind: 'refused' }>['reason']): string {
  switch (reason) {
    case 'no_verified_email':
      return `${provider.name} did not share a verified email address, so we cannot create an account for you or find yours. Sign in another way, then link ${provider.name} on your account page.`;
    case 'signup_disabled':
      return `No account is linked to this ${provider.name} account, and new accounts cannot be created here. Sign in another way and link ${provider.name} on your account page, or ask your administrator for an invitation.`;
    default:
      return 'This account cannot sign in right now. If you think this is a mistake, contact your administrator.';
  }
}

/** Makes the configured providers available to the login page's view ("Continue with ..."). */
function offerProviders(services: Services): Middleware {
  const offered = federationProviders(services).map((p) => ({ id: p.id, name: p.name }));
  return async (ctx, next) => {
    ctx.state.federationProviders = offered;
    await next();
  };
}

async function renderLinkPage(services: Services, ctx: Context, details: InteractionDetails, provider: FederationProvider, email: string, error?: string): Promise<void> {
  ctx.set('cache-control', 'no-store');
  await ctx.render('federation-link', {
    providerName: provider.name,
    email,
    action: `/interaction/${details.uid}/federation/link`,
    backHref: `/interaction/${details.uid}`,
    forgotHref: `/interaction/${details.uid}/forgot`,
    csrfToken: csrfToken(ctx, services.config.issuer.startsWith('https:')),
    error,
  });
}

async function refuse(ctx: Context, details: InteractionDetails, heading: string, message: string, status = 400): Promise<void> {
  ctx.status = status;
  await ctx.render('notice', { heading, message, problem: true, links: [{ href: `/interaction/${details.uid}`, label: 'Back to sign in' }] });
}

/** The callback's result for this interaction with an identity in it, or undefined (handled). */
function identityResult(services: Services, ctx: Context, details: InteractionDetails): FlowResult | undefined {
  const result = readResult(services, ctx, { kind: 'login', uid: details.uid });
  return result?.identity ? result : undefined;
}

export function registerFederationInteractionRoutes(router: Router, services: Services, host: ProviderHost, body: Middleware): void {
  router.use(offerProviders(services));

  router.get('/federation/continue', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    const details = await loadInteraction(host.provider, ctx);
    const result = readResult(services, ctx, { kind: 'login', uid: details.uid });
    if (!result || result.purpose.kind !== 'login' || details.prompt.name !== 'login') {
      ctx.status = 303;
      ctx.redirect(`/interaction/${details.uid}`);
      return;
    }
    const provider = providerById(services, result.provider);
    const { remember } = result.purpose;
    if (!result.identity) {
      clearResult(ctx, result.purpose);
      if (result.failure !== 'access_denied') ctx.status = 400;
      await renderLogin(services, host, ctx, details, { remember, error: failureMessage(provider, result.failure ?? 'upstream_error') });
      return;
    }
    const outcome = await signInWithUpstream(services, provider, result.identity, auditMeta(ctx, String(details.params.client_id)));
    if (outcome.kind === 'link-required') {
      // The cookie stays until the password proof: it is what gets linked.
      await renderLinkPage(services, ctx, details, provider, outcome.email);
      return;
    }
    clearResult(ctx, result.purpose);
    if (outcome.kind === 'refused') return refuse(ctx, details, `Cannot sign in with ${provider.name}`, refusalMessage(provider, outcome.reason), outcome.reason === 'account_unavailable' ? 403 : 400);
    await afterFirstFactor(services, host, ctx, details, { accountId: outcome.accountId, amr: AMR, remember });
  });

  router.post('/federation/link', body, async (ctx) => {
    const details = await loadInteraction(host.provider, ctx);
    const form = checkedForm(ctx);
    const result = identityResult(services, ctx, details);
    const email = result?.identity ? verifiedEmailOf(result.identity) : undefined;
    if (!result?.identity || result.purpose.kind !== 'login' || !email || details.prompt.name !== 'login') {
      return refuse(ctx, details, 'This link request has expired', 'Start again from the sign-in page.');
    }
    const provider = providerById(services, result.provider);
    const ip = ctx.ip;
    const accountKey = `${emailOrUndefined(email) ?? 'invalid'}|${ip}`;
    // The same limits as the password form: this is a password form too.
    await refuseWhileLimited(services, ['loginIp', ip], ['loginAccountIp', accountKey]);
    const password = text(form, 'password');
    const meta = auditMeta(ctx, String(details.params.client_id));
    const outcome = password ? await linkWithPassword(services, provider, result.identity, password, meta) : { ok: false as const, reason: 'bad_password' as const };
    if (!outcome.ok) {
      if (outcome.reason === 'no_account') {
        clearResult(ctx, result.purpose);
        return refuse(ctx, details, 'This link request has expired', 'Start again from the sign-in page.');
      }
      if (outcome.reason === 'bad_password') {
        await services.rateLimits.consume('loginIp', ip);
        await services.rateLimits.consume('loginAccountIp', accountKey);
      }
      ctx.status = 401;
      const message = outcome.reason === 'unverified_account' ? 'Verify your email address first: open the link we sent you, then try again.' : 'That password is not correct.';
      await renderLinkPage(services, ctx, details, provider, email, message);
      return;
    }
    clearResult(ctx, result.purpose);
    await afterFirstFactor(services, host, ctx, details, { accountId: outcome.accountId, amr: AMR, remember: result.purpose.remember });
  });

  // Registered last: /federation/link above must not be taken for a provider named "link".
  router.post('/federation/:provider', body, async (ctx) => {
    const details = await loadInteraction(host.provider, ctx);
    const form = checkedForm(ctx);
    if (details.prompt.name !== 'login') {
      ctx.status = 303;
      ctx.redirect(`/interaction/${details.uid}`);
      return;
    }
    const provider = providerById(services, ctx.params.provider);
    const remember = ['1', 'on'].includes(text(form, 'remember', 4));
    let url: URL;
    try {
      url = await beginFlow(services, ctx, provider, { kind: 'login', uid: details.uid, remember });
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      ctx.status = 503;
      await renderLogin(services, host, ctx, details, { error: failureMessage(provider, err.reason) });
      return;
    }
    ctx.status = 303;
    ctx.redirect(url.toString());
  });
}
