// The reference point for the benchmark: bare oidc-provider with nothing of Gatehouse around it.
// Its default in-memory adapter (or Gatehouse's Redis adapter, with BASELINE_REDIS_URL), one static client with the grant types Gatehouse's bench
// clients use, one resource server receiving ES256 JWT access tokens, and the same signing key
// algorithms (RS256 + ES256). Whatever Gatehouse adds per request (Koa middleware, logging,
// security headers, client and resource lookups, Redis/SQL storage) is the difference.
//
//   PORT=4000 BASELINE_CLIENT_ID=x BASELINE_CLIENT_SECRET=y BASELINE_RESOURCE=https://api.test \
//     node bench/baseline-server.ts
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
  }],
  jwks: { keys: [privateJwk('RS256'), privateJwk('ES256')] as NonNullable<Configuration['jwks']>['keys'] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  // The scopes and claims Gatehouse offers, so the same client metadata is valid here.
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  claims: { openid: ['sub'], profile: ['name', 'updated_at'], email: ['email', 'email_verified'] },
  features: {
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
// Provider extends Koa in v9; its types predate that, hence the cast.
const server = http.createServer((provider as unknown as { callback(): http.RequestListener }).callback());
server.keepAliveTimeout = 65_000;
server.listen(port, () => {
  process.stdout.write(`baseline oidc-provider listening at ${issuer}\n`);
});
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 2000).unref();
});
