// API keys: creation, storage, rotation, revocation and authentication against real storage
// (embedded PGlite always, PostgreSQL when TEST_DATABASE_URL is set), and introspection of keys
// over HTTP against a running server whose clients and keys are made with the CLI.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { authenticateApiKey, createApiKey, getApiKey, listApiKeys, revokeApiKey, rotateApiKey, type CreatedApiKey } from '../../src/domain/api-keys.ts';
import { changeAccountStatusById } from '../../src/domain/account-status.ts';
import { createClient } from '../../src/domain/clients.ts';
import { managementResourceIdentifier } from '../../src/domain/management.ts';
import { createResource } from '../../src/domain/resources.ts';
import { createUser } from '../../src/domain/users.ts';
import { isAppError } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { createServices, type Services } from '../../src/services.ts';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/postgres.ts';
import { runCli, startServer, tempDataDir, testSecrets, type CliResult, type RunningServer } from '../helpers/server.ts';

const logger = createLogger('silent');
const API = 'https://invoices.example.test';
const KEY_FORMAT = /^ghk_[A-Za-z0-9_-]{43}$/;

async function appErrorOf(promise: Promise<unknown>): Promise<{ code: string; status: number }> {
  try {
    await promise;
  } catch (err) {
    if (isAppError(err)) return { code: err.code, status: err.status };
    throw err;
  }
  throw new Error('expected an AppError');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function domainSuite(name: string, open: () => Promise<{ services: Services; cleanup(): Promise<void> }>, skip = false): void {
  describe.skipIf(skip)(`API keys: ${name}`, () => {
    let services: Services;
    let cleanup: () => Promise<void>;

    beforeAll(async () => {
      ({ services, cleanup } = await open());
      await createResource(services, { identifier: API, scope: 'invoices:read invoices:write' });
    });

    afterAll(async () => {
      await services?.close();
      await cleanup?.();
    });

    const create = (input: Partial<Parameters<typeof createApiKey>[1]> = {}): Promise<CreatedApiKey> =>
      createApiKey(services, { name: 'billing sync', resource: API, scopes: ['invoices:read'], ...input }, { source: 'test' });

    it('creates a recognizable 256-bit key for the management API by default and shows it once', async () => {
      const created = await createApiKey(services, { name: 'deploy bot', scopes: ['admin:users:read', 'admin:clients:read'] }, { source: 'test' });
      expect(created.key).toMatch(KEY_FORMAT);
      expect(Buffer.from(created.key.slice(4), 'base64url')).toHaveLength(32);
      expect(created).toMatchObject({
        name: 'deploy bot',
        key_hint: created.key.slice(0, 12),
        resource: managementResourceIdentifier(services.config),
        scopes: ['admin:users:read', 'admin:clients:read'],
        status: 'active',
        expires_at: null,
        usage_count: 0,
        last_used_at: null,
        revoked_at: null,
        replaced_by: null,
      });
      const listed = await getApiKey(services, created.id);
      expect(listed).not.toHaveProperty('key');
      expect(JSON.stringify(listed)).not.toContain(created.key.slice(12));
      expect(listed).toEqual(Object.fromEntries(Object.entries(created).filter(([field]) => field !== 'key')));
    });

    it('stores only a SHA-256 of the key: the plaintext is in no column and no audit event', async () => {
      const created = await create();
      const row = await services.knex.raw<{ rows: { text: string; key_hash: string }[] }>('SELECT row_to_json(k)::text AS text, key_hash FROM api_keys k WHERE id = ?', [created.id]);
      expect(row.rows[0]!.key_hash).toBe(crypto.createHash('sha256').update(created.key).digest('hex'));
      expect(row.rows[0]!.text).not.toContain(created.key);
      expect(row.rows[0]!.text).not.toContain(created.key.slice(12));
      const audit = await services.knex.raw<{ rows: { text: string }[] }>(
        "SELECT row_to_json(e)::text AS text FROM audit_events e WHERE event_type = 'api_key.created' AND details->>'api_key_id' = ?",
        [created.id],
      );
      expect(audit.rows).toHaveLength(1);
      expect(audit.rows[0]!.text).not.toContain(created.key.slice(12));
      expect((JSON.parse(audit.rows[0]!.text) as { details: Record<string, unknown> }).details).toMatchObject({ source: 'test', key_hint: created.key_hint, scopes: ['invoices:read'] });
    });

    it('refuses scopes that are not permissions of the API, unknown APIs, two owners and past expiries', async () => {
      expect(await appErrorOf(create({ scopes: ['invoices:delete'] }))).toEqual({ code: 'invalid_scope', status: 400 });
      expect(await appErrorOf(create({ scopes: ['admin:users:read'] }))).toEqual({ code: 'invalid_scope', status: 400 });
      expect(await appErrorOf(create({ scopes: [] }))).toEqual({ code: 'invalid_scope', status: 400 });
      expect(await appErrorOf(create({ resource: 'https://nowhere.example.test' }))).toEqual({ code: 'invalid_api_key', status: 400 });
      expect(await appErrorOf(create({ name: '  ' }))).toEqual({ code: 'invalid_api_key', status: 400 });
      expect(await appErrorOf(create({ expiresAt: new Date(Date.now() - 1000) }))).toEqual({ code: 'invalid_api_key', status: 400 });
      expect(await appErrorOf(create({ expiresInDays: 0 }))).toEqual({ code: 'invalid_api_key', status: 400 });
      expect(await appErrorOf(create({ ownerAccountId: crypto.randomUUID() }))).toEqual({ code: 'invalid_api_key', status: 400 });
      expect(await appErrorOf(create({ ownerClientId: 'no-such-client' }))).toEqual({ code: 'invalid_api_key', status: 400 });
    });

    it('authenticates a key, counting every use and the time of the last one', async () => {
      const created = await create({ scopes: ['invoices:read', 'invoices:write'], expiresInDays: 30 });
      const first = await authenticateApiKey(services, created.key);
      expect(first).toEqual({
        ok: true,
        key: {
          id: created.id,
          name: 'billing sync',
          resourceIdentifier: API,
          scopes: ['invoices:read', 'invoices:write'],
          ownerAccountId: undefined,
          ownerClientId: undefined,
          expiresAt: new Date(created.expires_at!),
          createdAt: new Date(created.created_at),
        },
      });
      await authenticateApiKey(services, created.key);
      const after = await getApiKey(services, created.id);
      expect(after.usage_count).toBe(2);
      expect(Date.now() - new Date(after.last_used_at!).getTime()).toBeLessThan(60_000);
    });

    it('tells malformed and unknown keys apart without counting anything', async () => {
      for (const value of ['', 'Bearer x', 'ghk_short', `ghk_${'A'.repeat(42)}!`, `xyz_${crypto.randomBytes(32).toString('base64url')}`]) {
        expect(await authenticateApiKey(services, value)).toEqual({ ok: false, reason: 'malformed' });
      }
      expect(await authenticateApiKey(services, `ghk_${crypto.randomBytes(32).toString('base64url')}`)).toEqual({ ok: false, reason: 'unknown' });
    });

    it('refuses an expired key', async () => {
      const created = await create({ expiresAt: new Date(Date.now() + 1500) });
      expect((await authenticateApiKey(services, created.key)).ok).toBe(true);
      await sleep(1700);
      expect(await authenticateApiKey(services, created.key)).toEqual({ ok: false, reason: 'expired' });
      const after = await getApiKey(services, created.id);
      expect(after).toMatchObject({ status: 'expired', usage_count: 1 });
    });

    it('revokes a key at once, and a second revocation changes nothing', async () => {
      const created = await create();
      expect((await authenticateApiKey(services, created.key)).ok).toBe(true);
      const revoked = await revokeApiKey(services, created.id, { source: 'test' });
      expect(revoked).toMatchObject({ status: 'revoked', revoked_at: expect.any(String) });
      expect(await authenticateApiKey(services, created.key)).toEqual({ ok: false, reason: 'revoked' });
      expect(await revokeApiKey(services, created.id)).toEqual(revoked);
      const events = await services.knex('audit_events').where({ event_type: 'api_key.revoked' }).whereRaw("details->>'api_key_id' = ?", [created.id]);
      expect(events).toHaveLength(1);
      expect(await appErrorOf(rotateApiKey(services, created.id))).toEqual({ code: 'api_key_revoked', status: 409 });
    });

    it('rotates: the successor carries everything over, the old key works during the overlap only', async () => {
      const old = await create({ scopes: ['invoices:write'], expiresInDays: 10 });
      const rotated = await rotateApiKey(services, old.id, { overlapSeconds: 2 }, { source: 'test' });
      expect(rotated.key).toMatch(KEY_FORMAT);
      expect(rotated.key).not.toBe(old.key);
      expect(rotated).toMatchObject({ name: old.name, resource: API, scopes: ['invoices:write'], expires_at: old.expires_at, status: 'active', usage_count: 0 });
      expect(rotated.previous).toMatchObject({ id: old.id, replaced_by: rotated.id, status: 'active' });
      const validUntil = new Date(rotated.previous.expires_at!).getTime();
      expect(validUntil - Date.now()).toBeGreaterThan(0);
      expect(validUntil - Date.now()).toBeLessThanOrEqual(2000);

      expect(await authenticateApiKey(services, old.key)).toMatchObject({ ok: true, key: { id: old.id } });
      expect(await authenticateApiKey(services, rotated.key)).toMatchObject({ ok: true, key: { id: rotated.id } });
      expect(await appErrorOf(rotateApiKey(services, old.id))).toEqual({ code: 'api_key_rotated', status: 409 });
      await sleep(validUntil - Date.now() + 200);
      expect(await authenticateApiKey(services, old.key)).toEqual({ ok: false, reason: 'expired' });
      expect(await authenticateApiKey(services, rotated.key)).toMatchObject({ ok: true });

      const events = await services.knex('audit_events').where({ event_type: 'api_key.rotated' }).whereRaw("details->>'api_key_id' = ?", [old.id]);
      expect(events).toHaveLength(1);
      expect(events[0].details).toMatchObject({ replaced_by: rotated.id, overlap_seconds: 2, source: 'test' });
    });

    it('rotates with no overlap, and by default keeps the old key for API_KEY_ROTATION_OVERLAP', async () => {
      const immediate = await create();
      const next = await rotateApiKey(services, immediate.id, { overlapSeconds: 0 });
      expect(await authenticateApiKey(services, immediate.key)).toEqual({ ok: false, reason: 'expired' });
      expect((await authenticateApiKey(services, next.key)).ok).toBe(true);

      const slow = await create();
      const started = Date.now();
      const successor = await rotateApiKey(services, slow.id);
      const overlap = new Date(successor.previous.expires_at!).getTime() - started;
      expect(Math.abs(overlap - services.config.apiKeyRotationOverlap * 1000)).toBeLessThan(60_000);
      expect(services.config.apiKeyRotationOverlap).toBe(86400);
    });

    it('refuses the key of an account that is not active, and accepts it again once reactivated', async () => {
      const account = await createUser(services, { email: `owner-${crypto.randomUUID()}@example.com`, password: 'correct horse battery', emailVerified: true });
      const created = await create({ ownerAccountId: account.id });
      expect(await authenticateApiKey(services, created.key)).toMatchObject({ ok: true, key: { ownerAccountId: account.id } });
      await changeAccountStatusById(services, account.id, 'suspend');
      expect(await authenticateApiKey(services, created.key)).toEqual({ ok: false, reason: 'owner_inactive' });
      await changeAccountStatusById(services, account.id, 'reactivate');
      expect((await authenticateApiKey(services, created.key)).ok).toBe(true);
      expect(await listApiKeys(services, { ownerAccountId: account.id })).toEqual([expect.objectContaining({ id: created.id, owner_account_id: account.id, usage_count: 2 })]);
    });

    it('lists keys by owner client and API, and answers 404 for unknown ids', async () => {
      const client = await createClient(services, { name: 'Billing service', grantTypes: ['client_credentials'] });
      const created = await create({ ownerClientId: client.client_id });
      expect((await listApiKeys(services, { ownerClientId: client.client_id })).map((k) => k.id)).toEqual([created.id]);
      expect((await listApiKeys(services, { resource: API })).map((k) => k.id)).toContain(created.id);
      expect((await listApiKeys(services, { resource: managementResourceIdentifier(services.config) })).map((k) => k.id)).not.toContain(created.id);
      expect(await listApiKeys(services, { resource: 'https://nowhere.example.test' })).toEqual([]);
      for (const id of [crypto.randomUUID(), 'not-a-uuid']) {
        expect(await appErrorOf(getApiKey(services, id))).toEqual({ code: 'api_key_not_found', status: 404 });
        expect(await appErrorOf(revokeApiKey(services, id))).toEqual({ code: 'api_key_not_found', status: 404 });
        expect(await appErrorOf(rotateApiKey(services, id))).toEqual({ code: 'api_key_not_found', status: 404 });
      }
    });
  });
}

domainSuite('embedded PGlite', async () => {
  const dataDir = tempDataDir();
  const services = await createServices(loadConfig({ DATA_DIR: dataDir }), logger);
  return { services, cleanup: async () => fs.rmSync(dataDir, { recursive: true, force: true }) };
});

domainSuite(
  'PostgreSQL',
  async () => {
    const database: TestDatabase = await createTestDatabase();
    const dataDir = tempDataDir();
    const services = await createServices(loadConfig({ DATA_DIR: dataDir, DATABASE_URL: database.url }), logger);
    return {
      services,
      cleanup: async () => {
        await database.drop();
        fs.rmSync(dataDir, { recursive: true, force: true });
      },
    };
  },
  !TEST_DATABASE_URL,
);

// ---------------------------------------------------------------------------------------------
// Introspection over HTTP
// ---------------------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function ok(result: CliResult): Json {
  expect(result.stderr, 'nothing on stderr').toBe('');
  expect(result.code).toBe(0);
  return result.json as Json;
}

