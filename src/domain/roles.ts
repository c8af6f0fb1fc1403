// Roles bundle permissions of APIs; users and machine clients hold roles directly or through
// default-role rules. A subject's permissions on an API are the union over its roles; access
// tokens for that API carry requested scopes ∩ those permissions (oidc/permissions.ts).
import type { Knex } from 'knex';
import { findClientRow } from '../db/clients.ts';
import { findAccountRow } from '../db/accounts.ts';
import { findPermissionRow, findResourceServerRow } from '../db/resource-servers.ts';
import { deleteAclEntriesOfSubject, renameAclSubject } from '../db/acl.ts';
import {
  deleteAssignment,
  deleteDefaultRule,
  deleteRolePermission,
  deleteRoleRow,
  deleteSubjectAssignments,
  findRoleRow,
  insertAssignment,
  insertDefaultRule,
  insertRole,
  insertRolePermissions,
  listAssignmentRows,
  listDefaultRuleRows,
  listDirectRoleNames,
  listEffectivePermissionNames,
  listEffectiveRoleNames,
  listRolePermissionRows,
  listRoleRows,
  updateRoleRow,
  type DefaultRuleRow,
  type RoleRow,
} from '../db/roles.ts';
import { AppError } from '../errors.ts';
import type { Services } from '../services.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { isUuid } from '../uuid.ts';

export type SubjectType = 'user' | 'client';
export interface Subject {
  type: SubjectType;
  id: string;
}

export interface RolePermission {
  resource: string;
  permission: string;
}

export interface DefaultRoleRule {
  id: string;
  subject_type: SubjectType;
  /** Users whose email is in this domain; null means every subject of the type. */
  email_domain: string | null;
  created_at: string;
}

export interface PublicRole {
  name: string;
  description: string | null;
  built_in: boolean;
  created_at: string;
  updated_at: string;
}

export type DetailedRole = PublicRole & { permissions: RolePermission[]; default_rules: DefaultRoleRule[] };

type Db = Knex | Knex.Transaction;
type KnexServices = Pick<Services, 'knex'>;

const ROLE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

function invalid(message: string): AppError {
  return new AppError('invalid_role', message, 400);
}

function roleNotFound(name: string): AppError {
  return new AppError('role_not_found', `no role is named "${name}"`, 404);
}

function checkRoleName(name: string): string {
  const trimmed = String(name).trim();
  if (!ROLE_NAME.test(trimmed)) throw invalid('role names are 1 to 100 characters from A-Z a-z 0-9 . _ : - starting with a letter or digit');
  return trimmed;
}

function checkDescription(description: string | null | undefined): string | null {
  const trimmed = description?.trim() || null;
  if (trimmed !== null && trimmed.length > 500) throw invalid('a role description is at most 500 characters');
  return trimmed;
}

function toPublicRole(row: RoleRow): PublicRole {
  return {
    name: row.name,
    description: row.description,
    built_in: row.built_in,
    created_at: new Date(row.created_at).toISOString(),
    updated_at: new Date(row.updated_at).toISOString(),
  };
}

function toRule(row: DefaultRuleRow): DefaultRoleRule {
  return { id: row.id, subject_type: row.subject_type, email_domain: row.email_domain, created_at: new Date(row.created_at).toISOString() };
}

async function requireRole(db: Db, name: string): Promise<RoleRow> {
  const row = await findRoleRow(db, String(name));
  if (!row) throw roleNotFound(name);
  return row;
}

async function permissionIds(db: Db, permissions: RolePermission[]): Promise<string[]> {
  const ids: string[] = [];
  for (const { resource, permission } of permissions) {
    const server = await findResourceServerRow(db, String(resource));
    if (!server) throw new AppError('resource_not_found', `no resource has identifier "${resource}"`, 404);
    const row = await findPermissionRow(db, server.id, String(permission));
    if (!row) throw new AppError('permission_not_found', `the resource "${resource}" has no permission "${permission}"`, 404);
    ids.push(row.id);
  }
  return ids;
}

/** Checks the subject exists; user subjects may be named by account id. */
async function checkSubject(db: Db, subject: Subject): Promise<Subject> {
  if (subject.type === 'user') {
    const account = isUuid(subject.id) ? await findAccountRow(db, subject.id) : undefined;
    if (!account || account.status === 'deleted') throw new AppError('user_not_found', `no user has id "${subject.id}"`, 404);
    return subject;
  }
  if (subject.type === 'client') {
    if (!(await findClientRow(db, subject.id))) throw new AppError('client_not_found', `no client has id "${subject.id}"`, 404);
    return subject;
  }
  throw invalid('a subject is a user or a client');
}

export async function getRole(services: KnexServices, name: string): Promise<DetailedRole> {
  const row = await requireRole(services.knex, name);
  return {
    ...toPublicRole(row),
    permissions: await listRolePermissionRows(services.knex, row.id),
    default_rules: (await listDefaultRuleRows(services.knex, row.id)).map(toRule),
  };
}

