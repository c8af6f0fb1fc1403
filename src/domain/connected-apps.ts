// "Connected apps": the applications a person has allowed to use their account, one entry per
// app however many grants (one per browser session, plus offline access) it holds.
import type { Knex } from 'knex';
import { deleteExpiredGrantRecords, listGrantRecords, type AccountGrantListing } from '../db/account-grants.ts';

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