function basic(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

describe('API key introspection over HTTP', () => {
  let server: RunningServer;
  let database: TestDatabase | undefined;
  let env: Record<string, string>;
  let endpoint: string;
  let resourceServer: { client_id: string; client_secret: string };
  let key: Json & { key: string; id: string };

  const cli = async (...args: string[]): Promise<Json> => ok(await runCli(env, args));

  async function introspect(form: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number; body: Json; headers: Headers }> {
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
    });
    return { status: res.status, body: (await res.json()) as Json, headers: res.headers };
  }

  const asResourceServer = () => ({ authorization: basic(resourceServer.client_id, resourceServer.client_secret) });

  beforeAll(async () => {
    const dataDir = tempDataDir('gh-apikeys-');
    database = TEST_DATABASE_URL ? await createTestDatabase() : undefined;
    env = { DATA_DIR: dataDir, ...testSecrets(), ...(database ? { DATABASE_URL: database.url } : {}) };
    server = await startServer(env);
    env = { ...env, ISSUER: server.url };
    const discovery = (await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as { introspection_endpoint: string };
    endpoint = discovery.introspection_endpoint;
    await cli('resource', 'create', '--identifier', API, '--scope', 'invoices:read invoices:write');
    resourceServer = (await cli('client', 'create', '--name', 'Invoices API', '--grant-type', 'client_credentials')) as typeof resourceServer;
    key = (await cli('api-key', 'create', '--name', 'nightly export', '--resource', API, '--scope', 'invoices:read', '--expires-in-days', '7', '--owner-client', resourceServer.client_id)) as typeof key;
  }, 180_000);

  afterAll(async () => {
    await server?.stop();
    await database?.drop();
    if (env?.DATA_DIR) fs.rmSync(env.DATA_DIR, { recursive: true, force: true });
  });

  it('answers an authenticated resource server with the key\'s scopes, audience, owner and lifetime', async () => {
    expect(endpoint).toBe(`${server.url}/token/introspection`);
    const res = await introspect({ token: key.key }, asResourceServer());
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toEqual({
      active: true,
      token_type: 'api_key',
      scope: 'invoices:read',
      client_id: resourceServer.client_id,
      aud: API,
      iss: server.url,
      jti: key.id,
      exp: Math.floor(new Date(String(key.expires_at)).getTime() / 1000),
      iat: Math.floor(new Date(String(key.created_at)).getTime() / 1000),
      name: 'nightly export',
    });
    const listed = (await cli('api-key', 'list', '--resource', API)).api_keys as Json[];
    expect(listed.find((k) => k.id === key.id)).toMatchObject({ usage_count: 1, last_used_at: expect.any(String) });
    expect(JSON.stringify(listed)).not.toContain(key.key);
  });

  it('accepts client_secret_post from a client registered for it, and no other method', async () => {
    const postClient = (await cli('client', 'create', '--name', 'Reports API', '--grant-type', 'client_credentials', '--auth-method', 'client_secret_post')) as { client_id: string; client_secret: string };
    const res = await introspect({ token: key.key, client_id: postClient.client_id, client_secret: postClient.client_secret });
    expect(res.body).toMatchObject({ active: true, token_type: 'api_key' });
    const wrongMethod = await introspect({ token: key.key }, { authorization: basic(postClient.client_id, postClient.client_secret) });
    expect(wrongMethod.status).toBe(401);
    expect(wrongMethod.body.error).toBe('invalid_client');
  });

  it('refuses unauthenticated callers (400, as the provider does), wrong secrets and public clients (401)', async () => {
    const anonymous = await introspect({ token: key.key });
    expect(anonymous.status).toBe(400);
    expect(anonymous.body.error).toBe('invalid_request');

    const wrongSecret = await introspect({ token: key.key }, { authorization: basic(resourceServer.client_id, 'not-the-secret-at-all') });
    expect(wrongSecret.status).toBe(401);
    expect(wrongSecret.body.error).toBe('invalid_client');
    expect(wrongSecret.headers.get('www-authenticate')).toContain('Basic');

    const spa = (await cli('client', 'create', '--name', 'SPA', '--auth-method', 'none', '--redirect-uri', 'http://localhost:5173/cb')) as { client_id: string };
    const publicClient = await introspect({ token: key.key, client_id: spa.client_id });
    expect(publicClient.status).toBe(401);
    expect(publicClient.body.error).toBe('invalid_client');

    // None of these counted as a use of the key.
    const listed = (await cli('api-key', 'list', '--owner-client', resourceServer.client_id)).api_keys as Json[];
    expect(listed.find((k) => k.id === key.id)?.usage_count).toBe(2);
  });

  it('answers active:false for unknown, rotated-out and revoked keys', async () => {
    expect((await introspect({ token: `ghk_${crypto.randomBytes(32).toString('base64url')}` }, asResourceServer())).body).toEqual({ active: false });
    expect((await introspect({ token: 'ghk_not-a-key' }, asResourceServer())).body).toEqual({ active: false });

    const rotated = (await cli('api-key', 'rotate', key.id, '--overlap-seconds', '0')) as Json & { key: string; id: string; previous: Json };
    expect(rotated.previous).toMatchObject({ id: key.id, replaced_by: rotated.id });
    expect((await introspect({ token: key.key }, asResourceServer())).body).toEqual({ active: false });
    expect((await introspect({ token: rotated.key }, asResourceServer())).body).toMatchObject({ active: true, jti: rotated.id, scope: 'invoices:read' });

    expect(await cli('api-key', 'revoke', rotated.id)).toMatchObject({ id: rotated.id, status: 'revoked' });
    expect((await introspect({ token: rotated.key }, asResourceServer())).body).toEqual({ active: false });
  });

  it('leaves introspection of the provider\'s own tokens to the provider', async () => {
    const token = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...asResourceServer() },
      body: new URLSearchParams({ grant_type: 'client_credentials' }).toString(),
    });
    expect(token.status).toBe(200);
    const { access_token: accessToken } = (await token.json()) as { access_token: string };
    const res = await introspect({ token: accessToken }, asResourceServer());
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ active: true, client_id: resourceServer.client_id, token_type: 'Bearer' });
    // An anonymous request is refused the same way for both kinds of token.
    expect((await introspect({ token: accessToken })).status).toBe(400);
  });

  it('create, list, rotate and revoke report bad input as errors', async () => {
    const badScope = await runCli(env, ['api-key', 'create', '--name', 'x', '--resource', API, '--scope', 'invoices:delete']);
    expect(badScope.code).toBe(1);
    expect(JSON.parse(badScope.stderr.trim())).toMatchObject({ error: 'invalid_scope' });
    const badOverlap = await runCli(env, ['api-key', 'rotate', key.id, '--overlap-seconds', '-1']);
    expect(badOverlap.code).toBe(2);
    const unknown = await runCli(env, ['api-key', 'revoke', crypto.randomUUID()]);
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.stderr.trim())).toMatchObject({ error: 'api_key_not_found' });
  });
});
