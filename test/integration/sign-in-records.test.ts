// What a password sign-in writes and reads, against embedded PGlite and a PostgreSQL server (the
// latter skipped visibly without TEST_DATABASE_URL): the session record and the new-device mail
// (a first sign-in ever is not news, a browser or system never seen on the account is), the
// successful sign-in's counters, time, upgraded hash and audit event, and which second-factor
// methods a sign-in offers. Plus the remembered User-Agent descriptions those records use.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { loadConfig, type Config } from '../../src/config.ts';
import type { SessionSeen } from '../../src/db/account-sessions.ts';
import { insertFactor, replaceRecoveryCodes } from '../../src/db/mfa-factors.ts';
import { observeAuditEvents, type AuditEvent } from '../../src/domain/audit.ts';
import { mfaSummary, secondFactorMethods } from '../../src/domain/mfa.ts';
import { hashPassword, needsRehash, type PasswordHashParams } from '../../src/domain/passwords.ts';
import { authenticateWithPassword } from '../../src/domain/users.ts';
import { recordSession } from '../../src/oidc/sessions.ts';
import { LruCache } from '../../src/lru-cache.ts';
import { describeUserAgent } from '../../src/user-agent.ts';
import type { MailTemplateName } from '../../src/notify/templates.ts';
import type { QueuedMail } from '../../src/notify/notifier.ts';
import { TEST_DATABASE_URL } from '../helpers/postgres.ts';
import { migratedEmbedded, migratedPostgres } from '../helpers/databases.ts';
import { tempDataDir } from '../helpers/server.ts';

const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36';
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';
// Small parameters keep the suite fast; the sign-in logic does not depend on them.
const FAST: PasswordHashParams = { memoryCost: 1024, timeCost: 1, parallelism: 1 };
const PASSWORD = 'correct horse battery staple';

interface SessionColumns {
  account_id: string;
  login_ip: string | null;
  last_ip: string | null;
  browser: string | null;
  os: string | null;
  device_type: string | null;
  amr: string[];
  acr: string | null;
  clients: string[];
  created_at: Date;
  last_active_at: Date;
  revoked_at: Date | null;
}

interface AccountColumns {
  password_hash: string;
  failed_login_count: number;
  lockout_count: number;
  last_login_at: Date | null;
  updated_at: Date;
}

