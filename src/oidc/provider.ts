// The one place oidc-provider is configured. Protocol endpoints (/auth, /token, /me, /jwks,
// /session/end, introspection, revocation, PAR, discovery) belong to the library; we supply
// storage, accounts, clients, keys, pages and policies.
import crypto from 'node:crypto';
import type { JWK } from 'jose';
import Provider, { errors, type Configuration, type KoaContextWithOIDC, type Adapter, type AsymmetricSigningAlgorithm } from 'oidc-provider';
import type { Services } from '../services.ts';
import { CACHE_TTL_MS, ClientAdapter, rememberParsedClients } from './client-adapter.ts';
import { TtlCache } from '../ttl-cache.ts';
import { findAccount } from './account.ts';
import { findResource } from '../domain/resources.ts';
import { PermissionFilter } from './permissions.ts';
import { renderProviderError, renderLogoutPrompt, renderLogoutSuccess } from './pages.ts';
import { ACR_VALUES, interactionPolicyWithStepUp } from './acr.ts';
import { ACR_GUEST, withGuestCheck } from './guest.ts';
import { trackSessions } from './sessions.ts';
import { protocolStore, trackGrants } from './grants.ts';
import { mfaSummary } from '../domain/mfa.ts';
import { sessionTtl } from './session-lifetime.ts';
import { accessTokenTtl, refreshTokenTtl } from './refresh-tokens.ts';
import { MAX_REFRESH_GRACE_SECONDS } from '../domain/clients.ts';
import { recordAudit } from '../domain/audit.ts';

export const SCOPES = ['openid', 'profile', 'email', 'phone', 'roles', 'offline_access'];
// Claims released per scope. acr/amr sit under openid so they reach ID tokens; so does `guest`
// (true only for guest accounts), which an application needs whatever scopes it asked for.
export const CLAIMS: Record<string, string[]> = {
  openid: ['sub', 'acr', 'amr', 'auth_time', 'sid', 'guest'],
  profile: ['name', 'updated_at'],
  email: ['email', 'email_verified'],
  phone: ['phone_number', 'phone_number_verified'],
  roles: ['roles'],
};
// Algorithms accepted from clients (private_key_jwt, request objects, DPoP proofs).
const CLIENT_KEY_ALGS: AsymmetricSigningAlgorithm[] = ['ES256', 'EdDSA', 'RS256', 'PS256'];
export const SIGNING_ALGS: AsymmetricSigningAlgorithm[] = ['RS256', 'ES256'];

function isHttps(issuer: string): boolean {
  return new URL(issuer).protocol === 'https:';
}

/** The adapter for every model: clients from our clients table, the rest in Redis or SQL. */
function adapterFactory(services: Services): (name: string) => Adapter {
  const protocolState = protocolStore(services);
  return (name: string) => (name === 'Client' ? new ClientAdapter(services) : protocolState(name));
}

