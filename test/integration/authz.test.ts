// ABAC policies, ACL entries and the decision endpoint. Decisions are checked against a real
// PostgreSQL database (skipped visibly without TEST_DATABASE_URL); the endpoint against a running
// server whose APIs, clients, users, policies and grants are made with the CLI.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { grantAcl, listAcl, revokeAcl } from '../../src/domain/acl.ts';
import { changeAccountStatusById } from '../../src/domain/account-status.ts';
import { checkAuthorization, type Decision } from '../../src/domain/authz-check.ts';
import { createClient } from '../../src/domain/clients.ts';
import { createPolicy, deletePolicy, getPolicy, listPolicies, updatePolicy, type CreatePolicyInput } from '../../src/domain/policies.ts';
import { CACHE_TTL_MS } from '../../src/domain/policy-engine.ts';
import { createResource } from '../../src/domain/resources.ts';
import { assignRole, createRole } from '../../src/domain/roles.ts';
import { createUser } from '../../src/domain/users.ts';
import { isAppError } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { createServices, type Services } from '../../src/services.ts';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/postgres.ts';
import { runCli, startServer, tempDataDir, testSecrets, type CliResult, type RunningServer } from '../helpers/server.ts';

const logger = createLogger('silent');
const TEST = { source: 'test' };

type Json = Record<string, unknown>;

