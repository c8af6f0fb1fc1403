// Relying parties and machine clients. The metadata column holds exactly what oidc-provider
// reads, so the provider's Client adapter can hand it over unchanged; the rules below reject at
// registration what the provider would otherwise refuse at the first authorization request.
import crypto from 'node:crypto';
import { z } from 'zod';
import { deleteClientRow, findClientRow, insertClient, listClientRows, updateClientRow, type ClientRow } from '../db/clients.ts';
import { AppError } from '../errors.ts';
import type { Services } from '../services.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { forgetSubject } from './roles.ts';

export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials'] as const;
export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
export const ID_TOKEN_ALGS = ['RS256', 'ES256'] as const;

export type GrantType = (typeof GRANT_TYPES)[number];
export type AuthMethod = (typeof AUTH_METHODS)[number];
export type IdTokenAlg = (typeof ID_TOKEN_ALGS)[number];

export const CLIENT_ID_PATTERN = /^[A-Za-z0-9._~-]{3,128}$/;
export const MIN_CLIENT_SECRET_LENGTH = 16;

// Type aliases rather than interfaces: oidc-provider's metadata type has an index signature,
// which only type aliases satisfy implicitly.
export type ClientMetadata = {
  client_name: string;
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  grant_types: GrantType[];
  response_types: 'code'[];
  token_endpoint_auth_method: AuthMethod;
  /** Present ("native") only when a redirect URI uses a private-use scheme. */
  application_type?: 'web' | 'native';
  scope?: string;
  jwks_uri?: string;
  id_token_signed_response_alg?: IdTokenAlg;
  /** Every token request must carry a DPoP proof (RFC 9449); tokens are bound to its key. */
  dpop_bound_access_tokens?: boolean;
  /** Where logout tokens are POSTed when a session ends (OpenID Connect Back-Channel Logout). */
  backchannel_logout_uri?: string;
  backchannel_logout_session_required?: boolean;
  /** Seconds a just-rotated refresh token may be presented again to get the same successor. */
  refresh_token_grace_seconds?: number;
  /** The login page offers "Continue as guest" (an anonymous account); see guest-accounts.ts. */
  allow_guest?: boolean;
};

export type ProviderClientMetadata = ClientMetadata & {
  client_id: string;
  client_secret?: string;
  first_party: boolean;
};

export type CreatedClient = ProviderClientMetadata;

export type ListedClient = ClientMetadata & { client_id: string; first_party: boolean; created_at: string };

export interface CreateClientInput {
  name: string;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  grantTypes?: string[];
  scope?: string;
  authMethod?: string;
  clientId?: string;
  clientSecret?: string;
  firstParty?: boolean;
  jwksUri?: string;
  idTokenSignedResponseAlg?: string;
  dpop?: boolean;
  backchannelLogoutUri?: string;
  refreshGraceSeconds?: number;
  allowGuest?: boolean;
}

type ClientServices = Pick<Services, 'knex' | 'secrets'>;

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
// RFC 6749 scope-token: printable ASCII except space, double quote and backslash.
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
// RFC 8252 section 7.1: private-use schemes are reverse domain names, so they contain a dot.
const PRIVATE_USE_SCHEME = /^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+$/;
const MAX_URIS = 50;
// A longer window would let a stolen, already rotated refresh token through for longer; a lost
// response is retried within seconds.
export const MAX_REFRESH_GRACE_SECONDS = 300;

