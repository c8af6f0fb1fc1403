// Per-object grants of an API: "this user, client or role may do this action on this object".
// They are for APIs whose objects (documents, projects) are shared one by one; an API's
// permissions and policies cover the rest. "*" as the object grants the action on every object.
import type { Knex } from 'knex';
import { deleteAclEntryRow, findAclEntryRow, insertAclEntry, listAclEntryRows, type AclEntryRow } from '../db/acl.ts';
import { findAccountRow } from '../db/accounts.ts';
import { findClientRow } from '../db/clients.ts';
import { findRoleRow } from '../db/roles.ts';
import { AppError } from '../errors.ts';
import type { Services } from '../services.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { ACTION_NAME, requireResource } from './policies.ts';
import { forgetCompiledPolicies } from './policy-engine.ts';

export interface AclGrant {
  /** "user:<account id>", "client:<client id>" or "role:<role name>". */
  subject: string;
  /** An object id of the API, or "*" for every object. */
  object: string;
  action: string;
}

export type PublicAclEntry = AclGrant & { created_at: string };

type AclServices = Pick<Services, 'knex'>;

// Object ids are the API's own; anything printable fits, bounded so one grant stays small.
const OBJECT_ID = /^[^\p{Cc}]{1,200}$/u;

function invalid(message: string): AppError {
  return new AppError('invalid_acl_entry', message, 400);
}

function parseSubject(subject: unknown): { kind: 'user' | 'client' | 'role'; id: string } {
  const match = typeof subject === 'string' ? /^(user|client|role):(.+)$/.exec(subject) : null;
  if (!match) throw invalid('the subject is "user:<account id>", "client:<client id>" or "role:<role name>"');
  return { kind: match[1] as 'user' | 'client' | 'role', id: match[2]! };
}

async function checkSubjectExists(db: Knex | Knex.Transaction, subject: string): Promise<void> {
  const { kind, id } = parseSubject(subject);
  const exists = kind === 'user'
    ? Boolean(await findAccountRow(db, id))
    : kind === 'client'
      ? Boolean(await findClientRow(db, id))
      : Boolean(await findRoleRow(db, id));
  if (!exists) throw new AppError('subject_not_found', `no ${kind === 'user' ? 'account' : kind} "${id}" exists`, 404);
}

function checkGrant(grant: AclGrant): AclGrant {
  parseSubject(grant.subject);
  if (typeof grant.object !== 'string' || !OBJECT_ID.test(grant.object)) throw invalid('the object is an id of 1 to 200 printable characters, or "*" for every object');
  if (typeof grant.action !== 'string' || !ACTION_NAME.test(grant.action) || grant.action === '*') {
    throw invalid('the action is 1 to 200 characters without spaces, double quotes or backslashes (and is not "*")');
  }
  return { subject: grant.subject, object: grant.object, action: grant.action };
}

function toPublicEntry(row: AclEntryRow): PublicAclEntry {
  return { subject: row.subject, object: row.object, action: row.action, created_at: new Date(row.created_at).toISOString() };
}

/** Grants the action; granting what is granted already changes nothing and says so. */
export async function grantAcl(services: AclServices, identifier: string, input: AclGrant, meta?: AuditMeta): Promise<PublicAclEntry & { created: boolean }> {
  const grant = checkGrant(input);
  const { entry, resourceId } = await services.knex.transaction(async (trx) => {
    const resource = await requireResource(trx, identifier);
    await checkSubjectExists(trx, grant.subject);
    const inserted = await insertAclEntry(trx, resource.id, grant);
    if (!inserted) {
      const existing = await findAclEntryRow(trx, resource.id, grant);
      if (!existing) throw new AppError('acl_conflict', 'the grant was removed while it was being added; try again', 409);
      return { entry: { ...toPublicEntry(existing), created: false }, resourceId: resource.id };
    }
    await recordAudit(trx, { type: 'acl.granted', outcome: 'success', ...auditContext(meta, { resource: identifier, ...grant }) });
    return { entry: { ...toPublicEntry(inserted), created: true }, resourceId: resource.id };
  });
  forgetCompiledPolicies(services.knex, resourceId);
  return entry;
}

export async function revokeAcl(services: AclServices, identifier: string, input: AclGrant, meta?: AuditMeta): Promise<void> {
  const grant = checkGrant(input);
  const resourceId = await services.knex.transaction(async (trx) => {
    const resource = await requireResource(trx, identifier);
    const existing = await findAclEntryRow(trx, resource.id, grant);
    if (!existing || !(await deleteAclEntryRow(trx, existing.id))) {
      throw new AppError('acl_entry_not_found', `"${grant.subject}" holds no grant of "${grant.action}" on "${grant.object}" at "${identifier}"`, 404);
    }
    await recordAudit(trx, { type: 'acl.revoked', outcome: 'success', ...auditContext(meta, { resource: identifier, ...grant }) });
    return resource.id;
  });
  forgetCompiledPolicies(services.knex, resourceId);
}

export async function listAcl(services: AclServices, identifier: string, filter: Partial<AclGrant> = {}): Promise<PublicAclEntry[]> {
  const resource = await requireResource(services.knex, identifier);
  if (filter.subject !== undefined) parseSubject(filter.subject);
  return (await listAclEntryRows(services.knex, resource.id, filter)).map(toPublicEntry);
}
