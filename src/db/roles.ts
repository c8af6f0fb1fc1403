import type { Knex } from 'knex';

export interface RoleRow {
  id: string;
  name: string;
  description: string | null;
  built_in: boolean;
  created_at: Date;
  updated_at: Date;
}

export interface RolePermissionRow {
  resource: string;
  permission: string;
}

export interface DefaultRuleRow {
  id: string;
  role_id: string;
  subject_type: 'user' | 'client';
  email_domain: string | null;
  created_at: Date;
}

export type SubjectType = 'user' | 'client';

type Db = Knex | Knex.Transaction;

/** Returns undefined when the name is taken. */
export async function insertRole(db: Db, role: { name: string; description: string | null; builtIn?: boolean }): Promise<RoleRow | undefined> {
  const [row] = await db('roles')
    .insert({ name: role.name, description: role.description, built_in: role.builtIn ?? false })
    .onConflict('name')
    .ignore()
    .returning<RoleRow[]>('*');
  return row;
}

export async function findRoleRow(db: Db, name: string): Promise<RoleRow | undefined> {
  return db('roles').where({ name }).first<RoleRow | undefined>();
}

export async function listRoleRows(db: Db): Promise<RoleRow[]> {
  return db('roles').select('*').orderBy('name');
}

export async function updateRoleRow(db: Db, id: string, fields: { name?: string; description?: string | null }): Promise<boolean> {
  const patch: Record<string, unknown> = { updated_at: db.fn.now() };
  if (fields.name !== undefined) patch.name = fields.name;
  if (fields.description !== undefined) patch.description = fields.description;
  const updated = await db('roles').where({ id }).update(patch).returning<{ id: string }[]>('id');
  return updated.length > 0;
}

export async function deleteRoleRow(db: Db, id: string): Promise<boolean> {
  const deleted = await db('roles').where({ id }).delete().returning<{ id: string }[]>('id');
  return deleted.length > 0;
}

export async function listRolePermissionRows(db: Db, roleId: string): Promise<RolePermissionRow[]> {
  return db('role_permissions as rp')
    .join('permissions as p', 'p.id', 'rp.permission_id')
    .join('resource_servers as r', 'r.id', 'p.resource_id')
    .where('rp.role_id', roleId)
    .select('r.identifier as resource', 'p.name as permission')
    .orderBy([{ column: 'r.identifier' }, { column: 'p.name' }]);
}

export async function insertRolePermissions(db: Db, roleId: string, permissionIds: string[]): Promise<void> {
  if (permissionIds.length === 0) return;
  await db('role_permissions')
    .insert(permissionIds.map((permissionId) => ({ role_id: roleId, permission_id: permissionId })))
    .onConflict(['role_id', 'permission_id'])
    .ignore();
}

export async function deleteRolePermission(db: Db, roleId: string, permissionId: string): Promise<boolean> {
  const deleted = await db('role_permissions').where({ role_id: roleId, permission_id: permissionId }).delete().returning<{ role_id: string }[]>('role_id');
  return deleted.length > 0;
}

export async function insertAssignment(db: Db, roleId: string, subjectType: SubjectType, subjectId: string): Promise<boolean> {
  const inserted = await db('role_assignments')
    .insert({ role_id: roleId, subject_type: subjectType, subject_id: subjectId })
    .onConflict(['role_id', 'subject_type', 'subject_id'])
    .ignore()
    .returning<{ role_id: string }[]>('role_id');
  return inserted.length > 0;
}

export async function deleteAssignment(db: Db, roleId: string, subjectType: SubjectType, subjectId: string): Promise<boolean> {
  const deleted = await db('role_assignments').where({ role_id: roleId, subject_type: subjectType, subject_id: subjectId }).delete().returning<{ role_id: string }[]>('role_id');
  return deleted.length > 0;
}

export async function deleteSubjectAssignments(db: Db, subjectType: SubjectType, subjectId: string): Promise<void> {
  await db('role_assignments').where({ subject_type: subjectType, subject_id: subjectId }).delete();
}

export async function listDirectRoleNames(db: Db, subjectType: SubjectType, subjectId: string): Promise<string[]> {
  const rows = await db('role_assignments as a').join('roles as r', 'r.id', 'a.role_id').where({ 'a.subject_type': subjectType, 'a.subject_id': subjectId }).select('r.name').orderBy('r.name');
  return rows.map((row: { name: string }) => row.name);
}

export async function listAssignmentRows(db: Db, roleId: string): Promise<{ subject_type: SubjectType; subject_id: string; created_at: Date }[]> {
  return db('role_assignments').where({ role_id: roleId }).select('subject_type', 'subject_id', 'created_at').orderBy([{ column: 'subject_type' }, { column: 'subject_id' }]);
}

export async function insertDefaultRule(db: Db, rule: { roleId: string; subjectType: SubjectType; emailDomain: string | null }): Promise<DefaultRuleRow | undefined> {
  const [row] = await db('default_role_rules')
    .insert({ role_id: rule.roleId, subject_type: rule.subjectType, email_domain: rule.emailDomain })
    .onConflict(db.raw("(role_id, subject_type, coalesce(email_domain, ''))"))
    .ignore()
    .returning<DefaultRuleRow[]>('*');
  return row;
}

export async function listDefaultRuleRows(db: Db, roleId: string): Promise<DefaultRuleRow[]> {
  return db('default_role_rules').where({ role_id: roleId }).orderBy('created_at');
}

export async function deleteDefaultRule(db: Db, id: string): Promise<DefaultRuleRow | undefined> {
  const [row] = await db('default_role_rules').where({ id }).delete().returning<DefaultRuleRow[]>('*');
  return row;
}

/**
 * The ids of every role a subject holds: assigned directly, or by a default-role rule (all
 * subjects of its type, or users whose email is in the rule's domain). One query, so a token
 * request pays one round trip for its permissions.
 */
function effectiveRoleIds(db: Db, subjectType: SubjectType, subjectId: string): Knex.QueryBuilder {
  // Users' email domains come from the account row itself so a rule follows email changes.
  const domain = subjectType === 'user'
    ? db.raw("(SELECT lower(split_part(email, '@', 2)) FROM accounts WHERE id::text = ?)", [subjectId])
    : db.raw('NULL::text');
  return db
    .select('role_id')
    .from('role_assignments')
    .where({ subject_type: subjectType, subject_id: subjectId })
    .union((q) => {
      void q
        .select('role_id')
        .from('default_role_rules')
        .where('subject_type', subjectType)
        .andWhere((w) => {
          void w.whereNull('email_domain').orWhere('email_domain', '=', domain);
        });
    });
}

export async function listEffectiveRoleNames(db: Db, subjectType: SubjectType, subjectId: string): Promise<string[]> {
  const rows = await db('roles').whereIn('id', effectiveRoleIds(db, subjectType, subjectId)).select('name').orderBy('name');
  return rows.map((row: { name: string }) => row.name);
}

export async function listEffectivePermissionNames(db: Db, subjectType: SubjectType, subjectId: string, resourceId: string): Promise<string[]> {
  const rows = await db('permissions as p')
    .join('role_permissions as rp', 'rp.permission_id', 'p.id')
    .where('p.resource_id', resourceId)
    .whereIn('rp.role_id', effectiveRoleIds(db, subjectType, subjectId))
    .distinct('p.name')
    .orderBy('p.name');
  return rows.map((row: { name: string }) => row.name);
}