const inputSchema = z.object({
  name: z.string().trim().min(1, 'a client name is required').max(200, 'the client name is longer than 200 characters'),
  redirectUris: z.array(z.string()).max(MAX_URIS, `at most ${MAX_URIS} redirect URIs`).default([]),
  postLogoutRedirectUris: z.array(z.string()).max(MAX_URIS, `at most ${MAX_URIS} post-logout redirect URIs`).default([]),
  grantTypes: z
    .array(z.enum(GRANT_TYPES, { error: `grant types must be one of ${GRANT_TYPES.join(', ')}` }))
    .min(1, 'at least one grant type is required')
    .default(['authorization_code', 'refresh_token']),
  scope: z.string().optional(),
  authMethod: z.enum(AUTH_METHODS, { error: `the token endpoint auth method must be one of ${AUTH_METHODS.join(', ')}` }).default('client_secret_basic'),
  clientId: z.string().regex(CLIENT_ID_PATTERN, 'client ids are 3 to 128 characters from A-Z a-z 0-9 . _ ~ -').optional(),
  clientSecret: z
    .string()
    .min(MIN_CLIENT_SECRET_LENGTH, `client secrets must be at least ${MIN_CLIENT_SECRET_LENGTH} characters long`)
    .max(512, 'client secrets must be at most 512 characters long')
    .optional(),
  firstParty: z.boolean().default(false),
  jwksUri: z.string().optional(),
  idTokenSignedResponseAlg: z.enum(ID_TOKEN_ALGS, { error: `the ID token algorithm must be one of ${ID_TOKEN_ALGS.join(', ')}` }).optional(),
  dpop: z.boolean().default(false),
  backchannelLogoutUri: z.string().optional(),
  refreshGraceSeconds: z
    .number({ error: 'the refresh grace window must be a whole number of seconds' })
    .int('the refresh grace window must be a whole number of seconds')
    .min(0, 'the refresh grace window cannot be negative')
    .max(MAX_REFRESH_GRACE_SECONDS, `the refresh grace window is at most ${MAX_REFRESH_GRACE_SECONDS} seconds`)
    .default(0),
  allowGuest: z.boolean({ error: 'allow guest must be true or false' }).default(false),
});

function invalidMetadata(message: string): AppError {
  return new AppError('invalid_client_metadata', message, 400);
}

function invalidRedirect(message: string): AppError {
  return new AppError('invalid_redirect_uri', message, 400);
}

function parseUri(raw: string): URL | undefined {
  try {
    return new URL(raw);
  } catch {
    return undefined;
  }
}

/** Checks one redirect URI; returns the application type it implies. */
function checkRedirectUri(raw: string, label: string): 'web' | 'native' {
  const url = /\s/.test(raw) ? undefined : parseUri(raw);
  if (!url) throw invalidRedirect(`${label} "${raw}" is not an absolute URI`);
  if (raw.includes('#')) throw invalidRedirect(`${label} "${raw}" must not contain a fragment`);
  if (url.username || url.password) throw invalidRedirect(`${label} "${raw}" must not contain credentials`);
  if (url.protocol === 'https:') return 'web';
  if (url.protocol === 'http:') {
    if (LOOPBACK_HOSTS.has(url.hostname)) return 'web';
    throw invalidRedirect(`${label} "${raw}" must use https (http is allowed only for localhost, 127.0.0.1 and [::1])`);
  }
  if (PRIVATE_USE_SCHEME.test(url.protocol.slice(0, -1))) return 'native';
  throw invalidRedirect(`${label} "${raw}" must use https, http on a loopback host, or a private-use scheme such as com.example.app:/callback`);
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}

function normalizeScope(scope: string | undefined): string | undefined {
  if (scope === undefined) return undefined;
  const tokens = unique(scope.split(' ').filter(Boolean));
  if (tokens.length === 0) return undefined;
  const bad = tokens.find((token) => !SCOPE_TOKEN.test(token));
  if (bad !== undefined) throw invalidMetadata(`scope value "${bad}" contains characters that scopes may not use`);
  return tokens.join(' ');
}

function checkJwksUri(raw: string): string {
  const url = parseUri(raw);
  const acceptable = url && (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname)));
  if (!url || !acceptable || raw.includes('#')) throw invalidMetadata(`the JWKS URI "${raw}" must be an absolute https URI without a fragment`);
  return raw;
}

function checkBackchannelLogoutUri(raw: string): string {
  const url = /\s/.test(raw) ? undefined : parseUri(raw);
  const acceptable = url && (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname)));
  if (!url || !acceptable || raw.includes('#') || url.username || url.password) {
    throw invalidMetadata(`the back-channel logout URI "${raw}" must be an absolute https URI (http only on localhost, 127.0.0.1 and [::1]) without a fragment or credentials`);
  }
  return raw;
}

