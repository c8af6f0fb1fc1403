// Audit trail and observability: audit rows are append-only in the database itself (embedded
// PGlite and a PostgreSQL server, the latter skipped visibly without TEST_DATABASE_URL), the
// retention sweep removes only rows past their time, /metrics answers only with its token and
// its counters move as people sign in, get tokens, hit limits and lock themselves out, and the
// /account "Security activity" page shows a person their own events and nobody else's.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { loadConfig } from '../../src/config.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { migrateLatest } from '../../src/db/migrate.ts';
import { withAuditMaintenance } from '../../src/db/audit-maintenance.ts';
import { recordAudit } from '../../src/domain/audit.ts';
import { sweepAuditRetention } from '../../src/domain/audit-retention.ts';
import { securityActivity } from '../../src/domain/security-activity.ts';
import { authorizeOverHttp, CookieJar, tokenRequest, type ClientCredentials } from '../helpers/http-login.ts';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/postgres.ts';
import { runCli, startServer, tempDataDir, testSecrets, type RunningServer } from '../helpers/server.ts';

const DAY_MS = 24 * 3600 * 1000;

interface Opened {
  knex: Knex;
  /** A second, independent connection pool to the same database (the embedded one has only one). */
  other: Knex;
  close(): Promise<void>;
}

