// The admin REST API (/admin/api/v1) over HTTP against a real server, with real credentials: an
// admin client's client_credentials tokens, a signed-in administrator's token and API keys.
// Covers create/read/update/delete round trips of every resource, each way authorization can
// fail (always as RFC 9457 problem details, never a stack trace), the audit trail naming who
// acted, and the OpenAPI document: valid OpenAPI 3.1 that lists every route the router serves.
import crypto from 'node:crypto';
import { SignJWT, generateKeyPair } from 'jose';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAdminRouter, ADMIN_API_PREFIX } from '../../src/admin/router.ts';
import type { AdminDeps } from '../../src/admin/define.ts';
import { authorizeOverHttp, decodeJwt, tokenRequest, type ClientCredentials } from '../helpers/http-login.ts';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/postgres.ts';
import { runCli, startServer, tempDataDir, testSecrets, type RunningServer } from '../helpers/server.ts';

const ALL_ADMIN_SCOPES = [
  'admin:users:read', 'admin:users:write', 'admin:roles:read', 'admin:roles:write', 'admin:resources:read', 'admin:resources:write',
  'admin:clients:read', 'admin:clients:write', 'admin:keys:read', 'admin:keys:write', 'admin:audit:read', 'admin:api_keys:read', 'admin:api_keys:write',
];
const PASSWORD = 'correct horse battery staple 7';
const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const OTHER_API = 'https://inventory.example.test';

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  error: string;
  issues?: { in: string; field: string; message: string }[];
  required_scope?: string;
}

interface Reply<T> {
  status: number;
  body: T;
  headers: Headers;
}

type Json = Record<string, unknown>;

