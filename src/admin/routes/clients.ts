// OAuth clients: register, read, change, remove, rotate secrets, and the roles a machine client
// holds. Field names follow OAuth dynamic client registration metadata (RFC 7591). A secret is
// shown once, in the answer that creates it; the provider notices a change within seconds.
import { z } from 'zod';
import {
  AUTH_METHODS,
  createClient,
  deleteClient,
  getClient,
  GRANT_TYPES,
  ID_TOKEN_ALGS,
  listClients,
  MAX_REFRESH_GRACE_SECONDS,
  rotateClientSecret,
  updateClient,
} from '../../domain/clients.ts';
import { assignRole, listSubjectRoles, unassignRole } from '../../domain/roles.ts';
import { defineRoute, type AdminRoute } from '../define.ts';
import { roleName, subjectRolesSchema } from './roles.ts';

const TAG = 'Clients';

const clientId = z.string().min(3).max(128).meta({ description: 'The client id', example: 'billing-service' });

const clientSchema = z
  .object({
    client_id: z.string(),
    client_name: z.string(),
    redirect_uris: z.array(z.string()),
    post_logout_redirect_uris: z.array(z.string()),
    grant_types: z.array(z.enum(GRANT_TYPES)),
    response_types: z.array(z.literal('code')),
    token_endpoint_auth_method: z.enum(AUTH_METHODS),
    application_type: z.enum(['web', 'native']).optional(),
    scope: z.string().optional(),
    jwks_uri: z.string().optional(),
    id_token_signed_response_alg: z.enum(ID_TOKEN_ALGS).optional(),
    dpop_bound_access_tokens: z.boolean().optional(),
    backchannel_logout_uri: z.string().optional(),
    backchannel_logout_session_required: z.boolean().optional(),
    refresh_token_grace_seconds: z.number().int().optional(),
    first_party: z.boolean().meta({ description: 'Users are not asked for consent' }),
    created_at: z.iso.datetime(),
  })
  .meta({ id: 'Client' });

const clientWithSecretSchema = clientSchema
  .extend({ client_secret: z.string().optional().meta({ description: 'Shown only here; store it now' }) })
  .meta({ id: 'ClientWithSecret' });

// Everything a registration may say; PATCH takes the same fields, each optional, null to remove.
const settableFields = {
  client_name: z.string().min(1).max(200),
  redirect_uris: z.array(z.string().max(2000)).max(50),
  post_logout_redirect_uris: z.array(z.string().max(2000)).max(50),
  grant_types: z.array(z.enum(GRANT_TYPES)).min(1),
  scope: z.string().max(2000).meta({ description: 'Space-separated scopes the client may request' }),
  token_endpoint_auth_method: z.enum(AUTH_METHODS),
  first_party: z.boolean(),
  jwks_uri: z.string().max(2000),
  id_token_signed_response_alg: z.enum(ID_TOKEN_ALGS),
  dpop_bound_access_tokens: z.boolean(),
  backchannel_logout_uri: z.string().max(2000),
  refresh_token_grace_seconds: z.number().int().min(0).max(MAX_REFRESH_GRACE_SECONDS),
};

const createBody = z.object({
  client_name: settableFields.client_name,
  redirect_uris: settableFields.redirect_uris.optional(),
  post_logout_redirect_uris: settableFields.post_logout_redirect_uris.optional(),
  grant_types: settableFields.grant_types.optional().meta({ description: 'Default: authorization_code and refresh_token' }),
  scope: settableFields.scope.optional(),
  token_endpoint_auth_method: settableFields.token_endpoint_auth_method.optional().meta({ description: 'Default: client_secret_basic' }),
  client_id: z.string().min(3).max(128).optional().meta({ description: 'Default: random' }),
  client_secret: z.string().min(16).max(512).optional().meta({ description: 'Default: 256 random bits' }),
  first_party: settableFields.first_party.optional(),
  jwks_uri: settableFields.jwks_uri.optional(),
  id_token_signed_response_alg: settableFields.id_token_signed_response_alg.optional(),
  dpop_bound_access_tokens: settableFields.dpop_bound_access_tokens.optional(),
  backchannel_logout_uri: settableFields.backchannel_logout_uri.optional(),
  refresh_token_grace_seconds: settableFields.refresh_token_grace_seconds.optional(),
});

