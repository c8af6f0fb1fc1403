// Talking to upstream identity providers with openid-client: OpenID Connect for the generic
// kind, Google, Microsoft and Apple (discovery, ID token checked for issuer, audience, nonce,
// expiry and signature), plain OAuth 2.0 for GitHub, Facebook and X (their profile APIs). Every
// authorization request carries state and PKCE (S256), and a nonce when an ID token comes back.
//
// Discovered metadata is cached per process for a few minutes; it is configuration read from
// the upstream, not state of any sign-in, so another instance rediscovering it is harmless.
import { importPKCS8, SignJWT } from 'jose';
import * as client from 'openid-client';
import type { Logger } from '../logger.ts';
import { OIDC_KINDS, type FederationProvider, type ProviderKind } from './settings.ts';
import type { UpstreamIdentity } from '../domain/federation.ts';

const CONFIG_CACHE_MS = 10 * 60 * 1000;
const APPLE_SECRET_SECONDS = 60 * 60;
const HTTP_TIMEOUT_SECONDS = 10;

/** Why a round trip to the upstream failed; each gets its own message and audit reason. */
export type UpstreamFailure = 'access_denied' | 'upstream_error' | 'unavailable' | 'token_exchange' | 'id_token_invalid' | 'profile_unavailable';

export class UpstreamError extends Error {
  readonly reason: UpstreamFailure;
  constructor(reason: UpstreamFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UpstreamError';
    this.reason = reason;
  }
}

interface PlainOAuthEndpoints {
  issuer: string;
  authorization: string;
  token: string;
  api: string;
  auth: 'post' | 'basic';
}

const PLAIN_OAUTH: Partial<Record<ProviderKind, PlainOAuthEndpoints>> = {
  github: { issuer: 'https://github.com', authorization: 'https://github.com/login/oauth/authorize', token: 'https://github.com/login/oauth/access_token', api: 'https://api.github.com', auth: 'post' },
  facebook: { issuer: 'https://www.facebook.com', authorization: 'https://www.facebook.com/v21.0/dialog/oauth', token: 'https://graph.facebook.com/v21.0/oauth/access_token', api: 'https://graph.facebook.com/v21.0', auth: 'post' },
  x: { issuer: 'https://x.com', authorization: 'https://x.com/i/oauth2/authorize', token: 'https://api.x.com/2/oauth2/token', api: 'https://api.x.com', auth: 'basic' },
};

/**
 * HTTP Basic as X documents it: base64 of "id:secret" as they are. openid-client form-encodes
 * both first (RFC 6749 2.3.1), which servers that do not decode them refuse.
 */
function plainBasic(clientId: string, secret: string): client.ClientAuth {
  return (_as, _client, _body, headers) => {
    headers.set('authorization', `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`);
  };
}

function isLoopbackHttp(url: string): boolean {
  const parsed = new URL(url);
  return parsed.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(parsed.hostname);
}

/** Apple's client secret: an ES256 JWT from the team's key, short-lived (Apple allows six months). */
export async function appleClientSecret(provider: FederationProvider): Promise<string> {
  const apple = provider.apple!;
  const key = await importPKCS8(apple.privateKey, 'ES256');
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: apple.keyId })
    .setIssuer(apple.teamId)
    .setSubject(provider.clientId)
    .setAudience('https://appleid.apple.com')
    .setIssuedAt()
    .setExpirationTime(`${APPLE_SECRET_SECONDS}s`)
    .sign(key);
}

function plainEndpoints(provider: FederationProvider): PlainOAuthEndpoints {
  const defaults = PLAIN_OAUTH[provider.kind]!;
  return {
    ...defaults,
    authorization: provider.endpoints.authorization ?? defaults.authorization,
    token: provider.endpoints.token ?? defaults.token,
    api: (provider.endpoints.api ?? defaults.api).replace(/\/$/, ''),
  };
}