export function buildConfiguration(services: Services, jwks: JWK[]): Configuration {
  const { config } = services;
  const secure = isHttps(config.issuer);
  const cookieOptions = { httpOnly: true, sameSite: 'lax' as const, secure, signed: true };
  const ttl = config.ttl;
  const resources = new TtlCache<Awaited<ReturnType<typeof findResource>>>(CACHE_TTL_MS);
  const permissions = new PermissionFilter(services.knex, CACHE_TTL_MS);
  return {
    adapter: adapterFactory(services),
    findAccount: (ctx, sub, token) => findAccount(services, ctx, sub, token),
    // Private JWKs as stored; jose's JWK and the library's JWK type describe the same JSON.
    jwks: { keys: jwks as NonNullable<Configuration['jwks']>['keys'] },
    cookies: { keys: services.cookieKeys, long: cookieOptions, short: cookieOptions },
    claims: CLAIMS,
    scopes: SCOPES,
    responseTypes: ['code'],
    pkce: { required: () => true },
    rotateRefreshToken: true,
    // Refresh tokens only for offline_access, for every client type (as Auth0 does).
    issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    extraClientMetadata: {
      properties: ['first_party', 'refresh_token_grace_seconds', 'allow_guest'],
      validator(_ctx, key, value) {
        if (key === 'first_party' && value !== undefined && typeof value !== 'boolean') {
          throw new errors.InvalidClientMetadata('first_party must be a boolean');
        }
        if (key === 'allow_guest' && value !== undefined && typeof value !== 'boolean') {
          throw new errors.InvalidClientMetadata('allow_guest must be a boolean');
        }
        if (key === 'refresh_token_grace_seconds' && value !== undefined && !(Number.isInteger(value) && (value as number) >= 0 && (value as number) <= MAX_REFRESH_GRACE_SECONDS)) {
          throw new errors.InvalidClientMetadata(`refresh_token_grace_seconds must be a whole number from 0 to ${MAX_REFRESH_GRACE_SECONDS}`);
        }
      },
    },
    enabledJWA: {
      idTokenSigningAlgValues: SIGNING_ALGS,
      userinfoSigningAlgValues: SIGNING_ALGS,
      introspectionSigningAlgValues: SIGNING_ALGS,
      authorizationSigningAlgValues: SIGNING_ALGS,
      requestObjectSigningAlgValues: CLIENT_KEY_ALGS,
      clientAuthSigningAlgValues: CLIENT_KEY_ALGS,
      dPoPSigningAlgValues: CLIENT_KEY_ALGS,
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
      policy: withGuestCheck(interactionPolicyWithStepUp(async (accountId) => services.config.mfa.policy !== 'off' && (await mfaSummary(services, accountId)).methods.length > 0)),
    },
    acrValues: [...ACR_VALUES, ACR_GUEST],
    loadExistingGrant: (ctx) => loadExistingGrant(ctx),
    // oidc-provider refuses outgoing calls (back-channel logout, jwks_uri) to loopback and private
    // addresses by attaching a guarded dispatcher; development setups may opt out.
    fetch: (url, options) => {
      if (config.backchannelLogoutAllowPrivate) delete (options as { dispatcher?: unknown }).dispatcher;
      return globalThis.fetch(url, options);
    },
    renderError: (ctx, out, error) => renderProviderError(services, ctx, out, error),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // Confidential clients (resource servers) may introspect any token; public clients,
        // which cannot prove who they are, only their own.
        allowedPolicy: async (ctx, client, token) => client.clientAuthMethod !== 'none' || token.clientId === client.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => {
          if (token.clientId !== client.clientId) {
            throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
          }
          return true;
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: (ctx, form) => renderLogoutPrompt(services, ctx, form),
        postLogoutSuccessSource: (ctx) => renderLogoutSuccess(services, ctx),
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resourceIndicator) => {
          // Asked for every token of an API: cached like clients (see oidc/client-adapter.ts).
          const resource = await resources.get(resourceIndicator, () => findResource(services.knex, resourceIndicator));
          if (!resource) throw new errors.InvalidTarget(`resource ${resourceIndicator} is not registered`);
          return {
            scope: await permissions.allowedScope(ctx, resource.id, resource.scope),
            audience: resource.identifier,
            accessTokenTTL: resource.accessTokenTtl ?? accessTokenTtl(config, ctx, resource.accessTokenFormat),
            accessTokenFormat: resource.accessTokenFormat,
            // ES256: about ten times cheaper to sign than RS256 for tokens minted per request.
            ...(resource.accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: 'ES256' } } } : {}),
          };
        },
      },
      dPoP: {
        enabled: true,
        // Every instance must derive the same nonce secret, so it comes from the shared cookie key.
        nonceSecret: crypto.createHash('sha256').update(`dpop-nonce:${services.cookieKeys[0]}`).digest(),
      },
      pushedAuthorizationRequests: { enabled: true },
      backchannelLogout: { enabled: true },
      userinfo: { enabled: true },
    },
    ttl: {
      // Longer for opaque tokens of a "Remember me" sign-in (refresh-tokens.ts knows which).
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? accessTokenTtl(config, ctx, 'opaque'),
      AuthorizationCode: ttl.authorizationCode,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl.clientCredentials,
      IdToken: ttl.idToken,
      RefreshToken: (ctx, token) => refreshTokenTtl(config, ctx, token),
      // Sliding idle timeout, capped by the absolute lifetime counted from the sign-in.
      Session: (_ctx, session) => sessionTtl(services.config, session),
      Interaction: ttl.interaction,
      // A grant must outlive every refresh token issued under it, or refreshes fail early.
      Grant: Math.max(ttl.refreshToken, ttl.rememberAbsolute),
      DeviceCode: 600,
      BackchannelAuthenticationRequest: 600,
    },
  };
}