/** Validates the input and builds the stored metadata; throws AppError naming the problem. */
function buildMetadata(input: CreateClientInput): { clientId: string; secret: string | undefined; metadata: ClientMetadata; firstParty: boolean } {
  const parsed = inputSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw invalidMetadata(issue.message);
  }
  const data = parsed.data;
  const grantTypes = unique(data.grantTypes);
  const redirectUris = unique(data.redirectUris);
  const postLogoutRedirectUris = unique(data.postLogoutRedirectUris);
  const usesCode = grantTypes.includes('authorization_code');

  if (grantTypes.includes('refresh_token') && !usesCode) {
    throw invalidMetadata('the refresh_token grant is issued through authorization_code; add the authorization_code grant type');
  }
  if (usesCode && redirectUris.length === 0) throw invalidRedirect('clients using authorization_code need at least one redirect URI');
  if (data.authMethod === 'none' && grantTypes.includes('client_credentials')) {
    throw invalidMetadata('public clients (auth method none) cannot use client_credentials');
  }
  if (data.authMethod === 'private_key_jwt' && data.jwksUri === undefined) {
    throw invalidMetadata('private_key_jwt needs a JWKS URI where the client publishes its public keys');
  }
  const usesSecret = data.authMethod === 'client_secret_basic' || data.authMethod === 'client_secret_post';
  if (data.clientSecret !== undefined && !usesSecret) {
    throw invalidMetadata(`a client secret cannot be used with the ${data.authMethod} auth method`);
  }

  const applicationTypes = [
    ...redirectUris.map((uri) => checkRedirectUri(uri, 'redirect URI')),
    ...postLogoutRedirectUris.map((uri) => checkRedirectUri(uri, 'post-logout redirect URI')),
  ];
  const native = applicationTypes.includes('native');
  if (native) {
    // Native apps cannot claim https on a loopback host; oidc-provider refuses that combination.
    for (const uri of [...redirectUris, ...postLogoutRedirectUris]) {
      const url = new URL(uri);
      if (url.protocol === 'https:' && LOOPBACK_HOSTS.has(url.hostname)) {
        throw invalidRedirect(`native clients (private-use scheme redirects) must not use https on a loopback host: "${uri}"`);
      }
    }
  }

  if (data.refreshGraceSeconds > 0) {
    if (!grantTypes.includes('refresh_token')) throw invalidMetadata('a refresh grace window needs the refresh_token grant type');
    // A replay inside the window is answered before oidc-provider authenticates the client, so we
    // authenticate it ourselves, which is done for secrets and public clients only.
    if (data.authMethod === 'private_key_jwt') throw invalidMetadata('a refresh grace window is available to clients using client_secret_basic, client_secret_post or none');
  }
  if (data.backchannelLogoutUri !== undefined && !usesCode) {
    throw invalidMetadata('back-channel logout is for clients that sign users in (authorization_code)');
  }

  const scope = normalizeScope(data.scope);
  const metadata: ClientMetadata = {
    client_name: data.name,
    redirect_uris: redirectUris,
    post_logout_redirect_uris: postLogoutRedirectUris,
    grant_types: grantTypes,
    response_types: usesCode ? ['code'] : [],
    token_endpoint_auth_method: data.authMethod,
    ...(native ? { application_type: 'native' as const } : {}),
    ...(scope !== undefined ? { scope } : {}),
    ...(data.jwksUri !== undefined ? { jwks_uri: checkJwksUri(data.jwksUri) } : {}),
    ...(data.idTokenSignedResponseAlg !== undefined ? { id_token_signed_response_alg: data.idTokenSignedResponseAlg } : {}),
    ...(data.dpop ? { dpop_bound_access_tokens: true } : {}),
    ...(data.backchannelLogoutUri !== undefined
      ? { backchannel_logout_uri: checkBackchannelLogoutUri(data.backchannelLogoutUri), backchannel_logout_session_required: true }
      : {}),
    ...(data.refreshGraceSeconds > 0 ? { refresh_token_grace_seconds: data.refreshGraceSeconds } : {}),
    ...(data.allowGuest ? { allow_guest: true } : {}),
  };
  return {
    clientId: data.clientId ?? crypto.randomBytes(16).toString('base64url'),
    secret: usesSecret ? (data.clientSecret ?? crypto.randomBytes(32).toString('base64url')) : undefined,
    metadata,
    firstParty: data.firstParty,
  };
}