describe.skipIf(!TEST_DATABASE_URL)('admin API', () => {
  let db: TestDatabase;
  let server: RunningServer;
  let base: string;
  let tokenEndpoint: string;
  let adminClient: ClientCredentials;
  let token: string;

  async function cli(args: string[]): Promise<Json> {
    const result = await runCli(server.env, args);
    if (result.code !== 0) throw new Error(`gatehouse ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
    return result.json as Json;
  }

  async function call<T = Json>(method: string, path: string, options: { token?: string | null; body?: unknown; rawBody?: string; contentType?: string; authorization?: string } = {}): Promise<Reply<T>> {
    const headers: Record<string, string> = { accept: 'application/json' };
    const credential = options.token === undefined ? token : options.token;
    if (options.authorization !== undefined) headers.authorization = options.authorization;
    else if (credential !== null) headers.authorization = `Bearer ${credential}`;
    let body: string | undefined;
    if (options.rawBody !== undefined) body = options.rawBody;
    else if (options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
    const res = await fetch(`${base}${path}`, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    if (text && /^application\/(problem\+)?json/.test(res.headers.get('content-type') ?? '')) parsed = JSON.parse(text);
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  /** Asserts a problem details answer and returns it. */
  function problem(reply: Reply<unknown>, status: number, error: string): Problem {
    expect(reply.status, JSON.stringify(reply.body)).toBe(status);
    expect(reply.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const body = reply.body as Problem;
    expect(body).toMatchObject({ status, error, title: expect.any(String), detail: expect.any(String) });
    expect(body.type).toContain('#problem-');
    expect(JSON.stringify(body)).not.toMatch(/at .+\.ts:\d+|node_modules|stack/i);
    return body;
  }

  async function clientToken(client: ClientCredentials, scope: string, resource = `${base}`): Promise<string> {
    const reply = await tokenRequest(tokenEndpoint, client, { grant_type: 'client_credentials', resource, scope });
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    return reply.body.access_token!;
  }

  async function auditEvents(query: Record<string, string>): Promise<Json[]> {
    const reply = await call<{ items: Json[] }>('GET', `/audit-events?${new URLSearchParams(query)}`);
    expect(reply.status).toBe(200);
    return reply.body.items;
  }

  async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
    const started = Date.now();
    while (!(await check())) {
      if (Date.now() - started > timeoutMs) throw new Error(`${what}: not true after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  beforeAll(async () => {
    db = await createTestDatabase('gh_admin_api');
    server = await startServer({ DATA_DIR: tempDataDir(), DATABASE_URL: db.url, ...testSecrets() });
    base = `${server.url}${ADMIN_API_PREFIX}`;
    tokenEndpoint = ((await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as { token_endpoint: string }).token_endpoint;
    const created = await cli(['client', 'create', '--name', 'Admin automation', '--admin']);
    adminClient = { clientId: String(created.client_id), clientSecret: String(created.client_secret) };
    token = await clientToken(adminClient, ALL_ADMIN_SCOPES.join(' '));
  }, 180_000);

  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  });

  describe('OpenAPI document and reference page', () => {
    it('serves a valid OpenAPI 3.1 document without credentials', async () => {
      const reply = await call<Json>('GET', '/openapi.json', { token: null });
      expect(reply.status).toBe(200);
      expect(reply.body.openapi).toBe('3.1.0');
      const result = await new Validator().validate(reply.body);
      expect(result.errors ?? [], JSON.stringify(result.errors)).toEqual([]);
      expect(result.valid).toBe(true);
      expect((reply.body.servers as { url: string }[])[0]!.url).toBe(base);
    });

    it('documents every route the router serves, with its scope, and nothing else', async () => {
      const document = (await call<{ paths: Record<string, Record<string, { security: Record<string, string[]>[]; 'x-required-scope': string }>> }>('GET', '/openapi.json', { token: null })).body;
      // Building the router does no I/O; only the issuer is read.
      const deps = { services: { config: { issuer: server.url } } } as unknown as AdminDeps;
      const router = buildAdminRouter(deps);
      const served = new Set<string>();
      for (const layer of router.stack) {
        const path = String(layer.path).slice(ADMIN_API_PREFIX.length).replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}');
        for (const method of layer.methods.filter((m) => m !== 'HEAD')) served.add(`${method.toLowerCase()} ${path}`);
      }
      // The two public routes describe the API; they are not operations of it.
      served.delete('get /openapi.json');
      served.delete('get /docs');
      const documented = new Set(Object.entries(document.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method} ${path}`)));
      expect([...served].sort()).toEqual([...documented].sort());
      expect(served.size).toBeGreaterThan(50);
      for (const item of Object.values(document.paths)) {
        for (const op of Object.values(item)) {
          expect(ALL_ADMIN_SCOPES).toContain(op['x-required-scope']);
          expect(op.security).toEqual([{ oauth2: [op['x-required-scope']] }, { apiKey: [op['x-required-scope']] }]);
        }
      }
    });

    it('renders a browsable reference page without inline scripts', async () => {
      const res = await fetch(`${base}/docs`, { headers: { accept: 'text/html' } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/html/);
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
      const html = await res.text();
      expect(html).not.toMatch(/<script/i);
      expect(html).not.toMatch(/ style=/i);
      for (const id of ['op-listUsers', 'op-rotateClientSecret', 'op-listAuditEvents', 'op-createApiKey', 'problem-insufficient_scope', 'schema-User']) {
        expect(html).toContain(`id="${id}"`);
      }
      expect(html).toContain('admin:users:write');
    });
  });

  describe('authorization failures', () => {
    it('answers 401 with a Bearer challenge when no credential is sent', async () => {
      const reply = await call('GET', '/users', { token: null });
      problem(reply, 401, 'missing_token');
      expect(reply.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse-admin"');
      problem(await call('GET', '/users', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }), 401, 'missing_token');
    });

    it('refuses malformed and forged tokens with invalid_token', async () => {
      const malformed = await call('GET', '/users', { token: 'not-a-jwt' });
      problem(malformed, 401, 'invalid_token');
      expect(malformed.headers.get('www-authenticate')).toMatch(/^Bearer realm="gatehouse-admin", error="invalid_token"/);
      problem(await call('GET', '/users', { authorization: 'Bearer a b' }), 401, 'invalid_token');

      // Right claims, wrong signer.
      const { privateKey } = await generateKeyPair('ES256');
      const forged = await new SignJWT({ scope: ALL_ADMIN_SCOPES.join(' '), client_id: adminClient.clientId })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: decodeJwt(token).header.kid as string })
        .setIssuer(server.url)
        .setAudience(base)
        .setSubject(adminClient.clientId)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey);
      expect(problem(await call('GET', '/users', { token: forged }), 401, 'invalid_token').detail).toMatch(/not signed by this server/);

      // Our own token, edited: the signature no longer matches.
      const [header, , signature] = token.split('.');
      const edited = Buffer.from(JSON.stringify({ ...decodeJwt(token).payload, scope: 'admin:keys:write' })).toString('base64url');
      problem(await call('POST', '/keys/rotate', { token: `${header}.${edited}.${signature}` }), 401, 'invalid_token');
    });

    it('refuses a valid token for another API (wrong audience)', async () => {
      await call('POST', '/resources', { body: { identifier: OTHER_API, permissions: [{ name: 'stock:read' }] } });
      const reader = await call<Json>('POST', '/roles', { body: { name: 'stock-reader', permissions: [{ resource: OTHER_API, permission: 'stock:read' }] } });
      expect(reader.status).toBe(201);
      const created = await call<Json>('POST', '/clients', { body: { client_name: 'Stock job', grant_types: ['client_credentials'] } });
      const stockClient = { clientId: String(created.body.client_id), clientSecret: String(created.body.client_secret) };
      await call('PUT', `/clients/${stockClient.clientId}/roles/stock-reader`);
      const other = await clientToken(stockClient, 'stock:read', OTHER_API);
      expect(decodeJwt(other).payload.aud).toBe(OTHER_API);
      expect(problem(await call('GET', '/users', { token: other }), 401, 'invalid_token').detail).toMatch(/wrong audience/);
    });

    it('answers 403 insufficient_scope naming the missing scope', async () => {
      const readOnly = await clientToken(adminClient, 'admin:users:read');
      expect((await call('GET', '/users', { token: readOnly })).status).toBe(200);
      const reply = await call('POST', '/users', { token: readOnly, body: { email: 'nope@example.test', password: PASSWORD } });
      const body = problem(reply, 403, 'insufficient_scope');
      expect(body.required_scope).toBe('admin:users:write');
      expect(reply.headers.get('www-authenticate')).toContain('error="insufficient_scope", scope="admin:users:write"');
      // The check comes before validation: a caller without the scope learns nothing about the input.
      problem(await call('POST', '/users', { token: readOnly, body: { bogus: true } }), 403, 'insufficient_scope');

      // A client without the admin role gets a token for the API but no admin scope.
      const plain = await call<Json>('POST', '/clients', { body: { client_name: 'Not an admin', grant_types: ['client_credentials'] } });
      const nobody = await clientToken({ clientId: String(plain.body.client_id), clientSecret: String(plain.body.client_secret) }, 'admin:users:read');
      expect(problem(await call('GET', '/users', { token: nobody }), 403, 'insufficient_scope').required_scope).toBe('admin:users:read');
    });

    it('refuses expired, revoked and foreign API keys, and limits a key to its scopes', async () => {
      const soon = await call<Json>('POST', '/api-keys', { body: { name: 'short-lived', scopes: ['admin:users:read'], expires_at: new Date(Date.now() + 2_000).toISOString() } });
      expect(soon.status, JSON.stringify(soon.body)).toBe(201);
      const shortKey = String(soon.body.key);
      expect(shortKey).toMatch(/^ghk_/);
      expect((await call('GET', '/users', { token: shortKey })).status).toBe(200);
      problem(await call('POST', '/users', { token: shortKey, body: { email: 'k@example.test', password: PASSWORD } }), 403, 'insufficient_scope');
      await new Promise((r) => setTimeout(r, 2_500));
      const expired = await call('GET', '/users', { token: shortKey });
      expect(problem(expired, 401, 'invalid_token').detail).toMatch(/expired/);
      expect(expired.headers.get('www-authenticate')).toContain('error="invalid_token"');

      const doomed = await call<Json>('POST', '/api-keys', { body: { name: 'to revoke', scopes: ['admin:users:read'] } });
      const doomedKey = String(doomed.body.key);
      expect((await call('GET', '/users', { token: doomedKey })).status).toBe(200);
      const revoked = await call<Json>('DELETE', `/api-keys/${String(doomed.body.id)}`);
      expect(revoked.status).toBe(200);
      expect(revoked.body.status).toBe('revoked');
      expect(problem(await call('GET', '/users', { token: doomedKey }), 401, 'invalid_token').detail).toMatch(/revoked/);

      const foreign = await call<Json>('POST', '/api-keys', { body: { name: 'stock key', resource: OTHER_API, scopes: ['stock:read'] } });
      expect(foreign.status, JSON.stringify(foreign.body)).toBe(201);
      expect(problem(await call('GET', '/users', { token: String(foreign.body.key) }), 401, 'invalid_token').detail).toMatch(/management API/);

      problem(await call('GET', '/users', { token: `ghk_${'x'.repeat(43)}` }), 401, 'invalid_token');
    });

    it('does not let a key holder mint a key with scopes it lacks', async () => {
      const limited = await call<Json>('POST', '/api-keys', { body: { name: 'key maker', scopes: ['admin:api_keys:write', 'admin:users:read'] } });
      const reply = await call('POST', '/api-keys', { token: String(limited.body.key), body: { name: 'escalation', scopes: ['admin:keys:write'] } });
      expect(problem(reply, 403, 'insufficient_scope').required_scope).toBe('admin:keys:write');
      const allowed = await call<Json>('POST', '/api-keys', { token: String(limited.body.key), body: { name: 'narrower', scopes: ['admin:users:read'] } });
      expect(allowed.status).toBe(201);
    });
  });

  describe('errors', () => {
    it('reports invalid input as 400 with every issue, and never a stack trace', async () => {
      const invalid = await call('POST', '/users', { body: { email: 42, email_verified: 'yes' } });
      const body = problem(invalid, 400, 'invalid_request');
      expect(body.issues).toEqual(expect.arrayContaining([
        expect.objectContaining({ in: 'body', field: 'email' }),
        expect.objectContaining({ in: 'body', field: 'email_verified' }),
      ]));
      expect(problem(await call('PATCH', `/users/${crypto.randomUUID()}`, { body: { emailVerified: true } }), 400, 'invalid_request').issues).toEqual([
        expect.objectContaining({ in: 'body', message: expect.stringContaining('emailVerified') }),
      ]);
      problem(await call('GET', '/users/not-a-uuid'), 400, 'invalid_request');
      problem(await call('GET', '/users?limit=1000'), 400, 'invalid_request');
      problem(await call('GET', '/users?cursor=garbage'), 400, 'invalid_request');
      problem(await call('POST', '/users', { rawBody: '{"email":' }), 400, 'invalid_request');
      problem(await call('POST', '/users', { rawBody: 'email=a', contentType: 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type');
      problem(await call('GET', '/nothing-here'), 404, 'not_found');
      const wrongMethod = await call('PUT', '/users');
      problem(wrongMethod, 405, 'method_not_allowed');
      expect(wrongMethod.headers.get('allow')).toContain('GET');
      problem(await call('GET', `/users/${crypto.randomUUID()}`), 404, 'account_not_found');
    });
  });

  describe('users', () => {
    it('creates, searches with cursor paging, reads, changes and deletes users', async () => {
      const tag = crypto.randomBytes(3).toString('hex');
      const ids: string[] = [];
      for (const n of [1, 2, 3]) {
        const created = await call<Json>('POST', '/users', { body: { email: `pager-${tag}-${n}@example.test`, name: `Pager ${n}`, password: PASSWORD, email_verified: true } });
        expect(created.status, JSON.stringify(created.body)).toBe(201);
        expect(created.body).toMatchObject({ email: `pager-${tag}-${n}@example.test`, status: 'active', email_verified: true });
        ids.push(String(created.body.id));
      }
      problem(await call('POST', '/users', { body: { email: `PAGER-${tag}-1@example.test`, password: PASSWORD } }), 409, 'email_taken');

      const first = await call<{ items: Json[]; next_cursor: string | null }>('GET', `/users?email=pager-${tag}&limit=2`);
      expect(first.body.items.map((u) => u.id)).toEqual([ids[2], ids[1]]);
      expect(first.body.next_cursor).toEqual(expect.any(String));
      const second = await call<{ items: Json[]; next_cursor: string | null }>('GET', `/users?email=pager-${tag}&limit=2&cursor=${first.body.next_cursor}`);
      expect(second.body.items.map((u) => u.id)).toEqual([ids[0]]);
      expect(second.body.next_cursor).toBeNull();
      expect((await call<{ items: Json[] }>('GET', `/users?name=PAGER%202&email=${tag}`)).body.items.map((u) => u.id)).toEqual([ids[1]]);

      const changed = await call<Json>('PATCH', `/users/${ids[0]}`, { body: { name: 'Renamed', email: `renamed-${tag}@example.test` } });
      expect(changed.body).toMatchObject({ name: 'Renamed', email: `renamed-${tag}@example.test`, email_verified: false });
      expect((await call<Json>('GET', `/users/${ids[0]}`)).body).toMatchObject({ name: 'Renamed' });

      const suspended = await call<Json>('POST', `/users/${ids[1]}/status`, { body: { action: 'suspend' } });
      expect(suspended.body.status).toBe('suspended');
      expect((await call<{ items: Json[] }>('GET', `/users?email=pager-${tag}&status=suspended`)).body.items.map((u) => u.id)).toEqual([ids[1]]);
      expect((await call<Json>('POST', `/users/${ids[1]}/status`, { body: { action: 'reactivate' } })).body.status).toBe('active');
      problem(await call('POST', `/users/${ids[1]}/status`, { body: { action: 'reactivate' } }), 409, 'invalid_state');
      problem(await call('POST', `/users/${ids[1]}/status`, { body: { action: 'explode' } }), 400, 'invalid_request');

      expect((await call('POST', `/users/${ids[2]}/password-reset`)).status).toBe(202);
      const resetEvents = await auditEvents({ account_id: ids[2]!, type: 'password_reset.requested' });
      expect(resetEvents[0]).toMatchObject({ outcome: 'success', details: { source: 'admin-api', actor: { type: 'client', id: adminClient.clientId } } });

      const factors = await call<Json>('GET', `/users/${ids[2]}/factors`);
      expect(factors.body).toEqual({ items: [], recovery_codes_left: 0 });
      problem(await call('DELETE', `/users/${ids[2]}/factors/${crypto.randomUUID()}`), 404, 'factor_not_found');

      const exported = await call<Json>('GET', `/users/${ids[2]}/export`);
      expect(exported.status).toBe(200);
      expect(JSON.stringify(exported.body)).toContain(`pager-${tag}`);
      expect(JSON.stringify(exported.body)).not.toMatch(/argon2|password_hash/);
      expect((await auditEvents({ account_id: ids[2]!, type: 'account.exported' }))[0]).toMatchObject({ details: { actor: { type: 'client', id: adminClient.clientId } } });

      const erased = await call<{ erased: boolean; pseudonym: string }>('DELETE', `/users/${ids[2]}`);
      expect(erased.status, JSON.stringify(erased.body)).toBe(200);
      expect(erased.body).toMatchObject({ erased: true, pseudonym: expect.any(String) });
      // The audit trail keeps the events under the pseudonym, none under the erased account's id.
      expect(await auditEvents({ account_id: ids[2]! })).toEqual([]);
      expect((await auditEvents({ account_id: erased.body.pseudonym })).map((e) => e.type)).toContain('password_reset.requested');
      problem(await call('GET', `/users/${ids[2]}`), 404, 'account_not_found');
      problem(await call('DELETE', `/users/${ids[2]}`), 404, 'account_not_found');
    });

    it('invites a user when no password is given', async () => {
      const invited = await call<Json>('POST', '/users', { body: { email: `invitee-${crypto.randomBytes(3).toString('hex')}@example.test`, name: 'Invitee' } });
      expect(invited.status).toBe(201);
      expect(invited.body).toMatchObject({ status: 'pending', email_verified: false });
      expect((await auditEvents({ account_id: String(invited.body.id), type: 'user.invited' })).length).toBe(1);
    });

    it('lets a signed-in administrator act, lists and ends their sessions, and stops their token when suspended', async () => {
      const email = `operator-${crypto.randomBytes(3).toString('hex')}@example.test`;
      const operator = await call<Json>('POST', '/users', { body: { email, password: PASSWORD, email_verified: true } });
      const operatorId = String(operator.body.id);
      const web = await call<Json>('POST', '/clients', { body: { client_name: 'Console', redirect_uris: [REDIRECT_URI], first_party: true } });
      const console = { clientId: String(web.body.client_id), clientSecret: String(web.body.client_secret) };

      const signIn = async () => {
        const auth = await authorizeOverHttp({ issuer: server.url, clientId: console.clientId, redirectUri: REDIRECT_URI, email, password: PASSWORD, scope: 'openid admin:users:read', extraParams: { resource: base } });
        const tokens = await tokenRequest(tokenEndpoint, console, { grant_type: 'authorization_code', code: auth.code, redirect_uri: REDIRECT_URI, code_verifier: auth.codeVerifier, resource: base });
        expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
        return tokens.body.access_token!;
      };

      // Without the administrator role the token carries no admin scope.
      problem(await call('GET', '/users', { token: await signIn() }), 403, 'insufficient_scope');

      expect((await call<Json>('PUT', `/users/${operatorId}/roles/gatehouse-admin`)).body).toEqual({ assigned: true });
      expect((await call<Json>('GET', `/users/${operatorId}/roles`)).body).toMatchObject({ direct: ['gatehouse-admin'] });
      const personal = await signIn();
      expect(decodeJwt(personal).payload).toMatchObject({ sub: operatorId, scope: 'admin:users:read' });
      expect((await call<Json>('GET', `/users/${operatorId}`, { token: personal })).body).toMatchObject({ email });

      const sessions = await call<{ items: Json[] }>('GET', `/users/${operatorId}/sessions`);
      expect(sessions.body.items.length).toBeGreaterThanOrEqual(1);
      expect(sessions.body.items[0]).toMatchObject({ clients: [console.clientId] });
      const one = String(sessions.body.items[0]!.id);
      expect((await call('DELETE', `/users/${operatorId}/sessions/${encodeURIComponent(one)}`)).status).toBe(204);
      problem(await call('DELETE', `/users/${operatorId}/sessions/${encodeURIComponent(one)}`), 404, 'session_not_found');
      const all = await call<{ revoked: string[] }>('DELETE', `/users/${operatorId}/sessions`);
      expect(all.status).toBe(200);
      expect((await call<{ items: Json[] }>('GET', `/users/${operatorId}/sessions`)).body.items).toEqual([]);
      const revokedEvents = await auditEvents({ account_id: operatorId, type: 'session.revoked' });
      expect(revokedEvents[0]).toMatchObject({ details: { reason: 'revoked_by_admin', actor: { type: 'client', id: adminClient.clientId } } });

      const fresh = await signIn();
      expect((await call('GET', '/users', { token: fresh })).status).toBe(200);
      await call('POST', `/users/${operatorId}/status`, { body: { action: 'suspend' } });
      expect(problem(await call('GET', '/users', { token: fresh }), 401, 'invalid_token').detail).toMatch(/not active/);
      await call('POST', `/users/${operatorId}/status`, { body: { action: 'reactivate' } });
      // Suspension ended every token issued before it, reactivated or not.
      problem(await call('GET', '/users', { token: fresh }), 401, 'invalid_token');

      expect((await call('DELETE', `/users/${operatorId}/roles/gatehouse-admin`)).status).toBe(204);
      problem(await call('DELETE', `/users/${operatorId}/roles/gatehouse-admin`), 404, 'assignment_not_found');
    });
  });

  describe('roles, resources and permissions', () => {
    const api = 'https://billing.example.test/v2';
    const encoded = encodeURIComponent(api);

    it('round-trips a resource and its permissions', async () => {
      const created = await call<Json>('POST', '/resources', { body: { identifier: api, name: 'Billing', permissions: [{ name: 'invoices:read', description: 'Read invoices' }, { name: 'invoices:write' }] } });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body).toMatchObject({ identifier: api, scope: 'invoices:read invoices:write', access_token_format: 'jwt', built_in: false });
      problem(await call('POST', '/resources', { body: { identifier: api, permissions: [{ name: 'x' }] } }), 409, 'resource_exists');
      problem(await call('POST', '/resources', { body: { identifier: 'not a uri', permissions: [{ name: 'x' }] } }), 400, 'invalid_resource');

      const listed = await call<{ items: Json[] }>('GET', '/resources');
      expect(listed.body.items.map((r) => r.identifier)).toEqual(expect.arrayContaining([base, api]));
      expect((await call<Json>('GET', `/resources/${encoded}`)).body).toMatchObject({ name: 'Billing', permissions: [{ name: 'invoices:read', description: 'Read invoices' }, { name: 'invoices:write', description: null }] });
      expect((await call<Json>('PATCH', `/resources/${encoded}`, { body: { name: 'Billing v2', access_token_ttl: 300 } })).body).toMatchObject({ name: 'Billing v2', access_token_ttl: 300 });
      expect((await call<Json>('POST', `/resources/${encoded}/permissions`, { body: { permissions: [{ name: 'invoices:approve' }] } })).body).toMatchObject({ scope: 'invoices:read invoices:write invoices:approve' });
      expect((await call('DELETE', `/resources/${encoded}/permissions/invoices%3Awrite`)).status).toBe(204);
      expect((await call<Json>('GET', `/resources/${encoded}`)).body).toMatchObject({ scope: 'invoices:read invoices:approve' });
      problem(await call('DELETE', `/resources/${encodeURIComponent(base)}`), 409, 'built_in');
    });

    it('round-trips an API\'s policies and per-object grants', async () => {
      const created = await call<Json>('POST', `/resources/${encoded}/policies`, { body: { name: 'finance-only', effect: 'allow', actions: ['invoices:read'], condition: 'r.sub.department == "finance"' } });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body).toMatchObject({ name: 'finance-only', effect: 'allow', enabled: true, actions: ['invoices:read'] });
      problem(await call('POST', `/resources/${encoded}/policies`, { body: { name: 'broken', effect: 'allow', actions: ['*'], condition: 'r.sub.department ==' } }), 400, 'invalid_policy');
      expect((await call<Json>('PATCH', `/resources/${encoded}/policies/finance-only`, { body: { enabled: false } })).body).toMatchObject({ enabled: false });
      expect((await call<{ items: Json[] }>('GET', `/resources/${encoded}/policies`)).body.items.map((p) => p.name)).toEqual(['finance-only']);
      expect((await call<Json>('GET', `/resources/${encoded}/policies/finance-only`)).body).toMatchObject({ enabled: false });
      expect((await call('DELETE', `/resources/${encoded}/policies/finance-only`)).status).toBe(204);
      problem(await call('GET', `/resources/${encoded}/policies/finance-only`), 404, 'policy_not_found');

      const grant = { subject: `client:${adminClient.clientId}`, object: 'invoice-7', action: 'invoices:read' };
      expect((await call<Json>('POST', `/resources/${encoded}/acl`, { body: grant })).body).toMatchObject({ ...grant, created: true });
      expect((await call<Json>('POST', `/resources/${encoded}/acl`, { body: grant })).body).toMatchObject({ created: false });
      expect((await call<{ items: Json[] }>('GET', `/resources/${encoded}/acl?object=invoice-7`)).body.items).toEqual([expect.objectContaining(grant)]);
      expect((await call('DELETE', `/resources/${encoded}/acl?${new URLSearchParams(grant)}`)).status).toBe(204);
      problem(await call('DELETE', `/resources/${encoded}/acl?${new URLSearchParams(grant)}`), 404, 'acl_entry_not_found');
      const [event] = await auditEvents({ type: 'acl.revoked' });
      expect(event).toMatchObject({ details: { resource: api, actor: { type: 'client', id: adminClient.clientId } } });
    });

    it('round-trips a role: permissions, members and default-role rules', async () => {
      const created = await call<Json>('POST', '/roles', { body: { name: 'billing-auditor', description: 'Reads invoices', permissions: [{ resource: api, permission: 'invoices:read' }] } });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body).toMatchObject({ name: 'billing-auditor', built_in: false, permissions: [{ resource: api, permission: 'invoices:read' }], default_rules: [] });
      problem(await call('POST', '/roles', { body: { name: 'billing-auditor' } }), 409, 'role_exists');
      expect((await call<{ items: Json[] }>('GET', '/roles')).body.items.map((r) => r.name)).toEqual(expect.arrayContaining(['gatehouse-admin', 'billing-auditor']));

      const renamed = await call<Json>('PATCH', '/roles/billing-auditor', { body: { name: 'billing-reviewer', description: null } });
      expect(renamed.body).toMatchObject({ name: 'billing-reviewer', description: null });
      problem(await call('GET', '/roles/billing-auditor'), 404, 'role_not_found');

      const added = await call<Json>('POST', '/roles/billing-reviewer/permissions', { body: { permissions: [{ resource: api, permission: 'invoices:approve' }] } });
      expect(added.body.permissions).toHaveLength(2);
      const removed = await call<Json>('DELETE', `/roles/billing-reviewer/permissions?${new URLSearchParams({ resource: api, permission: 'invoices:approve' })}`);
      expect(removed.body.permissions).toEqual([{ resource: api, permission: 'invoices:read' }]);

      const user = await call<Json>('POST', '/users', { body: { email: `member-${crypto.randomBytes(3).toString('hex')}@example.test`, password: PASSWORD } });
      const userId = String(user.body.id);
      expect((await call<Json>('PUT', `/roles/billing-reviewer/members/user/${userId}`)).body).toEqual({ assigned: true });
      expect((await call<Json>('PUT', `/roles/billing-reviewer/members/user/${userId}`)).body).toEqual({ assigned: false });
      expect((await call<Json>('PUT', `/roles/billing-reviewer/members/client/${adminClient.clientId}`)).body).toEqual({ assigned: true });
      const members = await call<{ items: Json[] }>('GET', '/roles/billing-reviewer/members');
      expect(members.body.items.map((m) => `${String(m.type)}:${String(m.id)}`).sort()).toEqual([`client:${adminClient.clientId}`, `user:${userId}`].sort());
      expect((await call<Json>('GET', `/clients/${adminClient.clientId}/roles`)).body).toMatchObject({ direct: expect.arrayContaining(['gatehouse-admin', 'billing-reviewer']) });
      expect((await call('DELETE', `/roles/billing-reviewer/members/client/${adminClient.clientId}`)).status).toBe(204);

      const rule = await call<Json>('POST', '/roles/billing-reviewer/default-rules', { body: { subject_type: 'user', email_domain: 'auditors.example.test' } });
      expect(rule.status, JSON.stringify(rule.body)).toBe(201);
      expect((await call<Json>('GET', '/roles/billing-reviewer')).body.default_rules).toEqual([expect.objectContaining({ id: rule.body.id, email_domain: 'auditors.example.test' })]);
      expect((await call('DELETE', `/roles/billing-reviewer/default-rules/${String(rule.body.id)}`)).status).toBe(204);
      problem(await call('DELETE', `/roles/billing-reviewer/default-rules/${String(rule.body.id)}`), 404, 'rule_not_found');

      problem(await call('DELETE', '/roles/gatehouse-admin'), 409, 'built_in');
      expect((await call('DELETE', '/roles/billing-reviewer')).status).toBe(204);
      problem(await call('GET', '/roles/billing-reviewer'), 404, 'role_not_found');

      expect((await call('DELETE', `/resources/${encoded}`)).status).toBe(204);
      problem(await call('GET', `/resources/${encoded}`), 404, 'resource_not_found');
    });
  });

  describe('clients', () => {
    it('round-trips a client and rotates its secret: the old one stops working at the token endpoint', async () => {
      const created = await call<Json>('POST', '/clients', { body: { client_name: 'Reports', grant_types: ['client_credentials'], client_id: `reports-${crypto.randomBytes(3).toString('hex')}` } });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body).toMatchObject({ client_name: 'Reports', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic', first_party: false });
      const clientId = String(created.body.client_id);
      const oldSecret = String(created.body.client_secret);
      expect(oldSecret.length).toBeGreaterThanOrEqual(32);
      problem(await call('POST', '/clients', { body: { client_name: 'Dup', grant_types: ['client_credentials'], client_id: clientId } }), 409, 'client_exists');
      problem(await call('POST', '/clients', { body: { client_name: 'Bad', redirect_uris: ['http://evil.example/cb'] } }), 400, 'invalid_redirect_uri');

      const fetched = await call<Json>('GET', `/clients/${clientId}`);
      expect(fetched.body).toMatchObject({ client_id: clientId, client_name: 'Reports' });
      expect(fetched.body.client_secret).toBeUndefined();
      expect((await call<{ items: Json[] }>('GET', '/clients')).body.items.map((c) => c.client_id)).toContain(clientId);

      const patched = await call<Json>('PATCH', `/clients/${clientId}`, { body: { client_name: 'Monthly reports', scope: 'reports:read' } });
      expect(patched.body).toMatchObject({ client_name: 'Monthly reports', scope: 'reports:read', grant_types: ['client_credentials'] });
      expect(patched.body.client_secret).toBeUndefined();
      const unscoped = await call<Json>('PATCH', `/clients/${clientId}`, { body: { scope: null } });
      expect(unscoped.body.scope).toBeUndefined();
      problem(await call('PATCH', `/clients/${clientId}`, { body: { grant_types: ['authorization_code'] } }), 400, 'invalid_redirect_uri');

      const tokenWith = (secret: string) => tokenRequest(tokenEndpoint, { clientId, clientSecret: secret }, { grant_type: 'client_credentials' });
      expect((await tokenWith(oldSecret)).status).toBe(200);
      const rotated = await call<Json>('POST', `/clients/${clientId}/secret`);
      expect(rotated.status).toBe(200);
      const newSecret = String(rotated.body.client_secret);
      expect(newSecret).not.toBe(oldSecret);
      // Instances reuse a looked-up client for a few seconds.
      await waitFor('the old secret is refused', async () => (await tokenWith(oldSecret)).status === 401);
      expect((await tokenWith(newSecret)).status).toBe(200);
      const events = await auditEvents({ client_id: clientId, type: 'client.secret_rotated' });
      expect(events[0]).toMatchObject({ details: { actor: { type: 'client', id: adminClient.clientId } } });

      const publicClient = await call<Json>('POST', '/clients', { body: { client_name: 'SPA', redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'none' } });
      problem(await call('POST', `/clients/${String(publicClient.body.client_id)}/secret`), 409, 'no_client_secret');

      expect((await call('DELETE', `/clients/${clientId}`)).status).toBe(204);
      problem(await call('GET', `/clients/${clientId}`), 404, 'client_not_found');
      await waitFor('the deleted client is refused', async () => (await tokenWith(newSecret)).status === 401);
    });

    it('stops accepting the tokens of a deleted admin client', async () => {
      const created = await cli(['client', 'create', '--name', 'Short-lived admin', '--admin']);
      const doomed = { clientId: String(created.client_id), clientSecret: String(created.client_secret) };
      const doomedToken = await clientToken(doomed, 'admin:users:read');
      expect((await call('GET', '/users', { token: doomedToken })).status).toBe(200);
      await call('DELETE', `/clients/${doomed.clientId}`);
      await waitFor('the deleted client\'s token is refused', async () => (await call('GET', '/users', { token: doomedToken })).status === 401);
    });
  });

  describe('signing keys', () => {
    it('lists and rotates keys; tokens signed before and after the rotation both work', async () => {
      const before = await call<{ items: Json[] }>('GET', '/keys');
      const activeBefore = before.body.items.filter((k) => k.status === 'active').map((k) => k.kid);
      expect(activeBefore.length).toBe(2);
      expect(JSON.stringify(before.body)).not.toMatch(/"d":/);

      const rotated = await call<{ created: { kid: string; alg: string }[]; retired: string[] }>('POST', '/keys/rotate');
      expect(rotated.status).toBe(200);
      expect(rotated.body.retired.sort()).toEqual([...activeBefore].sort());
      expect(rotated.body.created.map((k) => k.alg).sort()).toEqual(['ES256', 'RS256']);

      const after = await call<{ items: Json[] }>('GET', '/keys');
      expect(after.body.items.filter((k) => k.status === 'retired').map((k) => k.kid)).toEqual(expect.arrayContaining(activeBefore));
      // The token minted before the rotation is signed by a retired, still published key.
      expect((await call('GET', '/keys')).status).toBe(200);
      const fresh = await clientToken(adminClient, ALL_ADMIN_SCOPES.join(' '));
      expect(rotated.body.created.map((k) => k.kid)).toContain(decodeJwt(fresh).header.kid);
      expect((await call('GET', '/keys', { token: fresh })).status).toBe(200);
      const events = await auditEvents({ type: 'keys.rotated' });
      expect(events[0]).toMatchObject({ details: { source: 'admin-api', actor: { type: 'client', id: adminClient.clientId } } });
      token = fresh;
    });
  });

  describe('audit events', () => {
    it('filters by account, type prefix, outcome and time range, newest first, with cursor paging', async () => {
      const started = new Date(Date.now() - 1000).toISOString();
      const user = await call<Json>('POST', '/users', { body: { email: `audited-${crypto.randomBytes(3).toString('hex')}@example.test`, password: PASSWORD } });
      const id = String(user.body.id);
      await call('PATCH', `/users/${id}`, { body: { name: 'Audited' } });
      await call('POST', `/users/${id}/status`, { body: { action: 'block' } });

      const events = await auditEvents({ account_id: id, type: 'user.' });
      expect(events.map((e) => e.type)).toEqual(['user.blocked', 'user.updated', 'user.created']);
      expect(events[0]).toMatchObject({ outcome: 'success', account_id: id, client_id: adminClient.clientId, details: { previous_status: 'active', source: 'admin-api', actor: { type: 'client', id: adminClient.clientId } } });
      expect(events[1]).toMatchObject({ details: { changed: ['name'] } });

      const page1 = await call<{ items: Json[]; next_cursor: string | null }>('GET', `/audit-events?${new URLSearchParams({ account_id: id, limit: '2' })}`);
      expect(page1.body.items).toHaveLength(2);
      const page2 = await call<{ items: Json[]; next_cursor: string | null }>('GET', `/audit-events?${new URLSearchParams({ account_id: id, limit: '2', cursor: page1.body.next_cursor! })}`);
      expect(page2.body.items.map((e) => e.type)).toEqual(['user.created']);
      expect(page2.body.next_cursor).toBeNull();

      expect(await auditEvents({ account_id: id, from: new Date(Date.now() + 60_000).toISOString() })).toEqual([]);
      expect((await auditEvents({ account_id: id, from: started, to: new Date(Date.now() + 1000).toISOString() })).length).toBe(3);
      expect(await auditEvents({ account_id: id, outcome: 'failure' })).toEqual([]);
      problem(await call('GET', '/audit-events?from=yesterday'), 400, 'invalid_request');

      const exported = await call<string>('GET', `/audit-events/export?${new URLSearchParams({ account_id: id, type: 'user.' })}`);
      expect(exported.status).toBe(200);
      expect(exported.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
      const lines = exported.body.trimEnd().split('\n').map((line) => JSON.parse(line) as Json);
      expect(lines.map((e) => e.type)).toEqual(['user.blocked', 'user.updated', 'user.created']);
      expect(exported.headers.get('link')).toBeNull();
      expect((await call('GET', `/audit-events/export?account_id=${id}`, { token: null })).status).toBe(401);
    });
  });

  describe('API keys', () => {
    it('creates, uses, lists, rotates and revokes keys; writes made with a key name the key', async () => {
      const created = await call<Json>('POST', '/api-keys', { body: { name: 'provisioning', scopes: ['admin:users:read', 'admin:users:write'], expires_in_days: 30 } });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body).toMatchObject({ name: 'provisioning', resource: base, status: 'active', scopes: ['admin:users:read', 'admin:users:write'] });
      const key = String(created.body.key);
      const keyId = String(created.body.id);
      expect(key.startsWith(String(created.body.key_hint))).toBe(true);

      const made = await call<Json>('POST', '/users', { token: key, body: { email: `by-key-${crypto.randomBytes(3).toString('hex')}@example.test`, password: PASSWORD } });
      expect(made.status).toBe(201);
      const [event] = await auditEvents({ account_id: String(made.body.id), type: 'user.created' });
      expect(event).toMatchObject({ details: { source: 'admin-api', actor: { type: 'api_key', id: keyId } } });

      const fetched = await call<Json>('GET', `/api-keys/${keyId}`);
      expect(fetched.body).toMatchObject({ id: keyId, usage_count: 1 });
      expect(fetched.body.key).toBeUndefined();
      expect((await call<{ items: Json[] }>('GET', `/api-keys?${new URLSearchParams({ resource: base })}`)).body.items.map((k) => k.id)).toContain(keyId);

      const rotated = await call<Json>('POST', `/api-keys/${keyId}/rotate`, { body: { overlap_seconds: 0 } });
      expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
      const successor = String(rotated.body.key);
      expect(rotated.body).toMatchObject({ previous: { id: keyId, replaced_by: rotated.body.id } });
      expect((await call('GET', '/users', { token: successor })).status).toBe(200);
      problem(await call('GET', '/users', { token: key }), 401, 'invalid_token');
      problem(await call('POST', `/api-keys/${keyId}/rotate`, { body: {} }), 409, 'api_key_rotated');

      expect((await call<Json>('DELETE', `/api-keys/${String(rotated.body.id)}`)).body).toMatchObject({ status: 'revoked' });
      problem(await call('GET', '/users', { token: successor }), 401, 'invalid_token');
      problem(await call('GET', `/api-keys/${crypto.randomUUID()}`), 404, 'api_key_not_found');
      problem(await call('POST', '/api-keys', { body: { name: 'bad', scopes: ['admin:nothing'] } }), 400, 'invalid_scope');
    });
  });
});
