// ABAC policies of an API: "allow (or deny) these actions when this condition holds". The
// condition is a casbin expression over the subject, the object and the request context; it is
// compiled and tried when the policy is written, so a mistake is refused here instead of failing
// decisions later. docs/authorization-policies.md describes the expression language.
import type { Knex } from 'knex';
import { deletePolicyRow, findPolicyRow, insertPolicy, listPolicyRows, updatePolicyRow, type PolicyEffect, type PolicyRow } from '../db/policies.ts';
import { findResourceServerRow, type ResourceServerRow } from '../db/resource-servers.ts';
import { AppError } from '../errors.ts';
import type { Services } from '../services.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { checkCondition, forgetCompiledPolicies } from './policy-engine.ts';

export type { PolicyEffect };

export interface PublicPolicy {
  name: string;
  description: string | null;
  effect: PolicyEffect;
  actions: string[];
  condition: string;
  enabled: boolean;
  created_at: string;
  updated_at: string;
}

export interface CreatePolicyInput {
  name: string;
  description?: string | null;
  effect: PolicyEffect;
  /** Action names (permission names or other verbs of the API), or ["*"] for every action. */
  actions: string[];
  condition: string;
  enabled?: boolean;
}

export type UpdatePolicyInput = Partial<Omit<CreatePolicyInput, 'name'>>;

type Db = Knex | Knex.Transaction;
type PolicyServices = Pick<Services, 'knex'>;

// Names appear in decision reasons ("policy:business-hours") and inside casbin matchers, so they
// stay to characters that need no quoting anywhere.
const POLICY_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;
// RFC 6749 scope-token, as permission names: printable ASCII except space, double quote and backslash.
export const ACTION_NAME = /^[\x21\x23-\x5b\x5d-\x7e]{1,200}$/;
const MAX_ACTIONS = 100;
const MAX_DESCRIPTION = 500;

function invalid(message: string): AppError {
  return new AppError('invalid_policy', message, 400);
}

function policyNotFound(identifier: string, name: string): AppError {
  return new AppError('policy_not_found', `the resource "${identifier}" has no policy "${name}"`, 404);
}

export async function requireResource(db: Db, identifier: string): Promise<ResourceServerRow> {
  const row = typeof identifier === 'string' ? await findResourceServerRow(db, identifier) : undefined;
  if (!row) throw new AppError('resource_not_found', `no resource has identifier "${identifier}"`, 404);
  return row;
}

function checkName(name: unknown): string {
  if (typeof name !== 'string' || !POLICY_NAME.test(name)) {
    throw invalid('a policy name is 1 to 100 characters from A-Z a-z 0-9 . _ : - and starts with a letter or digit');
  }
  return name;
}

function checkEffect(effect: unknown): PolicyEffect {
  if (effect !== 'allow' && effect !== 'deny') throw invalid('the effect of a policy is "allow" or "deny"');
  return effect;
}

function checkActions(actions: unknown): string[] {
  if (!Array.isArray(actions) || actions.length === 0) throw invalid('a policy needs at least one action ("*" for every action)');
  if (actions.length > MAX_ACTIONS) throw invalid(`a policy names at most ${MAX_ACTIONS} actions`);
  const unique = [...new Set(actions.map(String))];
  const bad = unique.find((action) => !ACTION_NAME.test(action));
  if (bad !== undefined) throw invalid(`action "${bad}" must be 1 to 200 characters without spaces, double quotes or backslashes`);
  if (unique.includes('*') && unique.length > 1) throw invalid('"*" already names every action; give it alone');
  return unique;
}

function checkDescription(description: unknown): string | null {
  if (description === undefined || description === null) return null;
  const trimmed = String(description).trim();
  if (trimmed.length > MAX_DESCRIPTION) throw invalid(`a description is at most ${MAX_DESCRIPTION} characters`);
  return trimmed || null;
}

