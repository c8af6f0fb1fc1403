// The notification outbox against real storage (embedded PGlite always, PostgreSQL when
// TEST_DATABASE_URL is set) and real transports: .eml / JSON outbox files, a local SMTP server
// and a local stand-in for the Twilio REST API.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Knex } from 'knex';
import { simpleParser, type ParsedMail } from 'mailparser';
import type { DestinationStream } from 'pino';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../src/config.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { migrateLatest } from '../../src/db/migrate.ts';
import type { NotificationRow } from '../../src/db/notifications.ts';
import { createLogger } from '../../src/logger.ts';
import { createNotifier, type Notifier } from '../../src/notify/notifier.ts';
import { SecretBox } from '../../src/security/encryption.ts';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/postgres.ts';
import { freePort, tempDataDir } from '../helpers/server.ts';

type LogLine = Record<string, unknown> & { level: number; msg: string };

function captureLogs(): { lines: LogLine[]; stream: DestinationStream } {
  const lines: LogLine[] = [];
  return { lines, stream: { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) } };
}

async function waitFor<T>(check: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface SmtpSink {
  port: number;
  messages: ParsedMail[];
  recipients: string[];
  close(): Promise<void>;
}

/** A local SMTP server that keeps what it receives; `secure` serves implicit TLS with smtp-server's built-in self-signed certificate. */
async function startSmtpSink({ port = 0, refuse, secure = false }: { port?: number; refuse?: (recipient: string) => boolean; secure?: boolean } = {}): Promise<SmtpSink> {
  const messages: ParsedMail[] = [];
  const recipients: string[] = [];
  const server = new SMTPServer({
    secure,
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onRcptTo(address, _session, callback) {
      if (refuse?.(address.address)) {
        callback(Object.assign(new Error('5.1.1 No such user here'), { responseCode: 550 }));
        return;
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        simpleParser(Buffer.concat(chunks)).then((parsed) => {
          messages.push(parsed);
          recipients.push(...session.envelope.rcptTo.map((r) => r.address));
          callback();
        }, callback);
      });
    },
  });
  // A client that rejects the certificate hangs up mid-handshake; the server reports that as an
  // error event, which is expected here.
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.server.address() as AddressInfo).port,
    messages,
    recipients,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface TwilioRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  form: URLSearchParams;
}

