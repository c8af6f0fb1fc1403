// Builds the Koa application: request ids and logs, error pages, security headers, views,
// static files, health checks, our routes, and oidc-provider mounted last. No I/O happens at
// import time; everything comes in through `services`.
import type { RequestListener } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Koa from 'koa';
import Router from '@koa/router';
import compose from 'koa-compose';
import mount from 'koa-mount';
import serve from 'koa-static';
import views from 'koa-views';
import type { Services } from './services.ts';
import { AppError, isAppError } from './errors.ts';
import { securityHeaderSets, securityHeaders } from './security/headers.ts';
import { requestFinisher, requestIdFor } from './request-log.ts';
import { withDirectEndpoints } from './oidc/direct-endpoints.ts';
import { captchaCspSources } from './security/captcha.ts';
import { setRetryAfter } from './security/rate-limit.ts';
import { tokenEndpointRateLimit } from './oidc/token-rate-limit.ts';
import { refreshTokenLifecycle } from './oidc/refresh-tokens.ts';
import { apiKeyIntrospection } from './oidc/api-key-introspection.ts';
import { ProviderHost } from './oidc/provider-host.ts';
import { interactionRouter, linksRouter } from './interactions/router.ts';
import { accountRouter } from './account/router.ts';
import { federationCallbackRouter } from './federation/callback.ts';
import { metricsEndpoint } from './metrics.ts';
import { adminApi } from './admin/router.ts';
import { authzRouter } from './api/authz-router.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Paths whose errors are always JSON: the admin API and the provider's JSON endpoints. */
function wantsJson(ctx: Koa.Context, apiPaths: ReadonlySet<string>): boolean {
  return ctx.path.startsWith('/admin/api') || apiPaths.has(ctx.path) || typeof ctx.render !== 'function' || (!ctx.accepts('html') && Boolean(ctx.accepts('json')));
}

/** Maps a thrown value to what the caller may see; only AppErrors and client errors are explained. */
function describeError(err: unknown): { status: number; code: string; message: string; expected: boolean } {
  if (isAppError(err)) return { status: err.status, code: err.code, message: err.message, expected: true };
  // Koa and its body parser throw http-errors (e.g. 413 too large, 415 wrong type) marked expose.
  const httpError = err as { status?: unknown; expose?: unknown; message?: unknown };
  if (typeof httpError.status === 'number' && httpError.status >= 400 && httpError.status < 500 && httpError.expose === true) {
    return { status: httpError.status, code: 'bad_request', message: String(httpError.message), expected: true };
  }
  return { status: 500, code: 'server_error', message: 'Something went wrong on our side. Please try again.', expected: false };
}

function healthRouter(services: Services): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const checks: Record<string, 'ok' | 'fail'> = {};
    const withTimeout = <T>(p: Promise<T>) => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 2000))]);
    try {
      await withTimeout(services.knex.raw('select 1'));
      checks.database = 'ok';
    } catch {
      checks.database = 'fail';
    }
    if (services.redis) {
      try {
        await withTimeout(services.redis.ping());
        checks.redis = 'ok';
      } catch {
        checks.redis = 'fail';
      }
    }
    const ready = Object.values(checks).every((v) => v === 'ok');
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'unavailable', checks };
  });
  return router;
}

export interface BuiltApp {
  app: Koa;
  host: ProviderHost;
  /** What the HTTP server runs: discovery and JWKS straight from the provider, the rest through `app`. */
  listener: RequestListener;
}

