// Roles and permissions reach tokens: an access token for an API carries the requested scopes
// the subject's permissions allow and never more, for people (authorization code, refresh) and
// machines (client_credentials); the `roles` scope puts the subject's roles in the ID token and
// userinfo; default-role rules count like direct assignments; a role taken away stops reaching
// new tokens, including ones minted from an existing refresh token.
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeOverHttp, decodeJwt, tokenRequest, type ClientCredentials } from '../helpers/http-login.ts';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/postgres.ts';
import { runCli, startServer, tempDataDir, testSecrets, type RunningServer } from '../helpers/server.ts';

const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const API = 'https://billing.example.test';
const PASSWORD = 'correct horse battery staple';

interface Discovery {
  token_endpoint: string;
  userinfo_endpoint: string;
  jwks_uri: string;
  scopes_supported: string[];
  claims_supported: string[];
}

describe.skipIf(!TEST_DATABASE_URL)('roles and permissions in tokens', () => {
  let db: TestDatabase;
  let server: RunningServer;
  let discovery: Discovery;
  let jwks: ReturnType<typeof createLocalJWKSet>;
  let web: ClientCredentials;
  const ids: Record<string, string> = {};

  async function cli(args: string[]): Promise<Record<string, unknown>> {
    const result = await runCli(server.env, args);
    if (result.code !== 0) throw new Error(`gatehouse ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
    return result.json as Record<string, unknown>;
  }

  async function signIn(email: string, scope: string, extra: Record<string, string> = {}) {
    const auth = await authorizeOverHttp({
      issuer: server.url, clientId: web.clientId, redirectUri: REDIRECT_URI, email, password: PASSWORD, scope, prompt: 'consent', extraParams: extra,
    });
    const token = await tokenRequest(discovery.token_endpoint, web, {
      grant_type: 'authorization_code', code: auth.code, redirect_uri: REDIRECT_URI, code_verifier: auth.codeVerifier, ...extra,
    });
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    return token.body;
  }

  async function accessClaims(token: string | undefined): Promise<Record<string, unknown>> {
    const { payload } = await jwtVerify(token!, jwks, { issuer: server.url, audience: API, typ: 'at+jwt' });
    return payload;
  }

  async function machine(roles: string[]): Promise<ClientCredentials> {
    const created = await cli(['client', 'create', '--name', 'Billing job', '--grant-type', 'client_credentials', ...roles.flatMap((r) => ['--role', r])]);
    return { clientId: String(created.client_id), clientSecret: String(created.client_secret) };
  }

  beforeAll(async () => {
    db = await createTestDatabase('gh_rbac');
    server = await startServer({ DATA_DIR: tempDataDir(), DATABASE_URL: db.url, ...testSecrets() });
    discovery = (await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as Discovery;
    jwks = createLocalJWKSet((await (await fetch(discovery.jwks_uri)).json()) as JSONWebKeySet);

    await cli(['resource', 'create', '--identifier', API, '--scope', 'invoices:read invoices:write invoices:approve']);
    await cli(['role', 'create', '--name', 'billing-reader', '--resource', API, '--permission', 'invoices:read']);
    await cli(['role', 'create', '--name', 'billing-clerk', '--permission', `${API} invoices:read`, '--permission', `${API} invoices:write`]);
    await cli(['role', 'add-default', 'billing-clerk', '--for', 'users', '--email-domain', 'corp.example.test']);
    for (const email of ['ada@example.test', 'bob@corp.example.test', 'cy@example.test']) {
      const user = await cli(['user', 'create', '--email', email, '--password', PASSWORD, '--verified']);
      ids[email] = String(user.id);
    }
    await cli(['role', 'assign', 'billing-reader', '--user', 'ada@example.test']);
    const created = await cli(['client', 'create', '--name', 'Billing web', '--redirect-uri', REDIRECT_URI, '--grant-type', 'authorization_code', '--grant-type', 'refresh_token']);
    web = { clientId: String(created.client_id), clientSecret: String(created.client_secret) };
  }, 180_000);

  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  });

  it('advertises the roles scope and claim', () => {
    expect(discovery.scopes_supported).toContain('roles');
    expect(discovery.claims_supported).toContain('roles');
  });

  it('gives a person only the requested scopes their roles allow, and their roles with the roles scope', async () => {
    const tokens = await signIn('ada@example.test', 'openid roles offline_access invoices:read invoices:write invoices:approve', { resource: API });
    expect((await accessClaims(tokens.access_token)).scope).toBe('invoices:read');
    expect(decodeJwt(tokens.id_token!).payload.roles).toEqual(['billing-reader']);
    expect(tokens.refresh_token).toBeTruthy();

    // A default-role rule (email domain) counts like an assignment.
    const bob = await signIn('bob@corp.example.test', 'openid invoices:read invoices:write invoices:approve', { resource: API });
    expect(String((await accessClaims(bob.access_token)).scope).split(' ').sort()).toEqual(['invoices:read', 'invoices:write']);

    // No role, no permission: the token names the API but carries no scope.
    const cy = await signIn('cy@example.test', 'openid roles invoices:read', { resource: API });
    expect((await accessClaims(cy.access_token)).scope).toBeUndefined();
    expect(decodeJwt(cy.id_token!).payload.roles).toEqual([]);

    // Taking the role away reaches the next token minted from the existing refresh token.
    await cli(['role', 'unassign', 'billing-reader', '--user', ids['ada@example.test']!]);
    const refreshed = await tokenRequest(discovery.token_endpoint, web, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    expect((await accessClaims(refreshed.body.access_token)).scope).toBeUndefined();
    await cli(['role', 'assign', 'billing-reader', '--user', 'ada@example.test']);
  });

  it('puts roles in userinfo only when the roles scope was granted', async () => {
    const withRoles = await signIn('bob@corp.example.test', 'openid roles');
    const info = (await (await fetch(discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${withRoles.access_token}` } })).json()) as Record<string, unknown>;
    expect(info).toMatchObject({ sub: ids['bob@corp.example.test'], roles: ['billing-clerk'] });
    const without = await signIn('bob@corp.example.test', 'openid email');
    const plain = (await (await fetch(discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${without.access_token}` } })).json()) as Record<string, unknown>;
    expect(plain.roles).toBeUndefined();
    expect(decodeJwt(without.id_token!).payload.roles).toBeUndefined();
  });

  it('gives a machine client the requested scopes its roles allow, never more', async () => {
    const clerk = await machine(['billing-clerk']);
    const granted = await tokenRequest(discovery.token_endpoint, clerk, { grant_type: 'client_credentials', resource: API, scope: 'invoices:read invoices:approve' });
    expect(granted.status, JSON.stringify(granted.body)).toBe(200);
    expect(granted.body.scope).toBe('invoices:read');
    const claims = await accessClaims(granted.body.access_token);
    expect(claims).toMatchObject({ sub: clerk.clientId, client_id: clerk.clientId, scope: 'invoices:read' });

    const nobody = await machine([]);
    const bare = await tokenRequest(discovery.token_endpoint, nobody, { grant_type: 'client_credentials', resource: API, scope: 'invoices:read' });
    expect(bare.status).toBe(200);
    expect(bare.body.scope).toBeUndefined();
    expect((await accessClaims(bare.body.access_token)).scope).toBeUndefined();

    // A default rule for every client, added later, reaches the next token.
    await cli(['role', 'add-default', 'billing-reader', '--for', 'clients']);
    const later = await tokenRequest(discovery.token_endpoint, await machine([]), { grant_type: 'client_credentials', resource: API, scope: 'invoices:read' });
    expect(later.body.scope).toBe('invoices:read');
  });

  it('gives management API scopes to admin clients and to people holding the administrator role only', async () => {
    const management = `${server.url}/admin/api/v1`;
    const admin = await cli(['client', 'create', '--name', 'Ops automation', '--admin']);
    expect(admin).toMatchObject({ grant_types: ['client_credentials'], roles: ['gatehouse-admin'], management_api: { resource: management } });
    const adminClient = { clientId: String(admin.client_id), clientSecret: String(admin.client_secret) };
    const token = await tokenRequest(discovery.token_endpoint, adminClient, { grant_type: 'client_credentials', resource: management, scope: 'admin:users:read admin:clients:write' });
    expect(token.body.scope).toBe('admin:users:read admin:clients:write');
    const { payload } = await jwtVerify(token.body.access_token!, jwks, { issuer: server.url, audience: management, typ: 'at+jwt' });
    expect(payload.sub).toBe(adminClient.clientId);

    const ordinary = await tokenRequest(discovery.token_endpoint, await machine([]), { grant_type: 'client_credentials', resource: management, scope: 'admin:users:read' });
    expect(ordinary.body.scope).toBeUndefined();

    const person = await signIn('cy@example.test', 'openid admin:users:read', { resource: management });
    expect(decodeJwt(person.access_token!).payload.scope).toBeUndefined();
    await cli(['role', 'assign', 'gatehouse-admin', '--user', 'cy@example.test']);
    const promoted = await signIn('cy@example.test', 'openid admin:users:read', { resource: management });
    expect(decodeJwt(promoted.access_token!).payload.scope).toBe('admin:users:read');
  });

  it('refuses bad role commands with clear errors', async () => {
    const dup = await runCli(server.env, ['role', 'create', '--name', 'billing-reader']);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('role_exists');
    const unknownPermission = await runCli(server.env, ['role', 'create', '--name', 'x', '--resource', API, '--permission', 'invoices:delete']);
    expect(unknownPermission.stderr).toContain('permission_not_found');
    const builtIn = await runCli(server.env, ['role', 'delete', 'gatehouse-admin']);
    expect(builtIn.stderr).toContain('built_in');
    const noSubject = await runCli(server.env, ['role', 'assign', 'billing-reader']);
    expect(noSubject.stderr).toContain('invalid_subject');
    const ghost = await runCli(server.env, ['role', 'assign', 'billing-reader', '--user', 'nobody@example.test']);
    expect(ghost.stderr).toContain('user_not_found');
    const badDomain = await runCli(server.env, ['role', 'add-default', 'billing-reader', '--for', 'clients', '--email-domain', 'x.test']);
    expect(badDomain.stderr).toContain('invalid_role');
  });
});
