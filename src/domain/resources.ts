// Resource servers (APIs) that access tokens are issued for, named by an absolute URI as
// resource indicators require (RFC 8707). Each one has named permissions (`invoices:read`):
// exactly the scope values clients may ask for at it.
import type { Knex } from 'knex';
import {
  deletePermissionRow,
  deleteResourceServer,
  findPermissionRow,
  findResourceServerRow,
  insertPermissions,
  insertResourceServer,
  listPermissionRows,
  listResourceServerRows,
  updatePermissionDescription,
  updateResourceServer,
  type PermissionRow,
  type ResourceServerRow,
} from '../db/resource-servers.ts';
import { findClientRow } from '../db/clients.ts';
import { AppError } from '../errors.ts';
import type { Services } from '../services.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';

export type AccessTokenFormat = 'jwt' | 'opaque';

export interface PublicPermission {
  name: string;
  description: string | null;
}

export interface PublicResource {
  identifier: string;
  name: string | null;
  /** The permission names, space-separated: the scopes the API accepts. */
  scope: string;
  access_token_format: AccessTokenFormat;
  access_token_ttl: number | null;
  api_client_id: string | null;
  built_in: boolean;
  created_at: string;
}

export type DetailedResource = PublicResource & { permissions: PublicPermission[] };

/** What the provider and the authorization checks need about one resource. */
export interface ResourceServerInfo {
  id: string;
  identifier: string;
  scope: string;
  accessTokenFormat: AccessTokenFormat;
  /** Seconds; undefined means the configured default access-token lifetime. */
  accessTokenTtl: number | undefined;
  apiClientId: string | undefined;
}

// RFC 6749 scope-token: printable ASCII except space, double quote and backslash.
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
const MAX_ACCESS_TOKEN_TTL = 24 * 3600;
const MAX_DESCRIPTION = 500;

type Db = Knex | Knex.Transaction;

function invalid(message: string): AppError {
  return new AppError('invalid_resource', message, 400);
}

function notFound(identifier: string): AppError {
  return new AppError('resource_not_found', `no resource has identifier "${identifier}"`, 404);
}

export function checkResourceIdentifier(identifier: string): string {
  let url: URL | undefined;
  try {
    url = /\s/.test(identifier) ? undefined : new URL(identifier);
  } catch {
    url = undefined;
  }
  if (!url) throw invalid(`the resource identifier "${identifier}" is not an absolute URI`);
  if (identifier.includes('#')) throw invalid(`the resource identifier "${identifier}" must not contain a fragment`);
  return identifier;
}

export function checkPermissionName(name: string): string {
  if (name.length === 0 || name.length > 200 || !SCOPE_TOKEN.test(name)) {
    throw invalid(`permission "${name}" must be 1 to 200 characters without spaces, double quotes or backslashes`);
  }
  return name;
}

function splitScope(scope: string): string[] {
  return [...new Set(String(scope).split(' ').filter(Boolean))].map(checkPermissionName);
}

function checkTtl(ttl: number | null | undefined): void {
  if (ttl !== undefined && ttl !== null && (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_ACCESS_TOKEN_TTL)) {
    throw invalid(`the access token lifetime must be a whole number of seconds from 1 to ${MAX_ACCESS_TOKEN_TTL}`);
  }
}

function checkName(name: string | null | undefined): string | null {
  const trimmed = name?.trim() || null;
  if (trimmed !== null && trimmed.length > 200) throw invalid('the resource name is longer than 200 characters');
  return trimmed;
}

function checkDescription(description: string | null | undefined): string | null {
  const trimmed = description?.trim() || null;
  if (trimmed !== null && trimmed.length > MAX_DESCRIPTION) throw invalid(`a description is at most ${MAX_DESCRIPTION} characters`);
  return trimmed;
}

async function checkApiClient(db: Db, clientId: string | null | undefined): Promise<void> {
  if (clientId === undefined || clientId === null) return;
  const row = await findClientRow(db, clientId);
  if (!row) throw invalid(`no client has id "${clientId}"`);
  const method = (row.metadata as { token_endpoint_auth_method?: string }).token_endpoint_auth_method;
  if (method === 'none') throw invalid('the API client must be a confidential client (it authenticates to the decision and introspection endpoints)');
}

function toPublicResource(row: ResourceServerRow): PublicResource {
  return {
    identifier: row.identifier,
    name: row.name,
    scope: row.scope,
    access_token_format: row.access_token_format,
    access_token_ttl: row.access_token_ttl,
    api_client_id: row.api_client_id,
    built_in: row.built_in,
    created_at: new Date(row.created_at).toISOString(),
  };
}

function toPublicPermission(row: PermissionRow): PublicPermission {
  return { name: row.name, description: row.description };
}

export interface CreateResourceInput {
  identifier: string;
  /** Space-separated permission names. */
  scope?: string;
  permissions?: { name: string; description?: string | null }[];
  format?: AccessTokenFormat;
  accessTokenTtl?: number;
  name?: string;
  apiClientId?: string;
}