export class Upstreams {
  readonly #logger: Logger;
  readonly #configs = new Map<string, { config: Promise<client.Configuration>; expiresAt: number }>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** The openid-client configuration of a provider (discovered, cached for a few minutes). */
  async configuration(provider: FederationProvider): Promise<client.Configuration> {
    const cached = this.#configs.get(provider.id);
    if (cached && cached.expiresAt > Date.now()) return cached.config;
    const config = this.#build(provider);
    this.#configs.set(provider.id, { config, expiresAt: Date.now() + CONFIG_CACHE_MS });
    // A failed discovery is not cached: the next sign-in tries again.
    config.catch(() => this.#configs.delete(provider.id));
    return config;
  }

  async #build(provider: FederationProvider): Promise<client.Configuration> {
    // Apple authenticates clients with a short-lived JWT instead of a fixed secret.
    const secret = provider.kind === 'apple' ? await appleClientSecret(provider) : provider.clientSecret;
    if (OIDC_KINDS.has(provider.kind)) {
      const issuer = provider.issuer!;
      const insecure = isLoopbackHttp(issuer);
      try {
        const auth = !secret ? client.None() : provider.tokenEndpointAuthMethod === 'client_secret_post' ? client.ClientSecretPost(secret) : client.ClientSecretBasic(secret);
        const config = await client.discovery(new URL(issuer), provider.clientId, secret ? { client_secret: secret } : undefined, auth, {
          execute: insecure ? [client.allowInsecureRequests] : [],
          timeout: HTTP_TIMEOUT_SECONDS,
        });
        // Check ID token signatures too, not only the TLS connection they came over.
        client.enableNonRepudiationChecks(config);
        return config;
      } catch (err) {
        this.#logger.warn({ provider: provider.id, err: (err as Error).message }, 'upstream discovery failed');
        throw new UpstreamError('unavailable', 'discovery failed', { cause: err });
      }
    }
    const endpoints = plainEndpoints(provider);
    const auth = !secret ? client.None() : endpoints.auth === 'basic' ? plainBasic(provider.clientId, secret) : client.ClientSecretPost(secret);
    const config = new client.Configuration(
      { issuer: endpoints.issuer, authorization_endpoint: endpoints.authorization, token_endpoint: endpoints.token },
      provider.clientId,
      secret ? { client_secret: secret } : {},
      auth,
    );
    config.timeout = HTTP_TIMEOUT_SECONDS;
    if (isLoopbackHttp(endpoints.token)) client.allowInsecureRequests(config);
    return config;
  }

  /** Where to send the browser: the upstream's authorization endpoint with state, nonce and PKCE. */
  async authorizationUrl(provider: FederationProvider, request: { redirectUri: string; state: string; nonce: string; codeVerifier: string }): Promise<URL> {
    const config = await this.configuration(provider);
    const params: Record<string, string> = {
      redirect_uri: request.redirectUri,
      response_type: 'code',
      scope: provider.scopes.join(' '),
      state: request.state,
    };
    if (OIDC_KINDS.has(provider.kind)) params.nonce = request.nonce;
    if (provider.pkce) {
      params.code_challenge = await client.calculatePKCECodeChallenge(request.codeVerifier);
      params.code_challenge_method = 'S256';
    }
    // Apple posts the response back when name or email is asked for (and only then sends the name).
    if (provider.kind === 'apple') params.response_mode = 'form_post';
    return client.buildAuthorizationUrl(config, params);
  }

