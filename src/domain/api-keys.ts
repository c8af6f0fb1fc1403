// API keys: long-lived secrets for service-to-service calls and automation, each for one API
// (resource server) with some of its permissions as scopes. The management API is the default,
// so a key can drive the admin API as `Authorization: Bearer ghk_...`; resource servers check
// keys for their own APIs at the introspection endpoint (src/oidc/api-key-introspection.ts).
//
// Only a SHA-256 of a key is stored. The key is 256 random bits, so nobody can guess it from its
// hash and a slow password hash would add nothing but latency; a fast, unsalted hash also lets a
// presented key be found by an index lookup, with no comparison done in our code at all.
import crypto from 'node:crypto';
import {
  findApiKeyRow,
  findApiKeyStateByHash,
  insertApiKey,
  listApiKeyRows,
  lockApiKeyRow,
  markReplaced,
  markRevoked,
  useApiKey,
  type ApiKeyRow,
  type ApiKeyWithResource,
} from '../db/api-keys.ts';
import { findClientRow } from '../db/clients.ts';
import { findAccountRow } from '../db/accounts.ts';
import { AppError } from '../errors.ts';
import type { Services } from '../services.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { ensureManagementResource, managementResourceIdentifier } from './management.ts';
import { findResource, type ResourceServerInfo } from './resources.ts';
import { isUuid } from '../uuid.ts';

/** Every key starts with this, so people and secret scanners recognise one. */
export const API_KEY_PREFIX = 'ghk_';
const KEY_BYTES = 32;
// 32 bytes are 43 base64url characters without padding.
const KEY_PATTERN = /^ghk_[A-Za-z0-9_-]{43}$/;
// The prefix and 8 random characters: enough to tell keys apart in a list. The 48 bits shown
// leave 208 unknown, still far beyond guessing.
const HINT_LENGTH = 12;
const MAX_NAME = 200;
const MAX_EXPIRY_DAYS = 3650;

type ApiKeyServices = Pick<Services, 'knex' | 'config'>;

export type ApiKeyStatus = 'active' | 'expired' | 'revoked';

/** What may be shown about a key: never the key itself nor its hash. */
export interface PublicApiKey {
  id: string;
  name: string;
  /** The first characters of the key. */
  key_hint: string;
  /** Identifier of the API the key is for. */
  resource: string;
  scopes: string[];
  owner_account_id: string | null;
  owner_client_id: string | null;
  status: ApiKeyStatus;
  expires_at: string | null;
  last_used_at: string | null;
  usage_count: number;
  revoked_at: string | null;
  /** Set on a rotated-out key: the id of its successor. */
  replaced_by: string | null;
  created_at: string;
}

/** A new key: the only time its plaintext is available. */
export type CreatedApiKey = PublicApiKey & { key: string };

/** The successor key, and the rotated-out key with the time it stops working as `expires_at`. */
export type RotatedApiKey = CreatedApiKey & { previous: PublicApiKey };

export interface CreateApiKeyInput {
  name: string;
  /** Identifier of the API; default the management API. */
  resource?: string;
  /** Permissions of that API. */
  scopes: string[];
  /** At most one of expiresAt and expiresInDays; neither: the key does not expire. */
  expiresAt?: Date;
  expiresInDays?: number;
  /** At most one owner: a person or a client (service) the key acts for. */
  ownerAccountId?: string;
  ownerClientId?: string;
}

export interface ApiKeyListFilter {
  ownerAccountId?: string;
  ownerClientId?: string;
  /** Identifier of the API. */
  resource?: string;
}

/** What a caller authenticated by a key may do and on whose behalf. */
export interface AuthenticatedApiKey {
  id: string;
  name: string;
  resourceIdentifier: string;
  scopes: string[];
  ownerAccountId: string | undefined;
  ownerClientId: string | undefined;
  expiresAt: Date | undefined;
  createdAt: Date;
}

export type ApiKeyRefusal = 'malformed' | 'unknown' | 'expired' | 'revoked' | 'owner_inactive';

