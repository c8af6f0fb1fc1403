// Who is calling the admin API and what they may do. Two kinds of credentials are accepted as
// `Authorization: Bearer ...`:
//   - a JWT access token (RFC 9068) this issuer signed for the management API: obtained with
//     client_credentials by an admin client, or by a person holding an admin role. It is verified
//     here against our own published keys, without a call to the provider;
//   - an API key (`ghk_...`) issued for the management API.
// Either way the caller's admin scopes decide what it may do. Failures follow RFC 6750: 401 with
// `WWW-Authenticate: Bearer error="invalid_token"` for a credential we do not accept, 403
// `insufficient_scope` naming the scope an operation needs.
import type Koa from 'koa';
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JWK, type JWTPayload } from 'jose';
import type { Services } from '../services.ts';
import type { AuditActor, AuditMeta } from '../domain/audit.ts';
import { authenticateApiKey, looksLikeApiKey, type ApiKeyRefusal } from '../domain/api-keys.ts';
import { getClient } from '../domain/clients.ts';
import { ADMIN_SCOPES, managementResourceIdentifier } from '../domain/management.ts';
import { findAccountById } from '../domain/users.ts';
import { publishedPublicKeys } from '../oidc/keys.ts';
import { TtlCache } from '../ttl-cache.ts';
import { ProblemError } from './problem.ts';

export type AdminScope = keyof typeof ADMIN_SCOPES & string;

/** The authenticated caller, kept in ctx.state.admin for the request. */
export interface AdminPrincipal {
  actor: AuditActor;
  scopes: ReadonlySet<string>;
  /** What every write made for this caller records in the audit log. */
  auditMeta: AuditMeta;
}

const REALM = 'gatehouse-admin';
// Both algorithms Gatehouse signs with (see oidc/keys.ts); nothing else is accepted, so a token
// cannot pick a weaker or symmetric algorithm.
const ALGORITHMS = ['ES256', 'RS256'];
// Published keys are read this often at most; a token naming a key not seen yet (a rotation in
// the last seconds) triggers one early read, no more than once per KEY_MISS_INTERVAL_MS.
const KEY_CACHE_MS = 5_000;
const KEY_MISS_INTERVAL_MS = 1_000;
// Clock differences between instances.
const CLOCK_TOLERANCE_SECONDS = 5;
const CLIENT_CACHE_MS = 5_000;

function invalidToken(detail: string): ProblemError {
  return new ProblemError(401, 'invalid_token', detail, {
    headers: { 'www-authenticate': `Bearer realm="${REALM}", error="invalid_token", error_description="${detail.replace(/["\\]/g, '')}"` },
  });
}

/** RFC 6750 section 3.1: a request without credentials gets the challenge and no error code. */
function missingToken(detail = 'This operation needs an access token or an API key for the management API: send Authorization: Bearer <credential>.'): ProblemError {
  return new ProblemError(401, 'missing_token', detail, {
    headers: { 'www-authenticate': `Bearer realm="${REALM}"` },
  });
}

/** 403 naming the scope the operation needs. */
export function insufficientScope(scope: string): ProblemError {
  return new ProblemError(403, 'insufficient_scope', `This operation needs the ${scope} scope, which the credential does not carry.`, {
    extra: { required_scope: scope },
    headers: { 'www-authenticate': `Bearer realm="${REALM}", error="insufficient_scope", scope="${scope}"` },
  });
}

const API_KEY_REFUSALS: Record<ApiKeyRefusal, string> = {
  malformed: 'The API key is malformed.',
  unknown: 'The API key is not known.',
  expired: 'The API key has expired.',
  revoked: 'The API key has been revoked.',
  owner_inactive: 'The API key belongs to an account that is not active.',
};

function adminScopes(values: Iterable<string>): Set<string> {
  return new Set([...values].filter((scope) => Object.hasOwn(ADMIN_SCOPES, scope)));
}

function describeJwtFailure(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'The access token has expired.';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return 'The access token is not meant for the management API (wrong audience).';
    if (err.claim === 'iss') return 'The access token was not issued by this server.';
    if (err.claim === 'typ') return 'The token is not an access token (typ must be at+jwt).';
    return `The access token's ${err.claim} claim is not acceptable.`;
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWSSignatureVerificationFailed) return 'The access token was not signed by this server.';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'The access token uses a signing algorithm this server does not accept.';
  return 'The access token is malformed.';
}

export interface AdminAuthenticator {
  authenticate(ctx: Koa.Context): Promise<AdminPrincipal>;
}

