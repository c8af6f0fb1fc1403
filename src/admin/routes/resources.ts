// Resources (APIs) that access tokens are issued for, and their permissions. An API is named by
// its identifier, an absolute URI; in paths it is percent-encoded as one segment
// (`/resources/https%3A%2F%2Fapi.example.com`).
import { z } from 'zod';
import { grantAcl, listAcl, revokeAcl } from '../../domain/acl.ts';
import { createPolicy, deletePolicy, getPolicy, listPolicies, updatePolicy } from '../../domain/policies.ts';
import { addPermissions, createResource, deleteResource, getResource, listResources, removePermission, updateResource } from '../../domain/resources.ts';
import { defineRoute, type AdminRoute } from '../define.ts';

const TAG = 'Resources';

export const resourceIdentifier = z
  .string()
  .min(1)
  .max(2000)
  .meta({ description: 'The API identifier (an absolute URI), percent-encoded in paths', example: 'https://api.example.com/invoices' });

const permissionSchema = z
  .object({
    name: z.string().min(1).max(200).meta({ example: 'invoices:read' }),
    description: z.string().max(500).nullable(),
  })
  .meta({ id: 'Permission' });

const permissionInput = z.object({
  name: z.string().min(1).max(200).meta({ example: 'invoices:read' }),
  description: z.string().max(500).nullable().optional(),
});

const resourceSchema = z
  .object({
    identifier: z.string(),
    name: z.string().nullable(),
    scope: z.string().meta({ description: 'The permission names, space-separated: the scopes the API accepts' }),
    access_token_format: z.enum(['jwt', 'opaque']),
    access_token_ttl: z.number().int().nullable().meta({ description: 'Seconds; null for the configured default' }),
    api_client_id: z.string().nullable().meta({ description: 'The API\'s own confidential client, which introspects its tokens' }),
    built_in: z.boolean().meta({ description: 'The management API is built in and cannot be removed' }),
    created_at: z.iso.datetime(),
  })
  .meta({ id: 'Resource' });

const detailedResourceSchema = resourceSchema.extend({ permissions: z.array(permissionSchema) }).meta({ id: 'ResourceDetails' });

const resourcePath = z.object({ identifier: resourceIdentifier });

