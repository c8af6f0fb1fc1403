// The reference point for the benchmark: bare oidc-provider with nothing of Gatehouse around it.
// Its default in-memory adapter (or Gatehouse's Redis adapter, with BASELINE_REDIS_URL), one static client with the grant types Gatehouse's bench
// clients use, one resource server receiving ES256 JWT access tokens, and the same signing key
// algorithms (RS256 + ES256). Whatever Gatehouse adds per request (Koa middleware, logging,
// security headers, client and resource lookups, Redis/SQL storage) is the difference.
//
// For sign-ins it has a web client and the thinnest interaction pages that still make a sign-in:
// any email and password are accepted without a password hash, no database, no CSRF token, no
// templates. What a sign-in costs here is what oidc-provider itself costs per sign-in (the
// protocol's floor), which no product built on it can go below.
//
//   PORT=4000 BASELINE_CLIENT_ID=x BASELINE_CLIENT_SECRET=y BASELINE_RESOURCE=https://api.test \
//     BASELINE_WEB_CLIENT_ID=w BASELINE_WEB_CLIENT_SECRET=z node bench/baseline-server.ts
import crypto from 'node:crypto';
import http from 'node:http';
import Provider, { errors, type Configuration } from 'oidc-provider';
import { Redis } from 'ioredis';
import { redisAdapterFactory } from '../src/oidc/adapters/redis.ts';

const port = Number(process.env.PORT ?? 4000);
const issuer = `http://localhost:${port}`;
const clientId = process.env.BASELINE_CLIENT_ID ?? 'baseline-client';
const clientSecret = process.env.BASELINE_CLIENT_SECRET ?? 'baseline-client-secret-0123456789';
const resource = process.env.BASELINE_RESOURCE ?? 'https://api.bench.test';
const redirectUri = process.env.BASELINE_REDIRECT_URI ?? 'http://localhost:8080/callback';
const webClientId = process.env.BASELINE_WEB_CLIENT_ID ?? 'baseline-web-client';
const webClientSecret = process.env.BASELINE_WEB_CLIENT_SECRET ?? 'baseline-web-client-secret-0123456789';
// With BASELINE_REDIS_URL, tokens go to Redis through Gatehouse's own adapter instead of memory:
// the same storage cost as Gatehouse, without anything else of Gatehouse (`--baseline-redis`).
const redisUrl = process.env.BASELINE_REDIS_URL;

function privateJwk(alg: 'RS256' | 'ES256'): Record<string, unknown> {
  const pair = alg === 'RS256'
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...pair.privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: `baseline-${alg.toLowerCase()}` };
}

const configuration: Configuration = {
  ...(redisUrl ? { adapter: redisAdapterFactory(new Redis(redisUrl, { enableAutoPipelining: true }), 'bench-baseline:') } : {}),
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    redirect_uris: [redirectUri],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'openid profile email offline_access',
  }, {
    // The sign-in scenario's client, registered as Gatehouse's bench web app is.
    client_id: webClientId,
    client_secret: webClientSecret,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [redirectUri],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'openid profile email offline_access',
  }],
  // Accounts exist as soon as they are named: no lookup, only the claim every ID token has.
  findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  // As in Gatehouse: every authorization request carries a PKCE challenge (S256).
  pkce: { required: () => true },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  jwks: { keys: [privateJwk('RS256'), privateJwk('ES256')] as NonNullable<Configuration['jwks']>['keys'] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  // The scopes and claims Gatehouse offers, so the same client metadata is valid here.
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  claims: { openid: ['sub'], profile: ['name', 'updated_at'], email: ['email', 'email_verified'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        if (indicator !== resource) throw new errors.InvalidTarget(`resource ${indicator} is not registered`);
        return { scope: 'read write', audience: resource, accessTokenTTL: 900, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
      },
    },
  },
};

const provider = new Provider(issuer, configuration);

// ----- interaction pages -----
// Plain node:http in front of the provider: the least a sign-in can do besides the protocol.

const HTML = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' };

function page(res: http.ServerResponse, status: number, html: string): void {
  res.writeHead(status, HTML);
  res.end(html);
}

async function formBody(req: http.IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** The account's grant for the client, with what the consent prompt found missing (as oidc-provider's example does). */
async function grantMissing(details: Awaited<ReturnType<Provider['interactionDetails']>>): Promise<string> {
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session!.accountId, clientId: String(details.params.client_id) });
  if (!grant) throw new errors.SessionNotFound('grant not found');
  const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
  return grant.save();
}

async function interaction(req: http.IncomingMessage, res: http.ServerResponse, uid: string, action: string | undefined): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');
  const prompt = details.prompt.name;
  if (req.method === 'GET' && action === undefined) {
    if (prompt === 'login') {
      page(res, 200, `<!doctype html><title>Sign in</title><form method="post" action="/interaction/${uid}/login">`
        + '<input name="email" type="email"><input name="password" type="password"><button>Sign in</button></form>');
    } else {
      page(res, 200, `<!doctype html><title>Allow</title><form method="post" action="/interaction/${uid}/consent">`
        + '<button name="decision" value="allow">Allow</button><button name="decision" value="deny">Deny</button></form>');
    }
    return;
  }
  if (req.method !== 'POST' || action !== prompt) {
    page(res, 400, `<!doctype html><p>unexpected ${req.method} ${action ?? ''} for the ${prompt} prompt</p>`);
    return;
  }
  const body = await formBody(req);
  if (prompt === 'login') {
    // Whoever signs in is the account named by the email: no password check, on purpose.
    const accountId = body.get('email');
    if (!accountId || !body.get('password')) {
      page(res, 400, '<!doctype html><p>email and password are required</p>');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
    return;
  }
  const result = body.get('decision') === 'allow'
    ? { consent: { grantId: await grantMissing(details) } }
    : { error: 'access_denied', error_description: 'End-User aborted interaction' };
  // Merged with the login submission, as Gatehouse and oidc-provider's example do.
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

const INTERACTION = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|consent))?$/;
// Provider extends Koa in v9; its types predate that, hence the cast.
const providerListener = (provider as unknown as { callback(): http.RequestListener }).callback();
const server = http.createServer((req, res) => {
  const match = req.url ? INTERACTION.exec(req.url) : null;
  if (!match) {
    providerListener(req, res);
    return;
  }
  interaction(req, res, match[1]!, match[2]).catch((err: unknown) => {
    const expected = err instanceof errors.SessionNotFound;
    if (!expected) process.stderr.write(`interaction failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    if (!res.headersSent) page(res, expected ? 400 : 500, `<!doctype html><p>${expected ? 'interaction expired or not found' : 'server error'}</p>`);
    else res.end();
  });
});
server.keepAliveTimeout = 65_000;
server.listen(port, () => {
  process.stdout.write(`baseline oidc-provider listening at ${issuer}\n`);
});
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 2000).unref();
});
