// The admin API under /admin/api/v1: each route definition becomes a Koa route that
// authenticates the caller, checks the operation's scope, validates path, query and body with
// the definition's schemas, runs the handler and shapes the answer with the response schema.
// Everything under the prefix is answered here, errors included, as problem details; the
// OpenAPI document and its reference page are public.
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type Koa from 'koa';
import type { z } from 'zod';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { createAdminAuthenticator, requireScope } from './auth.ts';
import { koaPath, type AdminDeps, type AdminRoute } from './define.ts';
import { buildOpenApiDocument, type OpenApiDocument } from './openapi.ts';
import { issuesOf, ProblemError, sendProblem, toProblem, type InputIssue } from './problem.ts';
import { referencePage } from './reference.ts';
import { apiKeyRoutes } from './routes/api-keys.ts';
import { auditRoutes } from './routes/audit.ts';
import { clientRoutes } from './routes/clients.ts';
import { keyRoutes } from './routes/keys.ts';
import { resourceRoutes } from './routes/resources.ts';
import { roleRoutes } from './routes/roles.ts';
import { userRoutes } from './routes/users.ts';

export const ADMIN_API_PREFIX = '/admin/api/v1';
const BODY_LIMIT = '64kb';

/** Every operation of the admin API, in the order the reference lists them. */
export function adminRoutes(): AdminRoute[] {
  return [...userRoutes, ...roleRoutes, ...resourceRoutes, ...clientRoutes, ...keyRoutes, ...auditRoutes, ...apiKeyRoutes];
}

function parseInput(schema: z.ZodType | undefined, value: unknown, location: InputIssue['in']): { ok: true; data: unknown } | { ok: false; issues: InputIssue[] } {
  if (!schema) return { ok: true, data: {} };
  const parsed = schema.safeParse(value);
  return parsed.success ? { ok: true, data: parsed.data } : { ok: false, issues: issuesOf(parsed.error, location) };
}

function docsUrl(services: Pick<Services, 'config'>): string {
  return `${services.config.issuer}${ADMIN_API_PREFIX}/docs`;
}

/** The JSON body of a request, `{}` when it has none; anything but JSON is refused. */
async function readJsonBody(ctx: Koa.Context, parse: Koa.Middleware): Promise<unknown> {
  // ctx.is answers null when the request has no body at all.
  const type = ctx.is('application/json', '+json');
  if (type === null) return {};
  if (type === false) throw new ProblemError(415, 'unsupported_media_type', 'Send the request body as application/json.');
  try {
    await parse(ctx, async () => {});
  } catch (err) {
    // co-body marks unparsable JSON 400 without exposing its message (which quotes the input).
    if ((err as { status?: unknown }).status === 400) throw new ProblemError(400, 'invalid_request', 'The request body is not valid JSON (an object is expected).');
    throw err;
  }
  const body = ctx.request.body;
  return body === undefined || body === '' ? {} : body;
}

/** Builds the router for `routes`; construction does no I/O, so tests may inspect it. */
export function buildAdminRouter(deps: AdminDeps, routes: readonly AdminRoute[] = adminRoutes()): Router {
  const router = new Router({ prefix: ADMIN_API_PREFIX });
  const authenticator = createAdminAuthenticator(deps.services);
  const parseBody = bodyParser({ enableTypes: ['json'], jsonLimit: BODY_LIMIT, jsonStrict: true });
  let document: OpenApiDocument | undefined;
  const openApi = (): OpenApiDocument => (document ??= buildOpenApiDocument(deps.services.config, routes));

  router.get('/openapi.json', (ctx) => {
    ctx.set('cache-control', 'no-cache');
    ctx.body = openApi();
  });
  router.get('/docs', async (ctx) => {
    await ctx.render('admin/reference', referencePage(openApi()));
  });

  for (const route of routes) {
    router.register(koaPath(route.path), [route.method.toUpperCase()], async (ctx) => {
      const admin = await authenticator.authenticate(ctx);
      ctx.state.admin = admin;
      requireScope(admin, route.scope);
      const params = parseInput(route.params, ctx.params, 'path');
      const query = parseInput(route.query, ctx.query, 'query');
      const body = route.body ? parseInput(route.body, await readJsonBody(ctx, parseBody), 'body') : { ok: true as const, data: {} };
      const issues = [params, query, body].flatMap((r) => (r.ok ? [] : r.issues));
      if (!params.ok || !query.ok || !body.ok) {
        throw new ProblemError(400, 'invalid_request', issues.map((i) => `${i.in} ${i.field || '(root)'}: ${i.message}`).join('; '), { extra: { issues } });
      }
      const result = await route.handler({ params: params.data, query: query.data, body: body.data, admin, deps, ctx });
      ctx.status = route.status;
      if (route.response) {
        ctx.body = route.response.parse(result);
        if (route.mediaType !== 'application/json') ctx.type = route.mediaType;
      }
    });
  }
  return router;
}

/**
 * Middleware answering every request under the prefix: a matching route, or a problem (404 for
 * unknown paths, 405 for a known path with another method, and any failure on the way).
 */
export function adminApi(services: Services, host: ProviderHost): Koa.Middleware {
  const router = buildAdminRouter({ services, host });
  const dispatch = router.routes();
  return async (ctx, next) => {
    if (ctx.path !== ADMIN_API_PREFIX && !ctx.path.startsWith(`${ADMIN_API_PREFIX}/`)) return next();
    try {
      // The router adds params and its own fields to the context as it matches.
      await dispatch(ctx as Parameters<typeof dispatch>[0], async () => {
        const allowed = [...new Set(router.match(ctx.path, ctx.method).path.flatMap((layer) => layer.methods))].filter((m) => m !== 'HEAD');
        if (allowed.length > 0) {
          throw new ProblemError(405, 'method_not_allowed', `${ctx.method} is not allowed here; use ${allowed.join(', ')}.`, { headers: { allow: allowed.join(', ') } });
        }
        throw new ProblemError(404, 'not_found', 'There is no admin API operation at this path.');
      });
    } catch (err) {
      const { problem, headers, unexpected } = toProblem(err, docsUrl(services));
      if (unexpected) services.logger.error({ err, requestId: ctx.state.requestId, path: ctx.path }, 'admin API request failed');
      sendProblem(ctx, problem, headers);
    }
  };
}

