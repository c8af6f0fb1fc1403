// "Connected apps": the applications a person has allowed to use their account, one entry per
// app however many grants (one per browser session, plus offline access) it holds.
import type { Knex } from 'knex';
import { deleteExpiredGrantRecords, listGrantRecords, touchGrantRecord, type AccountGrantListing } from '../db/account-grants.ts';

/**
 * How precisely "last used" is kept, in seconds. Every authorization and every token request
 * uses a grant; writing each use would put a database write on every refresh for a date shown
 * to the day.
 */
export const LAST_USED_PRECISION_SECONDS = 60;

export interface ConnectedApp {
  clientId: string;
  name: string;
  /** OpenID scopes granted across the app's grants. */
  scopes: string[];
  /** Scopes granted per API (resource indicator). */
  resourceScopes: Record<string, string[]>;
  /** When access was first given. */
  grantedAt: Date;
  lastUsedAt: Date | null;
}

function merge(app: ConnectedApp, row: AccountGrantListing): void {
  app.scopes = [...new Set([...app.scopes, ...row.scopes])];
  for (const [resource, scopes] of Object.entries(row.resource_scopes)) {
    app.resourceScopes[resource] = [...new Set([...(app.resourceScopes[resource] ?? []), ...scopes])];
  }
  const created = new Date(row.created_at);
  if (created < app.grantedAt) app.grantedAt = created;
  const used = row.last_used_at ? new Date(row.last_used_at) : null;
  if (used && (!app.lastUsedAt || used > app.lastUsedAt)) app.lastUsedAt = used;
}

/**
 * The registered apps holding a live grant of the account, most recently granted first. The
 * built-in account client is not a registered app, so the account page never lists itself.
 */
export async function connectedApps(knex: Knex, accountId: string): Promise<ConnectedApp[]> {
  // Expired grants are gone from the provider already; their rows only describe the past.
  await deleteExpiredGrantRecords(knex, accountId);
  const apps = new Map<string, ConnectedApp>();
  for (const row of await listGrantRecords(knex, accountId)) {
    if (!row.client_registered) continue;
    let app = apps.get(row.client_id);
    if (!app) {
      app = { clientId: row.client_id, name: row.client_name ?? row.client_id, scopes: [], resourceScopes: {}, grantedAt: new Date(row.created_at), lastUsedAt: null };
      apps.set(row.client_id, app);
    }
    merge(app, row);
  }
  return [...apps.values()].sort((a, b) => b.grantedAt.getTime() - a.grantedAt.getTime());
}

/** Keeps "last used" of grants, writing each grant at most once per LAST_USED_PRECISION_SECONDS. */
export interface GrantUsage {
  /** The grant's row was just written with "last used" set (it was created or saved again). */
  recorded(grantId: string): void;
  /** The grant was used. */
  used(grantId: string): Promise<void>;
  /** The grant is gone. */
  forget(grantId: string): void;
}

/**
 * "Last used" with one write per grant per minute at most. Each instance remembers when it last
 * wrote (or found recent) each grant and skips the database within the minute; the UPDATE itself
 * is conditional, so instances that each remember nothing yet do not all write. The memory is
 * bounded: a grant it had to let go of costs one conditional UPDATE more, never a wrong date.
 * With several instances "last used" can trail the true last use by up to two minutes (the row
 * was written by one instance just before another began skipping); with one, by one minute.
 */
export function grantUsage(knex: Knex, opts: { maxEntries?: number; now?: () => number } = {}): GrantUsage {
  const maxEntries = opts.maxEntries ?? 10_000;
  const now = opts.now ?? Date.now;
  const windowMs = LAST_USED_PRECISION_SECONDS * 1000;
  // Grant id -> when this instance last wrote it or found it recent. Entries are re-inserted on
  // every update, so the map's order is the order of those times, oldest first.
  const seen = new Map<string, number>();

  const remember = (grantId: string, at: number): void => {
    seen.delete(grantId);
    if (seen.size >= maxEntries) {
      for (const [id, time] of seen) {
        // The oldest are first: stop at the first entry still inside the window, unless the map
        // is full of such entries, in which case the oldest goes anyway.
        if (at - time < windowMs && seen.size < maxEntries) break;
        seen.delete(id);
      }
    }
    seen.set(grantId, at);
  };

  return {
    recorded(grantId) {
      remember(grantId, now());
    },
    async used(grantId) {
      const at = now();
      const last = seen.get(grantId);
      if (last !== undefined && at - last < windowMs) return;
      remember(grantId, at);
      try {
        await touchGrantRecord(knex, grantId, LAST_USED_PRECISION_SECONDS);
      } catch (err) {
        // Try again at the next use rather than a minute later.
        if (seen.get(grantId) === at) seen.delete(grantId);
        throw err;
      }
    },
    forget(grantId) {
      seen.delete(grantId);
    },
  };
}
