// Accounts, clients and resource servers against real storage: embedded PGlite always, and a
// PostgreSQL server when TEST_DATABASE_URL is set (skipped visibly otherwise).
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import { loadConfig } from '../../src/config.ts';
import { createClient, deleteClient, listClients, loadProviderClientMetadata, type CreateClientInput } from '../../src/domain/clients.ts';
import { createResource, findResource, listResources } from '../../src/domain/resources.ts';
import { authenticateWithPassword, createUser, findAccountById, listUsers, setPassword } from '../../src/domain/users.ts';
import { createLogger } from '../../src/logger.ts';
import { createServices, type Services } from '../../src/services.ts';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/postgres.ts';
import { tempDataDir } from '../helpers/server.ts';

interface AuditRow {
  event_type: string;
  outcome: string;
  account_id: string | null;
  client_id: string | null;
  ip: string | null;
  user_agent: string | null;
  details: Record<string, unknown>;
}

async function auditEvents(services: Services, type: string): Promise<AuditRow[]> {
  return services.knex('audit_events').where({ event_type: type }).orderBy('id');
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

// A provider configured only as far as client validation needs, to prove that what we store is
// metadata oidc-provider accepts. It only offers ID token algorithms it holds keys for.
let provider: Provider;

beforeAll(async () => {
  const jwk = async (alg: 'RS256' | 'ES256') => ({ ...(await exportJWK((await generateKeyPair(alg, { extractable: true })).privateKey)), alg, use: 'sig' });
  provider = new Provider('http://localhost:3000', {
    jwks: { keys: [await jwk('RS256'), await jwk('ES256')] },
    features: { clientCredentials: { enabled: true } },
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    extraClientMetadata: { properties: ['first_party'] },
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256'] },
  });
});

function domainSuite(name: string, open: () => Promise<{ services: Services; cleanup(): Promise<void> }>, skip = false): void {
  describe.skipIf(skip)(`accounts, clients and resources: ${name}`, () => {
    let services: Services;
    let cleanup: () => Promise<void>;

    beforeAll(async () => {
      ({ services, cleanup } = await open());
    });

    afterAll(async () => {
      await services?.close();
      await cleanup?.();
    });

    describe('users', () => {
      it('creates an account with a normalized email and an argon2id hash, and audits it', async () => {
        const account = await createUser(services, { email: '  Ada@Example.COM ', password: 'correct horse battery', name: 'Ada Lovelace', emailVerified: true }, { source: 'test' });
        expect(account).toEqual({
          id: expect.stringMatching(/^[0-9a-f-]{36}$/),
          email: 'Ada@example.com',
          name: 'Ada Lovelace',
          email_verified: true,
          status: 'active',
          created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        });
        const row = await services.knex('accounts').where({ id: account.id }).first<{ password_hash: string }>();
        expect(row.password_hash).toMatch(/^\$argon2id\$/);
        expect(row.password_hash).not.toContain('correct horse');
        const [audit] = await auditEvents(services, 'user.created');
        expect(audit).toMatchObject({ outcome: 'success', account_id: account.id, details: { source: 'test' } });
      });

      it('refuses a second account whose email differs only in case', async () => {
        const err = await rejection(createUser(services, { email: 'ada@EXAMPLE.com', password: 'another password' }));
        expect(err).toMatchObject({ code: 'email_taken', status: 409, message: 'an account with this email already exists' });
        const err2 = await rejection(createUser(services, { email: 'ADA@example.com', password: 'another password' }));
        expect(err2).toMatchObject({ code: 'email_taken' });
        const ada = (await listUsers(services)).filter((u) => u.email.toLowerCase() === 'ada@example.com');
        expect(ada).toHaveLength(1);
        expect(await auditEvents(services, 'user.created')).toHaveLength(1);
      });

      it('rejects bad emails and short passwords before storing anything', async () => {
        expect(await rejection(createUser(services, { email: 'not-an-email', password: 'long enough password' }))).toMatchObject({ code: 'invalid_email', status: 400 });
        expect(await rejection(createUser(services, { email: 'bob@example.com', password: 'short' }))).toMatchObject({ code: 'weak_password', status: 400 });
        expect((await listUsers(services)).map((u) => u.email)).not.toContain('bob@example.com');
      });

      it('finds an account by id, and nothing for unknown or malformed ids', async () => {
        const [ada] = await listUsers(services);
        expect(await findAccountById(services.knex, ada!.id)).toEqual({
          id: ada!.id, email: 'Ada@example.com', emailVerified: true, name: 'Ada Lovelace', status: 'active', phoneNumber: null, phoneNumberVerified: false, tokensValidAfter: null,
        });
        expect(await findAccountById(services.knex, '00000000-0000-4000-8000-000000000000')).toBeUndefined();
        expect(await findAccountById(services.knex, 'not-a-uuid')).toBeUndefined();
      });
    });

    describe('password sign-in', () => {
      const meta = { ip: '203.0.113.7', userAgent: 'vitest', clientId: 'web-app' };

      it('signs in with the right password, whatever the email case', async () => {
        const result = await authenticateWithPassword(services, { email: 'ADA@example.com', password: 'correct horse battery' }, meta);
        expect(result).toEqual({ ok: true, account: expect.objectContaining({ email: 'Ada@example.com', status: 'active' }) });
        const events = await auditEvents(services, 'login.password');
        expect(events.at(-1)).toMatchObject({ outcome: 'success', ip: '203.0.113.7', user_agent: 'vitest', client_id: 'web-app' });
      });

      it('answers a wrong password and an unknown email identically, recording why only in the audit log', async () => {
        const wrong = await authenticateWithPassword(services, { email: 'ada@example.com', password: 'wrong password!' }, meta);
        const unknown = await authenticateWithPassword(services, { email: 'nobody@example.com', password: 'correct horse battery' }, meta);
        const malformed = await authenticateWithPassword(services, { email: 'no at sign', password: 'correct horse battery' }, meta);
        expect(wrong).toStrictEqual({ ok: false });
        expect(unknown).toStrictEqual({ ok: false });
        expect(malformed).toStrictEqual({ ok: false });
        const failures = (await auditEvents(services, 'login.password')).filter((e) => e.outcome === 'failure');
        expect(failures.map((e) => e.details.reason)).toEqual(['bad_password', 'unknown_email', 'unknown_email']);
        expect(failures[0]!.account_id).not.toBeNull();
        expect(failures[1]!.account_id).toBeNull();
      });

      it('spends comparable time on unknown emails and wrong passwords', async () => {
        // Warm-up: the first unknown-email attempt computes the shared dummy hash.
        await authenticateWithPassword(services, { email: 'warmup@example.com', password: 'x'.repeat(12) });
        const time = async (email: string) => {
          const start = process.hrtime.bigint();
          await authenticateWithPassword(services, { email, password: 'wrong password!' });
          return Number(process.hrtime.bigint() - start) / 1e6;
        };
        const known: number[] = [];
        const unknown: number[] = [];
        for (let i = 0; i < 3; i++) {
          known.push(await time('ada@example.com'));
          unknown.push(await time(`ghost${i}@example.com`));
        }
        const median = (xs: number[]) => xs.sort((a, b) => a - b)[1]!;
        // Both run one argon2 verification (tens of ms); skipping it would make unknown ~1 ms.
        expect(median(unknown)).toBeGreaterThan(median(known) * 0.5);
      });

      it('refuses a suspended account even with the right password', async () => {
        const bob = await createUser(services, { email: 'bob@example.com', password: 'bob password 1' });
        await services.knex('accounts').where({ id: bob.id }).update({ status: 'suspended' });
        const result = await authenticateWithPassword(services, { email: 'bob@example.com', password: 'bob password 1' }, meta);
        expect(result).toStrictEqual({ ok: false });
        const [last] = (await auditEvents(services, 'login.password')).slice(-1);
        expect(last).toMatchObject({ outcome: 'failure', account_id: bob.id, details: { reason: 'status:suspended' } });
      });

      it('upgrades the stored hash on sign-in when the parameters have grown', async () => {
        const stronger = { ...services, config: { ...services.config, passwordHash: { ...services.config.passwordHash, timeCost: services.config.passwordHash.timeCost + 1 } } };
        const before = await services.knex('accounts').whereRaw('lower(email) = ?', ['ada@example.com']).first<{ password_hash: string }>();
        const result = await authenticateWithPassword(stronger, { email: 'ada@example.com', password: 'correct horse battery' });
        expect(result.ok).toBe(true);
        const after = await services.knex('accounts').whereRaw('lower(email) = ?', ['ada@example.com']).first<{ password_hash: string }>();
        expect(after.password_hash).not.toBe(before.password_hash);
        expect(after.password_hash).toContain(`t=${stronger.config.passwordHash.timeCost}`);
        expect((await authenticateWithPassword(services, { email: 'ada@example.com', password: 'correct horse battery' })).ok).toBe(true);
      });

      it('sets a new password: the old one stops working and the change is audited', async () => {
        const updated = await setPassword(services, 'ADA@example.com', 'a brand new secret', { source: 'test' });
        expect(updated.email).toBe('Ada@example.com');
        expect((await authenticateWithPassword(services, { email: 'ada@example.com', password: 'correct horse battery' })).ok).toBe(false);
        expect((await authenticateWithPassword(services, { email: 'ada@example.com', password: 'a brand new secret' })).ok).toBe(true);
        expect(await auditEvents(services, 'user.password_set')).toEqual([expect.objectContaining({ account_id: updated.id, outcome: 'success' })]);
        expect(await rejection(setPassword(services, 'ghost@example.com', 'a brand new secret'))).toMatchObject({ code: 'account_not_found', status: 404 });
        expect(await rejection(setPassword(services, 'ada@example.com', 'short'))).toMatchObject({ code: 'weak_password' });
      });
    });

    describe('clients', () => {
      it('stores a generated secret only encrypted and hands it decrypted to the provider', async () => {
        const created = await createClient(services, { name: 'Web app', redirectUris: ['https://app.example.com/cb'], scope: 'openid  profile openid', firstParty: true });
        expect(created.client_id).toMatch(/^[A-Za-z0-9_-]{22}$/);
        expect(created.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
        expect(created).toMatchObject({
          client_name: 'Web app',
          redirect_uris: ['https://app.example.com/cb'],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
          scope: 'openid profile',
          first_party: true,
        });

        const row = await services.knex('clients').where({ client_id: created.client_id }).first<{ client_secret_ciphertext: string; metadata: Record<string, unknown> }>();
        expect(row.client_secret_ciphertext).not.toBe(created.client_secret);
        expect(row.client_secret_ciphertext).not.toContain(created.client_secret);
        expect(JSON.stringify(row.metadata)).not.toContain(created.client_secret);

        const loaded = await loadProviderClientMetadata(services, created.client_id);
        expect(loaded).toEqual({ ...created });
        await expect(provider.Client.validate(loaded!)).resolves.toBeUndefined();
        expect(await auditEvents(services, 'client.created')).toEqual([expect.objectContaining({ client_id: created.client_id, outcome: 'success' })]);
      });

      it('binds a ciphertext to its client: copied to another row it does not decrypt', async () => {
        const a = await createClient(services, { name: 'A', redirectUris: ['https://a.example.com/cb'] });
        const b = await createClient(services, { name: 'B', redirectUris: ['https://b.example.com/cb'] });
        const { client_secret_ciphertext } = await services.knex('clients').where({ client_id: a.client_id }).first<{ client_secret_ciphertext: string }>();
        await services.knex('clients').where({ client_id: b.client_id }).update({ client_secret_ciphertext });
        await expect(loadProviderClientMetadata(services, b.client_id)).rejects.toThrow();
        await deleteClient(services, a.client_id);
        await deleteClient(services, b.client_id);
      });

      it('honours a chosen client id and secret, and refuses the same id twice', async () => {
        const input: CreateClientInput = { name: 'Chosen', redirectUris: ['http://localhost:8080/cb'], clientId: 'chosen-app', clientSecret: 'sixteen-chars-ok', authMethod: 'client_secret_post' };
        const created = await createClient(services, input);
        expect(created).toMatchObject({ client_id: 'chosen-app', client_secret: 'sixteen-chars-ok', token_endpoint_auth_method: 'client_secret_post' });
        expect((await loadProviderClientMetadata(services, 'chosen-app'))?.client_secret).toBe('sixteen-chars-ok');
        expect(await rejection(createClient(services, input))).toMatchObject({ code: 'client_exists', status: 409 });
      });

      it('gives a public client no secret at all', async () => {
        const created = await createClient(services, { name: 'SPA', redirectUris: ['http://127.0.0.1:5173/cb', 'http://[::1]:5173/cb'], authMethod: 'none' });
        expect(created).not.toHaveProperty('client_secret');
        const row = await services.knex('clients').where({ client_id: created.client_id }).first<{ client_secret_ciphertext: string | null }>();
        expect(row.client_secret_ciphertext).toBeNull();
        const loaded = await loadProviderClientMetadata(services, created.client_id);
        expect(loaded).not.toHaveProperty('client_secret');
        await expect(provider.Client.validate(loaded!)).resolves.toBeUndefined();
      });

      it('registers a client-credentials-only client without redirect URIs or response types', async () => {
        const created = await createClient(services, { name: 'Worker', grantTypes: ['client_credentials'] });
        expect(created).toMatchObject({ grant_types: ['client_credentials'], response_types: [], redirect_uris: [] });
        expect(created.client_secret).toBeDefined();
        await expect(provider.Client.validate((await loadProviderClientMetadata(services, created.client_id))!)).resolves.toBeUndefined();
        // Redirect URIs kept on such a client are checked like any other but enable no redirect flow.
        const withUris = await createClient(services, { name: 'Worker 2', grantTypes: ['client_credentials'], redirectUris: ['https://worker.example.com/cb'] });
        expect(withUris).toMatchObject({ response_types: [], redirect_uris: ['https://worker.example.com/cb'] });
        await expect(provider.Client.validate((await loadProviderClientMetadata(services, withUris.client_id))!)).resolves.toBeUndefined();
        expect(await rejection(createClient(services, { name: 'Worker 3', grantTypes: ['client_credentials'], redirectUris: ['http://worker.example.com/cb'] }))).toMatchObject({ code: 'invalid_redirect_uri' });
      });

      it('marks a client with a private-use scheme redirect as native', async () => {
        const created = await createClient(services, { name: 'Mobile', redirectUris: ['com.example.app:/oauth/cb'], authMethod: 'none' });
        expect(created.application_type).toBe('native');
        await expect(provider.Client.validate((await loadProviderClientMetadata(services, created.client_id))!)).resolves.toBeUndefined();
      });

      it('accepts private_key_jwt with a JWKS URI and an ES256 ID token algorithm', async () => {
        const created = await createClient(services, {
          name: 'Backend',
          redirectUris: ['https://backend.example.com/cb'],
          authMethod: 'private_key_jwt',
          jwksUri: 'https://backend.example.com/jwks.json',
          idTokenSignedResponseAlg: 'ES256',
        });
        expect(created).not.toHaveProperty('client_secret');
        expect(created).toMatchObject({ jwks_uri: 'https://backend.example.com/jwks.json', id_token_signed_response_alg: 'ES256' });
        await expect(provider.Client.validate((await loadProviderClientMetadata(services, created.client_id))!)).resolves.toBeUndefined();
      });

      it.each<[string, CreateClientInput, string]>([
        ['an unknown grant type', { name: 'x', redirectUris: ['https://x.example/cb'], grantTypes: ['implicit'] }, 'invalid_client_metadata'],
        ['refresh_token without authorization_code', { name: 'x', grantTypes: ['client_credentials', 'refresh_token'] }, 'invalid_client_metadata'],
        ['authorization_code without a redirect URI', { name: 'x', redirectUris: [] }, 'invalid_redirect_uri'],
        ['a relative redirect URI', { name: 'x', redirectUris: ['/cb'] }, 'invalid_redirect_uri'],
        ['a redirect URI with a fragment', { name: 'x', redirectUris: ['https://x.example/cb#frag'] }, 'invalid_redirect_uri'],
        ['http on a public host', { name: 'x', redirectUris: ['http://x.example/cb'] }, 'invalid_redirect_uri'],
        ['a javascript: redirect URI', { name: 'x', redirectUris: ['javascript:alert(1)'] }, 'invalid_redirect_uri'],
        ['an http post-logout URI on a public host', { name: 'x', redirectUris: ['https://x.example/cb'], postLogoutRedirectUris: ['http://x.example/'] }, 'invalid_redirect_uri'],
        ['a public client with client_credentials', { name: 'x', grantTypes: ['client_credentials'], authMethod: 'none' }, 'invalid_client_metadata'],
        ['private_key_jwt without a JWKS URI', { name: 'x', redirectUris: ['https://x.example/cb'], authMethod: 'private_key_jwt' }, 'invalid_client_metadata'],
        ['a secret shorter than 16 characters', { name: 'x', redirectUris: ['https://x.example/cb'], clientSecret: 'too-short' }, 'invalid_client_metadata'],
        ['a secret on a public client', { name: 'x', redirectUris: ['https://x.example/cb'], authMethod: 'none', clientSecret: 'sixteen-chars-ok' }, 'invalid_client_metadata'],
        ['a client id with a space', { name: 'x', redirectUris: ['https://x.example/cb'], clientId: 'my app' }, 'invalid_client_metadata'],
        ['a client id of two characters', { name: 'x', redirectUris: ['https://x.example/cb'], clientId: 'ab' }, 'invalid_client_metadata'],
        ['an empty name', { name: '  ', redirectUris: ['https://x.example/cb'] }, 'invalid_client_metadata'],
        ['an unsupported ID token algorithm', { name: 'x', redirectUris: ['https://x.example/cb'], idTokenSignedResponseAlg: 'HS256' }, 'invalid_client_metadata'],
      ])('rejects %s', async (_label, input, code) => {
        const before = (await listClients(services)).length;
        const err = await rejection(createClient(services, input));
        expect(err).toMatchObject({ code, status: 400 });
        expect((err as Error).message.length).toBeGreaterThan(10);
        expect((await listClients(services)).length).toBe(before);
      });

      it('lists clients without secrets and deletes them', async () => {
        const clients = await listClients(services);
        expect(clients.length).toBeGreaterThanOrEqual(5);
        for (const client of clients) {
          expect(client).not.toHaveProperty('client_secret');
          expect(client.created_at).toMatch(/^\d{4}-/);
        }
        await deleteClient(services, 'chosen-app', { source: 'test' });
        expect(await loadProviderClientMetadata(services, 'chosen-app')).toBeUndefined();
        expect((await listClients(services)).map((c) => c.client_id)).not.toContain('chosen-app');
        expect(await rejection(deleteClient(services, 'chosen-app'))).toMatchObject({ code: 'client_not_found', status: 404 });
        expect((await auditEvents(services, 'client.deleted')).at(-1)).toMatchObject({ client_id: 'chosen-app', details: { source: 'test' } });
      });

      it('finds nothing for ids that cannot exist', async () => {
        expect(await loadProviderClientMetadata(services, 'no-such-client')).toBeUndefined();
        expect(await loadProviderClientMetadata(services, "x' or '1'='1")).toBeUndefined();
      });
    });

    describe('resource servers', () => {
      it('registers a resource and finds it by identifier', async () => {
        const created = await createResource(services, { identifier: 'https://api.example.com', scope: ' read  write read ', format: 'opaque', accessTokenTtl: 600, name: 'API' });
        expect(created).toMatchObject({ identifier: 'https://api.example.com', scope: 'read write', access_token_format: 'opaque', access_token_ttl: 600, name: 'API' });
        expect(await findResource(services.knex, 'https://api.example.com')).toMatchObject({ identifier: 'https://api.example.com', scope: 'read write', accessTokenFormat: 'opaque', accessTokenTtl: 600, apiClientId: undefined });
        await createResource(services, { identifier: 'urn:example:billing', scope: 'invoices:read' });
        expect(await findResource(services.knex, 'urn:example:billing')).toMatchObject({ identifier: 'urn:example:billing', scope: 'invoices:read', accessTokenFormat: 'jwt', accessTokenTtl: undefined });
        expect(await findResource(services.knex, 'https://unknown.example.com')).toBeUndefined();
        // The management API is registered on every database and listed first.
        expect((await listResources(services)).filter((r) => !r.built_in).map((r) => r.identifier)).toEqual(['https://api.example.com', 'urn:example:billing']);
      });

      it('refuses duplicates, relative or fragment identifiers, empty scopes and bad lifetimes', async () => {
        expect(await rejection(createResource(services, { identifier: 'https://api.example.com', scope: 'read' }))).toMatchObject({ code: 'resource_exists', status: 409 });
        expect(await rejection(createResource(services, { identifier: 'api', scope: 'read' }))).toMatchObject({ code: 'invalid_resource', status: 400 });
        expect(await rejection(createResource(services, { identifier: 'https://x.example/#a', scope: 'read' }))).toMatchObject({ code: 'invalid_resource' });
        expect(await rejection(createResource(services, { identifier: 'https://x.example/', scope: '   ' }))).toMatchObject({ code: 'invalid_resource' });
        expect(await rejection(createResource(services, { identifier: 'https://x.example/', scope: 'read "quoted"' }))).toMatchObject({ code: 'invalid_resource' });
        expect(await rejection(createResource(services, { identifier: 'https://x.example/', scope: 'read', accessTokenTtl: 0 }))).toMatchObject({ code: 'invalid_resource' });
        expect((await listResources(services)).filter((r) => !r.built_in)).toHaveLength(2);
      });
    });
  });
}

const logger = createLogger('silent');

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