function signInSuite(name: string, open: () => Promise<{ knex: Knex; close(): Promise<void> }>, skip = false): void {
  describe.skipIf(skip)(`sign-in records: ${name}`, () => {
    let knex: Knex;
    let close: () => Promise<void>;
    let config: Config;
    const mails: QueuedMail<MailTemplateName>[] = [];
    const notifier = {
      async queueMail<Name extends MailTemplateName>(_db: Knex | Knex.Transaction, message: QueuedMail<Name>): Promise<void> {
        mails.push(message as QueuedMail<MailTemplateName>);
      },
      kick(): void {},
    };
    const deps = () => ({ knex, config, notifier });

    beforeAll(async () => {
      ({ knex, close } = await open());
      config = { ...loadConfig({ DATA_DIR: tempDataDir('gh-sign-in-config-') }), passwordHash: FAST };
    });
    afterAll(async () => {
      await close?.();
    });

    async function newAccount(columns: Record<string, unknown> = {}): Promise<{ id: string; email: string }> {
      const email = `signin-${crypto.randomBytes(6).toString('hex')}@example.com`;
      const [row] = await knex('accounts')
        .insert({ email, password_hash: await hashPassword(PASSWORD, FAST), status: 'active', email_verified: true, name: 'Sign In', ...columns })
        .returning<{ id: string }[]>('id');
      return { id: row!.id, email };
    }

    function sighting(accountId: string, userAgent: string | undefined, changes: Partial<SessionSeen> = {}): SessionSeen {
      const device = describeUserAgent(userAgent);
      return {
        id: crypto.randomBytes(16).toString('base64url'),
        accountId,
        loginAt: new Date(Math.floor(Date.now() / 1000) * 1000),
        expiresAt: new Date(Date.now() + 3600_000),
        ip: '203.0.113.7',
        userAgent,
        browser: device.browser,
        os: device.os,
        deviceType: device.deviceType,
        location: undefined,
        remember: false,
        amr: ['pwd'],
        acr: 'urn:gatehouse:acr:pwd',
        clients: [],
        ...changes,
      };
    }

    const sessionRow = (id: string) => knex('account_sessions').where({ id }).first<SessionColumns | undefined>();
    const mailsTo = (email: string) => mails.filter((m) => m.to === email && m.template === 'new-sign-in');

    describe('session records and new-device mails', () => {
      it('records the first sign-in ever without a mail', async () => {
        const account = await newAccount();
        const seen = sighting(account.id, CHROME);
        await recordSession(deps(), seen);
        expect(await sessionRow(seen.id)).toMatchObject({ account_id: account.id, login_ip: '203.0.113.7', browser: 'Chrome 142', os: 'Linux', device_type: 'desktop', amr: ['pwd'], clients: [] });
        expect(mailsTo(account.email)).toEqual([]);
      });

      it('mails a sign-in from a browser never seen on the account, and not one from a known browser', async () => {
        const account = await newAccount();
        await recordSession(deps(), sighting(account.id, CHROME));
        await recordSession(deps(), sighting(account.id, CHROME, { ip: '198.51.100.4' }));
        expect(mailsTo(account.email)).toEqual([]);
        const firefox = sighting(account.id, FIREFOX, { ip: '198.51.100.9' });
        await recordSession(deps(), firefox);
        const mailed = mailsTo(account.email);
        expect(mailed).toHaveLength(1);
        expect(mailed[0]!.data).toMatchObject({ name: 'Sign In', device: 'Firefox 133 on Linux', ip: '198.51.100.9', when: firefox.loginAt });
      });

      it('treats two sign-ins from an unrecognised agent as the same device', async () => {
        const account = await newAccount();
        await recordSession(deps(), sighting(account.id, 'node'));
        await recordSession(deps(), sighting(account.id, undefined));
        await recordSession(deps(), sighting(account.id, 'okhttp/4.12.0'));
        expect(mailsTo(account.email)).toEqual([]);
        await recordSession(deps(), sighting(account.id, CHROME));
        expect(mailsTo(account.email).map((m) => m.data)).toMatchObject([{ device: 'Chrome 142 on Linux' }]);
      });

      it('updates a known session in place: latest address, apps and methods; never a mail', async () => {
        const account = await newAccount();
        await recordSession(deps(), sighting(account.id, CHROME));
        const seen = sighting(account.id, FIREFOX);
        await recordSession(deps(), seen);
        expect(mailsTo(account.email)).toHaveLength(1);
        const first = (await sessionRow(seen.id))!;
        await recordSession(deps(), { ...seen, ip: '192.0.2.1', clients: ['app-1'], amr: ['pwd', 'otp', 'mfa'], acr: 'urn:gatehouse:acr:mfa' });
        const updated = (await sessionRow(seen.id))!;
        expect(updated).toMatchObject({ login_ip: '203.0.113.7', last_ip: '192.0.2.1', clients: ['app-1'], amr: ['pwd', 'otp', 'mfa'], acr: 'urn:gatehouse:acr:mfa', browser: 'Firefox 133', created_at: first.created_at });
        expect(updated.last_active_at.getTime()).toBeGreaterThanOrEqual(first.last_active_at.getTime());
        expect(mailsTo(account.email)).toHaveLength(1);
      });

      it('never revives a revoked session', async () => {
        const account = await newAccount();
        await recordSession(deps(), sighting(account.id, CHROME));
        const seen = sighting(account.id, FIREFOX);
        await recordSession(deps(), seen);
        await knex('account_sessions').where({ id: seen.id }).update({ revoked_at: knex.fn.now(), revoked_reason: 'test' });
        await recordSession(deps(), { ...seen, ip: '192.0.2.99', clients: ['app-2'] });
        expect(await sessionRow(seen.id)).toMatchObject({ last_ip: '203.0.113.7', clients: [] });
        expect(mailsTo(account.email)).toHaveLength(1);
      });

      it('mails once when two saves of one new session race', async () => {
        const account = await newAccount();
        await recordSession(deps(), sighting(account.id, CHROME));
        const seen = sighting(account.id, FIREFOX);
        await Promise.all([recordSession(deps(), seen), recordSession(deps(), { ...seen, clients: ['app-1'] })]);
        expect(mailsTo(account.email)).toHaveLength(1);
      });
    });

    describe('a successful password sign-in', () => {
      it('starts the counters again, records the time and audits, all in one statement', async () => {
        const account = await newAccount({ failed_login_count: 2, lockout_count: 1 });
        const events: AuditEvent[] = [];
        const stop = observeAuditEvents((event) => events.push(event));
        try {
          const outcome = await authenticateWithPassword({ ...deps(), config }, { email: account.email.toUpperCase(), password: PASSWORD }, { ip: '203.0.113.7', userAgent: CHROME, clientId: 'app-1' });
          expect(outcome).toMatchObject({ ok: true, account: { id: account.id, email: account.email } });
        } finally {
          stop();
        }
        const row = await knex('accounts').where({ id: account.id }).first<AccountColumns>();
        expect(row).toMatchObject({ failed_login_count: 0, lockout_count: 0 });
        expect(row.last_login_at).not.toBeNull();
        const audited = await knex('audit_events').where({ account_id: account.id }).select('event_type', 'outcome', 'client_id', 'ip', 'user_agent', 'details');
        expect(audited).toEqual([{ event_type: 'login.password', outcome: 'success', client_id: 'app-1', ip: '203.0.113.7', user_agent: CHROME, details: {} }]);
        expect(events.filter((e) => e.accountId === account.id)).toMatchObject([{ type: 'login.password', outcome: 'success' }]);
      });

      it('replaces a hash made with other parameters, and says so in the audit event', async () => {
        const account = await newAccount();
        const before = await knex('accounts').where({ id: account.id }).first<AccountColumns>();
        const stronger = { ...config, passwordHash: { ...FAST, timeCost: 2 } };
        expect(await authenticateWithPassword({ ...deps(), config: stronger }, { email: account.email, password: PASSWORD })).toMatchObject({ ok: true });
        const after = await knex('accounts').where({ id: account.id }).first<AccountColumns>();
        expect(after.password_hash).not.toBe(before.password_hash);
        expect(needsRehash(after.password_hash, stronger.passwordHash)).toBe(false);
        expect(after.updated_at.getTime()).toBeGreaterThan(before.updated_at.getTime());
        expect(await knex('audit_events').where({ account_id: account.id }).pluck('details')).toEqual([{ rehashed: true }]);
        // The new hash is the one that now verifies.
        expect(await authenticateWithPassword({ ...deps(), config: stronger }, { email: account.email, password: PASSWORD })).toMatchObject({ ok: true });
      });

      it('leaves the counters alone when the password is wrong', async () => {
        const account = await newAccount({ failed_login_count: 1 });
        expect(await authenticateWithPassword({ ...deps(), config }, { email: account.email, password: 'not the password' })).toEqual({ ok: false });
        const row = await knex('accounts').where({ id: account.id }).first<AccountColumns>();
        expect(row).toMatchObject({ failed_login_count: 2, last_login_at: null });
        expect(await knex('audit_events').where({ account_id: account.id }).pluck('details')).toEqual([{ reason: 'bad_password' }]);
      });
    });

    describe('second-factor methods of a sign-in', () => {
      it('offers none without a confirmed factor, whatever else is stored', async () => {
        const account = await newAccount();
        expect(await secondFactorMethods(deps(), account.id)).toEqual([]);
        await insertFactor(knex, { account_id: account.id, type: 'totp', name: 'Unfinished' });
        await replaceRecoveryCodes(knex, account.id, ['left-over-1', 'left-over-2']);
        expect(await secondFactorMethods(deps(), account.id)).toEqual([]);
        // The summary still counts the codes for the pages that show them.
        expect(await mfaSummary(deps(), account.id)).toMatchObject({ methods: [], recoveryCodesLeft: 2 });
      });

      it('offers the confirmed factors, strongest first, and recovery codes while some are left', async () => {
        const account = await newAccount();
        await insertFactor(knex, { account_id: account.id, type: 'sms', name: 'Text message', confirmed_at: new Date() });
        await insertFactor(knex, { account_id: account.id, type: 'totp', name: 'Phone', confirmed_at: new Date() });
        expect(await secondFactorMethods(deps(), account.id)).toEqual(['totp', 'sms']);
        await replaceRecoveryCodes(knex, account.id, ['code-1']);
        expect(await secondFactorMethods(deps(), account.id)).toEqual(['totp', 'sms', 'recovery']);
        expect((await mfaSummary(deps(), account.id)).methods).toEqual(['totp', 'sms', 'recovery']);
      });
    });
  });
}

