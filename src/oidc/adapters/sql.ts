// oidc-provider storage on the `oidc_payloads` table (PostgreSQL or PGlite through Knex).
// One row per (model, id). grant_id, uid and user_code are copied out of the payload so that
// revocation and the secondary lookups are index scans; consumption lives in consumed_at so it
// can be set atomically without rewriting the JSON. Every time comparison uses the database
// clock, never the application's, so several app nodes agree on what has expired.
import type { Knex } from 'knex';
import type { Adapter, AdapterPayload } from 'oidc-provider';

const TABLE = 'oidc_payloads';

interface PayloadRow {
  payload: AdapterPayload;
  /** Whole epoch seconds of consumed_at, or null when not consumed. */
  consumed: number | null;
}

function optionalString(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

function payloadOf(row: PayloadRow): AdapterPayload {
  return row.consumed === null ? row.payload : { ...row.payload, consumed: row.consumed };
}

/** Rows that have not expired yet, by the database's clock, projected to what find* returns (and `columns`). */
function livePayloads(knex: Knex, ...columns: string[]): Knex.QueryBuilder {
  return knex(TABLE)
    // extract() yields numeric, which node-postgres hands back as a string; float8 arrives as a number.
    .select(...columns, 'payload', knex.raw('floor(extract(epoch from consumed_at))::float8 as consumed'))
    // Expired rows linger until sweepExpiredPayloads runs; they must already read as absent.
    .where((q) => q.whereNull('expires_at').orWhere('expires_at', '>', knex.fn.now()));
}

async function firstPayload(query: Knex.QueryBuilder): Promise<AdapterPayload | undefined> {
  const row = (await query.first()) as PayloadRow | undefined;
  return row ? payloadOf(row) : undefined;
}

const keyOf = (model: string, id: string): string => `${model}\n${id}`;

interface PendingFind {
  model: string;
  id: string;
  resolve(payload: AdapterPayload | undefined): void;
  reject(err: unknown): void;
}

/**
 * Finds asked for in one turn of the event loop, read with one query. oidc-provider looks a
 * token up under several models at once: introspection and revocation ask for an access token, a
 * client_credentials token and a refresh token with the same value, together. Each was a query of
 * its own; on the embedded database every query runs on the event loop, and on PostgreSQL each is
 * a round trip. A find asked for alone is the same single-row query as before, one microtask later.
 */
class FindBatch {
  readonly #knex: Knex;
  #pending: PendingFind[] = [];

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  find(model: string, id: string): Promise<AdapterPayload | undefined> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ model, id, resolve, reject });
      if (this.#pending.length === 1) queueMicrotask(() => void this.#flush());
    });
  }

  async #flush(): Promise<void> {
    const batch = this.#pending;
    this.#pending = [];
    const knex = this.#knex;
    try {
      if (batch.length === 1) {
        const [only] = batch as [PendingFind];
        only.resolve(await firstPayload(livePayloads(knex).andWhere({ model: only.model, id: only.id })));
        return;
      }
      const keys = [...new Map(batch.map((f) => [keyOf(f.model, f.id), [f.model, f.id] as [string, string]])).values()];
      const rows = (await livePayloads(knex, 'model', 'id').whereIn(['model', 'id'], keys)) as (PayloadRow & { model: string; id: string })[];
      const found = new Map(rows.map((row) => [keyOf(row.model, row.id), row]));
      const handedOut = new Set<string>();
      for (const f of batch) {
        const key = keyOf(f.model, f.id);
        const row = found.get(key);
        if (!row) {
          f.resolve(undefined);
          continue;
        }
        // The same record asked for twice in one turn: each caller gets its own copy to change.
        f.resolve(handedOut.has(key) ? structuredClone(payloadOf(row)) : payloadOf(row));
        handedOut.add(key);
      }
    } catch (err) {
      for (const f of batch) f.reject(err);
    }
  }
}

const findBatches = new WeakMap<Knex, FindBatch>();

