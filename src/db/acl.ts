import type { Knex } from 'knex';

export interface AclEntryRow {
  id: string;
  resource_id: string;
  /** "user:<account id>", "client:<client id>" or "role:<role name>". */
  subject: string;
  /** An object id of the API, or "*" for every object. */
  object: string;
  action: string;
  created_at: Date;
}

type Db = Knex | Knex.Transaction;

export interface AclEntryFields {
  subject: string;
  object: string;
  action: string;
}

/** Returns undefined when the same grant exists already. */
export async function insertAclEntry(db: Db, resourceId: string, entry: AclEntryFields): Promise<AclEntryRow | undefined> {
  const [row] = await db('acl_entries')
    .insert({ resource_id: resourceId, subject: entry.subject, object: entry.object, action: entry.action })
    .onConflict(['resource_id', 'subject', 'object', 'action'])
    .ignore()
    .returning<AclEntryRow[]>('*');
  return row;
}

export async function findAclEntryRow(db: Db, resourceId: string, entry: AclEntryFields): Promise<AclEntryRow | undefined> {
  return db('acl_entries').where({ resource_id: resourceId, ...entry }).first<AclEntryRow | undefined>();
}

/** True when a row was deleted. */
export async function deleteAclEntryRow(db: Db, id: string): Promise<boolean> {
  const deleted = await db('acl_entries').where({ id }).delete().returning<{ id: string }[]>('id');
  return deleted.length > 0;
}

export async function listAclEntryRows(db: Db, resourceId: string, filter: Partial<AclEntryFields> = {}): Promise<AclEntryRow[]> {
  const query = db('acl_entries').where({ resource_id: resourceId });
  if (filter.subject !== undefined) query.andWhere({ subject: filter.subject });
  if (filter.object !== undefined) query.andWhere({ object: filter.object });
  if (filter.action !== undefined) query.andWhere({ action: filter.action });
  return query.orderBy([{ column: 'created_at' }, { column: 'subject' }, { column: 'object' }, { column: 'action' }]);
}

/** The distinct actions the API's ACL names at all. */
export async function listAclActions(db: Db, resourceId: string): Promise<string[]> {
  return db('acl_entries').where({ resource_id: resourceId }).distinct('action').pluck('action');
}

/**
 * The grants that let one of `subjects` do `action` on `object` (or, with `object` undefined, on
 * every object only). The (resource_id, object) index keeps this one short lookup however many
 * objects the API has.
 */
export async function findMatchingAclEntries(db: Db, resourceId: string, subjects: string[], object: string | undefined, action: string): Promise<AclEntryRow[]> {
  if (subjects.length === 0) return [];
  return db('acl_entries')
    .where({ resource_id: resourceId, action })
    .whereIn('object', object === undefined ? ['*'] : [object, '*'])
    .whereIn('subject', subjects)
    .orderBy([{ column: 'created_at' }, { column: 'id' }]);
}

/** Removes every entry naming `subject` (a removed user, client or role). */
export async function deleteAclEntriesOfSubject(db: Db, subject: string): Promise<void> {
  await db('acl_entries').where({ subject }).delete();
}

/** A renamed role keeps its grants. */
export async function renameAclSubject(db: Db, from: string, to: string): Promise<void> {
  await db('acl_entries').where({ subject: from }).update({ subject: to });
}
