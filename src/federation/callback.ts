// GET (or, for Apple's form_post, POST) /federation/callback/:provider — the redirect URI to
// register at each upstream. It checks that the response belongs to a flow this browser started
// (state), redeems the code (PKCE verifier, nonce, ID token checks in upstream.ts), and passes
// the upstream identity or the failure on to the page that continues the flow.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type { Services } from '../services.ts';
import { auditContext, recordAudit } from '../domain/audit.ts';
import { auditMeta } from '../interactions/context.ts';
import { callbackUri, continuePath, storeResult, takeFlow } from './flow.ts';
import { providerById, upstreamsFor } from './registry.ts';
import { UpstreamError, type UpstreamFailure } from './upstream.ts';

/** The response parameters, from the query or (form_post) the body; repeated ones are refused. */
function responseParams(ctx: Context): URLSearchParams | undefined {
  const source = ctx.method === 'POST' ? (ctx.request as { body?: unknown }).body : ctx.query;
  if (!source || typeof source !== 'object') return new URLSearchParams();
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(source as Record<string, unknown>)) {
    if (typeof value !== 'string') return undefined;
    params.set(key, value);
  }
  return params;
}

async function refuseUnknownFlow(services: Services, ctx: Context, providerId: string): Promise<void> {
  await recordAudit(services.knex, { type: 'federation.callback', outcome: 'failure', ...auditContext(auditMeta(ctx), { provider: providerId, reason: 'bad_state' }) });
  ctx.status = 400;
  await ctx.render('notice', {
    heading: 'This sign-in cannot be completed',
    message: 'The sign-in has expired, was already finished, or was started in another browser. Go back to the application and sign in again.',
    problem: true,
  });
}

export function federationCallbackRouter(services: Services): Router {
  const router = new Router();
  const body = bodyParser({ enableTypes: ['form'], formLimit: '32kb' });

  const handle = async (ctx: Context) => {
    ctx.set('cache-control', 'no-store');
    const provider = providerById(services, ctx.params.provider);
    const params = responseParams(ctx);
    const flow = params ? takeFlow(services, ctx, provider, params.get('state') ?? undefined) : undefined;
    if (!params || !flow) return refuseUnknownFlow(services, ctx, provider.id);

    let failure: UpstreamFailure | undefined;
    let identity;
    const upstreamError = params.get('error');
    if (upstreamError !== null) {
      // The person said no (or cancelled) at the upstream, or it could not serve the request.
      failure = upstreamError === 'access_denied' ? 'access_denied' : 'upstream_error';
    } else {
      const callbackUrl = new URL(callbackUri(services, provider));
      const appleUser = params.get('user') ?? undefined;
      params.delete('user');
      callbackUrl.search = params.toString();
      try {
        identity = await upstreamsFor(services).identify(provider, callbackUrl, flow, { appleUser });
      } catch (err) {
        if (!(err instanceof UpstreamError)) throw err;
        failure = err.reason;
        services.logger.warn({ provider: provider.id, reason: err.reason, err: err.message, requestId: ctx.state.requestId }, 'upstream sign-in failed');
      }
    }
    if (failure) {
      const accountId = flow.purpose.kind === 'link' ? flow.purpose.accountId : undefined;
      await recordAudit(services.knex, { type: 'federation.callback', outcome: 'failure', accountId, ...auditContext(auditMeta(ctx), { provider: provider.id, reason: failure, ...(upstreamError ? { upstream_error: upstreamError.slice(0, 64) } : {}) }) });
    }
    storeResult(services, ctx, { provider: provider.id, purpose: flow.purpose, identity, failure });
    ctx.status = 303;
    ctx.redirect(continuePath(flow.purpose));
  };

  router.get('/federation/callback/:provider', handle);
  router.post('/federation/callback/:provider', body, handle);
  return router;
}