function findBatchOf(knex: Knex): FindBatch {
  let batch = findBatches.get(knex);
  if (!batch) {
    batch = new FindBatch(knex);
    findBatches.set(knex, batch);
  }
  return batch;
}

export class SqlAdapter implements Adapter {
  readonly model: string;
  readonly #knex: Knex;
  readonly #finds: FindBatch;

  constructor(model: string, knex: Knex) {
    this.model = model;
    this.#knex = knex;
    this.#finds = findBatchOf(knex);
  }

  /** Rows of this model that have not expired yet, projected to what find* returns. */
  #live(): Knex.QueryBuilder {
    return livePayloads(this.#knex).andWhere('model', this.model);
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    const knex = this.#knex;
    // consumed_at is the single source of truth for consumption, so it is not duplicated in the JSON.
    const { consumed, ...rest } = payload;
    let consumedAt: Knex.Raw | null = null;
    if (typeof consumed === 'number') consumedAt = knex.raw('to_timestamp(?)', [consumed]);
    else if (consumed) consumedAt = knex.fn.now();
    await knex(TABLE)
      .insert({
        model: this.model,
        id,
        payload: JSON.stringify(rest),
        grant_id: optionalString(payload.grantId),
        user_code: optionalString(payload.userCode),
        uid: optionalString(payload.uid),
        consumed_at: consumedAt,
        expires_at: expiresIn ? knex.raw('now() + make_interval(secs => ?)', [expiresIn]) : null,
      })
      .onConflict(['model', 'id'])
      .merge({
        payload: knex.raw('excluded.payload'),
        grant_id: knex.raw('excluded.grant_id'),
        user_code: knex.raw('excluded.user_code'),
        uid: knex.raw('excluded.uid'),
        expires_at: knex.raw('excluded.expires_at'),
        // Consumption is a one-way latch: re-saving a stale, unconsumed copy of a code or
        // refresh token must not make it usable again.
        consumed_at: knex.raw(`coalesce(${TABLE}.consumed_at, excluded.consumed_at)`),
      });
  }

  find(id: string): Promise<AdapterPayload | undefined> {
    return this.#finds.find(this.model, id);
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return firstPayload(this.#live().andWhere('uid', uid));
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return firstPayload(this.#live().andWhere('user_code', userCode));
  }

  async consume(id: string): Promise<void> {
    await this.consumeOnce(id);
  }

  /**
   * Marks the row consumed; true only for the one call that actually did so. The conditional
   * UPDATE is the whole race guard: concurrent callers serialize on the row lock and all but the
   * first match no row.
   */
  async consumeOnce(id: string): Promise<boolean> {
    const updated = await this.#knex(TABLE)
      .update({ consumed_at: this.#knex.fn.now() })
      .where({ model: this.model, id })
      .whereNull('consumed_at');
    return updated > 0;
  }

  async destroy(id: string): Promise<void> {
    await this.#knex(TABLE).where({ model: this.model, id }).delete();
  }

  /** Deletes every model's rows for the grant, whichever model's adapter is asked. */
  async revokeByGrantId(grantId: string): Promise<void> {
    await this.#knex(TABLE).where('grant_id', grantId).delete();
  }
}

/** The `adapter` option for oidc-provider; a plain function because the provider calls it without `new`. */
export function sqlAdapterFactory(knex: Knex): (name: string) => SqlAdapter {
  return (name: string) => new SqlAdapter(name, knex);
}

/** Deletes expired rows (reads already ignore them; this only reclaims space). Returns how many. */
export async function sweepExpiredPayloads(knex: Knex): Promise<number> {
  // Counted in SQL because knex-pglite does not report a builder delete's row count as a number.
  const result = await knex.raw<{ rows: { deleted: number }[] }>(
    `with gone as (delete from ${TABLE} where expires_at < now() returning 1) select count(*)::int as deleted from gone`,
  );
  return result.rows[0]?.deleted ?? 0;
}