const updateBody = z.object({
  client_name: settableFields.client_name.optional(),
  redirect_uris: settableFields.redirect_uris.optional(),
  post_logout_redirect_uris: settableFields.post_logout_redirect_uris.optional(),
  grant_types: settableFields.grant_types.optional(),
  scope: settableFields.scope.nullable().optional(),
  token_endpoint_auth_method: settableFields.token_endpoint_auth_method.optional(),
  first_party: settableFields.first_party.optional(),
  jwks_uri: settableFields.jwks_uri.nullable().optional(),
  id_token_signed_response_alg: settableFields.id_token_signed_response_alg.nullable().optional(),
  dpop_bound_access_tokens: settableFields.dpop_bound_access_tokens.optional(),
  backchannel_logout_uri: settableFields.backchannel_logout_uri.nullable().optional(),
  refresh_token_grace_seconds: settableFields.refresh_token_grace_seconds.optional(),
});

const clientPath = z.object({ clientId });

type SettableFields = { [K in keyof typeof settableFields]?: unknown };

/** The registration fields of a request body under the domain's input names (null passes through). */
function clientFields<T extends SettableFields>(body: T): {
  name: T['client_name'];
  redirectUris: T['redirect_uris'];
  postLogoutRedirectUris: T['post_logout_redirect_uris'];
  grantTypes: T['grant_types'];
  scope: T['scope'];
  authMethod: T['token_endpoint_auth_method'];
  firstParty: T['first_party'];
  jwksUri: T['jwks_uri'];
  idTokenSignedResponseAlg: T['id_token_signed_response_alg'];
  dpop: T['dpop_bound_access_tokens'];
  backchannelLogoutUri: T['backchannel_logout_uri'];
  refreshGraceSeconds: T['refresh_token_grace_seconds'];
} {
  return {
    name: body.client_name,
    redirectUris: body.redirect_uris,
    postLogoutRedirectUris: body.post_logout_redirect_uris,
    grantTypes: body.grant_types,
    scope: body.scope,
    authMethod: body.token_endpoint_auth_method,
    firstParty: body.first_party,
    jwksUri: body.jwks_uri,
    idTokenSignedResponseAlg: body.id_token_signed_response_alg,
    dpop: body.dpop_bound_access_tokens,
    backchannelLogoutUri: body.backchannel_logout_uri,
    refreshGraceSeconds: body.refresh_token_grace_seconds,
  };
}