async function appErrorOf(promise: Promise<unknown>): Promise<{ code: string; status: number; message: string }> {
  try {
    await promise;
  } catch (err) {
    if (isAppError(err)) return { code: err.code, status: err.status, message: err.message };
    throw err;
  }
  throw new Error('expected an AppError');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!TEST_DATABASE_URL)('authorization decisions (PostgreSQL)', () => {
  let database: TestDatabase;
  let dataDir: string;
  let services: Services;
  let ann: string;
  let bob: string;
  let carl: string;
  let dave: string;
  let machine: string;

  /** A fresh API for each scenario, so one scenario's policies never decide another's. */
  async function newApi(scope = 'documents:read documents:write documents:delete reports:read invoices:read'): Promise<string> {
    const identifier = `https://api-${crypto.randomBytes(4).toString('hex')}.example.test`;
    await createResource(services, { identifier, scope });
    return identifier;
  }

  const policy = (resource: string, input: CreatePolicyInput) => createPolicy(services, resource, input, TEST);
  // Requests as a resource server sends them: plain JSON, validated by the decision itself.
  const check = (input: Json): Promise<Decision> => checkAuthorization(services, input);
  const asUser = (id: string, attributes?: Json) => ({ type: 'user' as const, id, ...(attributes ? { attributes } : {}) });

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = tempDataDir();
    services = await createServices(loadConfig({ DATA_DIR: dataDir, DATABASE_URL: database.url }), logger);
    ann = (await createUser(services, { email: 'ann@example.test', password: 'correct horse battery', emailVerified: true })).id;
    bob = (await createUser(services, { email: 'bob@example.test', password: 'correct horse battery', emailVerified: false })).id;
    carl = (await createUser(services, { email: 'carl@example.test', password: 'correct horse battery', emailVerified: true })).id;
    dave = (await createUser(services, { email: 'dave@example.test', password: 'correct horse battery', emailVerified: true })).id;
    await changeAccountStatusById(services, carl, 'suspend', TEST);
    machine = (await createClient(services, { name: 'Sync job', grantTypes: ['client_credentials'] })).client_id;
  }, 60_000);

  afterAll(async () => {
    await services?.close();
    await database?.drop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  describe('RBAC fallback', () => {
    it('allows an action that is one of the subject\'s permissions when no policy or ACL names it', async () => {
      const api = await newApi();
      await createRole(services, { name: 'report-reader', permissions: [{ resource: api, permission: 'reports:read' }] }, TEST);
      await assignRole(services, 'report-reader', { type: 'user', id: dave }, TEST);

      expect(await check({ resource: api, subject: asUser(dave), action: 'reports:read' })).toEqual({
        allowed: true,
        reason: 'permission:reports:read',
        description: 'the subject\'s roles grant the permission "reports:read"',
      });
      expect(await check({ resource: api, subject: `user:${ann}`, action: 'reports:read' })).toEqual({
        allowed: false,
        reason: 'no-match',
        description: 'no matching permission, policy or ACL',
      });
      expect(await check({ resource: api, subject: asUser(dave), action: 'documents:read' })).toMatchObject({ allowed: false, reason: 'no-match' });
    });

    it('refuses unknown and inactive subjects before anything else', async () => {
      const api = await newApi();
      await policy(api, { name: 'everyone', effect: 'allow', actions: ['*'], condition: 'true' });
      expect(await check({ resource: api, subject: asUser(crypto.randomUUID()), action: 'documents:read' })).toMatchObject({ allowed: false, reason: 'subject-unknown' });
      expect(await check({ resource: api, subject: asUser('not-a-uuid'), action: 'documents:read' })).toMatchObject({ allowed: false, reason: 'subject-unknown' });
      expect(await check({ resource: api, subject: asUser(carl), action: 'documents:read' })).toEqual({ allowed: false, reason: 'subject-inactive', description: 'the account is suspended' });
      expect(await check({ resource: api, subject: { type: 'client', id: 'no-such-client' }, action: 'documents:read' })).toMatchObject({ allowed: false, reason: 'subject-unknown' });
      expect(await check({ resource: api, subject: asUser(ann), action: 'documents:read' })).toMatchObject({ allowed: true, reason: 'policy:everyone' });
      expect(await check({ resource: api, subject: { type: 'client', id: machine }, action: 'documents:read' })).toMatchObject({ allowed: true, reason: 'policy:everyone' });
    });
  });

  describe('ABAC policies', () => {
    it('decides on subject attributes: a caller-supplied department and the email_verified Gatehouse knows', async () => {
      const api = await newApi();
      const created = await policy(api, {
        name: 'finance-invoices',
        description: 'Finance reads invoices',
        effect: 'allow',
        actions: ['invoices:read'],
        condition: 'r.sub.department == "finance" && r.sub.email_verified == true',
      });
      expect(created).toMatchObject({ name: 'finance-invoices', effect: 'allow', actions: ['invoices:read'], enabled: true, description: 'Finance reads invoices' });

      expect(await check({ resource: api, subject: asUser(ann, { department: 'finance' }), action: 'invoices:read' })).toEqual({
        allowed: true,
        reason: 'policy:finance-invoices',
        description: 'allowed by policy "finance-invoices"',
      });
      expect(await check({ resource: api, subject: asUser(ann, { department: 'sales' }), action: 'invoices:read' })).toMatchObject({ allowed: false, reason: 'no-match' });
      expect(await check({ resource: api, subject: asUser(ann), action: 'invoices:read' })).toMatchObject({ allowed: false, reason: 'no-match' });
      // Bob has not verified his address; what Gatehouse knows wins over what the caller claims.
      expect(await check({ resource: api, subject: asUser(bob, { department: 'finance' }), action: 'invoices:read' })).toMatchObject({ allowed: false });
      expect(await check({ resource: api, subject: asUser(bob, { department: 'finance', email_verified: true }), action: 'invoices:read' })).toMatchObject({ allowed: false });
      // The policy is about invoices:read only.
      expect(await check({ resource: api, subject: asUser(ann, { department: 'finance' }), action: 'reports:read' })).toMatchObject({ allowed: false, reason: 'no-match' });
    });

    it('replaces the RBAC fallback for the actions an allow policy names', async () => {
      const api = await newApi();
      await createRole(services, { name: `invoice-reader-${crypto.randomBytes(3).toString('hex')}`, permissions: [{ resource: api, permission: 'invoices:read' }] }, TEST)
        .then((role) => assignRole(services, role.name, { type: 'user', id: dave }, TEST));
      expect(await check({ resource: api, subject: asUser(dave), action: 'invoices:read' })).toMatchObject({ allowed: true, reason: 'permission:invoices:read' });

      await policy(api, { name: 'finance-only', effect: 'allow', actions: ['invoices:read'], condition: 'r.sub.department == "finance"' });
      expect(await check({ resource: api, subject: asUser(dave), action: 'invoices:read' })).toEqual({
        allowed: false,
        reason: 'no-match',
        description: '"invoices:read" is decided by policies and ACL entries of this API, and none allows it',
      });
      // A policy can still defer to the role's permission explicitly.
      await policy(api, { name: 'or-permission', effect: 'allow', actions: ['invoices:read'], condition: '("invoices:read" in r.sub.permissions)' });
      expect(await check({ resource: api, subject: asUser(dave), action: 'invoices:read' })).toMatchObject({ allowed: true, reason: 'policy:or-permission' });
    });

    it('decides on the IP range of the request context with ipMatch (IPv4 and IPv6)', async () => {
      const api = await newApi();
      await policy(api, { name: 'office-network', effect: 'allow', actions: ['reports:read'], condition: 'ipMatch(r.ctx.ip, "10.0.0.0/8") || ipMatch(r.ctx.ip, "2001:db8::/32")' });
      const at = (ip?: string) => check({ resource: api, subject: asUser(ann), action: 'reports:read', ...(ip ? { context: { ip } } : {}) });
      expect(await at('10.20.30.40')).toMatchObject({ allowed: true, reason: 'policy:office-network' });
      expect(await at('2001:db8::1')).toMatchObject({ allowed: true, reason: 'policy:office-network' });
      expect(await at('192.0.2.10')).toMatchObject({ allowed: false, reason: 'no-match' });
      // Without an address the condition cannot hold: an allow policy then simply does not match.
      expect(await at()).toMatchObject({ allowed: false, reason: 'no-match' });
    });

    it('decides on a time window computed in UTC from the context time, or on the hour the caller sends', async () => {
      const api = await newApi();
      await policy(api, {
        name: 'business-hours',
        effect: 'allow',
        actions: ['documents:read'],
        condition: 'r.ctx.weekday >= 1 && r.ctx.weekday <= 5 && r.ctx.hour >= 9 && r.ctx.hour < 17',
      });
      const at = (context: Json) => check({ resource: api, subject: asUser(ann), action: 'documents:read', context });
      expect(await at({ time: '2026-11-23T10:15:00Z' })).toMatchObject({ allowed: true, reason: 'policy:business-hours' }); // Monday
      expect(await at({ time: '2026-11-23T11:15:00+02:00' })).toMatchObject({ allowed: true }); // 09:15 UTC
      expect(await at({ time: '2026-11-23T17:00:00Z' })).toMatchObject({ allowed: false });
      expect(await at({ time: '2026-11-22T10:15:00Z' })).toMatchObject({ allowed: false }); // Sunday
      // A caller deciding in its users' local time sends the hour itself.
      expect(await at({ time: '2026-11-23T20:00:00Z', hour: 10 })).toMatchObject({ allowed: true });
    });

    it('decides on MFA in the session from the amr or acr of the caller\'s token, and on object ownership', async () => {
      const api = await newApi();
      await policy(api, { name: 'owner-deletes-with-mfa', effect: 'allow', actions: ['documents:delete'], condition: 'r.obj.owner == r.sub.id && r.ctx.mfa' });
      const del = (context: Json, owner = ann) => check({ resource: api, subject: asUser(ann), action: 'documents:delete', object: { id: 'doc-7', type: 'document', attributes: { owner } }, context });
      expect(await del({ amr: ['pwd', 'otp', 'mfa'] })).toMatchObject({ allowed: true, reason: 'policy:owner-deletes-with-mfa' });
      expect(await del({ acr: 'urn:gatehouse:acr:mfa' })).toMatchObject({ allowed: true });
      expect(await del({ amr: ['pwd'] })).toMatchObject({ allowed: false, reason: 'no-match' });
      expect(await del({ amr: ['pwd', 'otp', 'mfa'] }, dave)).toMatchObject({ allowed: false, reason: 'no-match' });
    });

    it('lets a matching deny policy win over allow policies, ACL entries and permissions', async () => {
      const api = await newApi();
      await createRole(services, { name: `writer-${crypto.randomBytes(3).toString('hex')}`, permissions: [{ resource: api, permission: 'documents:write' }] }, TEST)
        .then((role) => assignRole(services, role.name, { type: 'user', id: ann }, TEST));
      await policy(api, { name: 'verified-read', effect: 'allow', actions: ['documents:read'], condition: 'r.sub.email_verified' });
      await grantAcl(services, api, { subject: `user:${ann}`, object: 'doc-1', action: 'documents:read' }, TEST);
      await policy(api, { name: 'blocked-ips', effect: 'deny', actions: ['*'], condition: 'ipMatch(r.ctx.ip, "198.51.100.0/24")' });

      const from = (ip: string | undefined, action: string) =>
        check({ resource: api, subject: asUser(ann), action, object: 'doc-1', ...(ip ? { context: { ip } } : {}) });
      expect(await from('203.0.113.5', 'documents:read')).toMatchObject({ allowed: true, reason: 'policy:verified-read' });
      expect(await from('203.0.113.5', 'documents:write')).toMatchObject({ allowed: true, reason: 'permission:documents:write' });
      expect(await from('198.51.100.7', 'documents:read')).toEqual({ allowed: false, reason: 'deny-policy:blocked-ips', description: 'refused by deny policy "blocked-ips"' });
      expect(await from('198.51.100.7', 'documents:write')).toMatchObject({ allowed: false, reason: 'deny-policy:blocked-ips' });
      // A deny policy whose condition cannot be evaluated (no address sent) refuses: fail closed.
      expect(await from(undefined, 'documents:write')).toMatchObject({ allowed: false, reason: 'policy-error:blocked-ips' });

      // Disabled, the deny policy no longer applies, at once in this process.
      await updatePolicy(services, api, 'blocked-ips', { enabled: false }, TEST);
      expect(await from('198.51.100.7', 'documents:read')).toMatchObject({ allowed: true, reason: 'policy:verified-read' });
      await deletePolicy(services, api, 'verified-read', TEST);
      expect(await from('198.51.100.7', 'documents:read')).toMatchObject({ allowed: true, reason: `acl:user:${ann}` });
    });

    it('refuses a bad condition at creation with a readable message, storing nothing', async () => {
      const api = await newApi();
      const bad = (condition: string) => appErrorOf(policy(api, { name: 'bad', effect: 'allow', actions: ['documents:read'], condition }));
      expect(await bad('r.sub.department == ')).toEqual({ code: 'invalid_policy', status: 400, message: 'the condition is not a valid expression: Expected expression after == at position 20' });
      expect(await bad('r.sub.department == "x" &&')).toMatchObject({ code: 'invalid_policy', status: 400, message: expect.stringContaining('not a valid expression') });
      expect(await bad('r.subject.department == "x"')).toMatchObject({ code: 'invalid_policy', message: '"r" must be followed by .sub, .obj, .ctx or .act (position 1)' });
      expect(await bad('process.exit(1)')).toMatchObject({ code: 'invalid_policy', message: expect.stringContaining('unknown name "process"') });
      expect(await bad('r.sub.constructor.constructor("return 1")()')).toMatchObject({ code: 'invalid_policy', message: 'the condition may not use the member "constructor"' });
      expect(await bad('ipMatch(r.ctx.ip, "10.0.0.0/33")')).toMatchObject({ code: 'invalid_policy', message: expect.stringContaining('"10.0.0.0/33" is neither') });
      expect(await bad('regexMatch(r.sub.email, "(")')).toMatchObject({ code: 'invalid_policy', message: expect.stringContaining('Invalid regular expression') });
      expect(await bad('r.sub.name == "unterminated')).toMatchObject({ code: 'invalid_policy', message: expect.stringContaining('unterminated string') });
      expect(await bad('  ')).toMatchObject({ code: 'invalid_policy' });
      expect(await appErrorOf(policy(api, { name: 'bad name!', effect: 'allow', actions: ['x'], condition: 'true' }))).toMatchObject({ code: 'invalid_policy' });
      expect(await appErrorOf(policy(api, { name: 'ok', effect: 'permit' as 'allow', actions: ['x'], condition: 'true' }))).toMatchObject({ code: 'invalid_policy' });
      expect(await appErrorOf(policy(api, { name: 'ok', effect: 'allow', actions: [], condition: 'true' }))).toMatchObject({ code: 'invalid_policy' });
      expect(await appErrorOf(policy('https://nowhere.example.test', { name: 'ok', effect: 'allow', actions: ['x'], condition: 'true' }))).toMatchObject({ code: 'resource_not_found', status: 404 });
      expect(await listPolicies(services, api)).toEqual([]);

      await policy(api, { name: 'ok', effect: 'allow', actions: ['documents:read'], condition: 'true' });
      expect(await appErrorOf(policy(api, { name: 'ok', effect: 'deny', actions: ['documents:read'], condition: 'true' }))).toMatchObject({ code: 'policy_exists', status: 409 });
      expect(await appErrorOf(updatePolicy(services, api, 'ok', { condition: 'r.sub.x ==' }, TEST))).toMatchObject({ code: 'invalid_policy' });
      expect(await getPolicy(services, api, 'ok')).toMatchObject({ condition: 'true' });
      expect(await appErrorOf(getPolicy(services, api, 'missing'))).toMatchObject({ code: 'policy_not_found', status: 404 });
    });

    it('audits every change with the policy and its condition', async () => {
      const api = await newApi();
      await policy(api, { name: 'audited', effect: 'deny', actions: ['documents:delete'], condition: '!r.ctx.mfa' });
      await updatePolicy(services, api, 'audited', { actions: ['documents:delete', 'documents:write'] }, TEST);
      await deletePolicy(services, api, 'audited', TEST);
      const events = await services.knex('audit_events').whereRaw("details->>'resource' = ?", [api]).orderBy('id').select<{ event_type: string; details: Json }[]>('event_type', 'details');
      expect(events.map((e) => e.event_type)).toEqual(['policy.created', 'policy.updated', 'policy.deleted']);
      expect(events[0]!.details).toMatchObject({ policy: 'audited', effect: 'deny', condition: '!r.ctx.mfa', actions: ['documents:delete'], source: 'test' });
      expect(events[1]!.details).toMatchObject({ actions: ['documents:delete', 'documents:write'] });
    });

    it('is seen by another process within the cache lifetime', async () => {
      const api = await newApi();
      await policy(api, { name: 'all', effect: 'allow', actions: ['documents:read'], condition: 'true' });
      const other = await createServices(loadConfig({ DATA_DIR: tempDataDir(), DATABASE_URL: database.url }), logger);
      try {
        const read = () => checkAuthorization(other, { resource: api, subject: asUser(ann), action: 'documents:read' });
        expect(await read()).toMatchObject({ allowed: true });
        await policy(api, { name: 'nobody', effect: 'deny', actions: ['*'], condition: 'true' });
        // The other instance still holds the compiled policies it read a moment ago...
        expect(await read()).toMatchObject({ allowed: true });
        await sleep(CACHE_TTL_MS + 200);
        // ...and sees the change once they expire.
        expect(await read()).toMatchObject({ allowed: false, reason: 'deny-policy:nobody' });
      } finally {
        await other.close();
        fs.rmSync(other.config.dataDir, { recursive: true, force: true });
      }
    }, 20_000);
  });

  describe('ACL entries', () => {
    it('grant one object at a time to a user, a role or a client; "*" grants every object', async () => {
      const api = await newApi();
      const editor = `editor-${crypto.randomBytes(3).toString('hex')}`;
      await createRole(services, { name: editor }, TEST);
      await assignRole(services, editor, { type: 'user', id: dave }, TEST);
      expect(await grantAcl(services, api, { subject: `user:${ann}`, object: 'doc-1', action: 'documents:read' }, TEST)).toMatchObject({ subject: `user:${ann}`, object: 'doc-1', action: 'documents:read', created: true });
      await grantAcl(services, api, { subject: `role:${editor}`, object: 'doc-2', action: 'documents:write' }, TEST);
      await grantAcl(services, api, { subject: `client:${machine}`, object: '*', action: 'documents:read' }, TEST);
      expect(await grantAcl(services, api, { subject: `user:${ann}`, object: 'doc-1', action: 'documents:read' }, TEST)).toMatchObject({ created: false });

      const may = (subject: string | Json, action: string, object: string) => check({ resource: api, subject, action, object });
      expect(await may(asUser(ann), 'documents:read', 'doc-1')).toEqual({ allowed: true, reason: `acl:user:${ann}`, description: `an ACL entry grants "documents:read" on "doc-1" to user:${ann}` });
      expect(await may(asUser(ann), 'documents:read', 'doc-2')).toMatchObject({ allowed: false, reason: 'no-match' });
      expect(await may(asUser(ann), 'documents:write', 'doc-2')).toMatchObject({ allowed: false });
      expect(await may(asUser(dave), 'documents:write', 'doc-2')).toMatchObject({ allowed: true, reason: `acl:role:${editor}` });
      expect(await may(asUser(dave), 'documents:write', 'doc-1')).toMatchObject({ allowed: false });
      expect(await may({ type: 'client', id: machine }, 'documents:read', 'anything-at-all')).toMatchObject({ allowed: true, reason: `acl:client:${machine}` });
      expect(await may({ type: 'client', id: machine }, 'documents:write', 'doc-2')).toMatchObject({ allowed: false });

      expect(await listAcl(services, api, { object: 'doc-2' })).toEqual([{ subject: `role:${editor}`, object: 'doc-2', action: 'documents:write', created_at: expect.any(String) }]);
      await revokeAcl(services, api, { subject: `user:${ann}`, object: 'doc-1', action: 'documents:read' }, TEST);
      expect(await may(asUser(ann), 'documents:read', 'doc-1')).toMatchObject({ allowed: false });
      expect(await appErrorOf(revokeAcl(services, api, { subject: `user:${ann}`, object: 'doc-1', action: 'documents:read' }, TEST))).toMatchObject({ code: 'acl_entry_not_found', status: 404 });
    });

    it('make ACL-governed actions ignore the RBAC permission of the same name', async () => {
      const api = await newApi();
      const reader = `doc-reader-${crypto.randomBytes(3).toString('hex')}`;
      await createRole(services, { name: reader, permissions: [{ resource: api, permission: 'documents:read' }] }, TEST);
      await assignRole(services, reader, { type: 'user', id: dave }, TEST);
      expect(await check({ resource: api, subject: asUser(dave), action: 'documents:read', object: 'doc-5' })).toMatchObject({ allowed: true, reason: 'permission:documents:read' });
      await grantAcl(services, api, { subject: `user:${ann}`, object: 'doc-5', action: 'documents:read' }, TEST);
      expect(await check({ resource: api, subject: asUser(dave), action: 'documents:read', object: 'doc-5' })).toMatchObject({ allowed: false, reason: 'no-match' });
      // The role's holders get the objects through a role grant instead.
      await grantAcl(services, api, { subject: `role:${reader}`, object: '*', action: 'documents:read' }, TEST);
      expect(await check({ resource: api, subject: asUser(dave), action: 'documents:read', object: 'doc-5' })).toMatchObject({ allowed: true, reason: `acl:role:${reader}` });
    });

    it('refuse malformed grants and subjects that do not exist, and audit grants and revocations', async () => {
      const api = await newApi();
      expect(await appErrorOf(grantAcl(services, api, { subject: 'group:x', object: 'a', action: 'documents:read' }, TEST))).toMatchObject({ code: 'invalid_acl_entry', status: 400 });
      expect(await appErrorOf(grantAcl(services, api, { subject: `user:${ann}`, object: '', action: 'documents:read' }, TEST))).toMatchObject({ code: 'invalid_acl_entry' });
      expect(await appErrorOf(grantAcl(services, api, { subject: `user:${ann}`, object: 'a', action: 'has space' }, TEST))).toMatchObject({ code: 'invalid_acl_entry' });
      expect(await appErrorOf(grantAcl(services, api, { subject: `user:${crypto.randomUUID()}`, object: 'a', action: 'x' }, TEST))).toMatchObject({ code: 'subject_not_found', status: 404 });
      expect(await appErrorOf(grantAcl(services, api, { subject: 'role:no-such-role', object: 'a', action: 'x' }, TEST))).toMatchObject({ code: 'subject_not_found' });
      expect(await appErrorOf(grantAcl(services, api, { subject: 'client:no-such-client', object: 'a', action: 'x' }, TEST))).toMatchObject({ code: 'subject_not_found' });

      await grantAcl(services, api, { subject: `client:${machine}`, object: 'b', action: 'documents:read' }, TEST);
      await revokeAcl(services, api, { subject: `client:${machine}`, object: 'b', action: 'documents:read' }, TEST);
      const events = await services.knex('audit_events').whereRaw("details->>'resource' = ?", [api]).orderBy('id').select<{ event_type: string; details: Json }[]>('event_type', 'details');
      expect(events.map((e) => [e.event_type, e.details.subject, e.details.object])).toEqual([
        ['acl.granted', `client:${machine}`, 'b'],
        ['acl.revoked', `client:${machine}`, 'b'],
      ]);
    });
  });

  it('validates the request shape', async () => {
    const api = await newApi();
    expect(await appErrorOf(check({ resource: api, subject: asUser(ann), action: 'has space' }))).toMatchObject({ code: 'invalid_request', status: 400, message: expect.stringContaining('action') });
    expect(await appErrorOf(check({ resource: api, subject: 'group:1', action: 'x' }))).toMatchObject({ code: 'invalid_request' });
    expect(await appErrorOf(check({ resource: api, subject: asUser(ann), action: 'x', context: { ip: 'not-an-ip' } }))).toMatchObject({ code: 'invalid_request', message: 'context.ip: context.ip is an IPv4 or IPv6 address' });
    expect(await appErrorOf(check({ resource: api, subject: asUser(ann, { 'bad-name': 1 }), action: 'x' }))).toMatchObject({ code: 'invalid_request' });
    expect(await appErrorOf(check({ resource: 'https://nowhere.example.test', subject: asUser(ann), action: 'x' }))).toMatchObject({ code: 'resource_not_found', status: 404 });
  });
});