export type ApiKeyAuthentication = { ok: true; key: AuthenticatedApiKey } | { ok: false; reason: ApiKeyRefusal };

function invalid(message: string): AppError {
  return new AppError('invalid_api_key', message, 400);
}

function notFound(): AppError {
  return new AppError('api_key_not_found', 'no API key has this id', 404);
}

function hashKey(key: string): string {
  return crypto.createHash('sha256').update(key, 'utf8').digest('hex');
}

function generateKey(): { key: string; keyHash: string; keyHint: string } {
  const key = `${API_KEY_PREFIX}${crypto.randomBytes(KEY_BYTES).toString('base64url')}`;
  return { key, keyHash: hashKey(key), keyHint: key.slice(0, HINT_LENGTH) };
}

function iso(value: Date | null): string | null {
  return value === null ? null : new Date(value).toISOString();
}

function statusOf(row: ApiKeyRow, now = Date.now()): ApiKeyStatus {
  if (row.revoked_at !== null) return 'revoked';
  if (row.expires_at !== null && new Date(row.expires_at).getTime() <= now) return 'expired';
  return 'active';
}

function toPublicApiKey(row: ApiKeyWithResource): PublicApiKey {
  return {
    id: row.id,
    name: row.name,
    key_hint: row.key_hint,
    resource: row.resource_identifier,
    scopes: row.scopes,
    owner_account_id: row.owner_account_id,
    owner_client_id: row.owner_client_id,
    status: statusOf(row),
    expires_at: iso(row.expires_at),
    last_used_at: iso(row.last_used_at),
    usage_count: Number(row.usage_count),
    revoked_at: iso(row.revoked_at),
    replaced_by: row.replaced_by,
    created_at: iso(row.created_at)!,
  };
}

function checkName(name: string): string {
  const trimmed = String(name ?? '').trim();
  if (trimmed.length === 0 || trimmed.length > MAX_NAME) throw invalid(`an API key needs a name of 1 to ${MAX_NAME} characters`);
  return trimmed;
}

function checkExpiry(input: Pick<CreateApiKeyInput, 'expiresAt' | 'expiresInDays'>): Date | null {
  if (input.expiresAt !== undefined && input.expiresInDays !== undefined) throw invalid('give either an expiry time or a number of days, not both');
  if (input.expiresInDays !== undefined) {
    const days = input.expiresInDays;
    if (!Number.isInteger(days) || days < 1 || days > MAX_EXPIRY_DAYS) throw invalid(`the lifetime must be a whole number of days from 1 to ${MAX_EXPIRY_DAYS}`);
    return new Date(Date.now() + days * 24 * 3600 * 1000);
  }
  if (input.expiresAt !== undefined) {
    const time = input.expiresAt instanceof Date ? input.expiresAt.getTime() : Number.NaN;
    if (Number.isNaN(time)) throw invalid('the expiry is not a valid time');
    if (time <= Date.now()) throw invalid('the expiry must be in the future');
    return new Date(time);
  }
  return null;
}

/** The API the key is for; the management API when none is named (registered on first use). */
async function resolveResource(services: ApiKeyServices, identifier: string | undefined): Promise<ResourceServerInfo> {
  const wanted = identifier ?? managementResourceIdentifier(services.config);
  let resource = await findResource(services.knex, wanted);
  if (!resource && identifier === undefined) {
    await ensureManagementResource(services.knex, services.config);
    resource = await findResource(services.knex, wanted);
  }
  if (!resource) throw invalid(`no API has identifier "${wanted}"`);
  return resource;
}

function checkScopes(scopes: string[], resource: ResourceServerInfo): string[] {
  const requested = [...new Set((Array.isArray(scopes) ? scopes : []).flatMap((s) => String(s).split(' ')).filter(Boolean))];
  if (requested.length === 0) throw new AppError('invalid_scope', 'an API key needs at least one scope', 400);
  const permitted = new Set(resource.scope.split(' ').filter(Boolean));
  const unknown = requested.filter((s) => !permitted.has(s));
  if (unknown.length > 0) {
    throw new AppError('invalid_scope', `${unknown.map((s) => `"${s}"`).join(', ')} ${unknown.length === 1 ? 'is not a permission' : 'are not permissions'} of ${resource.identifier}`, 400);
  }
  return requested;
}

