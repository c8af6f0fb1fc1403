// The OpenAPI 3.1 document of the admin API, generated from the route definitions (define.ts)
// with zod-openapi: the schemas that validate requests are the ones documented, and every route
// the router serves is in the document because both come from the same list.
import { createDocument, type ZodOpenApiOperationObject, type ZodOpenApiPathsObject, type ZodOpenApiResponsesObject } from 'zod-openapi';
import type { Config } from '../config.ts';
import { ADMIN_SCOPES, managementResourceIdentifier } from '../domain/management.ts';
import type { AdminRoute } from './define.ts';
import { problemSchema } from './problem.ts';

export type OpenApiDocument = ReturnType<typeof createDocument>;

const PROBLEM_CONTENT = { 'application/problem+json': { schema: problemSchema } };

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'The request is invalid: `issues` lists each value that is not acceptable',
  401: 'No credential, or one that is malformed, expired, revoked or for another API (`WWW-Authenticate` says which)',
  403: 'The credential lacks the scope this operation needs (`required_scope`)',
  404: 'What the request names does not exist',
  409: 'The request conflicts with the current state (a name taken, a built-in object, a state that does not allow it)',
};

function operation(route: AdminRoute): ZodOpenApiOperationObject {
  const errors = [400, 401, 403, ...route.errors].filter((status, index, all) => all.indexOf(status) === index).sort();
  const responses: ZodOpenApiResponsesObject = {
    [`${route.status}`]: {
      description: route.responseDescription,
      ...(route.response ? { content: { [route.mediaType]: { schema: route.response } } } : {}),
    },
  };
  for (const status of errors) {
    responses[`${status}` as `${4 | 5}${string}`] = { description: ERROR_DESCRIPTIONS[status] ?? 'An error', content: PROBLEM_CONTENT };
  }
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(route.description ? { description: `${route.description}\n\nRequires the \`${route.scope}\` scope.` } : { description: `Requires the \`${route.scope}\` scope.` }),
    tags: [route.tag],
    security: [{ oauth2: [route.scope] }, { apiKey: [route.scope] }],
    'x-required-scope': route.scope,
    ...(route.params || route.query
      ? {
          requestParams: {
            ...(route.params ? { path: route.params as NonNullable<ZodOpenApiOperationObject['requestParams']>['path'] } : {}),
            ...(route.query ? { query: route.query as NonNullable<ZodOpenApiOperationObject['requestParams']>['query'] } : {}),
          },
        }
      : {}),
    ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: route.body } } } } : {}),
    responses,
  };
}

export function buildOpenApiDocument(config: Pick<Config, 'issuer'>, routes: readonly AdminRoute[]): OpenApiDocument {
  const paths: ZodOpenApiPathsObject = {};
  for (const route of routes) {
    paths[route.path] = { ...paths[route.path], [route.method]: operation(route) };
  }
  const tags = [...new Set(routes.map((r) => r.tag))].map((name) => ({ name }));
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'Gatehouse management API',
      version: '1.0.0',
      description:
        'Administer users, roles, APIs and their permissions, clients, signing keys, API keys and the audit log. ' +
        'Authenticate with an access token for the management API (audience `' + managementResourceIdentifier(config) + '`) ' +
        'or an API key issued for it, sent as `Authorization: Bearer ...`. Errors are RFC 9457 problem details. ' +
        'Listings that can grow without bound are paged: pass `next_cursor` back as `cursor`.',
    },
    servers: [{ url: managementResourceIdentifier(config) }],
    tags,
    paths,
    components: {
      securitySchemes: {
        oauth2: {
          type: 'oauth2',
          description: `Access tokens for the resource \`${managementResourceIdentifier(config)}\`: ask with \`resource=${managementResourceIdentifier(config)}\` and the admin scopes wanted.`,
          flows: {
            clientCredentials: { tokenUrl: `${config.issuer}/token`, scopes: ADMIN_SCOPES },
            authorizationCode: { authorizationUrl: `${config.issuer}/auth`, tokenUrl: `${config.issuer}/token`, scopes: ADMIN_SCOPES },
          },
        },
        apiKey: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'ghk_ API key',
          description: 'An API key issued for the management API; its scopes are the admin scopes it was created with.',
        },
      },
    },
  });
}