  /**
   * Redeems the code in the callback (`callbackUrl` carries the response parameters) and returns
   * who the person is at the upstream. Throws UpstreamError.
   */
  async identify(provider: FederationProvider, callbackUrl: URL, checks: { state: string; nonce: string; codeVerifier: string }, extra: { appleUser?: string } = {}): Promise<UpstreamIdentity> {
    const config = await this.configuration(provider);
    const oidc = OIDC_KINDS.has(provider.kind);
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(config, callbackUrl, {
        expectedState: checks.state,
        ...(provider.pkce ? { pkceCodeVerifier: checks.codeVerifier } : {}),
        ...(oidc ? { expectedNonce: checks.nonce, idTokenExpected: true } : {}),
      });
    } catch (err) {
      if (err instanceof client.AuthorizationResponseError) {
        throw new UpstreamError(err.error === 'access_denied' ? 'access_denied' : 'upstream_error', `authorization response error: ${err.error}`, { cause: err });
      }
      if (err instanceof client.ResponseBodyError || err instanceof client.WWWAuthenticateChallengeError) {
        throw new UpstreamError('token_exchange', `token endpoint refused the code: ${(err as Error).message}`, { cause: err });
      }
      if (err instanceof client.ClientError) {
        // openid-client's checks: ID token issuer, audience, nonce, signature, expiry, state, iss.
        throw new UpstreamError(oidc ? 'id_token_invalid' : 'token_exchange', `response failed validation: ${err.message}`, { cause: err });
      }
      throw new UpstreamError('unavailable', `token request failed: ${(err as Error).message}`, { cause: err });
    }
    try {
      if (oidc) return await this.#oidcIdentity(provider, config, tokens, extra.appleUser);
      return await plainOAuthIdentity(provider, tokens.access_token);
    } catch (err) {
      if (err instanceof UpstreamError) throw err;
      throw new UpstreamError('profile_unavailable', `reading the profile failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async #oidcIdentity(provider: FederationProvider, config: client.Configuration, tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>, appleUser: string | undefined): Promise<UpstreamIdentity> {
    const claims = tokens.claims();
    if (!claims) throw new UpstreamError('id_token_invalid', 'no ID token');
    let profile: Record<string, unknown> = { ...claims };
    // Providers that keep ID tokens small (oidc-provider, Gatehouse itself) release email and
    // name at the userinfo endpoint only; its subject must be the ID token's.
    if ((profile.email === undefined || profile.name === undefined) && config.serverMetadata().userinfo_endpoint) {
      try {
        const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
        profile = { ...info, ...profile, email: profile.email ?? info.email, email_verified: profile.email_verified ?? info.email_verified, name: profile.name ?? info.name };
      } catch (err) {
        throw new UpstreamError('profile_unavailable', `userinfo failed: ${(err as Error).message}`, { cause: err });
      }
    }
    const email = typeof profile.email === 'string' ? profile.email : null;
    // Apple sends "true" as a string; Microsoft sends no such claim (trust is the operator's call).
    const saysVerified = profile.email_verified === true || profile.email_verified === 'true' || (provider.kind === 'microsoft' && email !== null);
    return {
      provider: provider.id,
      subject: claims.sub,
      email,
      emailVerified: provider.trustEmailVerified && saysVerified && email !== null,
      name: stringOrNull(profile.name) ?? appleName(appleUser),
    };
  }
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' && value.trim() !== '' ? value : null;
}

/** Apple posts the name once, on the first authorization, as JSON in the `user` field. */
function appleName(raw: string | undefined): string | null {
  if (!raw) return null;
  try {
    const user = JSON.parse(raw) as { name?: { firstName?: unknown; lastName?: unknown } };
    const parts = [user.name?.firstName, user.name?.lastName].filter((p): p is string => typeof p === 'string' && p.trim() !== '');
    return parts.length ? parts.join(' ') : null;
  } catch {
    return null;
  }
}

async function getJson(url: string, accessToken: string, insecureOk: boolean): Promise<unknown> {
  if (!url.startsWith('https://') && !(insecureOk && isLoopbackHttp(url))) throw new UpstreamError('profile_unavailable', 'profile API must be https');
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json', 'user-agent': 'Gatehouse' },
    signal: AbortSignal.timeout(HTTP_TIMEOUT_SECONDS * 1000),
    redirect: 'error',
  });
  if (!res.ok) throw new UpstreamError('profile_unavailable', `${new URL(url).pathname} answered ${res.status}`);
  return res.json();
}

/** GitHub, Facebook and X: who the access token belongs to, from their REST APIs. */
async function plainOAuthIdentity(provider: FederationProvider, accessToken: string): Promise<UpstreamIdentity> {
  const { api } = plainEndpoints(provider);
  const insecureOk = provider.endpoints.api !== undefined;
  const base = { provider: provider.id };
  if (provider.kind === 'github') {
    const user = (await getJson(`${api}/user`, accessToken, insecureOk)) as { id?: unknown; name?: unknown; login?: unknown };
    // The profile's public email may be unverified; /user/emails says which one is verified.
    const emails = (await getJson(`${api}/user/emails`, accessToken, insecureOk)) as { email?: unknown; primary?: unknown; verified?: unknown }[];
    const primary = Array.isArray(emails) ? emails.find((e) => e.primary === true && typeof e.email === 'string') : undefined;
    if (typeof user.id !== 'number' && typeof user.id !== 'string') throw new UpstreamError('profile_unavailable', 'GitHub user has no id');
    return {
      ...base,
      subject: String(user.id),
      email: typeof primary?.email === 'string' ? primary.email : null,
      emailVerified: provider.trustEmailVerified && primary?.verified === true,
      name: stringOrNull(user.name) ?? stringOrNull(user.login),
    };
  }
  if (provider.kind === 'facebook') {
    const me = (await getJson(`${api}/me?fields=id,name,email`, accessToken, insecureOk)) as { id?: unknown; name?: unknown; email?: unknown };
    if (typeof me.id !== 'string') throw new UpstreamError('profile_unavailable', 'Facebook user has no id');
    // Facebook returns only confirmed addresses.
    const email = typeof me.email === 'string' ? me.email : null;
    return { ...base, subject: me.id, email, emailVerified: provider.trustEmailVerified && email !== null, name: stringOrNull(me.name) };
  }
  const me = (await getJson(`${api}/2/users/me`, accessToken, insecureOk)) as { data?: { id?: unknown; name?: unknown; username?: unknown } };
  if (typeof me.data?.id !== 'string') throw new UpstreamError('profile_unavailable', 'X user has no id');
  // X shares no email address with ordinary apps.
  return { ...base, subject: me.data.id, email: null, emailVerified: false, name: stringOrNull(me.data.name) ?? stringOrNull(me.data.username) };
}
