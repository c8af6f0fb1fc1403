// Builds the Koa application: request ids and logs, error pages, security headers, views,
// static files, health checks, our routes, and oidc-provider mounted last. No I/O happens at
// import time; everything comes in through `services`.
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Koa from 'koa';
import Router from '@koa/router';
import mount from 'koa-mount';
import serve from 'koa-static';
import views from 'koa-views';
import type { Services } from './services.ts';
import { AppError, isAppError } from './errors.ts';
import { securityHeaders } from './security/headers.ts';
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
const REQUEST_ID = /^[A-Za-z0-9._-]{8,128}$/;

function wantsJson(ctx: Koa.Context): boolean {
  return ctx.path.startsWith('/admin/api') || (!ctx.accepts('html') && Boolean(ctx.accepts('json')));
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
}

export async function buildApp(services: Services): Promise<BuiltApp> {
  const { config, logger } = services;
  // Access lines carry only fixed, non-secret fields, so they skip the redaction every other log
  // line goes through (a few microseconds per request on the hottest endpoints).
  const accessLogger = logger.child({}, { redact: [] });
  const app = new Koa();
  // oidc-provider signs its cookies with the outer app's keys: they must be the same list.
  app.keys = services.cookieKeys;
  app.proxy = config.trustProxy;

  app.use(async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    const requestId = config.trustProxy && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('x-request-id', requestId);
    const started = performance.now();
    try {
      await next();
    } finally {
      const ms = performance.now() - started;
      // The path only: query strings carry codes and tokens.
      // A line per request costs a noticeable share of the cheapest endpoints (docs/performance.md);
      // ACCESS_LOG=errors keeps only refused and failed requests.
      if (config.accessLog === 'all' || (config.accessLog === 'errors' && ctx.status >= 400)) {
        accessLogger.info({ requestId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms) }, 'request');
      }
      services.metrics.observeRequest(ctx, ms / 1000);
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
      if (wantsJson(ctx)) {
        ctx.body = { error: code, error_description: message };
      } else {
        await ctx.render('error', { heading: status >= 500 ? 'Something went wrong' : 'This request could not be completed', message, code, requestId: ctx.state.requestId });
      }
    }
  });

  app.use(securityHeaders(config.issuer, captchaCspSources(config.captcha)));
  app.use(views(path.join(ROOT, 'views'), { extension: 'ejs', options: { cache: config.env === 'production' } }));
  app.use(mount('/static', serve(path.join(ROOT, 'public'), { maxage: 24 * 3600 * 1000, gzip: false, brotli: false })));
  app.use(mount('/static/vendor/simplewebauthn-browser.js', serve(path.join(ROOT, 'node_modules/@simplewebauthn/browser/dist/bundle'), { index: 'index.umd.min.js', maxage: 24 * 3600 * 1000, gzip: false, brotli: false })));

  const host = new ProviderHost(services);
  await host.start();
  // Provider endpoints none of the middleware below has anything to do with go straight to the
  // provider instead of through every router's path matching: they are the most requested paths
  // (discovery and JWKS are fetched by every relying party and API). Any middleware added below
  // that must see one of these paths has to take it out of this list.
  const direct = new Set(['/.well-known/openid-configuration', host.provider.pathFor('discovery'), host.provider.pathFor('jwks')]);
  app.use((ctx, next) => (direct.has(ctx.path) ? host.middleware(ctx, next) : next()));

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
  app.use(tokenEndpointRateLimit(services.rateLimits));
  app.use(refreshTokenLifecycle(services, host));
  app.use(apiKeyIntrospection(services, host));
  app.use(federationCallbackRouter(services).routes());
  app.use(host.middleware);
  app.use(() => {
    throw new AppError('not_found', 'There is no page at this address.', 404);
  });
  return { app, host };
}