export async function createRole(
  services: KnexServices,
  input: { name: string; description?: string | null; permissions?: RolePermission[] },
  meta?: AuditMeta,
): Promise<DetailedRole> {
  const name = checkRoleName(input.name);
  const description = checkDescription(input.description);
  const created = await services.knex.transaction(async (trx) => {
    const row = await insertRole(trx, { name, description });
    if (!row) return false;
    await insertRolePermissions(trx, row.id, await permissionIds(trx, input.permissions ?? []));
    await recordAudit(trx, { type: 'role.created', outcome: 'success', ...auditContext(meta, { role: name, permissions: input.permissions ?? [] }) });
    return true;
  });
  if (!created) throw new AppError('role_exists', `a role named "${name}" already exists`, 409);
  return getRole(services, name);
}

export async function listRoles(services: KnexServices): Promise<PublicRole[]> {
  return (await listRoleRows(services.knex)).map(toPublicRole);
}

export async function updateRole(services: KnexServices, name: string, input: { name?: string; description?: string | null }, meta?: AuditMeta): Promise<DetailedRole> {
  const newName = input.name !== undefined ? checkRoleName(input.name) : undefined;
  const description = input.description !== undefined ? checkDescription(input.description) : undefined;
  await services.knex.transaction(async (trx) => {
    const row = await requireRole(trx, name);
    if (row.built_in && newName !== undefined && newName !== row.name) throw new AppError('built_in', `the built-in role "${row.name}" cannot be renamed`, 409);
    if (newName !== undefined && newName !== row.name && (await findRoleRow(trx, newName))) throw new AppError('role_exists', `a role named "${newName}" already exists`, 409);
    await updateRoleRow(trx, row.id, { name: newName, description });
    // ACL entries name roles by name: a renamed role keeps its per-object grants.
    if (newName !== undefined && newName !== row.name) await renameAclSubject(trx, `role:${row.name}`, `role:${newName}`);
    await recordAudit(trx, { type: 'role.updated', outcome: 'success', ...auditContext(meta, { role: row.name, ...(newName && newName !== row.name ? { renamed_to: newName } : {}) }) });
  });
  return getRole(services, newName ?? name);
}

export async function deleteRole(services: KnexServices, name: string, meta?: AuditMeta): Promise<void> {
  await services.knex.transaction(async (trx) => {
    const row = await requireRole(trx, name);
    if (row.built_in) throw new AppError('built_in', `the built-in role "${row.name}" cannot be deleted`, 409);
    await deleteRoleRow(trx, row.id);
    await deleteAclEntriesOfSubject(trx, `role:${row.name}`);
    await recordAudit(trx, { type: 'role.deleted', outcome: 'success', ...auditContext(meta, { role: row.name }) });
  });
}

export async function addRolePermissions(services: KnexServices, name: string, permissions: RolePermission[], meta?: AuditMeta): Promise<DetailedRole> {
  await services.knex.transaction(async (trx) => {
    const row = await requireRole(trx, name);
    await insertRolePermissions(trx, row.id, await permissionIds(trx, permissions));
    await recordAudit(trx, { type: 'role.permissions_added', outcome: 'success', ...auditContext(meta, { role: row.name, permissions }) });
  });
  return getRole(services, name);
}

export async function removeRolePermission(services: KnexServices, name: string, permission: RolePermission, meta?: AuditMeta): Promise<DetailedRole> {
  await services.knex.transaction(async (trx) => {
    const row = await requireRole(trx, name);
    const [id] = await permissionIds(trx, [permission]);
    if (!(await deleteRolePermission(trx, row.id, id!))) {
      throw new AppError('permission_not_found', `the role "${row.name}" does not hold ${permission.permission} on ${permission.resource}`, 404);
    }
    await recordAudit(trx, { type: 'role.permission_removed', outcome: 'success', ...auditContext(meta, { role: row.name, permission }) });
  });
  return getRole(services, name);
}

function subjectAudit(subject: Subject): Pick<Parameters<typeof recordAudit>[1], 'accountId' | 'clientId'> {
  return subject.type === 'user' ? { accountId: subject.id } : { clientId: subject.id };
}

export async function assignRole(services: KnexServices, name: string, subject: Subject, meta?: AuditMeta): Promise<{ assigned: boolean }> {
  return services.knex.transaction(async (trx) => {
    const row = await requireRole(trx, name);
    await checkSubject(trx, subject);
    const assigned = await insertAssignment(trx, row.id, subject.type, subject.id);
    const context = auditContext(meta, { role: row.name, subject_type: subject.type, subject_id: subject.id });
    await recordAudit(trx, { type: 'role.assigned', outcome: 'success', ...context, ...subjectAudit(subject), ...(meta?.clientId && subject.type === 'user' ? { clientId: meta.clientId } : {}) });
    return { assigned };
  });
}

