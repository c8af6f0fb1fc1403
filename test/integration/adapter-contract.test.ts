// One contract for every oidc-provider storage adapter, run against each backend: embedded
// PGlite, a real PostgreSQL server and a real Redis. The PostgreSQL and Redis blocks skip
// (visibly) when TEST_DATABASE_URL / TEST_REDIS_URL are unset.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import knexFactory from 'knex';
import { Redis } from 'ioredis';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/db/database.ts';
import { migrateLatest } from '../../src/db/migrate.ts';
import { sqlAdapterFactory, sweepExpiredPayloads } from '../../src/oidc/adapters/sql.ts';
import { redisAdapterFactory } from '../../src/oidc/adapters/redis.ts';
import { createTestDatabase, TEST_DATABASE_URL, TEST_REDIS_URL, uniqueRedisPrefix } from '../helpers/postgres.ts';

type ContractAdapter = Adapter & { consumeOnce(id: string): Promise<boolean> };

interface Backend {
  factory: (model: string) => ContractAdapter;
  /** Whether the record is still held at all, expired or not (SQL keeps rows until swept). */
  stored(model: string, id: string): Promise<boolean>;
  /** Removes expired records where the backend does not do so by itself. */
  sweep?: () => Promise<number>;
  /** Statements sent so far, where the backend counts them (SQL). */
  queries?: () => number;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const newId = () => crypto.randomBytes(12).toString('base64url');
const nowSeconds = () => Math.floor(Date.now() / 1000);

// Shapes close to what oidc-provider stores, including the awkward bits: empty arrays, nested
// objects, non-ASCII text and keys that are not identifiers.
function samplePayload(model: string, extra: AdapterPayload = {}): AdapterPayload {
  const base: AdapterPayload = { iat: nowSeconds(), exp: nowSeconds() + 60, kind: model, jti: newId() };
  const byModel: Record<string, AdapterPayload> = {
    Session: { uid: newId(), accountId: 'acct-1', loginTs: nowSeconds(), amr: [], authorizations: { rp: { grantId: newId(), sid: newId() } } },
    AccessToken: { accountId: 'acct-1', clientId: 'rp', grantId: newId(), scope: 'openid email', claims: {}, 'x5t#S256': 'thumb' },
    AuthorizationCode: { accountId: 'acct-1', clientId: 'rp', grantId: newId(), redirectUri: 'https://rp.example/cb', codeChallenge: 'c', codeChallengeMethod: 'S256', nonce: 'n' },
    RefreshToken: { accountId: 'acct-1', clientId: 'rp', grantId: newId(), rotations: 0, iiat: nowSeconds(), resource: ['https://api.example'] },
    Grant: { accountId: 'acct-1', clientId: 'rp', openid: { scope: 'openid', claims: [] }, resources: { 'https://api.example': 'read' } },
    Interaction: { uid: newId(), returnTo: 'https://op.example/auth/x', params: { client_id: 'rp', scope: 'openid' }, prompt: { name: 'login', reasons: [], details: {} } },
    PushedAuthorizationRequest: { clientId: 'rp', request: 'eyJhbGciOiJub25lIn0.e30.', trusted: [] },
    ReplayDetection: { iss: 'rp' },
    DeviceCode: { clientId: 'rp', userCode: newId(), params: { client_id: 'rp' }, deviceInfo: { ua: 'Tëst ☃' } },
  };
  return { ...base, ...byModel[model], ...extra };
}

const MODELS = ['Session', 'AccessToken', 'AuthorizationCode', 'RefreshToken', 'Grant', 'Interaction', 'PushedAuthorizationRequest', 'ReplayDetection', 'DeviceCode'];

function contract(name: string, makeBackend: () => Promise<Backend>, skip = false): void {
  describe.skipIf(skip)(`adapter contract: ${name}`, () => {
    let backend: Backend;
    const adapter = (model: string) => backend.factory(model);

    beforeAll(async () => {
      backend = await makeBackend();
    });
    afterAll(async () => {
      await backend?.close();
    });

    it.each(MODELS)('round-trips a %s payload', async (model) => {
      const id = newId();
      const payload = samplePayload(model);
      await adapter(model).upsert(id, payload, 60);
      expect(await adapter(model).find(id)).toEqual(payload);
    });

    it('keeps a record without expiresIn indefinitely and models apart', async () => {
      const id = newId();
      const payload = samplePayload('Grant');
      await adapter('Grant').upsert(id, payload);
      expect(await adapter('Grant').find(id)).toEqual(payload);
      expect(await adapter('AccessToken').find(id)).toBeUndefined();
    });

    it('answers finds of one value under several models at once, each from its own record', async () => {
      // What introspection does: the same token value looked up as several kinds of token together.
      const id = newId();
      await adapter('AccessToken').upsert(id, samplePayload('AccessToken'), 60);
      await adapter('RefreshToken').upsert(id, samplePayload('RefreshToken'), 60);
      await adapter('RefreshToken').consume(id);
      await adapter('AuthorizationCode').upsert(id, samplePayload('AuthorizationCode'), 1);
      await sleep(1100);
      const before = backend.queries?.();
      const [access, refresh, code, session, again] = await Promise.all([
        adapter('AccessToken').find(id),
        adapter('RefreshToken').find(id),
        adapter('AuthorizationCode').find(id),
        adapter('Session').find(id),
        adapter('AccessToken').find(id),
      ]);
      if (before !== undefined) expect(backend.queries!() - before).toBe(1);
      expect(access).toMatchObject({ kind: 'AccessToken', scope: 'openid email' });
      expect(access?.consumed).toBeUndefined();
      expect(refresh).toMatchObject({ kind: 'RefreshToken', consumed: expect.any(Number) });
      expect(code).toBeUndefined();
      expect(session).toBeUndefined();
      // Asked for twice in one turn: equal records, but not one object for two callers to change.
      expect(again).toEqual(access);
      expect(again).not.toBe(access);
    });

    it('returns undefined for unknown ids, uids and user codes', async () => {
      expect(await adapter('AccessToken').find(newId())).toBeUndefined();
      expect(await adapter('Session').findByUid(newId())).toBeUndefined();
      expect(await adapter('DeviceCode').findByUserCode(newId())).toBeUndefined();
    });

    it('overwrites the payload on upsert', async () => {
      const id = newId();
      const a = adapter('Interaction');
      await a.upsert(id, samplePayload('Interaction'), 60);
      const replacement = samplePayload('Interaction', { result: { login: { accountId: 'acct-2' } } });
      await a.upsert(id, replacement, 60);
      expect(await a.find(id)).toEqual(replacement);
    });

    it('expires records after expiresIn, secondary lookups included', async () => {
      const at = newId();
      const sessionId = newId();
      const session = samplePayload('Session');
      const deviceId = newId();
      const device = samplePayload('DeviceCode');
      const codeId = newId();
      const kept = newId();
      await adapter('AccessToken').upsert(at, samplePayload('AccessToken'), 1);
      await adapter('Session').upsert(sessionId, session, 1);
      await adapter('DeviceCode').upsert(deviceId, device, 1);
      // Consumption must not extend (or drop) the lifetime of what it marks.
      await adapter('AuthorizationCode').upsert(codeId, samplePayload('AuthorizationCode'), 1);
      await adapter('AuthorizationCode').consume(codeId);
      await adapter('AccessToken').upsert(kept, samplePayload('AccessToken'), 60);
      expect(await adapter('AuthorizationCode').find(codeId)).toHaveProperty('consumed');

      await sleep(1500);

      expect(await adapter('AccessToken').find(at)).toBeUndefined();
      expect(await adapter('Session').find(sessionId)).toBeUndefined();
      expect(await adapter('Session').findByUid(session.uid!)).toBeUndefined();
      expect(await adapter('DeviceCode').findByUserCode(device.userCode!)).toBeUndefined();
      expect(await adapter('AuthorizationCode').find(codeId)).toBeUndefined();
      if (backend.sweep) {
        expect(await backend.stored('AccessToken', at)).toBe(true);
        expect(await backend.sweep()).toBeGreaterThanOrEqual(4);
      }
      for (const [model, id] of [['AccessToken', at], ['Session', sessionId], ['DeviceCode', deviceId], ['AuthorizationCode', codeId]] as const) {
        expect(await backend.stored(model, id), `${model} still stored`).toBe(false);
      }
      expect(await adapter('AccessToken').find(kept)).toBeDefined();
    });

    it('finds a Session by uid, follows a uid change, and scopes the lookup to the model', async () => {
      const id = newId();
      const session = samplePayload('Session');
      await adapter('Session').upsert(id, session, 60);
      expect(await adapter('Session').findByUid(session.uid!)).toEqual(session);
      expect(await adapter('Interaction').findByUid(session.uid!)).toBeUndefined();

      const moved = { ...session, uid: newId() };
      await adapter('Session').upsert(id, moved, 60);
      expect(await adapter('Session').findByUid(moved.uid)).toEqual(moved);
      expect(await adapter('Session').findByUid(session.uid!)).toBeUndefined();

      await adapter('Session').destroy(id);
      expect(await adapter('Session').findByUid(moved.uid)).toBeUndefined();
    });

    it('finds a DeviceCode by user code and follows a user code change', async () => {
      const id = newId();
      const device = samplePayload('DeviceCode');
      await adapter('DeviceCode').upsert(id, device, 60);
      expect(await adapter('DeviceCode').findByUserCode(device.userCode!)).toEqual(device);

      const updated = { ...device, userCode: newId(), accountId: 'acct-1' };
      await adapter('DeviceCode').upsert(id, updated, 60);
      expect(await adapter('DeviceCode').findByUserCode(updated.userCode)).toEqual(updated);
      expect(await adapter('DeviceCode').findByUserCode(device.userCode!)).toBeUndefined();
    });

    it('consumes exactly once under concurrency and never changes the mark afterwards', async () => {
      const id = newId();
      const payload = samplePayload('AuthorizationCode');
      const a = adapter('AuthorizationCode');
      await a.upsert(id, payload, 60);

      const wins = await Promise.all(Array.from({ length: 20 }, () => a.consumeOnce(id)));
      expect(wins.filter(Boolean)).toHaveLength(1);

      const stored = await a.find(id);
      expect(stored).toEqual({ ...payload, consumed: expect.any(Number) });
      const consumed = stored!.consumed as number;
      expect(Math.abs(consumed - nowSeconds())).toBeLessThan(60);

      // A second later a repeat would stamp a different second if it were not refused.
      await sleep(1100);
      await a.consume(id);
      expect(await a.consumeOnce(id)).toBe(false);
      expect((await a.find(id))!.consumed).toBe(consumed);
    });

    it('consumes through the plain Adapter method, concurrently, for any model', async () => {
      for (const model of ['PushedAuthorizationRequest', 'RefreshToken', 'DeviceCode']) {
        const id = newId();
        const payload = samplePayload(model);
        await adapter(model).upsert(id, payload, 60);
        await Promise.all(Array.from({ length: 20 }, () => adapter(model).consume(id)));
        expect(await adapter(model).find(id)).toEqual({ ...payload, consumed: expect.any(Number) });
      }
      expect(await adapter('RefreshToken').consumeOnce(newId())).toBe(false);
      await expect(adapter('RefreshToken').consume(newId())).resolves.toBeUndefined();
    });

    it('keeps a consumption when an unconsumed copy is saved again', async () => {
      const id = newId();
      const payload = samplePayload('RefreshToken');
      const a = adapter('RefreshToken');
      await a.upsert(id, payload, 60);
      await a.consume(id);
      const { consumed } = (await a.find(id))!;
      await a.upsert(id, { ...payload, rotations: 1 }, 60);
      expect(await a.find(id)).toEqual({ ...payload, rotations: 1, consumed });
    });

    it('destroys one record only', async () => {
      const id = newId();
      await adapter('AccessToken').upsert(id, samplePayload('AccessToken'), 60);
      await adapter('RefreshToken').upsert(id, samplePayload('RefreshToken'), 60);
      await adapter('AccessToken').destroy(id);
      expect(await adapter('AccessToken').find(id)).toBeUndefined();
      expect(await adapter('RefreshToken').find(id)).toBeDefined();
      await expect(adapter('AccessToken').destroy(newId())).resolves.toBeUndefined();
    });

    it('revokes every record of a grant, whatever its model, and nothing else', async () => {
      const grantId = newId();
      const otherGrantId = newId();
      const ids = { at: newId(), rt: newId(), code: newId(), device: newId(), interaction: newId(), otherAt: newId(), otherRt: newId() };
      const device = samplePayload('DeviceCode', { grantId });
      await adapter('Grant').upsert(grantId, samplePayload('Grant'), 3600);
      await adapter('AccessToken').upsert(ids.at, samplePayload('AccessToken', { grantId }), 60);
      await adapter('RefreshToken').upsert(ids.rt, samplePayload('RefreshToken', { grantId }), 3600);
      await adapter('AuthorizationCode').upsert(ids.code, samplePayload('AuthorizationCode', { grantId }), 60);
      await adapter('DeviceCode').upsert(ids.device, device, 600);
      await adapter('Interaction').upsert(ids.interaction, samplePayload('Interaction', { grantId }), 600);
      await adapter('AccessToken').upsert(ids.otherAt, samplePayload('AccessToken', { grantId: otherGrantId }), 60);
      await adapter('RefreshToken').upsert(ids.otherRt, samplePayload('RefreshToken', { grantId: otherGrantId }), 3600);

      // oidc-provider calls this on the AccessToken model first; one call must reach all models.
      await adapter('AccessToken').revokeByGrantId(grantId);

      expect(await adapter('AccessToken').find(ids.at)).toBeUndefined();
      expect(await adapter('RefreshToken').find(ids.rt)).toBeUndefined();
      expect(await adapter('AuthorizationCode').find(ids.code)).toBeUndefined();
      expect(await adapter('DeviceCode').find(ids.device)).toBeUndefined();
      expect(await adapter('DeviceCode').findByUserCode(device.userCode!)).toBeUndefined();
      expect(await adapter('Interaction').find(ids.interaction)).toBeUndefined();
      expect(await adapter('AccessToken').find(ids.otherAt)).toBeDefined();
      expect(await adapter('RefreshToken').find(ids.otherRt)).toBeDefined();
      // The Grant record itself carries no grantId: oidc-provider removes it with destroy(), and
      // only when revokeGrantPolicy says so (revoking a single access token keeps the grant).
      expect(await adapter('Grant').find(grantId)).toBeDefined();
      await adapter('Grant').destroy(grantId);
      expect(await adapter('Grant').find(grantId)).toBeUndefined();

      // A grant revoked once can gather (and lose) records again.
      const late = newId();
      await adapter('AccessToken').upsert(late, samplePayload('AccessToken', { grantId }), 60);
      await adapter('RefreshToken').revokeByGrantId(grantId);
      expect(await adapter('AccessToken').find(late)).toBeUndefined();
      await expect(adapter('AccessToken').revokeByGrantId(newId())).resolves.toBeUndefined();
    });

    it('moves a record between grants when upsert changes its grantId', async () => {
      const id = newId();
      const first = newId();
      const second = newId();
      const a = adapter('RefreshToken');
      await a.upsert(id, samplePayload('RefreshToken', { grantId: first }), 60);
      await a.upsert(id, samplePayload('RefreshToken', { grantId: second }), 60);
      await a.revokeByGrantId(first);
      expect(await a.find(id)).toBeDefined();
      await a.revokeByGrantId(second);
      expect(await a.find(id)).toBeUndefined();
    });

    it('works as the adapter of a real oidc-provider Provider', async () => {
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      const provider = new Provider('http://localhost:1', {
        adapter: backend.factory,
        clients: [{ client_id: 'rp', client_secret: 'a-client-secret-of-some-length', redirect_uris: ['https://rp.example/cb'], grant_types: ['authorization_code', 'refresh_token'], id_token_signed_response_alg: 'ES256' }],
        jwks: { keys: [{ ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig' }] },
        features: { devInteractions: { enabled: false } },
        ttl: { Grant: 3600, Session: 3600, AccessToken: 600, RefreshToken: 3600 },
      });
      const client = await provider.Client.find('rp');
      if (!client) throw new Error('static client not loaded');

      // The typings declare no constructor arguments; loginAccount sets the same field.
      const session = new provider.Session();
      session.loginAccount({ accountId: 'acct-1' });
      await session.save(3600);
      expect((await provider.Session.findByUid(session.uid))?.accountId).toBe('acct-1');

      const grant = new provider.Grant({ accountId: 'acct-1', clientId: 'rp' });
      grant.addOIDCScope('openid');
      const grantId = await grant.save();
      const accessToken = await new provider.AccessToken({ accountId: 'acct-1', client, grantId, gty: 'authorization_code', scope: 'openid' }).save();
      const refreshToken = await new provider.RefreshToken({ accountId: 'acct-1', client, grantId, gty: 'authorization_code', scope: 'openid' }).save();

      expect((await provider.AccessToken.find(accessToken))?.grantId).toBe(grantId);
      const found = await provider.RefreshToken.find(refreshToken);
      expect(found?.consumed).toBeFalsy();
      await found!.consume();
      expect((await provider.RefreshToken.find(refreshToken))?.consumed).toEqual(expect.any(Number));

      await provider.AccessToken.revokeByGrantId(grantId);
      expect(await provider.AccessToken.find(accessToken)).toBeUndefined();
      expect(await provider.RefreshToken.find(refreshToken)).toBeUndefined();
      expect(await provider.Grant.find(grantId)).toBeDefined();
    });
  });
}

contract('PGlite', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-adapter-'));
  const db = await openDatabase(loadConfig({ DATA_DIR: dir }));
  await migrateLatest(db.knex);
  let queries = 0;
  db.knex.on('query', () => { queries += 1; });
  return {
    factory: sqlAdapterFactory(db.knex),
    queries: () => queries,
    stored: async (model, id) => (await db.knex('oidc_payloads').where({ model, id }).first()) !== undefined,
    sweep: () => sweepExpiredPayloads(db.knex),
    async close() {
      await db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

contract('PostgreSQL', async () => {
  const database = await createTestDatabase('gh_adapter');
  const knex = knexFactory({ client: 'pg', connection: database.url, pool: { min: 0, max: 10 } });
  await migrateLatest(knex);
  let queries = 0;
  knex.on('query', () => { queries += 1; });
  return {
    factory: sqlAdapterFactory(knex),
    queries: () => queries,
    stored: async (model, id) => (await knex('oidc_payloads').where({ model, id }).first()) !== undefined,
    sweep: () => sweepExpiredPayloads(knex),
    async close() {
      await knex.destroy();
      await database.drop();
    },
  };
}, !TEST_DATABASE_URL);

async function deleteByPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

contract('Redis', async () => {
  const redis = new Redis(TEST_REDIS_URL!);
  const prefix = uniqueRedisPrefix();
  return {
    factory: redisAdapterFactory(redis, prefix),
    stored: async (model, id) => (await redis.exists(`${prefix}${model}:${id}`)) === 1,
    async close() {
      await deleteByPrefix(redis, prefix);
      await redis.quit();
    },
  };
}, !TEST_REDIS_URL);

describe.skipIf(!TEST_REDIS_URL)('Redis adapter: grant index lifetime', () => {
  let redis: Redis;
  const prefix = uniqueRedisPrefix();

  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL!);
  });
  afterAll(async () => {
    await deleteByPrefix(redis, prefix);
    await redis.quit();
  });

  it('outlives its longest-lived member and never shortens', async () => {
    const factory = redisAdapterFactory(redis, prefix);
    const grantId = newId();
    const indexKey = `${prefix}grant:${grantId}`;
    await factory('AccessToken').upsert(newId(), samplePayload('AccessToken', { grantId }), 60);
    expect(await redis.ttl(indexKey)).toBeGreaterThan(50);
    await factory('RefreshToken').upsert(newId(), samplePayload('RefreshToken', { grantId }), 3600);
    expect(await redis.ttl(indexKey)).toBeGreaterThan(3500);
    await factory('AccessToken').upsert(newId(), samplePayload('AccessToken', { grantId }), 60);
    expect(await redis.ttl(indexKey)).toBeGreaterThan(3500);
    // A member that never expires pins the index.
    await factory('AuthorizationCode').upsert(newId(), samplePayload('AuthorizationCode', { grantId }));
    expect(await redis.ttl(indexKey)).toBe(-1);
    await factory('AccessToken').upsert(newId(), samplePayload('AccessToken', { grantId }), 60);
    expect(await redis.ttl(indexKey)).toBe(-1);
  });

  it('refuses a client with an ioredis keyPrefix', () => {
    const prefixed = new Redis(TEST_REDIS_URL!, { keyPrefix: 'x:', lazyConnect: true });
    expect(() => redisAdapterFactory(prefixed)('Session')).toThrow(/keyPrefix/);
    prefixed.disconnect();
  });
});