function secretAssociatedData(clientId: string): string {
  return `client_secret:${clientId}`;
}

export async function createClient(services: ClientServices, input: CreateClientInput, meta?: AuditMeta): Promise<CreatedClient> {
  const { clientId, secret, metadata, firstParty } = buildMetadata(input);
  const secretCiphertext = secret === undefined ? null : services.secrets.encrypt(secret, secretAssociatedData(clientId));
  const created = await services.knex.transaction(async (trx) => {
    const row = await insertClient(trx, { clientId, secretCiphertext, metadata, firstParty });
    if (!row) return false;
    await recordAudit(trx, {
      type: 'client.created',
      outcome: 'success',
      ...auditContext(meta, { grant_types: metadata.grant_types, token_endpoint_auth_method: metadata.token_endpoint_auth_method, first_party: firstParty }),
      clientId,
    });
    return true;
  });
  if (!created) throw new AppError('client_exists', `a client with id "${clientId}" already exists`, 409);
  return { client_id: clientId, ...(secret !== undefined ? { client_secret: secret } : {}), ...metadata, first_party: firstParty };
}

const METADATA_ORDER = [
  'client_name', 'redirect_uris', 'post_logout_redirect_uris', 'grant_types', 'response_types',
  'token_endpoint_auth_method', 'application_type', 'scope', 'jwks_uri', 'id_token_signed_response_alg',
  'dpop_bound_access_tokens', 'backchannel_logout_uri', 'backchannel_logout_session_required', 'refresh_token_grace_seconds',
  'allow_guest',
];

// jsonb keeps keys in its own order; put them back in ours so output reads the same every time.
// Keys we do not know are kept, after ours.
function storedMetadata(row: ClientRow): ClientMetadata {
  const ordered: Record<string, unknown> = {};
  for (const key of METADATA_ORDER) {
    if (row.metadata[key] !== undefined) ordered[key] = row.metadata[key];
  }
  for (const [key, value] of Object.entries(row.metadata)) {
    if (!(key in ordered)) ordered[key] = value;
  }
  return ordered as ClientMetadata;
}

function toListedClient(row: ClientRow): ListedClient {
  return {
    client_id: row.client_id,
    ...storedMetadata(row),
    first_party: row.first_party,
    created_at: new Date(row.created_at).toISOString(),
  };
}

/** Every client without its secret. */
export async function listClients(services: Pick<Services, 'knex'>): Promise<ListedClient[]> {
  return (await listClientRows(services.knex)).map(toListedClient);
}

function clientNotFound(clientId: string): AppError {
  return new AppError('client_not_found', `no client has id "${clientId}"`, 404);
}

/** One client without its secret. */
export async function getClient(services: Pick<Services, 'knex'>, clientId: string): Promise<ListedClient> {
  const row = CLIENT_ID_PATTERN.test(clientId) ? await findClientRow(services.knex, clientId) : undefined;
  if (!row) throw clientNotFound(clientId);
  return toListedClient(row);
}

/** The registration input that produced the stored metadata, so a change can be validated whole. */
function storedInput(row: ClientRow): CreateClientInput {
  const m = storedMetadata(row);
  return {
    clientId: row.client_id,
    name: m.client_name,
    redirectUris: m.redirect_uris,
    postLogoutRedirectUris: m.post_logout_redirect_uris,
    grantTypes: m.grant_types,
    scope: m.scope,
    authMethod: m.token_endpoint_auth_method,
    firstParty: row.first_party,
    jwksUri: m.jwks_uri,
    idTokenSignedResponseAlg: m.id_token_signed_response_alg,
    dpop: m.dpop_bound_access_tokens === true,
    backchannelLogoutUri: m.backchannel_logout_uri,
    refreshGraceSeconds: m.refresh_token_grace_seconds,
    allowGuest: m.allow_guest === true,
  };
}

/** Everything but the id and the secret may change (secrets change through rotation). */
export type ClientChanges = Omit<CreateClientInput, 'clientId' | 'clientSecret'>;

/**
 * Changes a client under the same rules as registration. A client that starts using a secret
 * gets a new one, returned once; one that stops using a secret loses it.
 */