async function startFakeTwilio(answer: (req: TwilioRequest) => { status: number; body: object }): Promise<{ url: string; requests: TwilioRequest[]; close(): Promise<void> }> {
  const requests: TwilioRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = { method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization, form: new URLSearchParams(Buffer.concat(chunks).toString('utf8')) };
      requests.push(request);
      const { status, body } = answer(request);
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

// What Twilio answers to a created message (the fields the SDK reads; values are examples).
function twilioMessage(sid: string, form: URLSearchParams): object {
  return {
    sid: `SM${crypto.randomBytes(16).toString('hex')}`,
    account_sid: sid,
    to: form.get('To'),
    from: form.get('From'),
    messaging_service_sid: form.get('MessagingServiceSid'),
    body: form.get('Body'),
    status: 'queued',
    num_segments: '1',
    direction: 'outbound-api',
    api_version: '2010-04-01',
    date_created: new Date().toUTCString(),
    uri: `/2010-04-01/Accounts/${sid}/Messages/SM0.json`,
  };
}

const ISSUER = 'https://id.acme.test';
const VERIFY_LINK = `${ISSUER}/verify-email?token=tok_${'a'.repeat(32)}`;
const TWILIO_SID = `AC${'0123456789abcdef'.repeat(2)}`;
const TWILIO_TOKEN = 'test-auth-token-0123456789';

function outboxFiles(config: Config, channel: 'mail' | 'sms'): string[] {
  const dir = path.join(config.dataDir, 'outbox', channel);
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort().map((f) => path.join(dir, f)) : [];
}

function notificationSuite(name: string, open: () => Promise<{ env: Record<string, string>; databases: [Database, Database]; cleanup(): Promise<void> }>, skip = false): void {
  describe.skipIf(skip)(`notifications: ${name}`, () => {
    let env: Record<string, string>;
    let databases: [Database, Database];
    let cleanup: () => Promise<void>;
    let knex: Knex;
    const secrets = new SecretBox([{ kid: 't1', key: crypto.randomBytes(32) }]);
    const running: Notifier[] = [];

    beforeAll(async () => {
      ({ env, databases, cleanup } = await open());
      knex = databases[0].knex;
    });

    afterAll(async () => {
      await Promise.all(running.map((n) => n.stop()));
      await databases?.[1].close();
      await databases?.[0].close();
      await cleanup?.();
    });

    beforeEach(async () => {
      await Promise.all(running.splice(0).map((n) => n.stop()));
      await knex('notifications').delete();
    });

    /** A notifier as one instance would build it; `db` picks which connection ("instance") it uses. */
    function instance(extraEnv: Record<string, string> = {}, db: Knex = knex) {
      const config = loadConfig({ ...env, ...extraEnv });
      const logs = captureLogs();
      const notifier = createNotifier({ knex: db, secrets, config, logger: createLogger('debug', logs.stream) });
      running.push(notifier);
      return { config, notifier, logs: logs.lines };
    }

    async function rows(): Promise<NotificationRow[]> {
      return knex('notifications').orderBy('id');
    }

    async function makeDue(): Promise<void> {
      await knex('notifications').update({ next_attempt_at: knex.raw("now() - interval '1 second'") });
    }

    async function queueVerifyMail(notifier: Notifier, to = 'ada@example.test'): Promise<void> {
      await knex.transaction((trx) => notifier.queueMail(trx, { to, template: 'verify-email', data: { name: 'Ada', link: VERIFY_LINK, expiresInHours: 24 } }));
    }

    it('outbox mode: the worker loop writes a real .eml file and wipes the content once sent', async () => {
      const { config, notifier, logs } = instance();
      notifier.start();
      await knex.transaction(async (trx) => {
        await notifier.queueMail(trx, { to: 'ada@example.test', template: 'verify-email', data: { name: 'Ada', link: VERIFY_LINK, expiresInHours: 24 } });
      });
      // Queued content is encrypted at rest: the link is not readable in the table.
      const [queued] = await rows();
      expect(queued).toMatchObject({ channel: 'mail', template: 'verify-email', recipient: 'ada@example.test', sent_at: null });
      expect(queued!.payload_ciphertext).toMatch(/^v1\.t1\./);
      expect(queued!.payload_ciphertext).not.toContain('verify-email?token');
      notifier.kick();

      const [sent] = await waitFor(async () => {
        const all = await rows();
        return all[0]?.sent_at ? all : undefined;
      });
      expect(sent).toMatchObject({ attempts: 1, payload_ciphertext: null, failed_at: null, last_error: null });

      const [file, ...others] = outboxFiles(config, 'mail');
      expect(others).toEqual([]);
      expect(path.basename(file!)).toMatch(/^\d{8}T\d{9}Z-[0-9a-f]{12}\.eml$/);
      expect(fs.statSync(file!).mode & 0o777).toBe(0o600);
      const raw = fs.readFileSync(file!);
      expect(raw.toString('latin1')).toContain('\r\n');
      const mail = await simpleParser(raw);
      expect(mail.from?.value).toEqual([{ name: 'Acme Login', address: 'no-reply@acme.test' }]);
      expect(mail.to && !Array.isArray(mail.to) ? mail.to.text : undefined).toBe('ada@example.test');
      expect(mail.subject).toBe('Confirm your email address for Acme Login');
      expect(mail.messageId).toMatch(/^<.+@.+>$/);
      expect(mail.text).toContain(VERIFY_LINK);
      expect(mail.html).toContain(`href="${VERIFY_LINK}"`);

      expect(logs).toContainEqual(expect.objectContaining({ level: 30, to: 'ada@example.test', subject: 'Confirm your email address for Acme Login', file }));
    });

    it('SMTP mode: a local SMTP server receives the mail', async () => {
      const sink = await startSmtpSink();
      try {
        const { notifier } = instance({ SMTP_URL: `smtp://127.0.0.1:${sink.port}` });
        await knex.transaction((trx) => notifier.queueMail(trx, { to: 'grace@example.test', template: 'reset-password', data: { name: 'Grace', link: `${ISSUER}/reset-password?token=r1`, expiresInMinutes: 30 } }));

        expect(await notifier.drain()).toEqual({ sent: 1, failed: 0, pending: 0 });
        expect(sink.recipients).toEqual(['grace@example.test']);
        const [mail] = sink.messages;
        expect(mail!.subject).toBe('Reset your Acme Login password');
        expect(mail!.from?.value).toEqual([{ name: 'Acme Login', address: 'no-reply@acme.test' }]);
        expect(mail!.text).toContain(`${ISSUER}/reset-password?token=r1`);
        expect(mail!.html).toContain('Acme Login');
        expect((await rows())[0]).toMatchObject({ payload_ciphertext: null, attempts: 1 });
      } finally {
        await sink.close();
      }
    });

    it('SMTPS: a self-signed server certificate is refused unless SMTP_TLS_REJECT_UNAUTHORIZED=false', async () => {
      const sink = await startSmtpSink({ secure: true });
      try {
        const strict = instance({ SMTP_URL: `smtps://127.0.0.1:${sink.port}` });
        await queueVerifyMail(strict.notifier);
        expect(await strict.notifier.drain()).toEqual({ sent: 0, failed: 1, pending: 1 });
        // smtp-server's built-in test certificate is self-signed (and by now expired).
        expect((await rows())[0]!.last_error).toMatch(/certificate/i);
        expect(sink.messages).toEqual([]);

        const relaxed = instance({ SMTP_URL: `smtps://127.0.0.1:${sink.port}`, SMTP_TLS_REJECT_UNAUTHORIZED: 'false' });
        await makeDue();
        expect(await relaxed.notifier.drain()).toEqual({ sent: 1, failed: 0, pending: 0 });
        expect(sink.recipients).toEqual(['ada@example.test']);
      } finally {
        await sink.close();
      }
    });

    it('a message queued in a transaction that rolls back is never sent', async () => {
      const sink = await startSmtpSink();
      try {
        const { notifier } = instance({ SMTP_URL: `smtp://127.0.0.1:${sink.port}` });
        notifier.start();
        await expect(knex.transaction(async (trx) => {
          await notifier.queueMail(trx, { to: 'ada@example.test', template: 'password-changed', data: { when: new Date() } });
          throw new Error('the change failed');
        })).rejects.toThrow('the change failed');
        notifier.kick();
        expect(await notifier.drain()).toEqual({ sent: 0, failed: 0, pending: 0 });
        expect(await rows()).toEqual([]);
        expect(sink.messages).toEqual([]);
      } finally {
        await sink.close();
      }
    });

    it('bad template data fails at the call site, inside the transaction', async () => {
      const { notifier } = instance();
      await expect(knex.transaction((trx) => notifier.queueMail(trx, {
        to: 'ada@example.test',
        template: 'verify-email',
        data: { link: 'https://elsewhere.test/verify', expiresInHours: 1 },
      }))).rejects.toThrow(/verify-email.*link/);
      await expect(notifier.queueSms(knex, { to: '0612345678', template: 'phone-code', data: { code: '123456', expiresInMinutes: 5 } })).rejects.toThrow(/E\.164/);
      expect(await rows()).toEqual([]);
    });

    it('SMTP server down: retries back off, nothing reaches the caller, and the mail goes out once the server is up', async () => {
      const port = await freePort();
      const { notifier, logs } = instance({ SMTP_URL: `smtp://127.0.0.1:${port}` });
      await queueVerifyMail(notifier);

      const first = await notifier.drain();
      expect(first).toEqual({ sent: 0, failed: 1, pending: 1 });
      const [afterOne] = await rows();
      expect(afterOne).toMatchObject({ attempts: 1, sent_at: null, failed_at: null, locked_until: null });
      expect(afterOne!.last_error).toMatch(/ECONNREFUSED|connect/i);
      expect(afterOne!.payload_ciphertext).not.toBeNull();
      const delayOne = afterOne!.next_attempt_at.getTime() - Date.now();
      expect(delayOne).toBeGreaterThan(2_000);
      expect(delayOne).toBeLessThan(10_000);
      expect(logs).toContainEqual(expect.objectContaining({ level: 40, template: 'verify-email', attempt: 1, retryInSeconds: 5 }));

      // Not due yet: a drain leaves it alone.
      expect(await notifier.drain()).toEqual({ sent: 0, failed: 0, pending: 1 });
      expect((await rows())[0]!.attempts).toBe(1);

      await makeDue();
      expect(await notifier.drain()).toEqual({ sent: 0, failed: 1, pending: 1 });
      const [afterTwo] = await rows();
      expect(afterTwo!.attempts).toBe(2);
      expect(afterTwo!.next_attempt_at.getTime() - Date.now()).toBeGreaterThan(15_000);

      const sink = await startSmtpSink({ port });
      try {
        await makeDue();
        expect(await notifier.drain()).toEqual({ sent: 1, failed: 0, pending: 0 });
        expect(sink.recipients).toEqual(['ada@example.test']);
        expect(sink.messages[0]!.text).toContain(VERIFY_LINK);
        expect((await rows())[0]).toMatchObject({ attempts: 3, payload_ciphertext: null, failed_at: null });
      } finally {
        await sink.close();
      }
    });

    it('the worker loop survives a failing server and keeps running', async () => {
      const port = await freePort();
      const { notifier } = instance({ SMTP_URL: `smtp://127.0.0.1:${port}` });
      notifier.start();
      await queueVerifyMail(notifier);
      notifier.kick();
      await waitFor(async () => (await rows())[0]?.attempts === 1);
      const sink = await startSmtpSink({ port });
      try {
        await makeDue();
        notifier.kick();
        await waitFor(async () => (await rows())[0]?.sent_at);
        expect(sink.recipients).toEqual(['ada@example.test']);
      } finally {
        await sink.close();
      }
    });

    it('gives up after 8 attempts, wipes the content and logs an error', async () => {
      const port = await freePort();
      const { notifier, logs } = instance({ SMTP_URL: `smtp://127.0.0.1:${port}` });
      await queueVerifyMail(notifier);
      await knex('notifications').update({ attempts: 7 });
      expect(await notifier.drain()).toEqual({ sent: 0, failed: 1, pending: 0 });
      const [row] = await rows();
      expect(row).toMatchObject({ attempts: 8, sent_at: null, payload_ciphertext: null });
      expect(row!.failed_at).toBeInstanceOf(Date);
      expect(logs).toContainEqual(expect.objectContaining({ level: 50, template: 'verify-email', recipient: 'ada@example.test' }));
    });

    it('a recipient the server refuses for good fails at once instead of retrying', async () => {
      const sink = await startSmtpSink({ refuse: (rcpt) => rcpt.startsWith('nobody@') });
      try {
        const { notifier } = instance({ SMTP_URL: `smtp://127.0.0.1:${sink.port}` });
        await queueVerifyMail(notifier, 'nobody@example.test');
        expect(await notifier.drain()).toEqual({ sent: 0, failed: 1, pending: 0 });
        const [row] = await rows();
        expect(row).toMatchObject({ attempts: 1, payload_ciphertext: null });
        expect(row!.failed_at).toBeInstanceOf(Date);
        expect(row!.last_error).toMatch(/550/);
      } finally {
        await sink.close();
      }
    });

    it('two instances draining the same table send each message exactly once', async () => {
      const sink = await startSmtpSink();
      try {
        const smtp = { SMTP_URL: `smtp://127.0.0.1:${sink.port}` };
        const a = instance(smtp, databases[0].knex);
        const b = instance(smtp, databases[1].knex);
        const count = 45;
        await knex.transaction(async (trx) => {
          for (let i = 0; i < count; i += 1) {
            await a.notifier.queueMail(trx, { to: `user${i}@example.test`, template: 'verify-email', data: { link: `${VERIFY_LINK}${i}`, expiresInHours: 1 } });
          }
        });
        // Separate connections, as two servers would have. On PostgreSQL this catches a claim that
        // is not atomic (it sends some messages twice); PGlite runs statements one at a time.
        const [ra, rb] = await Promise.all([a.notifier.drain(30_000), b.notifier.drain(30_000)]);
        expect(ra.sent + rb.sent).toBe(count);
        expect(ra.failed + rb.failed).toBe(0);
        expect(sink.recipients).toHaveLength(count);
        expect(new Set(sink.recipients).size).toBe(count);
        const all = await rows();
        expect(all.every((r) => r.attempts === 1 && r.sent_at !== null)).toBe(true);
      } finally {
        await sink.close();
      }
    });

    it('SMS outbox mode writes a JSON file', async () => {
      const { config, notifier, logs } = instance();
      await knex.transaction((trx) => notifier.queueSms(trx, { to: '+15551234567', template: 'phone-code', data: { code: '482913', expiresInMinutes: 5 } }));
      expect(await notifier.drain()).toEqual({ sent: 1, failed: 0, pending: 0 });
      const [file, ...others] = outboxFiles(config, 'sms');
      expect(others).toEqual([]);
      expect(path.basename(file!)).toMatch(/^\d{8}T\d{9}Z-[0-9a-f]{12}\.json$/);
      expect(fs.statSync(file!).mode & 0o777).toBe(0o600);
      const sms = JSON.parse(fs.readFileSync(file!, 'utf8')) as { to: string; body: string; created_at: string };
      expect(sms.to).toBe('+15551234567');
      expect(sms.body).toContain('482913 is your Acme Login verification code');
      expect(Date.now() - Date.parse(sms.created_at)).toBeLessThan(60_000);
      expect(logs).toContainEqual(expect.objectContaining({ level: 30, to: '+15551234567', file }));
      expect((await rows())[0]).toMatchObject({ channel: 'sms', recipient: '+15551234567', payload_ciphertext: null });
    });

    it('Twilio mode: the message is posted to the Messages API with the account credentials', async () => {
      const twilio = await startFakeTwilio((req) => ({ status: 201, body: twilioMessage(TWILIO_SID, req.form) }));
      try {
        const { config, notifier } = instance({ TWILIO_ACCOUNT_SID: TWILIO_SID, TWILIO_AUTH_TOKEN: TWILIO_TOKEN, TWILIO_FROM: '+15005550006', TWILIO_API_BASE_URL: twilio.url });
        const outboxBefore = outboxFiles(config, 'sms');
        await knex.transaction((trx) => notifier.queueSms(trx, { to: '+15551234567', template: 'phone-code', data: { code: '482913', expiresInMinutes: 5 } }));
        expect(await notifier.drain()).toEqual({ sent: 1, failed: 0, pending: 0 });

        expect(twilio.requests).toHaveLength(1);
        const [req] = twilio.requests;
        expect(req!.method).toBe('POST');
        expect(req!.path).toBe(`/2010-04-01/Accounts/${TWILIO_SID}/Messages.json`);
        expect(req!.authorization).toBe(`Basic ${Buffer.from(`${TWILIO_SID}:${TWILIO_TOKEN}`).toString('base64')}`);
        expect(req!.form.get('To')).toBe('+15551234567');
        expect(req!.form.get('From')).toBe('+15005550006');
        expect(req!.form.get('Body')).toContain('482913 is your Acme Login verification code');
        expect(outboxFiles(config, 'sms')).toEqual(outboxBefore);
      } finally {
        await twilio.close();
      }
    });

    it('Twilio mode: a messaging service sends instead of a number; a rejected number is not retried, a server error is', async () => {
      const twilio = await startFakeTwilio((req) => {
        if (req.form.get('To') === '+15005550001') return { status: 400, body: { code: 21211, message: "The 'To' number +15005550001 is not a valid phone number.", more_info: 'https://www.twilio.com/docs/errors/21211', status: 400 } };
        if (req.form.get('To') === '+15005550002') return { status: 503, body: { code: 20503, message: 'Service unavailable', status: 503 } };
        return { status: 201, body: twilioMessage(TWILIO_SID, req.form) };
      });
      try {
        const { notifier } = instance({ TWILIO_ACCOUNT_SID: TWILIO_SID, TWILIO_AUTH_TOKEN: TWILIO_TOKEN, TWILIO_MESSAGING_SERVICE_SID: `MG${'1'.repeat(32)}`, TWILIO_API_BASE_URL: twilio.url });
        for (const to of ['+15551234567', '+15005550001', '+15005550002']) {
          await notifier.queueSms(knex, { to, template: 'phone-code', data: { code: '111222', expiresInMinutes: 5 } });
        }
        expect(await notifier.drain()).toEqual({ sent: 1, failed: 2, pending: 1 });
        const [ok, invalid, unavailable] = await rows();
        expect(twilio.requests[0]!.form.get('MessagingServiceSid')).toBe(`MG${'1'.repeat(32)}`);
        expect(twilio.requests[0]!.form.has('From')).toBe(false);
        expect(ok!.sent_at).toBeInstanceOf(Date);
        expect(invalid!.failed_at).toBeInstanceOf(Date);
        expect(invalid!.last_error).toContain('not a valid phone number');
        expect(unavailable).toMatchObject({ attempts: 1, failed_at: null, sent_at: null });
        expect(unavailable!.last_error).toContain('Service unavailable');
      } finally {
        await twilio.close();
      }
    });

    it('the loop deletes finished messages older than 30 days and keeps the rest', async () => {
      const old = knex.raw("now() - interval '31 days'");
      const base = { channel: 'mail', template: 'verify-email', payload_ciphertext: null };
      await knex('notifications').insert([
        { ...base, recipient: 'old-sent@example.test', sent_at: old, created_at: old },
        { ...base, recipient: 'old-failed@example.test', failed_at: old, created_at: old },
        { ...base, recipient: 'recent-sent@example.test', sent_at: knex.raw("now() - interval '29 days'"), created_at: old },
        // Undelivered rows are never cleaned up, however old (a far-future retry stands in here).
        { ...base, recipient: 'old-pending@example.test', payload_ciphertext: 'v1.t1.x.y', next_attempt_at: knex.raw("now() + interval '1 day'"), created_at: old },
      ]);
      const { notifier } = instance();
      notifier.start();
      await waitFor(async () => (await rows()).length === 2);
      expect((await rows()).map((r) => r.recipient).sort()).toEqual(['old-pending@example.test', 'recent-sent@example.test']);
    });

    it('stop() waits for a batch in flight and the loop then stays stopped', async () => {
      const { notifier } = instance();
      notifier.start();
      await queueVerifyMail(notifier);
      notifier.kick();
      await waitFor(async () => (await rows())[0]?.attempts === 1);
      await notifier.stop();
      // Whatever was claimed has been finished or handed back: no row is left locked.
      expect((await rows()).filter((r) => r.locked_until !== null)).toEqual([]);
      await queueVerifyMail(notifier, 'later@example.test');
      notifier.kick();
      await new Promise((r) => setTimeout(r, 1500));
      const later = (await rows()).find((r) => r.recipient === 'later@example.test');
      expect(later).toMatchObject({ attempts: 0, sent_at: null });
    });
  });
}

function baseEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return { DATA_DIR: dataDir, ISSUER, PRODUCT_NAME: 'Acme Login', MAIL_FROM: 'Acme Login <no-reply@acme.test>', LOG_LEVEL: 'silent', ...extra };
}

notificationSuite('embedded PGlite', async () => {
  const dataDir = tempDataDir('gh-notify-');
  const env = baseEnv(dataDir);
  const server = await openDatabase(loadConfig(env));
  await migrateLatest(server.knex);
  // PGlite admits one process, so the second "instance" is a second notifier on the same database
  // (closing it is left to the first).
  const second: Database = { ...server, close: async () => undefined };
  return { env, databases: [server, second], cleanup: async () => fs.rmSync(dataDir, { recursive: true, force: true }) };
});

notificationSuite('PostgreSQL', async () => {
  const testDb: TestDatabase = await createTestDatabase('gh_notify');
  const dataDir = tempDataDir('gh-notify-pg-');
  const env = baseEnv(dataDir, { DATABASE_URL: testDb.url });
  const first = await openDatabase(loadConfig(env));
  await migrateLatest(first.knex);
  const second = await openDatabase(loadConfig(env));
  return {
    env,
    databases: [first, second],
    cleanup: async () => {
      await testDb.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}, !TEST_DATABASE_URL);