function toPublicPolicy(row: PolicyRow): PublicPolicy {
  return {
    name: row.name,
    description: row.description,
    effect: row.effect,
    actions: row.actions,
    condition: row.condition,
    enabled: row.enabled,
    created_at: new Date(row.created_at).toISOString(),
    updated_at: new Date(row.updated_at).toISOString(),
  };
}

export async function createPolicy(services: PolicyServices, identifier: string, input: CreatePolicyInput, meta?: AuditMeta): Promise<PublicPolicy> {
  const name = checkName(input.name);
  const fields = {
    description: checkDescription(input.description),
    effect: checkEffect(input.effect),
    actions: checkActions(input.actions),
    condition: await checkCondition(input.condition),
    enabled: input.enabled ?? true,
  };
  const { row, resourceId } = await services.knex.transaction(async (trx) => {
    const resource = await requireResource(trx, identifier);
    const inserted = await insertPolicy(trx, resource.id, { name, ...fields });
    if (!inserted) throw new AppError('policy_exists', `the resource "${identifier}" already has a policy "${name}"`, 409);
    await recordAudit(trx, {
      type: 'policy.created',
      outcome: 'success',
      ...auditContext(meta, { resource: identifier, policy: name, effect: fields.effect, actions: fields.actions, condition: fields.condition, enabled: fields.enabled }),
    });
    return { row: inserted, resourceId: resource.id };
  });
  forgetCompiledPolicies(services.knex, resourceId);
  return toPublicPolicy(row);
}

export async function listPolicies(services: PolicyServices, identifier: string): Promise<PublicPolicy[]> {
  const resource = await requireResource(services.knex, identifier);
  return (await listPolicyRows(services.knex, resource.id)).map(toPublicPolicy);
}

export async function getPolicy(services: PolicyServices, identifier: string, name: string): Promise<PublicPolicy> {
  const resource = await requireResource(services.knex, identifier);
  const row = await findPolicyRow(services.knex, resource.id, name);
  if (!row) throw policyNotFound(identifier, name);
  return toPublicPolicy(row);
}

export async function updatePolicy(services: PolicyServices, identifier: string, name: string, input: UpdatePolicyInput, meta?: AuditMeta): Promise<PublicPolicy> {
  const fields = {
    ...(input.description !== undefined ? { description: checkDescription(input.description) } : {}),
    ...(input.effect !== undefined ? { effect: checkEffect(input.effect) } : {}),
    ...(input.actions !== undefined ? { actions: checkActions(input.actions) } : {}),
    ...(input.condition !== undefined ? { condition: await checkCondition(input.condition) } : {}),
    ...(input.enabled !== undefined ? { enabled: Boolean(input.enabled) } : {}),
  };
  const { row, resourceId } = await services.knex.transaction(async (trx) => {
    const resource = await requireResource(trx, identifier);
    const existing = await findPolicyRow(trx, resource.id, name);
    if (!existing) throw policyNotFound(identifier, name);
    const updated = await updatePolicyRow(trx, existing.id, fields);
    if (!updated) throw policyNotFound(identifier, name);
    await recordAudit(trx, { type: 'policy.updated', outcome: 'success', ...auditContext(meta, { resource: identifier, policy: name, ...fields }) });
    return { row: updated, resourceId: resource.id };
  });
  forgetCompiledPolicies(services.knex, resourceId);
  return toPublicPolicy(row);
}

export async function deletePolicy(services: PolicyServices, identifier: string, name: string, meta?: AuditMeta): Promise<void> {
  const resourceId = await services.knex.transaction(async (trx) => {
    const resource = await requireResource(trx, identifier);
    const existing = await findPolicyRow(trx, resource.id, name);
    if (!existing || !(await deletePolicyRow(trx, existing.id))) throw policyNotFound(identifier, name);
    await recordAudit(trx, { type: 'policy.deleted', outcome: 'success', ...auditContext(meta, { resource: identifier, policy: name }) });
    return resource.id;
  });
  forgetCompiledPolicies(services.knex, resourceId);
}
