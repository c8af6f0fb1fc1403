// The per-client limit in front of a real oidc-provider: requests under the limit reach the
// provider with their form body intact (client_secret_post only works if oidc-provider still
// reads the body we consumed), requests over it get a 429 with Retry-After, and requests that
// name no client pass through for oidc-provider to refuse.
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { exportJWK, generateKeyPair } from 'jose';
import Koa from 'koa';
import mount from 'koa-mount';
import Provider, { type ClientMetadata } from 'oidc-provider';
import { loadConfig } from '../../src/config.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { migrateLatest } from '../../src/db/migrate.ts';
import { createLogger } from '../../src/logger.ts';
import { tokenEndpointRateLimit } from '../../src/oidc/token-rate-limit.ts';
import { TOKEN_BODY_LIMIT } from '../../src/oidc/token-request-body.ts';
import { createRateLimits } from '../../src/security/rate-limit.ts';
import { tempDataDir } from '../helpers/server.ts';

const SECRET = 'a-client-secret-that-is-long-enough-0123456789';
const CLIENTS: ClientMetadata[] = ['post-a', 'post-b', 'basic client/1', 'mixed', 'charset'].map((clientId) => ({
  client_id: clientId,
  client_secret: SECRET,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: clientId.startsWith('basic') ? 'client_secret_basic' : 'client_secret_post',
}));

let dataDir: string;
let database: Database;
let server: Server;
let base: string;
const warnings: string[] = [];

beforeAll(async () => {
  // oidc-provider prints its notices with console.warn; keep them to check which ones appear.
  vi.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => void warnings.push(args.map(String).join(' ')));
  // Its development-default notices (TTLs, introspection policy) are about this bare test setup.
  vi.spyOn(console, 'info').mockImplementation(() => undefined);
  dataDir = tempDataDir('gh-token-rl-');
  const config = loadConfig({ DATA_DIR: dataDir, RATE_LIMIT_TOKEN_CLIENT: '3/60' });
  database = await openDatabase(config);
  await migrateLatest(database.knex);
  const rateLimits = createRateLimits({ config, knex: database.knex, logger: createLogger('silent') });

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const provider = new Provider('http://localhost', {
    jwks: { keys: [{ ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig' }] },
    clients: CLIENTS,
    features: { clientCredentials: { enabled: true }, introspection: { enabled: true }, revocation: { enabled: true }, devInteractions: { enabled: false } },
  });
  const app = new Koa();
  app.use(tokenEndpointRateLimit(rateLimits));
  // Provider extends Koa in v9; its types predate that, hence the cast.
  app.use(mount(provider as unknown as Koa));
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  vi.restoreAllMocks();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await database?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function post(path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

function expectRateLimited(answer: Answer): void {
  expect(answer.status).toBe(429);
  expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(Number(answer.headers.get('retry-after'))).toBeLessThanOrEqual(60);
  expect(answer.headers.get('cache-control')).toBe('no-store');
  expect(answer.body).toEqual({ error: 'rate_limited', error_description: expect.stringMatching(/^Too many requests for this client\. Try again in \d+ (seconds?|minutes?)\.$/) });
}

describe('token endpoint rate limit', () => {
  it('passes client_secret_post requests with their body intact, then refuses with 429', async () => {
    const form = { grant_type: 'client_credentials', client_id: 'post-a', client_secret: SECRET };
    for (let i = 0; i < 3; i++) {
      const answer = await post('/token', form);
      expect(answer.status).toBe(200);
      expect(answer.body.access_token).toEqual(expect.any(String));
    }
    expectRateLimited(await post('/token', form));
    // Another client is not affected.
    expect((await post('/token', { ...form, client_id: 'post-b' })).status).toBe(200);
  });

  it('keys Basic-authenticated clients by the decoded id, leaving the body unread', async () => {
    const headers = { authorization: basic('basic client/1', SECRET) };
    for (let i = 0; i < 3; i++) expect((await post('/token', { grant_type: 'client_credentials' }, headers)).status).toBe(200);
    expectRateLimited(await post('/token', { grant_type: 'client_credentials' }, headers));
  });

  it('counts introspection and revocation against the same client', async () => {
    const auth = { client_id: 'mixed', client_secret: SECRET };
    const token = await post('/token', { grant_type: 'client_credentials', ...auth });
    expect(token.status).toBe(200);
    const accessToken = String(token.body.access_token);
    const introspection = await post('/token/introspection', { token: accessToken, ...auth });
    expect(introspection.status).toBe(200);
    expect(introspection.body.active).toBe(true);
    const revocation = await fetch(`${base}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: accessToken, ...auth }).toString(),
    });
    expect(revocation.status).toBe(200);
    expectRateLimited(await post('/token/introspection', { token: accessToken, ...auth }));
  });

  it('honours a declared charset as oidc-provider would', async () => {
    const answer = await post('/token', { grant_type: 'client_credentials', client_id: 'charset', client_secret: SECRET }, { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' });
    expect(answer.status).toBe(200);
  });

  it('lets requests without a client id through for oidc-provider to refuse', async () => {
    for (let i = 0; i < 6; i++) {
      const answer = await post('/token', { grant_type: 'client_credentials' });
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe('invalid_request');
    }
  });

  it('keys a client_assertion by its subject', async () => {
    const assertion = ['{"alg":"none"}', '{"sub":"jwt-client","iss":"jwt-client"}', ''].map((p) => Buffer.from(p).toString('base64url')).join('.');
    const form = { grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion };
    for (let i = 0; i < 3; i++) expect((await post('/token', form)).status).not.toBe(429);
    expectRateLimited(await post('/token', form));
  });

  it('refuses an oversized streamed body the way oidc-provider does', async () => {
    const body = `grant_type=client_credentials&client_id=post-b&pad=${'x'.repeat(TOKEN_BODY_LIMIT)}`;
    // Chunked, without Content-Length, so the limit is only found while reading.
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${base}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'transfer-encoding': 'chunked' } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      for (let i = 0; i < body.length; i += 8192) req.write(body.slice(i, i + 8192));
      req.end();
    });
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'invalid_request' });

    // With a declared length over the limit the stream is left alone; oidc-provider refuses it.
    const declared = await post('/token', { grant_type: 'client_credentials', client_id: 'post-b', client_secret: SECRET, pad: 'x'.repeat(TOKEN_BODY_LIMIT) });
    expect(declared.status).toBe(400);
    expect(declared.body.error).toBe('invalid_request');
  });

  it('leaves other endpoints alone', async () => {
    // Discovery is served as usual, however often it is asked for.
    for (let i = 0; i < 5; i++) expect((await fetch(`${base}/.well-known/openid-configuration`)).status).toBe(200);
  });

  it('triggers only oidc-provider\'s one-time notice about a pre-read body', () => {
    const fromProvider = warnings.filter((w) => w.includes('oidc-provider WARNING'));
    expect(fromProvider.filter((w) => w.includes('already parsed request body'))).toHaveLength(1);
  });
});