/**
 * Existing grants are reused; first-party clients get one created on the spot, so their users
 * never see a consent screen for the company's own apps.
 */
async function loadExistingGrant(ctx: KoaContextWithOIDC) {
  const { oidc } = ctx;
  const client = oidc.client!;
  const grantId = oidc.result?.consent?.grantId ?? oidc.session!.grantIdFor(client.clientId);
  const existing = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
  if (!(client as unknown as { first_party?: boolean }).first_party) return existing;
  const grant = existing ?? new oidc.provider.Grant({ clientId: client.clientId, accountId: oidc.session!.accountId! });
  const requested = oidc.params!.scope ? String(oidc.params!.scope).split(' ') : [];
  grant.addOIDCScope(requested.filter((s) => SCOPES.includes(s)).join(' '));
  for (const [resource, scope] of Object.entries(oidc.resourceServers ?? {})) {
    grant.addResourceScope(resource, (scope as { scope: string }).scope);
  }
  await grant.save();
  return grant;
}

export function createProvider(services: Services, jwks: JWK[]): Provider {
  const provider = new Provider(services.config.issuer, buildConfiguration(services, jwks));
  provider.proxy = services.config.trustProxy;
  rememberParsedClients(provider);
  const log = services.logger;
  trackSessions(services, provider, Provider);
  trackGrants(services, provider);
  // Discovery and JWKS are served without our application (direct-endpoints.ts): their request id
  // is only on the response.
  provider.on('server_error', (ctx, err) => log.error({ err, requestId: ctx.state?.requestId ?? ctx.response.get('x-request-id') }, 'provider server error'));
  // RP-initiated logout sends back-channel logouts itself; a failed one is retried and each
  // outcome audited, as for revoked sessions (sessions.ts).
  provider.on('backchannel.success', (_ctx, client, accountId) => {
    void recordAudit(services.knex, { type: 'session.backchannel_logout', outcome: 'success', accountId, clientId: client.clientId }).catch((err: unknown) => log.warn({ err }, 'audit failed'));
  });
  provider.on('backchannel.error', (_ctx, err, client, accountId, sid) => void retryBackchannelLogout(services, client, accountId, sid, err));
  provider.on('grant.success', (ctx) => services.metrics.tokenIssued(ctx.oidc.params?.grant_type));
  provider.on('grant.error', (ctx, err) => log.info({ requestId: ctx.state?.requestId, error: (err as Error).name, description: (err as { error_description?: string }).error_description }, 'token request refused'));
  return provider;
}

async function retryBackchannelLogout(services: Services, client: unknown, accountId: string, sid: string, firstError: unknown): Promise<void> {
  // The library's type declarations predate Client#backchannelLogout.
  const target = client as { clientId: string; backchannelLogout(sub: string, sid: string): Promise<void> };
  let lastError = firstError;
  for (const delayMs of [500, 2000]) {
    await new Promise((r) => setTimeout(r, delayMs));
    try {
      await target.backchannelLogout(accountId, sid);
      await recordAudit(services.knex, { type: 'session.backchannel_logout', outcome: 'success', accountId, clientId: target.clientId });
      return;
    } catch (err) {
      lastError = err;
    }
  }
  const error = lastError instanceof Error ? lastError.message : String(lastError);
  services.logger.warn({ clientId: target.clientId, err: error }, 'back-channel logout failed');
  await recordAudit(services.knex, { type: 'session.backchannel_logout', outcome: 'failure', accountId, clientId: target.clientId, details: { error } }).catch(() => undefined);
}