signInSuite('embedded PGlite', () => migratedEmbedded('gh-sign-in-'));
// Several connections, so the racing saves really run in parallel sessions.
signInSuite('PostgreSQL', () => migratedPostgres('gh_sign_in', 5), !TEST_DATABASE_URL);

describe('User-Agent descriptions', () => {
  it('names browser, system and device type, and nothing for an absent or unknown header', () => {
    expect(describeUserAgent(CHROME)).toEqual({ browser: 'Chrome 142', os: 'Linux', deviceType: 'desktop' });
    expect(describeUserAgent('GatehouseMobile/1.0 (iPhone; iOS 17.2)')).toEqual({ browser: undefined, os: 'iOS 17.2', deviceType: 'mobile' });
    expect(describeUserAgent(undefined)).toEqual({});
    expect(describeUserAgent('')).toEqual({});
    expect(describeUserAgent('node')).toEqual({ browser: undefined, os: undefined, deviceType: 'desktop' });
  });

  it('answers a repeated header from memory, and still parses headers too long to keep', () => {
    expect(describeUserAgent(FIREFOX)).toBe(describeUserAgent(FIREFOX));
    expect(Object.isFrozen(describeUserAgent(FIREFOX))).toBe(true);
    const padded = `${FIREFOX} ${'x'.repeat(600)}`;
    expect(describeUserAgent(padded)).toEqual({ browser: 'Firefox 133', os: 'Linux', deviceType: 'desktop' });
  });
});

describe('LruCache', () => {
  it('forgets the least recently used entry when full', () => {
    const cache = new LruCache<string, number>(2);
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toBe(1);
    cache.set('c', 3);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe(1);
    expect(cache.get('c')).toBe(3);
    cache.set('a', 4);
    expect(cache.get('a')).toBe(4);
    expect(cache.size).toBe(2);
    expect(() => new LruCache(0)).toThrow(RangeError);
  });
});