export async function updateClient(
  services: ClientServices,
  clientId: string,
  changes: { [K in keyof ClientChanges]?: ClientChanges[K] | null },
  meta?: AuditMeta,
): Promise<ListedClient & { client_secret?: string }> {
  return services.knex.transaction(async (trx) => {
    const row = CLIENT_ID_PATTERN.test(clientId) ? await findClientRow(trx, clientId) : undefined;
    if (!row) throw clientNotFound(clientId);
    // Absent keys keep their value; null removes an optional setting.
    const defined = Object.fromEntries(Object.entries(changes).filter(([, value]) => value !== undefined).map(([key, value]) => [key, value ?? undefined]));
    const built = buildMetadata({ ...storedInput(row), ...defined, clientId });
    const hadSecret = row.client_secret_ciphertext !== null;
    const newSecret = built.secret !== undefined && !hadSecret ? built.secret : undefined;
    const secretCiphertext = built.secret === undefined ? null : newSecret !== undefined ? services.secrets.encrypt(newSecret, secretAssociatedData(clientId)) : undefined;
    // Keys another feature stored beside ours are kept as they were.
    const foreign = Object.fromEntries(Object.entries(row.metadata).filter(([key]) => !METADATA_ORDER.includes(key)));
    const updated = await updateClientRow(trx, clientId, { metadata: { ...foreign, ...built.metadata }, firstParty: built.firstParty, secretCiphertext });
    if (!updated) throw clientNotFound(clientId);
    await recordAudit(trx, {
      type: 'client.updated',
      outcome: 'success',
      ...auditContext(meta, { changed: Object.keys(defined), ...(newSecret !== undefined ? { secret_issued: true } : {}), ...(built.secret === undefined && hadSecret ? { secret_removed: true } : {}) }),
      clientId,
    });
    return { ...toListedClient(updated), ...(newSecret !== undefined ? { client_secret: newSecret } : {}) };
  });
}

/** Replaces a client's secret with a new random one, returned once; the old one stops working. */
export async function rotateClientSecret(services: ClientServices, clientId: string, meta?: AuditMeta): Promise<{ client_id: string; client_secret: string }> {
  return services.knex.transaction(async (trx) => {
    const row = CLIENT_ID_PATTERN.test(clientId) ? await findClientRow(trx, clientId) : undefined;
    if (!row) throw clientNotFound(clientId);
    if (row.client_secret_ciphertext === null) {
      const method = storedMetadata(row).token_endpoint_auth_method;
      throw new AppError('no_client_secret', `the client authenticates with ${method}, not a secret`, 409);
    }
    const secret = crypto.randomBytes(32).toString('base64url');
    await updateClientRow(trx, clientId, { secretCiphertext: services.secrets.encrypt(secret, secretAssociatedData(clientId)) });
    await recordAudit(trx, { type: 'client.secret_rotated', outcome: 'success', ...auditContext(meta), clientId });
    return { client_id: clientId, client_secret: secret };
  });
}

export async function deleteClient(services: Pick<Services, 'knex'>, clientId: string, meta?: AuditMeta): Promise<void> {
  const deleted = await services.knex.transaction(async (trx) => {
    if (!(await deleteClientRow(trx, clientId))) return false;
    // Role assignments and ACL grants name clients without a foreign key.
    await forgetSubject(trx, { type: 'client', id: clientId });
    await recordAudit(trx, { type: 'client.deleted', outcome: 'success', ...auditContext(meta), clientId });
    return true;
  });
  if (!deleted) throw new AppError('client_not_found', `no client has id "${clientId}"`, 404);
}

/** What oidc-provider needs to know about one client, secret decrypted; undefined when unknown. */
export async function loadProviderClientMetadata(services: ClientServices, clientId: string): Promise<ProviderClientMetadata | undefined> {
  if (typeof clientId !== 'string' || !CLIENT_ID_PATTERN.test(clientId)) return undefined;
  const row = await findClientRow(services.knex, clientId);
  if (!row) return undefined;
  const secret = row.client_secret_ciphertext === null
    ? undefined
    : services.secrets.decryptText(row.client_secret_ciphertext, secretAssociatedData(row.client_id));
  return {
    ...storedMetadata(row),
    client_id: row.client_id,
    ...(secret !== undefined ? { client_secret: secret } : {}),
    first_party: row.first_party,
  };
}
