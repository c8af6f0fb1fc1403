import type { Knex } from 'knex';

export interface ResourceServerRow {
  id: string;
  identifier: string;
  name: string | null;
  scope: string;
  access_token_format: 'jwt' | 'opaque';
  access_token_ttl: number | null;
  created_at: Date;
}

type Db = Knex | Knex.Transaction;

/** Returns undefined when the identifier is taken. */
export async function insertResourceServer(
  db: Db,
  resource: { identifier: string; name: string | null; scope: string; accessTokenFormat: 'jwt' | 'opaque'; accessTokenTtl: number | null },
): Promise<ResourceServerRow | undefined> {
  const [row] = await db('resource_servers')
    .insert({
      identifier: resource.identifier,
      name: resource.name,
      scope: resource.scope,
      access_token_format: resource.accessTokenFormat,
      access_token_ttl: resource.accessTokenTtl,
    })
    .onConflict('identifier')
    .ignore()
    .returning<ResourceServerRow[]>('*');
  return row;
}

export async function findResourceServerRow(db: Db, identifier: string): Promise<ResourceServerRow | undefined> {
  return db('resource_servers').where({ identifier }).first<ResourceServerRow | undefined>();
}

export async function listResourceServerRows(db: Db): Promise<ResourceServerRow[]> {
  return db('resource_servers').select('*').orderBy([{ column: 'created_at' }, { column: 'identifier' }]);
}