async function checkOwner(services: ApiKeyServices, input: Pick<CreateApiKeyInput, 'ownerAccountId' | 'ownerClientId'>): Promise<{ ownerAccountId: string | null; ownerClientId: string | null }> {
  const { ownerAccountId, ownerClientId } = input;
  if (ownerAccountId !== undefined && ownerClientId !== undefined) throw invalid('an API key is owned by a user or by a client, not both');
  if (ownerAccountId !== undefined) {
    const account = isUuid(ownerAccountId) ? await findAccountRow(services.knex, ownerAccountId) : undefined;
    if (!account || account.status === 'deleted') throw invalid(`no user has id "${ownerAccountId}"`);
    return { ownerAccountId: account.id, ownerClientId: null };
  }
  if (ownerClientId !== undefined) {
    if (!(await findClientRow(services.knex, ownerClientId))) throw invalid(`no client has id "${ownerClientId}"`);
    return { ownerAccountId: null, ownerClientId };
  }
  return { ownerAccountId: null, ownerClientId: null };
}

export async function createApiKey(services: ApiKeyServices, input: CreateApiKeyInput, meta?: AuditMeta): Promise<CreatedApiKey> {
  const name = checkName(input.name);
  const expiresAt = checkExpiry(input);
  const resource = await resolveResource(services, input.resource);
  const scopes = checkScopes(input.scopes, resource);
  const owner = await checkOwner(services, input);
  const { key, keyHash, keyHint } = generateKey();
  const row = await services.knex.transaction(async (trx) => {
    const inserted = await insertApiKey(trx, { name, keyHash, keyHint, ...owner, resourceId: resource.id, scopes, expiresAt });
    await recordAudit(trx, {
      type: 'api_key.created',
      outcome: 'success',
      accountId: owner.ownerAccountId ?? undefined,
      ...auditContext(meta, {
        api_key_id: inserted.id,
        name,
        key_hint: keyHint,
        resource: resource.identifier,
        scopes,
        owner_account_id: owner.ownerAccountId,
        owner_client_id: owner.ownerClientId,
        expires_at: iso(expiresAt),
      }),
    });
    return inserted;
  });
  return { key, ...toPublicApiKey({ ...row, resource_identifier: resource.identifier }) };
}

export async function listApiKeys(services: ApiKeyServices, filter: ApiKeyListFilter = {}): Promise<PublicApiKey[]> {
  let resourceId: string | undefined;
  if (filter.resource !== undefined) {
    const resource = await findResource(services.knex, filter.resource);
    if (!resource) return [];
    resourceId = resource.id;
  }
  if (filter.ownerAccountId !== undefined && !isUuid(filter.ownerAccountId)) return [];
  const rows = await listApiKeyRows(services.knex, { ownerAccountId: filter.ownerAccountId, ownerClientId: filter.ownerClientId, resourceId });
  return rows.map(toPublicApiKey);
}

export async function getApiKey(services: ApiKeyServices, id: string): Promise<PublicApiKey> {
  const row = isUuid(id) ? await findApiKeyRow(services.knex, id) : undefined;
  if (!row) throw notFound();
  return toPublicApiKey(row);
}

/**
 * Issues a successor with the same name, owner, API, scopes and expiry. The old key keeps working
 * for `overlapSeconds` (default API_KEY_ROTATION_OVERLAP) so its users can switch without an
 * outage, then stops; 0 ends it at once.
 */