export async function buildApp(services: Services): Promise<BuiltApp> {
  const { config, logger } = services;
  const finished = requestFinisher(config, logger, services.metrics);
  const app = new Koa();
  // oidc-provider signs its cookies with the outer app's keys: they must be the same list.
  app.keys = services.cookieKeys;
  app.proxy = config.trustProxy;

  app.use(async (ctx, next) => {
    const requestId = requestIdFor(ctx.get('x-request-id'), config.trustProxy);
    ctx.state.requestId = requestId;
    ctx.set('x-request-id', requestId);
    const started = performance.now();
    try {
      await next();
    } finally {
      finished(ctx, requestId, performance.now() - started);
    }
  });

  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const { status, code, message, expected } = describeError(err);
      if (!expected) logger.error({ err, requestId: ctx.state.requestId }, 'unhandled error');
      ctx.status = status;
      if (isAppError(err) && err.code === 'rate_limited') setRetryAfter(ctx, Number(err.details?.retryAfterSeconds ?? 60));
      if (wantsJson(ctx, apiPaths)) {
        ctx.body = { error: code, error_description: message };
      } else {
        await ctx.render('error', { heading: status >= 500 ? 'Something went wrong' : 'This request could not be completed', message, code, requestId: ctx.state.requestId });
      }
    }
  });

  const host = new ProviderHost(services);
  await host.start();
  const { provider } = host;
  const headers = securityHeaderSets(config.issuer, captchaCspSources(config.captcha));
  // The provider's JSON endpoints get the API header set, everything else the page set.
  const apiPaths = new Set(['/.well-known/openid-configuration', ...(['discovery', 'jwks', 'token', 'introspection', 'revocation', 'userinfo'] as const).map((name) => provider.pathFor(name))]);
  app.use(securityHeaders(headers, apiPaths));

  // The token, introspection and revocation endpoints go from here through their own guards to
  // the provider, past the views, static files and routers below, none of which answers these
  // paths (their errors are JSON, see wantsJson): they are the most
  // requested paths after discovery and JWKS. Any middleware added below that must see one of
  // these paths has to be added to this chain instead.
  const notFound: Koa.Middleware = () => {
    throw new AppError('not_found', 'There is no page at this address.', 404);
  };
  // The provider answers every method it serves on these paths and passes on the others (GET
  // /token): those end here rather than going through everything below and the provider again.
  const tokenEndpoints = compose([tokenEndpointRateLimit(services.rateLimits), refreshTokenLifecycle(services, host), apiKeyIntrospection(services, host), host.middleware, notFound]);
  const tokenPaths = new Set(['token', 'introspection', 'revocation'].map((name) => provider.pathFor(name)));
  app.use((ctx, next) => (tokenPaths.has(ctx.path) ? tokenEndpoints(ctx, next) : next()));

  app.use(views(path.join(ROOT, 'views'), { extension: 'ejs', options: { cache: config.env === 'production' } }));
  // koa-views looks a template name up with fs.stat before rendering, and a name without its
  // extension costs two: the bare name fails (an ENOENT error built and thrown), then the name with
  // ".ejs" is found. Naming the file in full keeps one lookup per page.
  app.use((ctx, next) => {
    const render = ctx.render;
    if (render) ctx.render = (name, locals) => render(name.endsWith('.ejs') ? name : `${name}.ejs`, locals);
    return next();
  });
  app.use(mount('/static', serve(path.join(ROOT, 'public'), { maxage: 24 * 3600 * 1000, gzip: false, brotli: false })));
  app.use(mount('/static/vendor/simplewebauthn-browser.js', serve(path.join(ROOT, 'node_modules/@simplewebauthn/browser/dist/bundle'), { index: 'index.umd.min.js', maxage: 24 * 3600 * 1000, gzip: false, brotli: false })));

  const health = healthRouter(services);
  app.use(health.routes());
  app.use(metricsEndpoint(services.metrics, config, logger));
  const interactions = interactionRouter(services, host);
  app.use(interactions.routes()).use(interactions.allowedMethods());
  const links = linksRouter(services);
  app.use(links.routes()).use(links.allowedMethods());
  const account = accountRouter(services, host);
  app.use(account.routes()).use(account.allowedMethods());
  app.use(adminApi(services, host));
  const authz = authzRouter(services);
  app.use(authz.routes()).use(authz.allowedMethods());
  app.use(federationCallbackRouter(services).routes());
  app.use(host.middleware);
  app.use(notFound);
  const listener = withDirectEndpoints(app.callback(), {
    paths: new Set(['/.well-known/openid-configuration', provider.pathFor('discovery'), provider.pathFor('jwks')]),
    headers: headers.api,
    trustProxy: config.trustProxy,
    provider: () => host.listener,
    finished,
  });
  return { app, host, listener };
}
