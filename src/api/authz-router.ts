// POST /api/v1/authz/check: the decision endpoint for resource servers. An API calls it with its
// own client's credentials (HTTP Basic, or client_id + client_secret in the JSON body for
// client_secret_post clients) and may only ask about itself: the `resource` must be the API
// whose api_client_id is that client. Every answer, error or not, is JSON.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context, Next } from 'koa';
import { decideForResource, parseCheckRequest } from '../domain/authz-check.ts';
import { findResource } from '../domain/resources.ts';
import { AppError, isAppError } from '../errors.ts';
import { authenticateClientSecret } from '../security/client-auth.ts';
import type { Services } from '../services.ts';

const JSON_LIMIT = '64kb';

function errorBody(ctx: Context, status: number, error: string, description: string): void {
  ctx.status = status;
  ctx.type = 'application/json';
  ctx.body = { error, error_description: description };
}

/** Answers every failure below it as JSON, whatever the caller accepts; unexpected ones without detail. */
function jsonErrors(services: Services) {
  return async (ctx: Context, next: Next): Promise<void> => {
    ctx.set('Cache-Control', 'no-store');
    try {
      await next();
    } catch (err) {
      if (isAppError(err)) {
        errorBody(ctx, err.status, err.code, err.message);
        return;
      }
      // The body parser's errors: malformed JSON (a SyntaxError given status 400) and the
      // exposable http errors of reading the body (too large, bad encoding).
      const httpError = err as { status?: unknown; expose?: unknown };
      const clientError = typeof httpError.status === 'number' && httpError.status >= 400 && httpError.status < 500;
      if (clientError && (httpError.expose === true || err instanceof SyntaxError)) {
        errorBody(ctx, httpError.status as number, 'invalid_request', httpError.status === 413 ? 'the request body is too large' : 'the request body is not valid JSON');
        return;
      }
      services.logger.error({ err, requestId: ctx.state.requestId as unknown }, 'authorization check failed');
      errorBody(ctx, 500, 'server_error', 'Something went wrong on our side. Please try again.');
    }
  };
}

/** The client_secret_post fields of a JSON body, as the form client-auth.ts reads. */
function credentialFields(body: Record<string, unknown>): URLSearchParams {
  const form = new URLSearchParams();
  for (const key of ['client_id', 'client_secret'] as const) {
    const value = body[key];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw new AppError('invalid_request', `${key} must be a string`, 400);
    form.set(key, value);
  }
  return form;
}

export function authzRouter(services: Services): Router {
  const router = new Router({ prefix: '/api/v1/authz' });
  const body = bodyParser({ enableTypes: ['json'], jsonLimit: JSON_LIMIT });

  router.post('/check', jsonErrors(services), body, async (ctx) => {
    // Other content types are not parsed (the body reads as {}): the caller still gets 401 first
    // when it sent no credentials, then 415.
    const isJson = Boolean(ctx.is('application/json'));
    const raw: unknown = isJson ? ctx.request.body : {};
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new AppError('invalid_request', 'the request body is a JSON object', 400);
    const { client_id: _id, client_secret: _secret, ...fields } = raw as Record<string, unknown>;

    const client = await authenticateClientSecret(services, ctx, credentialFields(raw as Record<string, unknown>));
    if (!client.ok) {
      if (client.error === 'invalid_client') ctx.set('WWW-Authenticate', `Basic realm="${services.config.issuer}"`);
      throw new AppError(client.error, client.error === 'invalid_client' ? 'client authentication failed' : client.description, client.error === 'invalid_client' ? 401 : 400);
    }
    if (!isJson) throw new AppError('invalid_request', 'send the request body as application/json', 415);

    const request = parseCheckRequest(fields);
    const resource = await findResource(services.knex, request.resource);
    // The same answer whether the API does not exist or belongs to another client: a client
    // learns nothing about APIs that are not its own.
    if (!resource || resource.apiClientId !== client.clientId) {
      throw new AppError('forbidden', `this client may not ask for decisions about "${request.resource}": only the API's own client (api_client_id) may`, 403);
    }
    ctx.body = await decideForResource(services, resource, request);
  });

  // Registered after POST, which never passes the request on: this answers the other methods.
  router.all('/check', jsonErrors(services), (ctx) => {
    ctx.set('Allow', 'POST');
    throw new AppError('invalid_request', 'the decision endpoint accepts POST only', 405);
  });

  return router;
}
