// Resource servers (APIs) that access tokens are issued for, named by an absolute URI as
// resource indicators require (RFC 8707). Each one lists the scopes clients may ask for at it.
import type { Knex } from 'knex';
import { findResourceServerRow, insertResourceServer, listResourceServerRows, type ResourceServerRow } from '../db/resource-servers.ts';
import { AppError } from '../errors.ts';
import type { Services } from '../services.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';

export type AccessTokenFormat = 'jwt' | 'opaque';

export interface PublicResource {
  identifier: string;
  name: string | null;
  scope: string;
  access_token_format: AccessTokenFormat;
  access_token_ttl: number | null;
  created_at: string;
}

/** What the provider needs when a token is requested for this resource. */
export interface ResourceServerInfo {
  identifier: string;
  scope: string;
  accessTokenFormat: AccessTokenFormat;
  /** Seconds; undefined means the configured default access-token lifetime. */
  accessTokenTtl: number | undefined;
}

// RFC 6749 scope-token: printable ASCII except space, double quote and backslash.
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
const MAX_ACCESS_TOKEN_TTL = 24 * 3600;

function invalid(message: string): AppError {
  return new AppError('invalid_resource', message, 400);
}

function checkIdentifier(identifier: string): string {
  let url: URL | undefined;
  try {
    url = /\s/.test(identifier) ? undefined : new URL(identifier);
  } catch {
    url = undefined;
  }
  if (!url) throw invalid(`the resource identifier "${identifier}" is not an absolute URI`);
  if (identifier.includes('#')) throw invalid(`the resource identifier "${identifier}" must not contain a fragment`);
  return identifier;
}

function normalizeScope(scope: string): string {
  const tokens = [...new Set(String(scope).split(' ').filter(Boolean))];
  if (tokens.length === 0) throw invalid('a resource needs at least one scope');
  const bad = tokens.find((token) => !SCOPE_TOKEN.test(token));
  if (bad !== undefined) throw invalid(`scope value "${bad}" contains characters that scopes may not use`);
  return tokens.join(' ');
}

function toPublicResource(row: ResourceServerRow): PublicResource {
  return {
    identifier: row.identifier,
    name: row.name,
    scope: row.scope,
    access_token_format: row.access_token_format,
    access_token_ttl: row.access_token_ttl,
    created_at: new Date(row.created_at).toISOString(),
  };
}

export async function createResource(
  services: Pick<Services, 'knex'>,
  input: { identifier: string; scope: string; format?: AccessTokenFormat; accessTokenTtl?: number; name?: string },
  meta?: AuditMeta,
): Promise<PublicResource> {
  const identifier = checkIdentifier(String(input.identifier));
  const scope = normalizeScope(input.scope);
  const format = input.format ?? 'jwt';
  if (format !== 'jwt' && format !== 'opaque') throw invalid('the access token format must be jwt or opaque');
  const ttl = input.accessTokenTtl;
  if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_ACCESS_TOKEN_TTL)) {
    throw invalid(`the access token lifetime must be a whole number of seconds from 1 to ${MAX_ACCESS_TOKEN_TTL}`);
  }
  const name = input.name?.trim() || null;
  if (name !== null && name.length > 200) throw invalid('the resource name is longer than 200 characters');

  const row = await services.knex.transaction(async (trx) => {
    const inserted = await insertResourceServer(trx, { identifier, name, scope, accessTokenFormat: format, accessTokenTtl: ttl ?? null });
    if (!inserted) return undefined;
    await recordAudit(trx, { type: 'resource.created', outcome: 'success', ...auditContext(meta, { identifier, scope, format }) });
    return inserted;
  });
  if (!row) throw new AppError('resource_exists', `a resource with identifier "${identifier}" already exists`, 409);
  return toPublicResource(row);
}

export async function listResources(services: Pick<Services, 'knex'>): Promise<PublicResource[]> {
  return (await listResourceServerRows(services.knex)).map(toPublicResource);
}

export async function findResource(knex: Knex | Knex.Transaction, identifier: string): Promise<ResourceServerInfo | undefined> {
  const row = await findResourceServerRow(knex, identifier);
  if (!row) return undefined;
  return {
    identifier: row.identifier,
    scope: row.scope,
    accessTokenFormat: row.access_token_format,
    accessTokenTtl: row.access_token_ttl ?? undefined,
  };
}