export function createAdminAuthenticator(services: Pick<Services, 'knex' | 'config' | 'logger'>): AdminAuthenticator {
  const audience = managementResourceIdentifier(services.config);
  const keys = new TtlCache<JWK[]>(KEY_CACHE_MS, 1);
  const clients = new TtlCache<boolean>(CLIENT_CACHE_MS);
  let lastForcedKeyLoad = 0;
  let forcedKeys: { at: number; keys: Promise<JWK[]> } | undefined;

  async function currentKeys(forceFresh: boolean): Promise<JWK[]> {
    if (forceFresh && Date.now() - lastForcedKeyLoad >= KEY_MISS_INTERVAL_MS) {
      lastForcedKeyLoad = Date.now();
      forcedKeys = { at: lastForcedKeyLoad, keys: publishedPublicKeys(services) };
    }
    if (forcedKeys && Date.now() - forcedKeys.at < KEY_CACHE_MS) return forcedKeys.keys;
    return keys.get('published', () => publishedPublicKeys(services));
  }

  async function verify(token: string): Promise<JWTPayload> {
    const attempt = async (forceFresh: boolean) =>
      jwtVerify(token, createLocalJWKSet({ keys: await currentKeys(forceFresh) }), {
        issuer: services.config.issuer,
        audience,
        typ: 'at+jwt',
        algorithms: ALGORITHMS,
        requiredClaims: ['exp', 'iat', 'sub', 'client_id'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      });
    try {
      return (await attempt(false)).payload;
    } catch (err) {
      // Signed with a key published after our last read: read once more before refusing.
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      return (await attempt(true)).payload;
    }
  }

  async function clientExists(clientId: string): Promise<boolean> {
    return clients.get(clientId, () =>
      getClient(services, clientId).then(
        () => true,
        () => false,
      ),
    );
  }

  async function fromJwt(token: string, ctx: Koa.Context): Promise<AdminPrincipal> {
    let payload: JWTPayload;
    try {
      payload = await verify(token);
    } catch (err) {
      throw invalidToken(describeJwtFailure(err));
    }
    // A sender-constrained token (DPoP, mTLS) is only safe with its proof, which this API does
    // not check: accepting it as a bearer token would undo the binding.
    if (payload.cnf !== undefined) throw invalidToken('Sender-constrained (DPoP or mTLS bound) tokens are not accepted by the management API.');
    const sub = String(payload.sub);
    const clientId = String(payload.client_id);
    const scopes = adminScopes(typeof payload.scope === 'string' ? payload.scope.split(' ') : []);
    const base = { ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined, clientId, source: 'admin-api' };
    if (!(await clientExists(clientId))) throw invalidToken('The client the access token was issued to no longer exists.');
    // oidc-provider puts the client id in `sub` of client_credentials tokens, the account id in
    // those issued to a person.
    if (sub === clientId) {
      return { actor: { type: 'client', id: clientId }, scopes, auditMeta: { ...base, actor: { type: 'client', id: clientId } } };
    }
    const account = await findAccountById(services.knex, sub);
    if (!account || account.status !== 'active') throw invalidToken('The account the access token was issued to is not active.');
    // Suspension, a password reset or "sign out everywhere" ends tokens issued before it; the
    // same second counts as before, as in oidc/account.ts (iat has whole seconds only).
    if (account.tokensValidAfter && (typeof payload.iat !== 'number' || payload.iat <= Math.floor(account.tokensValidAfter.getTime() / 1000))) {
      throw invalidToken('The access token was issued before the account\'s sessions were ended.');
    }
    return { actor: { type: 'user', id: account.id }, scopes, auditMeta: { ...base, actor: { type: 'user', id: account.id } } };
  }

  async function fromApiKey(presented: string, ctx: Koa.Context): Promise<AdminPrincipal> {
    const result = await authenticateApiKey(services, presented);
    if (!result.ok) throw invalidToken(API_KEY_REFUSALS[result.reason]);
    if (result.key.resourceIdentifier !== audience) throw invalidToken('The API key is not meant for the management API (wrong resource).');
    const actor: AuditActor = { type: 'api_key', id: result.key.id };
    return {
      actor,
      scopes: adminScopes(result.key.scopes),
      auditMeta: { ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined, clientId: result.key.ownerClientId, source: 'admin-api', actor },
    };
  }

  return {
    async authenticate(ctx) {
      const header = ctx.get('authorization');
      if (!header) throw missingToken();
      const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
      if (!match) {
        // Another scheme carries no credential we understand: the same challenge as none at all.
        if (!/^Bearer\b/i.test(header)) throw missingToken('Only the Bearer scheme is accepted: Authorization: Bearer <credential>.');
        throw invalidToken('The bearer credential is malformed.');
      }
      const credential = match[1]!;
      return looksLikeApiKey(credential) ? fromApiKey(credential, ctx) : fromJwt(credential, ctx);
    },
  };
}

/** Throws insufficient_scope unless the caller holds `scope`. */
export function requireScope(principal: AdminPrincipal, scope: AdminScope): void {
  if (!principal.scopes.has(scope)) throw insufficientScope(scope);
}