export async function createResource(services: Pick<Services, 'knex'>, input: CreateResourceInput, meta?: AuditMeta, options: { builtIn?: boolean } = {}): Promise<DetailedResource> {
  const identifier = checkResourceIdentifier(String(input.identifier));
  const permissions = [
    ...splitScope(input.scope ?? '').map((name) => ({ name, description: null })),
    ...(input.permissions ?? []).map((p) => ({ name: checkPermissionName(p.name), description: checkDescription(p.description) })),
  ];
  if (permissions.length === 0) throw invalid('a resource needs at least one permission (scope)');
  const format = input.format ?? 'jwt';
  if (format !== 'jwt' && format !== 'opaque') throw invalid('the access token format must be jwt or opaque');
  checkTtl(input.accessTokenTtl);
  const name = checkName(input.name);

  const created = await services.knex.transaction(async (trx) => {
    await checkApiClient(trx, input.apiClientId);
    const inserted = await insertResourceServer(trx, {
      identifier,
      name,
      accessTokenFormat: format,
      accessTokenTtl: input.accessTokenTtl ?? null,
      apiClientId: input.apiClientId ?? null,
      builtIn: options.builtIn,
    });
    if (!inserted) return false;
    await insertPermissions(trx, inserted.id, permissions);
    await recordAudit(trx, { type: 'resource.created', outcome: 'success', ...auditContext(meta, { identifier, permissions: permissions.map((p) => p.name), format }) });
    return true;
  });
  if (!created) throw new AppError('resource_exists', `a resource with identifier "${identifier}" already exists`, 409);
  return getResource(services, identifier);
}

export async function listResources(services: Pick<Services, 'knex'>): Promise<PublicResource[]> {
  return (await listResourceServerRows(services.knex)).map(toPublicResource);
}

export async function getResource(services: Pick<Services, 'knex'>, identifier: string): Promise<DetailedResource> {
  const row = await findResourceServerRow(services.knex, identifier);
  if (!row) throw notFound(identifier);
  return { ...toPublicResource(row), permissions: (await listPermissionRows(services.knex, row.id)).map(toPublicPermission) };
}

export interface UpdateResourceInput {
  name?: string | null;
  format?: AccessTokenFormat;
  accessTokenTtl?: number | null;
  apiClientId?: string | null;
}

export async function updateResource(services: Pick<Services, 'knex'>, identifier: string, input: UpdateResourceInput, meta?: AuditMeta): Promise<DetailedResource> {
  checkTtl(input.accessTokenTtl);
  if (input.format !== undefined && input.format !== 'jwt' && input.format !== 'opaque') throw invalid('the access token format must be jwt or opaque');
  await services.knex.transaction(async (trx) => {
    const row = await findResourceServerRow(trx, identifier);
    if (!row) throw notFound(identifier);
    await checkApiClient(trx, input.apiClientId);
    await updateResourceServer(trx, row.id, {
      ...(input.name !== undefined ? { name: checkName(input.name) } : {}),
      ...(input.format !== undefined ? { accessTokenFormat: input.format } : {}),
      ...(input.accessTokenTtl !== undefined ? { accessTokenTtl: input.accessTokenTtl } : {}),
      ...(input.apiClientId !== undefined ? { apiClientId: input.apiClientId } : {}),
    });
    await recordAudit(trx, { type: 'resource.updated', outcome: 'success', ...auditContext(meta, { identifier, changed: Object.keys(input) }) });
  });
  return getResource(services, identifier);
}

export async function deleteResource(services: Pick<Services, 'knex'>, identifier: string, meta?: AuditMeta): Promise<void> {
  await services.knex.transaction(async (trx) => {
    const row = await findResourceServerRow(trx, identifier);
    if (!row) throw notFound(identifier);
    if (row.built_in) throw new AppError('built_in', 'the management API is part of Gatehouse and cannot be removed', 409);
    await deleteResourceServer(trx, row.id);
    await recordAudit(trx, { type: 'resource.deleted', outcome: 'success', ...auditContext(meta, { identifier }) });
  });
}

export async function addPermissions(
  services: Pick<Services, 'knex'>,
  identifier: string,
  permissions: { name: string; description?: string | null }[],
  meta?: AuditMeta,
): Promise<DetailedResource> {
  const checked = permissions.map((p) => ({ name: checkPermissionName(String(p.name)), description: checkDescription(p.description) }));
  await services.knex.transaction(async (trx) => {
    const row = await findResourceServerRow(trx, identifier);
    if (!row) throw notFound(identifier);
    for (const permission of checked) {
      const existing = await findPermissionRow(trx, row.id, permission.name);
      if (existing) {
        if (permission.description !== null) await updatePermissionDescription(trx, existing.id, permission.description);
      } else {
        await insertPermissions(trx, row.id, [permission]);
      }
    }
    await recordAudit(trx, { type: 'permission.added', outcome: 'success', ...auditContext(meta, { identifier, permissions: checked.map((p) => p.name) }) });
  });
  return getResource(services, identifier);
}

export async function removePermission(services: Pick<Services, 'knex'>, identifier: string, name: string, meta?: AuditMeta): Promise<void> {
  await services.knex.transaction(async (trx) => {
    const row = await findResourceServerRow(trx, identifier);
    if (!row) throw notFound(identifier);
    if (row.built_in) throw new AppError('built_in', 'the management API permissions are part of Gatehouse and cannot be removed', 409);
    const permission = await findPermissionRow(trx, row.id, name);
    if (!permission) throw new AppError('permission_not_found', `the resource "${identifier}" has no permission "${name}"`, 404);
    await deletePermissionRow(trx, permission.id);
    await recordAudit(trx, { type: 'permission.removed', outcome: 'success', ...auditContext(meta, { identifier, permission: name }) });
  });
}

export async function findResource(knex: Db, identifier: string): Promise<ResourceServerInfo | undefined> {
  const row = await findResourceServerRow(knex, identifier);
  if (!row) return undefined;
  return {
    id: row.id,
    identifier: row.identifier,
    scope: row.scope,
    accessTokenFormat: row.access_token_format,
    accessTokenTtl: row.access_token_ttl ?? undefined,
    apiClientId: row.api_client_id ?? undefined,
  };
}