const policySchema = z
  .object({
    name: z.string(),
    description: z.string().nullable(),
    effect: z.enum(['allow', 'deny']),
    actions: z.array(z.string()).meta({ description: 'Action names, or ["*"] for every action' }),
    condition: z.string().meta({ description: 'An expression over subject, object and context attributes', example: 'r.sub.department == "finance"' }),
    enabled: z.boolean(),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .meta({ id: 'Policy' });

const policyFields = {
  description: z.string().max(500).nullable(),
  effect: z.enum(['allow', 'deny']),
  actions: z.array(z.string().min(1).max(200)).min(1).max(100),
  condition: z.string().min(1).max(4000),
  enabled: z.boolean(),
};

const policyPath = z.object({ identifier: resourceIdentifier, policy: z.string().min(1).max(100) });

const aclGrantSchema = z.object({
  subject: z.string().min(1).max(300).meta({ description: '"user:<account id>", "client:<client id>" or "role:<role name>"', example: 'role:editors' }),
  object: z.string().min(1).max(200).meta({ description: 'An object id of the API, or "*" for every object', example: 'doc-42' }),
  action: z.string().min(1).max(200).meta({ example: 'documents:edit' }),
});

const aclEntrySchema = aclGrantSchema.extend({ created_at: z.iso.datetime() }).meta({ id: 'AclEntry' });

export const resourceRoutes: AdminRoute[] = [
  defineRoute({
    method: 'get',
    path: '/resources',
    operationId: 'listResources',
    summary: 'List APIs',
    tag: TAG,
    scope: 'admin:resources:read',
    status: 200,
    responseDescription: 'Every API',
    response: z.object({ items: z.array(resourceSchema) }),
    handler: async ({ deps }) => ({ items: await listResources(deps.services) }),
  }),
  defineRoute({
    method: 'post',
    path: '/resources',
    operationId: 'createResource',
    summary: 'Register an API',
    tag: TAG,
    scope: 'admin:resources:write',
    body: z.object({
      identifier: resourceIdentifier,
      name: z.string().max(200).optional(),
      permissions: z.array(permissionInput).min(1).max(500),
      access_token_format: z.enum(['jwt', 'opaque']).default('jwt'),
      access_token_ttl: z.number().int().min(1).max(86_400).optional().meta({ description: 'Seconds' }),
      api_client_id: z.string().min(1).max(128).optional(),
    }),
    status: 201,
    responseDescription: 'The registered API',
    response: detailedResourceSchema,
    errors: [409],
    handler: ({ body, admin, deps }) =>
      createResource(
        deps.services,
        {
          identifier: body.identifier,
          name: body.name,
          permissions: body.permissions,
          format: body.access_token_format,
          accessTokenTtl: body.access_token_ttl,
          apiClientId: body.api_client_id,
        },
        admin.auditMeta,
      ),
  }),
  defineRoute({
    method: 'get',
    path: '/resources/{identifier}',
    operationId: 'getResource',
    summary: 'Get an API with its permissions',
    tag: TAG,
    scope: 'admin:resources:read',
    params: resourcePath,
    status: 200,
    responseDescription: 'The API',
    response: detailedResourceSchema,
    errors: [404],
    handler: ({ params, deps }) => getResource(deps.services, params.identifier),
  }),
  defineRoute({
    method: 'patch',
    path: '/resources/{identifier}',
    operationId: 'updateResource',
    summary: 'Change an API',
    description: 'Only the fields sent change; null resets the token lifetime to the default or removes the API client.',
    tag: TAG,
    scope: 'admin:resources:write',
    params: resourcePath,
    body: z.object({
      name: z.string().max(200).nullable().optional(),
      access_token_format: z.enum(['jwt', 'opaque']).optional(),
      access_token_ttl: z.number().int().min(1).max(86_400).nullable().optional(),
      api_client_id: z.string().min(1).max(128).nullable().optional(),
    }),
    status: 200,
    responseDescription: 'The changed API',
    response: detailedResourceSchema,
    errors: [404],
    handler: ({ params, body, admin, deps }) =>
      updateResource(
        deps.services,
        params.identifier,
        { name: body.name, format: body.access_token_format, accessTokenTtl: body.access_token_ttl, apiClientId: body.api_client_id },
        admin.auditMeta,
      ),
  }),
  defineRoute({
    method: 'delete',
    path: '/resources/{identifier}',
    operationId: 'deleteResource',
    summary: 'Remove an API',
    description: 'Its permissions go with it, and with them the roles\' grants of those permissions.',
    tag: TAG,
    scope: 'admin:resources:write',
    params: resourcePath,
    status: 204,
    responseDescription: 'The API is removed',
    errors: [404, 409],
    async handler({ params, admin, deps }) {
      await deleteResource(deps.services, params.identifier, admin.auditMeta);
    },
  }),
  defineRoute({
    method: 'post',
    path: '/resources/{identifier}/permissions',
    operationId: 'addPermissions',
    summary: 'Add permissions to an API',
    description: 'A permission that exists already keeps its place; a description sent for it replaces the old one.',
    tag: TAG,
    scope: 'admin:resources:write',
    params: resourcePath,
    body: z.object({ permissions: z.array(permissionInput).min(1).max(500) }),
    status: 200,
    responseDescription: 'The API with its permissions',
    response: detailedResourceSchema,
    errors: [404],
    handler: ({ params, body, admin, deps }) => addPermissions(deps.services, params.identifier, body.permissions, admin.auditMeta),
  }),
  defineRoute({
    method: 'delete',
    path: '/resources/{identifier}/permissions/{permission}',
    operationId: 'removePermission',
    summary: 'Remove a permission from an API',
    tag: TAG,
    scope: 'admin:resources:write',
    params: z.object({ identifier: resourceIdentifier, permission: z.string().min(1).max(200) }),
    status: 204,
    responseDescription: 'The permission is removed',
    errors: [404, 409],
    async handler({ params, admin, deps }) {
      await removePermission(deps.services, params.identifier, params.permission, admin.auditMeta);
    },
  }),
  defineRoute({
    method: 'get',
    path: '/resources/{identifier}/policies',
    operationId: 'listPolicies',
    summary: 'List an API\'s policies',
    tag: TAG,
    scope: 'admin:resources:read',
    params: resourcePath,
    status: 200,
    responseDescription: 'The API\'s ABAC policies',
    response: z.object({ items: z.array(policySchema) }),
    errors: [404],
    handler: async ({ params, deps }) => ({ items: await listPolicies(deps.services, params.identifier) }),
  }),
  defineRoute({
    method: 'post',
    path: '/resources/{identifier}/policies',
    operationId: 'createPolicy',
    summary: 'Add a policy to an API',
    description: 'The condition is compiled and tried before the policy is stored, so a mistake is refused here rather than failing decisions later.',
    tag: TAG,
    scope: 'admin:resources:write',
    params: resourcePath,
    body: z.object({
      name: z.string().min(1).max(100),
      description: policyFields.description.optional(),
      effect: policyFields.effect,
      actions: policyFields.actions,
      condition: policyFields.condition,
      enabled: policyFields.enabled.default(true),
    }),
    status: 201,
    responseDescription: 'The created policy',
    response: policySchema,
    errors: [404, 409],
    handler: ({ params, body, admin, deps }) => createPolicy(deps.services, params.identifier, body, admin.auditMeta),
  }),
  defineRoute({
    method: 'get',
    path: '/resources/{identifier}/policies/{policy}',
    operationId: 'getPolicy',
    summary: 'Get a policy',
    tag: TAG,
    scope: 'admin:resources:read',
    params: policyPath,
    status: 200,
    responseDescription: 'The policy',
    response: policySchema,
    errors: [404],
    handler: ({ params, deps }) => getPolicy(deps.services, params.identifier, params.policy),
  }),
  defineRoute({
    method: 'patch',
    path: '/resources/{identifier}/policies/{policy}',
    operationId: 'updatePolicy',
    summary: 'Change a policy',
    tag: TAG,
    scope: 'admin:resources:write',
    params: policyPath,
    body: z.object({
      description: policyFields.description.optional(),
      effect: policyFields.effect.optional(),
      actions: policyFields.actions.optional(),
      condition: policyFields.condition.optional(),
      enabled: policyFields.enabled.optional(),
    }),
    status: 200,
    responseDescription: 'The changed policy',
    response: policySchema,
    errors: [404],
    handler: ({ params, body, admin, deps }) => updatePolicy(deps.services, params.identifier, params.policy, body, admin.auditMeta),
  }),
  defineRoute({
    method: 'delete',
    path: '/resources/{identifier}/policies/{policy}',
    operationId: 'deletePolicy',
    summary: 'Remove a policy',
    tag: TAG,
    scope: 'admin:resources:write',
    params: policyPath,
    status: 204,
    responseDescription: 'The policy is removed',
    errors: [404],
    async handler({ params, admin, deps }) {
      await deletePolicy(deps.services, params.identifier, params.policy, admin.auditMeta);
    },
  }),
  defineRoute({
    method: 'get',
    path: '/resources/{identifier}/acl',
    operationId: 'listAcl',
    summary: 'List an API\'s per-object grants',
    tag: TAG,
    scope: 'admin:resources:read',
    params: resourcePath,
    query: aclGrantSchema.partial(),
    status: 200,
    responseDescription: 'The matching grants',
    response: z.object({ items: z.array(aclEntrySchema) }),
    errors: [404],
    handler: async ({ params, query, deps }) => ({ items: await listAcl(deps.services, params.identifier, query) }),
  }),
  defineRoute({
    method: 'post',
    path: '/resources/{identifier}/acl',
    operationId: 'grantAcl',
    summary: 'Grant an action on an object',
    description: 'Idempotent: `created` is false when the grant existed already.',
    tag: TAG,
    scope: 'admin:resources:write',
    params: resourcePath,
    body: aclGrantSchema,
    status: 200,
    responseDescription: 'The grant',
    response: aclEntrySchema.extend({ created: z.boolean() }),
    errors: [404],
    handler: ({ params, body, admin, deps }) => grantAcl(deps.services, params.identifier, body, admin.auditMeta),
  }),
  defineRoute({
    method: 'delete',
    path: '/resources/{identifier}/acl',
    operationId: 'revokeAcl',
    summary: 'Revoke an action on an object',
    description: 'The grant is named in the query: subjects and objects may contain characters that do not fit a path segment.',
    tag: TAG,
    scope: 'admin:resources:write',
    params: resourcePath,
    query: aclGrantSchema,
    status: 204,
    responseDescription: 'The grant is revoked',
    errors: [404],
    async handler({ params, query, admin, deps }) {
      await revokeAcl(deps.services, params.identifier, query, admin.auditMeta);
    },
  }),
];