// ---------------------------------------------------------------------------------------------
// The HTTP endpoint and the CLI, against a running server
// ---------------------------------------------------------------------------------------------

function ok(result: CliResult): Json {
  expect(result.stderr, 'nothing on stderr').toBe('');
  expect(result.code).toBe(0);
  return result.json as Json;
}

function basic(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

describe('POST /api/v1/authz/check', () => {
  const API = 'https://documents.example.test';
  let server: RunningServer;
  let database: TestDatabase | undefined;
  let env: Record<string, string>;
  let endpoint: string;
  let apiClient: { client_id: string; client_secret: string };
  let otherClient: { client_id: string; client_secret: string };
  let postClient: { client_id: string; client_secret: string };
  let ann: { id: string };

  const cli = async (...args: string[]): Promise<Json> => ok(await runCli(env, args));

  async function call(body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Json; headers: Headers }> {
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(text).not.toMatch(/\bat .+\.ts:\d+/);
    return { status: res.status, body: JSON.parse(text) as Json, headers: res.headers };
  }

  const asApi = () => ({ authorization: basic(apiClient.client_id, apiClient.client_secret) });

  beforeAll(async () => {
    const dataDir = tempDataDir('gh-authz-');
    database = TEST_DATABASE_URL ? await createTestDatabase() : undefined;
    env = { DATA_DIR: dataDir, ...testSecrets(), ...(database ? { DATABASE_URL: database.url } : {}) };
    server = await startServer(env);
    env = { ...env, ISSUER: server.url };
    endpoint = `${server.url}/api/v1/authz/check`;
    apiClient = (await cli('client', 'create', '--name', 'Documents API', '--grant-type', 'client_credentials')) as typeof apiClient;
    otherClient = (await cli('client', 'create', '--name', 'Other API', '--grant-type', 'client_credentials')) as typeof otherClient;
    postClient = (await cli('client', 'create', '--name', 'Reports API', '--grant-type', 'client_credentials', '--auth-method', 'client_secret_post')) as typeof postClient;
    await cli('resource', 'create', '--identifier', API, '--scope', 'documents:read documents:write', '--api-client', apiClient.client_id);
    await cli('resource', 'create', '--identifier', 'https://reports.example.test', '--scope', 'reports:read', '--api-client', postClient.client_id);
    ann = (await cli('user', 'create', '--email', 'ann@example.test', '--password', 'correct horse battery', '--verified')) as typeof ann;
  }, 180_000);

  afterAll(async () => {
    await server?.stop();
    await database?.drop();
    if (env?.DATA_DIR) fs.rmSync(env.DATA_DIR, { recursive: true, force: true });
  });

  it('policies and grants made with the CLI decide; a bad condition is refused by the CLI', async () => {
    const refused = await runCli(env, ['policy', 'create', '--resource', API, '--name', 'broken', '--action', 'documents:read', '--condition', 'r.sub.department =="finance" &&']);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stderr.trim())).toMatchObject({ error: 'invalid_policy', message: expect.stringContaining('not a valid expression') });

    expect(await cli('policy', 'create', '--resource', API, '--name', 'finance-reads', '--action', 'documents:read', '--condition', 'r.sub.department == "finance"')).toMatchObject({
      name: 'finance-reads',
      effect: 'allow',
      actions: ['documents:read'],
      enabled: true,
    });
    expect(await cli('policy', 'create', '--resource', API, '--name', 'blocked-ips', '--effect', 'deny', '--action', '*', '--condition', 'ipMatch(r.ctx.ip, "198.51.100.0/24")')).toMatchObject({ effect: 'deny', actions: ['*'] });
    expect(await cli('acl', 'grant', '--resource', API, '--subject', 'user:ann@example.test', '--object', 'doc-1', '--action', 'documents:write')).toMatchObject({
      subject: `user:${ann.id}`,
      object: 'doc-1',
      action: 'documents:write',
      created: true,
    });
    expect((await cli('policy', 'list', '--resource', API)).policies).toHaveLength(2);
    expect((await cli('acl', 'list', '--resource', API, '--subject', 'user:ann@example.test')).entries).toHaveLength(1);
    expect(await cli('authz', 'check', '--resource', API, '--subject', 'user:ann@example.test', '--action', 'documents:read', '--subject-attributes', '{"department": "finance"}', '--context', '{"ip": "203.0.113.9"}')).toEqual({
      allowed: true,
      reason: 'policy:finance-reads',
      description: 'allowed by policy "finance-reads"',
    });
  });

  it('answers the API\'s own client with {allowed, reason}', async () => {
    const request = { resource: API, subject: { type: 'user', id: ann.id, attributes: { department: 'finance' } }, action: 'documents:read', context: { ip: '203.0.113.9' } };
    const allowed = await call(request, asApi());
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('cache-control')).toBe('no-store');
    expect(allowed.body).toEqual({ allowed: true, reason: 'policy:finance-reads', description: 'allowed by policy "finance-reads"' });

    expect((await call({ ...request, context: { ip: '198.51.100.20' } }, asApi())).body).toMatchObject({ allowed: false, reason: 'deny-policy:blocked-ips' });
    expect((await call({ ...request, subject: `user:${ann.id}` }, asApi())).body).toMatchObject({ allowed: false, reason: 'no-match' });
    expect((await call({ ...request, action: 'documents:write', object: 'doc-1' }, asApi())).body).toEqual({
      allowed: true,
      reason: `acl:user:${ann.id}`,
      description: `an ACL entry grants "documents:write" on "doc-1" to user:${ann.id}`,
    });
    expect((await call({ ...request, action: 'documents:write', object: { id: 'doc-2', type: 'document' } }, asApi())).body).toMatchObject({ allowed: false });
    expect((await call({ ...request, subject: { type: 'user', id: crypto.randomUUID() } }, asApi())).body).toMatchObject({ allowed: false, reason: 'subject-unknown' });
  });

  it('accepts client_secret_post credentials in the JSON body for clients registered with that method', async () => {
    const res = await call({ client_id: postClient.client_id, client_secret: postClient.client_secret, resource: 'https://reports.example.test', subject: `user:${ann.id}`, action: 'reports:read' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ allowed: false, reason: 'no-match' });
    // The registered method is the only one accepted (as at the token endpoint).
    expect((await call({ resource: 'https://reports.example.test', subject: `user:${ann.id}`, action: 'reports:read' }, { authorization: basic(postClient.client_id, postClient.client_secret) })).status).toBe(401);
  });

  it('answers 401 with a Basic challenge without credentials or with wrong ones', async () => {
    const request = { resource: API, subject: `user:${ann.id}`, action: 'documents:read' };
    const attempts: Record<string, string>[] = [{}, { authorization: basic(apiClient.client_id, 'wrong-secret-of-some-length') }, { authorization: basic('nobody', 'x') }];
    for (const headers of attempts) {
      const res = await call(request, headers);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
      expect(res.body).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
    }
    const noBody = await fetch(endpoint, { method: 'POST' });
    expect(noBody.status).toBe(401);
    expect(await noBody.json()).toMatchObject({ error: 'invalid_client' });
  });

  it('answers 403 to a client asking about an API that is not its own, or one that does not exist', async () => {
    const other = { authorization: basic(otherClient.client_id, otherClient.client_secret) };
    for (const resource of [API, 'https://nowhere.example.test']) {
      const res = await call({ resource, subject: `user:${ann.id}`, action: 'documents:read' }, other);
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ error: 'forbidden' });
    }
  });

  it('answers 400 to malformed JSON and requests of the wrong shape, 415 to other content types, 405 to other methods', async () => {
    const badJson = await call('{"resource": ', asApi());
    expect(badJson.status).toBe(400);
    expect(badJson.body).toEqual({ error: 'invalid_request', error_description: 'the request body is not valid JSON' });

    const missingAction = await call({ resource: API, subject: `user:${ann.id}` }, asApi());
    expect(missingAction.status).toBe(400);
    expect(missingAction.body).toEqual({ error: 'invalid_request', error_description: 'action: action is required' });

    const unknownField = await call({ resource: API, subject: `user:${ann.id}`, action: 'documents:read', objet: 'doc-1' }, asApi());
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.error_description).toContain('objet');

    expect((await call([1, 2], asApi())).status).toBe(400);

    const text = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'text/plain', ...asApi() }, body: 'hello' });
    expect(text.status).toBe(415);
    expect(await text.json()).toEqual({ error: 'invalid_request', error_description: 'send the request body as application/json' });

    const get = await fetch(endpoint, { headers: asApi() });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(await get.json()).toEqual({ error: 'invalid_request', error_description: 'the decision endpoint accepts POST only' });
  });
});
