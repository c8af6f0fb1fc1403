// API keys: long-lived `ghk_` secrets for automation, each for one API with some of its
// permissions as scopes. A key is shown once, when it is created or rotated.
import { z } from 'zod';
import { createApiKey, getApiKey, listApiKeys, revokeApiKey, rotateApiKey } from '../../domain/api-keys.ts';
import { ADMIN_SCOPES, managementResourceIdentifier } from '../../domain/management.ts';
import { insufficientScope, type AdminScope } from '../auth.ts';
import { defineRoute, type AdminRoute } from '../define.ts';

const TAG = 'API keys';

const apiKeySchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    key_hint: z.string().meta({ description: 'The first characters of the key, to tell keys apart' }),
    resource: z.string().meta({ description: 'Identifier of the API the key is for' }),
    scopes: z.array(z.string()),
    owner_account_id: z.string().nullable(),
    owner_client_id: z.string().nullable(),
    status: z.enum(['active', 'expired', 'revoked']),
    expires_at: z.iso.datetime().nullable(),
    last_used_at: z.iso.datetime().nullable(),
    usage_count: z.number().int(),
    revoked_at: z.iso.datetime().nullable(),
    replaced_by: z.string().nullable().meta({ description: 'On a rotated-out key: the id of its successor' }),
    created_at: z.iso.datetime(),
  })
  .meta({ id: 'ApiKey' });

const createdApiKeySchema = apiKeySchema.extend({ key: z.string().meta({ description: 'The key, shown only here', example: 'ghk_...' }) }).meta({ id: 'CreatedApiKey' });

const apiKeyPath = z.object({ id: z.uuid() });

export const apiKeyRoutes: AdminRoute[] = [
  defineRoute({
    method: 'get',
    path: '/api-keys',
    operationId: 'listApiKeys',
    summary: 'List API keys',
    tag: TAG,
    scope: 'admin:api_keys:read',
    query: z.object({
      owner_account_id: z.uuid().optional(),
      owner_client_id: z.string().min(1).max(128).optional(),
      resource: z.string().min(1).max(2000).optional().meta({ description: 'Identifier of the API' }),
    }),
    status: 200,
    responseDescription: 'The matching keys, without the keys themselves',
    response: z.object({ items: z.array(apiKeySchema) }),
    handler: async ({ query, deps }) => ({
      items: await listApiKeys(deps.services, { ownerAccountId: query.owner_account_id, ownerClientId: query.owner_client_id, resource: query.resource }),
    }),
  }),
  defineRoute({
    method: 'post',
    path: '/api-keys',
    operationId: 'createApiKey',
    summary: 'Create an API key',
    description: 'For the management API (the default `resource`) a caller can only hand out admin scopes it holds itself.',
    tag: TAG,
    scope: 'admin:api_keys:write',
    body: z.object({
      name: z.string().min(1).max(200),
      resource: z.string().min(1).max(2000).optional().meta({ description: 'Identifier of the API; default the management API' }),
      scopes: z.array(z.string().min(1).max(200)).min(1).max(100),
      expires_at: z.iso.datetime({ offset: true }).optional(),
      expires_in_days: z.number().int().min(1).max(3650).optional(),
      owner_account_id: z.uuid().optional(),
      owner_client_id: z.string().min(1).max(128).optional(),
    }),
    status: 201,
    responseDescription: 'The key, shown only in this answer',
    response: createdApiKeySchema,
    errors: [404],
    async handler({ body, admin, deps }) {
      const resource = body.resource ?? managementResourceIdentifier(deps.services.config);
      // Otherwise the right to make keys would be the right to every admin scope.
      if (resource === managementResourceIdentifier(deps.services.config)) {
        // Names that are no admin scope at all are left to the domain's invalid_scope answer.
        const missing = body.scopes.find((scope) => Object.hasOwn(ADMIN_SCOPES, scope) && !admin.scopes.has(scope));
        if (missing !== undefined) throw insufficientScope(missing as AdminScope);
      }
      return createApiKey(
        deps.services,
        {
          name: body.name,
          resource,
          scopes: body.scopes,
          expiresAt: body.expires_at === undefined ? undefined : new Date(body.expires_at),
          expiresInDays: body.expires_in_days,
          ownerAccountId: body.owner_account_id,
          ownerClientId: body.owner_client_id,
        },
        admin.auditMeta,
      );
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api-keys/{id}',
    operationId: 'getApiKey',
    summary: 'Get an API key',
    tag: TAG,
    scope: 'admin:api_keys:read',
    params: apiKeyPath,
    status: 200,
    responseDescription: 'The key\'s description',
    response: apiKeySchema,
    errors: [404],
    handler: ({ params, deps }) => getApiKey(deps.services, params.id),
  }),
  defineRoute({
    method: 'post',
    path: '/api-keys/{id}/rotate',
    operationId: 'rotateApiKey',
    summary: 'Rotate an API key',
    description: 'Issues a successor with the same name, owner, API, scopes and expiry. The old key keeps working for `overlap_seconds` (default from the server\'s configuration) so its users can switch without an outage; 0 ends it at once.',
    tag: TAG,
    scope: 'admin:api_keys:write',
    params: apiKeyPath,
    body: z.object({ overlap_seconds: z.number().int().min(0).max(30 * 86_400).optional() }),
    status: 200,
    responseDescription: 'The successor key (shown only here) and the rotated-out key',
    response: createdApiKeySchema.extend({ previous: apiKeySchema }),
    errors: [404, 409],
    handler: ({ params, body, admin, deps }) => rotateApiKey(deps.services, params.id, { overlapSeconds: body.overlap_seconds }, admin.auditMeta),
  }),
  defineRoute({
    method: 'delete',
    path: '/api-keys/{id}',
    operationId: 'revokeApiKey',
    summary: 'Revoke an API key',
    description: 'The key stops working at once. Revoking a revoked key changes nothing.',
    tag: TAG,
    scope: 'admin:api_keys:write',
    params: apiKeyPath,
    status: 200,
    responseDescription: 'The revoked key',
    response: apiKeySchema,
    errors: [404],
    handler: ({ params, admin, deps }) => revokeApiKey(deps.services, params.id, admin.auditMeta),
  }),
];