export const clientRoutes: AdminRoute[] = [
  defineRoute({
    method: 'get',
    path: '/clients',
    operationId: 'listClients',
    summary: 'List clients',
    tag: TAG,
    scope: 'admin:clients:read',
    status: 200,
    responseDescription: 'Every client, without secrets',
    response: z.object({ items: z.array(clientSchema) }),
    handler: async ({ deps }) => ({ items: await listClients(deps.services) }),
  }),
  defineRoute({
    method: 'post',
    path: '/clients',
    operationId: 'createClient',
    summary: 'Register a client',
    description: 'A machine client that administers Gatehouse is a client with the client_credentials grant that holds the gatehouse-admin role (PUT /roles/gatehouse-admin/members/client/{id}).',
    tag: TAG,
    scope: 'admin:clients:write',
    body: createBody,
    status: 201,
    responseDescription: 'The registered client, with its secret when it uses one',
    response: clientWithSecretSchema,
    errors: [409],
    async handler({ body, admin, deps }) {
      const created = await createClient(
        deps.services,
        { ...clientFields(body), clientId: body.client_id, clientSecret: body.client_secret },
        admin.auditMeta,
      );
      const stored = await getClient(deps.services, created.client_id);
      return { ...stored, ...(created.client_secret !== undefined ? { client_secret: created.client_secret } : {}) };
    },
  }),
  defineRoute({
    method: 'get',
    path: '/clients/{clientId}',
    operationId: 'getClient',
    summary: 'Get a client',
    tag: TAG,
    scope: 'admin:clients:read',
    params: clientPath,
    status: 200,
    responseDescription: 'The client, without its secret',
    response: clientSchema,
    errors: [404],
    handler: ({ params, deps }) => getClient(deps.services, params.clientId),
  }),
  defineRoute({
    method: 'patch',
    path: '/clients/{clientId}',
    operationId: 'updateClient',
    summary: 'Change a client',
    description: 'Only the fields sent change, and the result must satisfy the same rules as a registration. A client switched to a secret-based auth method gets a new secret, returned once; one switched away from secrets loses its secret.',
    tag: TAG,
    scope: 'admin:clients:write',
    params: clientPath,
    body: updateBody,
    status: 200,
    responseDescription: 'The changed client',
    response: clientWithSecretSchema,
    errors: [404],
    handler: ({ params, body, admin, deps }) =>
      updateClient(
        deps.services,
        params.clientId,
        clientFields(body),
        admin.auditMeta,
      ),
  }),
  defineRoute({
    method: 'delete',
    path: '/clients/{clientId}',
    operationId: 'deleteClient',
    summary: 'Delete a client',
    tag: TAG,
    scope: 'admin:clients:write',
    params: clientPath,
    status: 204,
    responseDescription: 'The client is deleted',
    errors: [404],
    async handler({ params, admin, deps }) {
      await deleteClient(deps.services, params.clientId, admin.auditMeta);
    },
  }),
  defineRoute({
    method: 'post',
    path: '/clients/{clientId}/secret',
    operationId: 'rotateClientSecret',
    summary: 'Rotate a client\'s secret',
    description: 'The old secret stops working as soon as every instance has noticed the change (within seconds).',
    tag: TAG,
    scope: 'admin:clients:write',
    params: clientPath,
    status: 200,
    responseDescription: 'The new secret, shown only here',
    response: z.object({ client_id: z.string(), client_secret: z.string() }),
    errors: [404, 409],
    handler: ({ params, admin, deps }) => rotateClientSecret(deps.services, params.clientId, admin.auditMeta),
  }),
  defineRoute({
    method: 'get',
    path: '/clients/{clientId}/roles',
    operationId: 'listClientRoles',
    summary: 'List a client\'s roles',
    tag: TAG,
    scope: 'admin:clients:read',
    params: clientPath,
    status: 200,
    responseDescription: 'Roles held directly and all roles in effect',
    response: subjectRolesSchema,
    errors: [404],
    handler: ({ params, deps }) => listSubjectRoles(deps.services, { type: 'client', id: params.clientId }),
  }),
  defineRoute({
    method: 'put',
    path: '/clients/{clientId}/roles/{role}',
    operationId: 'assignClientRole',
    summary: 'Give a client a role',
    description: 'Idempotent: `assigned` is false when the client already held the role.',
    tag: TAG,
    scope: 'admin:roles:write',
    params: z.object({ clientId, role: roleName }),
    status: 200,
    responseDescription: 'The role is held',
    response: z.object({ assigned: z.boolean() }),
    errors: [404],
    handler: ({ params, admin, deps }) => assignRole(deps.services, params.role, { type: 'client', id: params.clientId }, admin.auditMeta),
  }),
  defineRoute({
    method: 'delete',
    path: '/clients/{clientId}/roles/{role}',
    operationId: 'unassignClientRole',
    summary: 'Take a role from a client',
    tag: TAG,
    scope: 'admin:roles:write',
    params: z.object({ clientId, role: roleName }),
    status: 204,
    responseDescription: 'The client no longer holds the role directly',
    errors: [404],
    async handler({ params, admin, deps }) {
      await unassignRole(deps.services, params.role, { type: 'client', id: params.clientId }, admin.auditMeta);
    },
  }),
];
