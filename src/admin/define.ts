// One definition per admin API operation: method, path, required scope, the zod schemas of its
// path parameters, query, body and response, and the handler. The Koa router (router.ts) and the
// OpenAPI document (openapi.ts) are both derived from these definitions, so the document covers
// every route and describes exactly what is validated.
import type Koa from 'koa';
import { z } from 'zod';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import type { AdminPrincipal, AdminScope } from './auth.ts';

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** What handlers may use, passed when the router is built. */
export interface AdminDeps {
  services: Services;
  host: ProviderHost;
}

export interface HandlerInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  admin: AdminPrincipal;
  deps: AdminDeps;
  ctx: Koa.Context;
}

export const EMPTY = z.object({});
type Empty = typeof EMPTY;
export type SuccessStatus = 200 | 201 | 202 | 204;

export interface RouteSpec<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType, R extends z.ZodType> {
  method: HttpMethod;
  /** Relative to /admin/api/v1, in OpenAPI form: `/users/{id}`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  /** Groups operations in the document and on the reference page. */
  tag: string;
  scope: AdminScope;
  params?: P;
  query?: Q;
  body?: B;
  status: SuccessStatus;
  /** What the success response means. */
  responseDescription: string;
  /** The success body; absent for 202/204 answers without one. */
  response?: R;
  /** Media type of the success body (default application/json); others are sent as text. */
  mediaType?: string;
  /** Error statuses beyond 400, 401 and 403 that this operation answers with (404, 409 ...). */
  errors?: number[];
  handler(input: HandlerInput<z.output<P>, z.output<Q>, z.output<B>>): Promise<z.input<R>>;
}

/** A definition with its types erased, as the router and the document generator see it. */
export interface AdminRoute {
  method: HttpMethod;
  path: string;
  operationId: string;
  summary: string;
  description: string | undefined;
  tag: string;
  scope: AdminScope;
  params: z.ZodType | undefined;
  query: z.ZodType | undefined;
  body: z.ZodType | undefined;
  status: SuccessStatus;
  responseDescription: string;
  response: z.ZodType | undefined;
  mediaType: string;
  errors: number[];
  handler(input: HandlerInput<unknown, unknown, unknown>): Promise<unknown>;
}

/**
 * Declares one operation. Generic parameters default to "nothing" so a GET without a body
 * still has typed (empty) `body` and `query` in its handler.
 */
export function defineRoute<P extends z.ZodType = Empty, Q extends z.ZodType = Empty, B extends z.ZodType = Empty, R extends z.ZodType = z.ZodVoid>(
  spec: RouteSpec<P, Q, B, R>,
): AdminRoute {
  return {
    method: spec.method,
    path: spec.path,
    operationId: spec.operationId,
    summary: spec.summary,
    description: spec.description,
    tag: spec.tag,
    scope: spec.scope,
    params: spec.params,
    query: spec.query,
    // Unknown body fields are refused rather than ignored, so a misspelt field in a PATCH is an
    // error and not a silent no-op; the document says so too (additionalProperties: false).
    body: spec.body instanceof z.ZodObject ? spec.body.strict() : spec.body,
    status: spec.status,
    responseDescription: spec.responseDescription,
    response: spec.response,
    mediaType: spec.mediaType ?? 'application/json',
    errors: spec.errors ?? [],
    // The router parses params, query and body with the schemas above before calling, so the
    // values have the declared output types; only the compiler no longer knows which.
    handler: spec.handler as AdminRoute['handler'],
  };
}

/** `/users/{id}` -> `/users/:id` for @koa/router. */
export function koaPath(path: string): string {
  return path.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, ':$1');
}