export async function rotateApiKey(services: ApiKeyServices, id: string, options: { overlapSeconds?: number } = {}, meta?: AuditMeta): Promise<RotatedApiKey> {
  const overlapSeconds = options.overlapSeconds ?? services.config.apiKeyRotationOverlap;
  if (!Number.isInteger(overlapSeconds) || overlapSeconds < 0) throw invalid('the overlap must be a whole number of seconds, 0 or more');
  if (!isUuid(id)) throw notFound();
  const { key, keyHash, keyHint } = generateKey();
  const { successor, previous } = await services.knex.transaction(async (trx) => {
    const old = await lockApiKeyRow(trx, id);
    if (!old) throw notFound();
    if (old.revoked_at !== null) throw new AppError('api_key_revoked', 'a revoked API key cannot be rotated', 409);
    if (old.replaced_by !== null) throw new AppError('api_key_rotated', 'this API key has already been rotated; rotate its successor', 409);
    if (old.expired) throw new AppError('api_key_expired', 'an expired API key cannot be rotated; create a new one', 409);
    const inserted = await insertApiKey(trx, {
      name: old.name,
      keyHash,
      keyHint,
      ownerAccountId: old.owner_account_id,
      ownerClientId: old.owner_client_id,
      resourceId: old.resource_id,
      scopes: old.scopes,
      expiresAt: old.expires_at,
    });
    await markReplaced(trx, old.id, inserted.id, overlapSeconds);
    const updated = await findApiKeyRow(trx, old.id);
    await recordAudit(trx, {
      type: 'api_key.rotated',
      outcome: 'success',
      accountId: old.owner_account_id ?? undefined,
      ...auditContext(meta, {
        api_key_id: old.id,
        replaced_by: inserted.id,
        key_hint: keyHint,
        overlap_seconds: overlapSeconds,
        previous_valid_until: iso(updated!.expires_at),
      }),
    });
    return { successor: { ...inserted, resource_identifier: old.resource_identifier }, previous: updated! };
  });
  return { key, ...toPublicApiKey(successor), previous: toPublicApiKey(previous) };
}

/** Ends the key at once. Revoking a revoked key changes nothing. */
export async function revokeApiKey(services: ApiKeyServices, id: string, meta?: AuditMeta): Promise<PublicApiKey> {
  if (!isUuid(id)) throw notFound();
  return services.knex.transaction(async (trx) => {
    const row = await findApiKeyRow(trx, id);
    if (!row) throw notFound();
    if (await markRevoked(trx, id)) {
      await recordAudit(trx, {
        type: 'api_key.revoked',
        outcome: 'success',
        accountId: row.owner_account_id ?? undefined,
        ...auditContext(meta, { api_key_id: id, name: row.name, key_hint: row.key_hint }),
      });
    }
    return toPublicApiKey((await findApiKeyRow(trx, id))!);
  });
}

/** True when the value has the shape of an API key (it may still be unknown). */
export function looksLikeApiKey(value: string): boolean {
  return value.startsWith(API_KEY_PREFIX);
}

/**
 * Checks a presented key and counts one use of it. The check and the count are one statement, so
 * a key revoked or expired a moment ago is never accepted; only a refusal costs a second read, to
 * say why.
 */
export async function authenticateApiKey(services: Pick<Services, 'knex'>, presented: string): Promise<ApiKeyAuthentication> {
  if (typeof presented !== 'string' || !KEY_PATTERN.test(presented)) return { ok: false, reason: 'malformed' };
  const keyHash = hashKey(presented);
  const row = await useApiKey(services.knex, keyHash);
  if (row) {
    return {
      ok: true,
      key: {
        id: row.id,
        name: row.name,
        resourceIdentifier: row.resource_identifier,
        scopes: row.scopes,
        ownerAccountId: row.owner_account_id ?? undefined,
        ownerClientId: row.owner_client_id ?? undefined,
        expiresAt: row.expires_at === null ? undefined : new Date(row.expires_at),
        createdAt: new Date(row.created_at),
      },
    };
  }
  const state = await findApiKeyStateByHash(services.knex, keyHash);
  if (!state) return { ok: false, reason: 'unknown' };
  if (state.revoked_at !== null) return { ok: false, reason: 'revoked' };
  if (state.expired) return { ok: false, reason: 'expired' };
  if (state.owner_account_id !== null && state.owner_status !== 'active') return { ok: false, reason: 'owner_inactive' };
  // The key became usable between the two statements (its owner was reactivated just now);
  // refusing this one request is the safe answer.
  return { ok: false, reason: 'owner_inactive' };
}