export async function unassignRole(services: KnexServices, name: string, subject: Subject, meta?: AuditMeta): Promise<void> {
  await services.knex.transaction(async (trx) => {
    const row = await requireRole(trx, name);
    if (!(await deleteAssignment(trx, row.id, subject.type, subject.id))) {
      throw new AppError('assignment_not_found', `the ${subject.type} "${subject.id}" does not hold the role "${row.name}" directly`, 404);
    }
    const context = auditContext(meta, { role: row.name, subject_type: subject.type, subject_id: subject.id });
    await recordAudit(trx, { type: 'role.unassigned', outcome: 'success', ...context, ...subjectAudit(subject), ...(meta?.clientId && subject.type === 'user' ? { clientId: meta.clientId } : {}) });
  });
}

/** Roles held directly and all roles in effect (direct and by default-role rules). */
export async function listSubjectRoles(services: KnexServices, subject: Subject): Promise<{ direct: string[]; effective: string[] }> {
  await checkSubject(services.knex, subject);
  return {
    direct: await listDirectRoleNames(services.knex, subject.type, subject.id),
    effective: await listEffectiveRoleNames(services.knex, subject.type, subject.id),
  };
}

export async function listRoleMembers(services: KnexServices, name: string): Promise<(Subject & { assigned_at: string })[]> {
  const row = await requireRole(services.knex, name);
  return (await listAssignmentRows(services.knex, row.id)).map((a) => ({ type: a.subject_type, id: a.subject_id, assigned_at: new Date(a.created_at).toISOString() }));
}

export async function addDefaultRoleRule(
  services: KnexServices,
  name: string,
  input: { subjectType: SubjectType; emailDomain?: string | null },
  meta?: AuditMeta,
): Promise<DefaultRoleRule> {
  if (input.subjectType !== 'user' && input.subjectType !== 'client') throw invalid('a default-role rule applies to users or clients');
  const domain = input.emailDomain ? String(input.emailDomain).trim().toLowerCase() : null;
  if (domain !== null) {
    if (input.subjectType !== 'user') throw invalid('an email domain rule applies to users only');
    if (!DOMAIN.test(domain)) throw invalid(`"${input.emailDomain}" is not a domain name`);
  }
  return services.knex.transaction(async (trx) => {
    const row = await requireRole(trx, name);
    const rule = await insertDefaultRule(trx, { roleId: row.id, subjectType: input.subjectType, emailDomain: domain });
    if (!rule) throw new AppError('rule_exists', 'the role already has this default-role rule', 409);
    await recordAudit(trx, { type: 'role.default_rule_added', outcome: 'success', ...auditContext(meta, { role: row.name, subject_type: input.subjectType, email_domain: domain }) });
    return toRule(rule);
  });
}

export async function removeDefaultRoleRule(services: KnexServices, ruleId: string, meta?: AuditMeta): Promise<void> {
  if (!isUuid(String(ruleId))) throw new AppError('rule_not_found', `no default-role rule has id "${ruleId}"`, 404);
  await services.knex.transaction(async (trx) => {
    const rule = await deleteDefaultRule(trx, ruleId);
    if (!rule) throw new AppError('rule_not_found', `no default-role rule has id "${ruleId}"`, 404);
    await recordAudit(trx, { type: 'role.default_rule_removed', outcome: 'success', ...auditContext(meta, { rule_id: ruleId, subject_type: rule.subject_type, email_domain: rule.email_domain }) });
  });
}

/** Every role the subject holds (direct and by rule). */
export async function subjectRoleNames(db: Db, subject: Subject): Promise<string[]> {
  return listEffectiveRoleNames(db, subject.type, subject.id);
}

/** The permissions on one API (by resource id) the subject's roles grant. */
export async function subjectPermissionNames(db: Db, subject: Subject, resourceId: string): Promise<string[]> {
  return listEffectivePermissionNames(db, subject.type, subject.id, resourceId);
}

/** Drops a removed account's or client's role assignments and ACL grants (no foreign keys). */
export async function forgetSubject(db: Db, subject: Subject): Promise<void> {
  await deleteSubjectAssignments(db, subject.type, subject.id);
  await deleteAclEntriesOfSubject(db, `${subject.type}:${subject.id}`);
}

/** Creates a built-in role holding the given permissions of one API, adding any it lacks. */
export async function ensureBuiltInRole(trx: Knex.Transaction, name: string, description: string, resourceId: string, permissions: string[]): Promise<void> {
  await insertRole(trx, { name, description, builtIn: true });
  const role = await findRoleRow(trx, name);
  if (!role) throw new Error(`the built-in role ${name} could not be created`);
  const ids = await trx('permissions').where({ resource_id: resourceId }).whereIn('name', permissions).pluck('id');
  await insertRolePermissions(trx, role.id, ids as string[]);
}
