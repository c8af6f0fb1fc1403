import type { Knex } from 'knex';

export interface ResourceServerRow {
  id: string;
  identifier: string;
  name: string | null;
  access_token_format: 'jwt' | 'opaque';
  access_token_ttl: number | null;
  api_client_id: string | null;
  built_in: boolean;
  created_at: Date;
  updated_at: Date;
  /** Permission names, space-separated in creation order: the scopes the API accepts. */
  scope: string;
}

export interface PermissionRow {
  id: string;
  resource_id: string;
  name: string;
  description: string | null;
  created_at: Date;
}

type Db = Knex | Knex.Transaction;

export interface ResourceServerFields {
  name: string | null;
  accessTokenFormat: 'jwt' | 'opaque';
  accessTokenTtl: number | null;
  apiClientId: string | null;
}

function withScope(db: Db): Knex.QueryBuilder {
  return db('resource_servers as r').select(
    'r.*',
    db.raw("coalesce((SELECT string_agg(p.name, ' ' ORDER BY p.created_at, p.name) FROM permissions p WHERE p.resource_id = r.id), '') AS scope"),
  );
}

/** Returns undefined when the identifier is taken. */
export async function insertResourceServer(db: Db, resource: ResourceServerFields & { identifier: string; builtIn?: boolean }): Promise<{ id: string } | undefined> {
  const [row] = await db('resource_servers')
    .insert({
      identifier: resource.identifier,
      name: resource.name,
      access_token_format: resource.accessTokenFormat,
      access_token_ttl: resource.accessTokenTtl,
      api_client_id: resource.apiClientId,
      built_in: resource.builtIn ?? false,
    })
    .onConflict('identifier')
    .ignore()
    .returning<{ id: string }[]>('id');
  return row;
}

export async function updateResourceServer(db: Db, id: string, fields: Partial<ResourceServerFields>): Promise<void> {
  const patch: Record<string, unknown> = { updated_at: db.fn.now() };
  if (fields.name !== undefined) patch.name = fields.name;
  if (fields.accessTokenFormat !== undefined) patch.access_token_format = fields.accessTokenFormat;
  if (fields.accessTokenTtl !== undefined) patch.access_token_ttl = fields.accessTokenTtl;
  if (fields.apiClientId !== undefined) patch.api_client_id = fields.apiClientId;
  await db('resource_servers').where({ id }).update(patch);
}

/** True when a row was deleted. */
export async function deleteResourceServer(db: Db, id: string): Promise<boolean> {
  const deleted = await db('resource_servers').where({ id }).delete().returning<{ id: string }[]>('id');
  return deleted.length > 0;
}

export async function findResourceServerRow(db: Db, identifier: string): Promise<ResourceServerRow | undefined> {
  return withScope(db).where('r.identifier', identifier).first<ResourceServerRow | undefined>();
}

export async function findResourceServerRowById(db: Db, id: string): Promise<ResourceServerRow | undefined> {
  return withScope(db).where('r.id', id).first<ResourceServerRow | undefined>();
}

export async function listResourceServerRows(db: Db): Promise<ResourceServerRow[]> {
  return withScope(db).orderBy([{ column: 'r.created_at' }, { column: 'r.identifier' }]);
}

/** Inserts the permissions that do not exist yet; returns the rows inserted. */
export async function insertPermissions(db: Db, resourceId: string, permissions: { name: string; description: string | null }[]): Promise<PermissionRow[]> {
  if (permissions.length === 0) return [];
  return db('permissions')
    .insert(permissions.map((p) => ({ resource_id: resourceId, name: p.name, description: p.description })))
    .onConflict(['resource_id', 'name'])
    .ignore()
    .returning<PermissionRow[]>('*');
}

export async function listPermissionRows(db: Db, resourceId: string): Promise<PermissionRow[]> {
  return db('permissions').where({ resource_id: resourceId }).orderBy([{ column: 'created_at' }, { column: 'name' }]);
}

export async function findPermissionRow(db: Db, resourceId: string, name: string): Promise<PermissionRow | undefined> {
  return db('permissions').where({ resource_id: resourceId, name }).first<PermissionRow | undefined>();
}

export async function updatePermissionDescription(db: Db, id: string, description: string | null): Promise<void> {
  await db('permissions').where({ id }).update({ description });
}

/** True when a row was deleted. */
export async function deletePermissionRow(db: Db, id: string): Promise<boolean> {
  const deleted = await db('permissions').where({ id }).delete().returning<{ id: string }[]>('id');
  return deleted.length > 0;
}
