// The management API (/admin/api/v1) is itself a resource server: its permissions are the admin
// scopes, and the built-in administrator role holds all of them. Tokens for it are obtained like
// any other access token (client_credentials for admin clients, authorization code for people
// with the role), so the same scope ∩ permissions rule governs who may administer.
import type { Knex } from 'knex';
import type { Config } from '../config.ts';
import { findResourceServerRow, insertPermissions, insertResourceServer } from '../db/resource-servers.ts';
import { ensureBuiltInRole } from './roles.ts';

export const ADMIN_SCOPES: Record<string, string> = {
  'admin:users:read': 'Read users, their sessions, factors and roles',
  'admin:users:write': 'Create, change, suspend and remove users; revoke their sessions and factors',
  'admin:roles:read': 'Read roles, their permissions and default-role rules',
  'admin:roles:write': 'Create, change and remove roles; assign them',
  'admin:resources:read': 'Read APIs, their permissions, policies and ACLs',
  'admin:resources:write': 'Create, change and remove APIs, permissions, policies and ACLs',
  'admin:clients:read': 'Read clients',
  'admin:clients:write': 'Create, change and remove clients; rotate their secrets',
  'admin:keys:read': 'Read signing keys',
  'admin:keys:write': 'Rotate signing keys',
  'admin:audit:read': 'Read and export audit events',
  'admin:api_keys:read': 'Read API keys',
  'admin:api_keys:write': 'Create, rotate and revoke API keys',
};

export const ADMIN_ROLE = 'gatehouse-admin';

/** The audience of management API tokens. */
export function managementResourceIdentifier(config: Pick<Config, 'issuer'>): string {
  return `${config.issuer}/admin/api/v1`;
}

/**
 * Registers the management API with every admin permission and the administrator role holding
 * them. Idempotent and safe when several instances start at once.
 */
export async function ensureManagementResource(knex: Knex, config: Pick<Config, 'issuer'>): Promise<{ resourceId: string; identifier: string }> {
  const identifier = managementResourceIdentifier(config);
  return knex.transaction(async (trx) => {
    await insertResourceServer(trx, { identifier, name: 'Gatehouse management API', accessTokenFormat: 'jwt', accessTokenTtl: 600, apiClientId: null, builtIn: true });
    const row = await findResourceServerRow(trx, identifier);
    if (!row) throw new Error('the management API could not be registered');
    await insertPermissions(trx, row.id, Object.entries(ADMIN_SCOPES).map(([name, description]) => ({ name, description })));
    await ensureBuiltInRole(trx, ADMIN_ROLE, 'Administers Gatehouse through the management API', row.id, Object.keys(ADMIN_SCOPES));
    return { resourceId: row.id, identifier };
  });
}
