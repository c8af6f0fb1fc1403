import type { Knex } from 'knex';

export type PolicyEffect = 'allow' | 'deny';

export interface PolicyRow {
  id: string;
  resource_id: string;
  name: string;
  description: string | null;
  effect: PolicyEffect;
  /** Action names, or ["*"] for every action. */
  actions: string[];
  condition: string;
  enabled: boolean;
  created_at: Date;
  updated_at: Date;
}

export interface PolicyFields {
  description: string | null;
  effect: PolicyEffect;
  actions: string[];
  condition: string;
  enabled: boolean;
}

type Db = Knex | Knex.Transaction;

/** Returns undefined when the resource already has a policy of this name. */
export async function insertPolicy(db: Db, resourceId: string, policy: PolicyFields & { name: string }): Promise<PolicyRow | undefined> {
  const [row] = await db('authz_policies')
    .insert({
      resource_id: resourceId,
      name: policy.name,
      description: policy.description,
      effect: policy.effect,
      // jsonb: knex would send a JS array as a Postgres array literal.
      actions: JSON.stringify(policy.actions),
      condition: policy.condition,
      enabled: policy.enabled,
    })
    .onConflict(['resource_id', 'name'])
    .ignore()
    .returning<PolicyRow[]>('*');
  return row;
}

export async function findPolicyRow(db: Db, resourceId: string, name: string): Promise<PolicyRow | undefined> {
  return db('authz_policies').where({ resource_id: resourceId, name }).first<PolicyRow | undefined>();
}

export async function listPolicyRows(db: Db, resourceId: string): Promise<PolicyRow[]> {
  return db('authz_policies').where({ resource_id: resourceId }).orderBy([{ column: 'created_at' }, { column: 'name' }]);
}

export async function listEnabledPolicyRows(db: Db, resourceId: string): Promise<PolicyRow[]> {
  return db('authz_policies').where({ resource_id: resourceId, enabled: true }).orderBy([{ column: 'created_at' }, { column: 'name' }]);
}

export async function updatePolicyRow(db: Db, id: string, fields: Partial<PolicyFields>): Promise<PolicyRow | undefined> {
  const patch: Record<string, unknown> = { updated_at: db.fn.now() };
  if (fields.description !== undefined) patch.description = fields.description;
  if (fields.effect !== undefined) patch.effect = fields.effect;
  if (fields.actions !== undefined) patch.actions = JSON.stringify(fields.actions);
  if (fields.condition !== undefined) patch.condition = fields.condition;
  if (fields.enabled !== undefined) patch.enabled = fields.enabled;
  const [row] = await db('authz_policies').where({ id }).update(patch).returning<PolicyRow[]>('*');
  return row;
}

/** True when a row was deleted. */
export async function deletePolicyRow(db: Db, id: string): Promise<boolean> {
  const deleted = await db('authz_policies').where({ id }).delete().returning<{ id: string }[]>('id');
  return deleted.length > 0;
}