async function openEmbedded(): Promise<Opened> {
  const dataDir = tempDataDir('gh-audit-');
  const database = await openDatabase(loadConfig({ DATA_DIR: dataDir }));
  await migrateLatest(database.knex);
  return {
    knex: database.knex,
    other: database.knex,
    async close() {
      await database.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function openPostgres(): Promise<Opened> {
  const testDb: TestDatabase = await createTestDatabase('gh_audit');
  const dataDir = tempDataDir('gh-audit-pg-');
  const config = loadConfig({ DATA_DIR: dataDir, DATABASE_URL: testDb.url });
  const databases: Database[] = [await openDatabase(config), await openDatabase(config)];
  await migrateLatest(databases[0]!.knex);
  return {
    knex: databases[0]!.knex,
    other: databases[1]!.knex,
    async close() {
      for (const d of databases) await d.close();
      await testDb.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const newAccountId = () => crypto.randomUUID();

async function insertEvent(knex: Knex, accountId: string, occurredAt: Date, type = 'login.password'): Promise<string> {
  const [row] = await knex('audit_events')
    .insert({ event_type: type, outcome: 'success', account_id: accountId, ip: '203.0.113.7', occurred_at: occurredAt, details: JSON.stringify({}) })
    .returning<{ id: string }[]>('id');
  return String(row!.id);
}

function auditStorageSuite(name: string, open: () => Promise<Opened>, skip = false): void {
  describe.skipIf(skip)(`audit storage: ${name}`, () => {
    let db: Opened;

    beforeAll(async () => {
      db = await open();
    });
    afterAll(async () => {
      await db?.close();
    });

    it('refuses UPDATE, DELETE and TRUNCATE of audit rows', async () => {
      const accountId = newAccountId();
      await recordAudit(db.knex, { type: 'login.password', outcome: 'failure', accountId, ip: '198.51.100.1', details: { reason: 'bad_password' } });
      const rows = () => db.knex('audit_events').where({ account_id: accountId }).select('event_type', 'outcome', 'ip');

      await expect(db.knex('audit_events').where({ account_id: accountId }).update({ outcome: 'success' })).rejects.toThrow(/append-only: UPDATE refused/);
      await expect(db.knex('audit_events').where({ account_id: accountId }).del()).rejects.toThrow(/append-only: DELETE refused/);
      await expect(db.knex.raw('TRUNCATE audit_events')).rejects.toThrow(/append-only: TRUNCATE refused/);
      expect(await rows()).toEqual([{ event_type: 'login.password', outcome: 'failure', ip: '198.51.100.1' }]);
    });

    it('lets retention delete but not edit, and erasure pseudonymise but not rewrite what happened', async () => {
      const accountId = newAccountId();
      const id = await insertEvent(db.knex, accountId, new Date());

      await expect(db.knex.transaction(async (trx) => {
        await withAuditMaintenance(trx, 'retention');
        await trx('audit_events').where({ id }).update({ ip: null });
      })).rejects.toThrow(/append-only: UPDATE refused/);

      await db.knex.transaction(async (trx) => {
        await withAuditMaintenance(trx, 'erasure');
        await trx('audit_events').where({ id }).update({ ip: null, user_agent: null, details: JSON.stringify({ erased: true }) });
      });
      expect(await db.knex('audit_events').where({ id }).first('ip', 'details', 'event_type')).toEqual({ ip: null, details: { erased: true }, event_type: 'login.password' });

      await expect(db.knex.transaction(async (trx) => {
        await withAuditMaintenance(trx, 'erasure');
        await trx('audit_events').where({ id }).update({ event_type: 'login.passkey' });
      })).rejects.toThrow(/erasure may only change personal data/);

      await db.knex.transaction(async (trx) => {
        await withAuditMaintenance(trx, 'retention');
        await trx('audit_events').where({ id }).del();
      });
      expect(await db.knex('audit_events').where({ id }).first()).toBeUndefined();
    });

    it('ends the permission with its transaction, even on the same connection', async () => {
      const accountId = newAccountId();
      const id = await insertEvent(db.knex, accountId, new Date());
      await db.knex.transaction(async (trx) => {
        await withAuditMaintenance(trx, 'retention');
      });
      // The embedded database has exactly one connection: this runs where the setting was made.
      await expect(db.knex('audit_events').where({ id }).del()).rejects.toThrow(/append-only/);
      await expect(withAuditMaintenance(db.knex as unknown as Knex.Transaction, 'retention')).rejects.toThrow(/needs a transaction/);
      expect(await db.knex('audit_events').where({ id }).count<{ count: string | number }[]>('* as count').then((r) => Number(r[0]!.count))).toBe(1);
    });

    it('sweeps only events older than the retention period, in batches', async () => {
      const accountId = newAccountId();
      const now = new Date();
      await insertEvent(db.knex, accountId, new Date(now.getTime() - 400 * DAY_MS));
      await insertEvent(db.knex, accountId, new Date(now.getTime() - 366 * DAY_MS));
      await insertEvent(db.knex, accountId, new Date(now.getTime() - 10 * DAY_MS));
      await insertEvent(db.knex, accountId, now);
      const ages = async () => (await db.knex('audit_events').where({ account_id: accountId }).orderBy('occurred_at').pluck('occurred_at')).map((d: Date) => Math.round((now.getTime() - new Date(d).getTime()) / DAY_MS));

      expect(await sweepAuditRetention(db.knex, 0, now)).toBe(0);
      expect(await ages()).toEqual([400, 366, 10, 0]);
      // Batches of one: the sweep keeps going until a batch comes back short.
      expect(await sweepAuditRetention(db.knex, 365, now, { size: 1 })).toBe(2);
      expect(await ages()).toEqual([10, 0]);
      expect(await sweepAuditRetention(db.knex, 365, now)).toBe(0);
    });

    it('deletes each old row exactly once when several instances sweep at the same time', async () => {
      const accountId = newAccountId();
      const old = new Date(Date.now() - 800 * DAY_MS);
      for (let i = 0; i < 40; i++) await insertEvent(db.knex, accountId, old);
      const deleted = await Promise.all([
        sweepAuditRetention(db.knex, 700, new Date(), { size: 3 }),
        sweepAuditRetention(db.other, 700, new Date(), { size: 3 }),
      ]);
      expect(deleted[0] + deleted[1]).toBe(40);
      expect(await db.knex('audit_events').where({ account_id: accountId }).count<{ count: string | number }[]>('* as count').then((r) => Number(r[0]!.count))).toBe(0);
    });

    it('pages an account\'s activity newest first, 50 at a time, without other accounts\' events', async () => {
      const mine = newAccountId();
      const theirs = newAccountId();
      const start = Date.now() - 3600 * 1000;
      for (let i = 0; i < 120; i++) {
        await insertEvent(db.knex, mine, new Date(start + i * 1000), i % 2 ? 'login.password' : 'user.password_changed');
        if (i % 10 === 0) await insertEvent(db.knex, theirs, new Date(start + i * 1000), 'user.locked');
      }
      const seen: Date[] = [];
      let before: string | undefined;
      const sizes: number[] = [];
      do {
        const page = await securityActivity({ knex: db.knex, geoip: undefined }, mine, { before });
        sizes.push(page.entries.length);
        seen.push(...page.entries.map((e) => e.occurredAt));
        expect(page.entries.every((e) => e.description === 'Sign-in with password' || e.description === 'Password changed')).toBe(true);
        before = page.older;
      } while (before);
      expect(sizes).toEqual([50, 50, 20]);
      const times = seen.map((d) => d.getTime());
      expect(times).toEqual([...times].sort((a, b) => b - a));
      expect(new Set(times).size).toBe(120);
    });
  });
}

auditStorageSuite('embedded PGlite', openEmbedded);
auditStorageSuite('PostgreSQL', openPostgres, !TEST_DATABASE_URL);

// ---------------------------------------------------------------------------------------------
// A running server: /metrics and the Security activity page over HTTP.
// ---------------------------------------------------------------------------------------------

type Series = { name: string; labels: Record<string, string>; value: number }[];

function parseMetrics(text: string): Series {
  const series: Series = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    series.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return series;
}

function valueOf(series: Series, name: string, labels: Record<string, string> = {}): number {
  const found = series.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return found?.value ?? 0;
}

interface ActivityItem {
  text: string;
  failed: boolean;
}

function activityItems(html: string): ActivityItem[] {
  const list = /<ul class="factor-list activity">([\s\S]*?)<\/ul>/.exec(html)?.[1] ?? '';
  return [...list.matchAll(/<li>([\s\S]*?)<\/li>/g)].map((m) => {
    const text = m[1]!.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
    return { text, failed: / failed\b/.test(text) };
  });
}

describe('metrics and security activity on a running server', () => {
  const METRICS_TOKEN = crypto.randomBytes(24).toString('base64url');
  const REDIRECT_URI = 'http://127.0.0.1:9/cb';
  const SCOPE = 'openid email';
  const suffix = crypto.randomBytes(3).toString('hex');
  const alice = { email: `alice-${suffix}@example.com`, password: 'alice password 123456' };
  const bob = { email: `bob-${suffix}@example.com`, password: 'bob password 1234567' };
  const carol = { email: `carol-${suffix}@example.com`, password: 'carol password 123456' };
  const rp: ClientCredentials = { clientId: `metrics-rp-${suffix}`, clientSecret: crypto.randomBytes(24).toString('base64url'), authMethod: 'client_secret_basic' };
  let machine: ClientCredentials;
  let dataDir: string;
  let env: Record<string, string>;
  let server: RunningServer;

  const cli = async (args: string[]): Promise<unknown> => {
    const res = await runCli(env, args);
    if (res.code !== 0) throw new Error(`gatehouse ${args.join(' ')} exited ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
    return res.json;
  };

  const scrape = async (): Promise<Series> => {
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.status).toBe(200);
    return parseMetrics(await res.text());
  };

  const signIn = (user: { email: string; password: string }, jar = new CookieJar()) => authorizeOverHttp({
    issuer: server.url, clientId: rp.clientId, redirectUri: REDIRECT_URI, email: user.email, password: user.password, scope: SCOPE, jar,
  });
  const signInToAccount = (user: { email: string; password: string }, jar: CookieJar) => authorizeOverHttp({
    issuer: server.url, clientId: 'gatehouse-account', redirectUri: `${server.url}/account/callback`, email: user.email, password: user.password, scope: 'openid', jar,
  });

  beforeAll(async () => {
    dataDir = tempDataDir('gh-metrics-');
    env = { DATA_DIR: dataDir, ...testSecrets(), METRICS_TOKEN, LOCKOUT_THRESHOLD: '3', RATE_LIMIT_TOKEN_CLIENT: '5/60' };
    // Before the server exists, the CLI opens the embedded database itself.
    await cli(['client', 'create', '--name', 'Metrics RP', '--redirect-uri', REDIRECT_URI, '--scope', SCOPE, '--client-id', rp.clientId, '--client-secret', rp.clientSecret!]);
    const created = (await cli(['client', 'create', '--name', 'Metrics machine', '--grant-type', 'client_credentials'])) as { client_id: string; client_secret: string };
    machine = { clientId: created.client_id, clientSecret: created.client_secret, authMethod: 'client_secret_basic' };
    for (const [user, name] of [[alice, 'Alice'], [bob, 'Bob'], [carol, 'Carol']] as const) {
      await cli(['user', 'create', '--email', user.email, '--password', user.password, '--name', name, '--verified']);
    }
    server = await startServer(env);
  });

  afterAll(async () => {
    const code = await server?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
    expect(code, server?.logs()).toBe(0);
  });

  it('serves /metrics only with the bearer token', async () => {
    const open = await fetch(`${server.url}/metrics`);
    expect(open.status).toBe(401);
    expect(open.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await open.text()).not.toContain('gatehouse_');
    const wrong = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN.slice(0, -1)}x` } });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(right.status).toBe(200);
    expect(right.headers.get('content-type')).toMatch(/^text\/plain/);
    const names = new Set(parseMetrics(await right.text()).map((s) => s.name));
    for (const name of ['gatehouse_sign_ins_total', 'gatehouse_tokens_issued_total', 'gatehouse_rate_limit_hits_total', 'gatehouse_lockouts_total', 'process_cpu_user_seconds_total', 'nodejs_eventloop_lag_seconds']) {
      expect(names, name).toContain(name);
    }
  });

  it('counts sign-ins by outcome and method, and tokens by grant', async () => {
    const before = await scrape();
    await expect(signIn({ email: alice.email, password: 'not the password' })).rejects.toThrow(/login was refused/);
    const auth = await signIn(alice);
    const token = await tokenRequest(`${server.url}/token`, rp, { grant_type: 'authorization_code', code: auth.code, redirect_uri: REDIRECT_URI, code_verifier: auth.codeVerifier });
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    const machineToken = await tokenRequest(`${server.url}/token`, machine, { grant_type: 'client_credentials' });
    expect(machineToken.status, JSON.stringify(machineToken.body)).toBe(200);
    const after = await scrape();

    const delta = (name: string, labels: Record<string, string>) => valueOf(after, name, labels) - valueOf(before, name, labels);
    expect(delta('gatehouse_sign_ins_total', { outcome: 'success', method: 'password' })).toBe(1);
    expect(delta('gatehouse_sign_ins_total', { outcome: 'failure', method: 'password' })).toBe(1);
    expect(delta('gatehouse_tokens_issued_total', { grant: 'authorization_code' })).toBe(1);
    expect(delta('gatehouse_tokens_issued_total', { grant: 'client_credentials' })).toBe(1);
    expect(delta('http_request_duration_seconds_count', { method: 'POST', route: '/interaction/:uid/login', status_class: '4xx' })).toBe(1);
    expect(delta('http_request_duration_seconds_count', { method: 'POST', route: '/token', status_class: '2xx' })).toBe(2);

    // Route labels are patterns: no interaction id, code or other value from a request.
    const routes = new Set(after.filter((s) => s.name === 'http_request_duration_seconds_count').map((s) => s.labels.route!));
    for (const route of routes) expect(route, route).toMatch(/^(unmatched|\/[\w./:*-]*)$/);
    // Ids and codes are long and random: they carry digits or capitals, route words do not.
    for (const route of routes) expect(route.split('/').some((segment) => /^(?=.*[A-Z0-9])[\w-]{16,}$/.test(segment)), route).toBe(false);
  });

  it('counts rate-limit refusals and lockouts', async () => {
    const before = await scrape();
    const unknownClient: ClientCredentials = { clientId: `nobody-${suffix}`, clientSecret: 'not-a-real-secret-000', authMethod: 'client_secret_basic' };
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await tokenRequest(`${server.url}/token`, unknownClient, { grant_type: 'client_credentials' })).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
    for (let i = 0; i < 3; i++) {
      await expect(signIn({ email: bob.email, password: `wrong password ${i}` })).rejects.toThrow(/login was refused/);
    }
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) => valueOf(after, name, labels) - valueOf(before, name, labels);
    expect(delta('gatehouse_rate_limit_hits_total', { limit: 'tokenClient' })).toBe(1);
    expect(delta('gatehouse_lockouts_total')).toBe(1);
    expect(delta('gatehouse_sign_ins_total', { outcome: 'failure', method: 'password' })).toBe(3);
    expect(delta('gatehouse_sign_ins_total', { outcome: 'success', method: 'password' })).toBe(0);
  });

  it('shows a person their own sign-ins and failed attempts on the Security activity page, and no one else\'s', async () => {
    const signedOut = await fetch(`${server.url}/account/activity`, { redirect: 'manual' });
    expect(signedOut.status).toBe(303);
    expect(signedOut.headers.get('location')).toBe('/account');

    const jar = new CookieJar();
    await expect(signInToAccount({ email: carol.email, password: 'a wrong guess' }, new CookieJar())).rejects.toThrow(/login was refused/);
    await signInToAccount(carol, jar);
    const account = await fetch(`${server.url}/account`, { headers: { cookie: jar.header(new URL(`${server.url}/account`)), accept: 'text/html' } });
    expect(await account.text()).toContain('href="/account/activity"');

    const url = new URL(`${server.url}/account/activity`);
    const res = await fetch(url, { headers: { cookie: jar.header(url), accept: 'text/html' }, redirect: 'manual' });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const html = await res.text();
    const items = activityItems(html);
    expect(items.map((i) => i.text.replace(/ \d{4}-\d\d-\d\d \d\d:\d\d UTC/, ' <time>'))).toEqual([
      expect.stringMatching(/^Sign-in with password <time> · from [\d.:a-f]+ · via your account page$/),
      expect.stringMatching(/^Sign-in with password failed: wrong password <time> · from [\d.:a-f]+ · via your account page$/),
      'Account created <time> · by an administrator',
    ]);
    expect(items.map((i) => i.failed)).toEqual([false, true, false]);
    // Alice's and Bob's events (sign-ins, the lockout) are theirs alone.
    expect(html).not.toMatch(/locked/i);
    expect(html).not.toContain('Metrics RP');
    expect(html).not.toContain('rel="next"');
  });
});
