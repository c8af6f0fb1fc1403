// Mail and SMS through a transactional outbox. Callers queue a message with the transaction that
// makes the change it reports, so the message exists exactly when the change committed; a worker
// loop on every instance then delivers queued messages with retries. Delivery never runs inside a
// request, so a mail server or SMS outage cannot fail a page whose change was already saved.
import type { Knex } from 'knex';
import type { Config } from '../config.ts';
import {
  claimDueNotifications,
  countPendingNotifications,
  deleteFinishedNotifications,
  insertNotification,
  markNotificationFailed,
  markNotificationSent,
  releaseNotifications,
  scheduleNotificationRetry,
  type NotificationChannel,
  type NotificationRow,
} from '../db/notifications.ts';
import type { Logger } from '../logger.ts';
import type { SecretBox } from '../security/encryption.ts';
import { createMailTransport, type MailMessage, type MailTransport } from './mail-transport.ts';
import { createSmsTransport, type SmsMessage, type SmsTransport } from './sms-transport.ts';
import { renderMail, renderSms, type MailTemplateData, type MailTemplateName, type SmsTemplateData, type SmsTemplateName } from './templates.ts';

export interface QueuedMail<Name extends MailTemplateName> {
  to: string;
  template: Name;
  data: MailTemplateData<Name>;
}

export interface QueuedSms<Name extends SmsTemplateName> {
  to: string;
  template: Name;
  data: SmsTemplateData<Name>;
}

export interface DrainResult {
  /** Messages delivered during this drain. */
  sent: number;
  /** Delivery attempts that failed during this drain (retried later unless out of attempts). */
  failed: number;
  /** Messages still undelivered afterwards: waiting for a retry or held by another instance. */
  pending: number;
}

export interface Notifier {
  /**
   * Render a mail now (bad template data throws here, at the call site) and queue it in `db`,
   * which should be the transaction making the change the mail reports. Call `kick()` after commit.
   */
  queueMail<Name extends MailTemplateName>(db: Knex | Knex.Transaction, message: QueuedMail<Name>): Promise<void>;
  /** As queueMail, for a text message to an E.164 phone number. */
  queueSms<Name extends SmsTemplateName>(db: Knex | Knex.Transaction, message: QueuedSms<Name>): Promise<void>;
  /** Start delivering on this instance: every second, and at once after `kick()`. */
  start(): void;
  /** Deliver soon (after a commit that queued messages); does nothing unless started. */
  kick(): void;
  /** Deliver everything due now, for processes that exit right after queueing (the CLI). */
  drain(timeoutMs?: number): Promise<DrainResult>;
  /** Stop the loop; resolves once a batch being delivered has finished. */
  stop(): Promise<void>;
}

export interface NotifierDeps {
  knex: Knex;
  secrets: SecretBox;
  config: Config;
  logger: Logger;
  /** Replaces the transports chosen from configuration. */
  transports?: { mail?: MailTransport; sms?: SmsTransport };
}

const POLL_MS = 1000;
const BATCH_SIZE = 20;
const LOCK_SECONDS = 60;
// A batch stops sending once half its lock has gone and hands the rest back, so a slow server
// cannot make the lock expire under a message still being sent (another instance would resend it).
const BATCH_BUDGET_MS = (LOCK_SECONDS * 1000) / 2;
const SEND_TIMEOUT_MS = 25_000;
const MAX_ATTEMPTS = 8;
// Delay before the next try after attempt n fails (n = 1..7): about two hours in all, long enough
// to ride out a mail server restart or a provider incident, short enough that links still work.
const RETRY_DELAYS_SECONDS = [5, 20, 60, 5 * 60, 15 * 60, 30 * 60, 60 * 60];
const CLEANUP_EVERY_MS = 60 * 60 * 1000;
const KEEP_FINISHED_DAYS = 30;
const MAX_ERROR_LENGTH = 500;

// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;
const E164 = /^\+[1-9][0-9]{6,14}$/;

function associatedData(channel: NotificationChannel, template: string, recipient: string): string {
  // Binds the encrypted content to its row's envelope: content copied onto another row (another
  // recipient) does not decrypt.
  return `notification:${channel}:${template}:${recipient}`;
}

function checkEmailRecipient(to: string): string {
  const email = String(to ?? '').trim();
  if (email.length > 320 || CONTROL_CHARACTERS.test(email) || !/^[^\s@]+@[^\s@]+$/.test(email)) {
    throw new Error('queueMail: "to" must be a single email address');
  }
  return email;
}

function checkPhoneRecipient(to: string): string {
  const phone = String(to ?? '').trim();
  if (!E164.test(phone)) throw new Error('queueSms: "to" must be a phone number in E.164 form (+15551234567)');
  return phone;
}

function errorMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.slice(0, MAX_ERROR_LENGTH) || 'unknown error';
}

function isPermanent(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { permanent?: unknown }).permanent === true;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function parsePayload<T extends object>(json: string, fields: (keyof T)[]): T {
  const value = JSON.parse(json) as Record<string, unknown>;
  for (const field of fields) {
    if (typeof value[field as string] !== 'string') throw new Error(`stored message has no ${String(field)}`);
  }
  return value as T;
}

export function createNotifier(deps: NotifierDeps): Notifier {
  const { knex, secrets, config, logger } = deps;
  const log = logger.child({ component: 'notifier' });
  let mailTransport = deps.transports?.mail;
  let smsTransport = deps.transports?.sms;
  const mail = (): MailTransport => (mailTransport ??= createMailTransport(config, log));
  const sms = (): SmsTransport => (smsTransport ??= createSmsTransport(config, log));

  let running = false;
  let timer: NodeJS.Timeout | undefined;
  let ticking = false;
  let tickAgain = false;
  let lastCleanup = 0;
  // Batches from the loop and from drain() run one at a time on this instance.
  let lane: Promise<unknown> = Promise.resolve();
  function exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = lane.then(task, task);
    lane = run.catch(() => undefined);
    return run;
  }

  async function send(row: NotificationRow): Promise<void> {
    if (!row.payload_ciphertext) throw new Error('stored message has no content');
    const json = secrets.decryptText(row.payload_ciphertext, associatedData(row.channel, row.template, row.recipient));
    if (row.channel === 'mail') {
      const message = parsePayload<MailMessage>(json, ['to', 'subject', 'html', 'text']);
      await withTimeout(mail().send(message), SEND_TIMEOUT_MS, 'sending mail');
    } else {
      const message = parsePayload<SmsMessage>(json, ['to', 'body']);
      await withTimeout(sms().send(message), SEND_TIMEOUT_MS, 'sending SMS');
    }
  }

  /** Try one claimed message and record the outcome; returns whether it was delivered. */
  async function deliver(row: NotificationRow): Promise<boolean> {
    const about = { notificationId: row.id, channel: row.channel, template: row.template, attempt: row.attempts };
    try {
      await send(row);
    } catch (err) {
      const error = errorMessage(err);
      if (isPermanent(err) || row.attempts >= MAX_ATTEMPTS) {
        await markNotificationFailed(knex, row.id, error);
        log.error({ ...about, recipient: row.recipient, err: error }, 'notification could not be delivered; giving up');
      } else {
        const retryInSeconds = RETRY_DELAYS_SECONDS[Math.min(row.attempts, RETRY_DELAYS_SECONDS.length) - 1]!;
        await scheduleNotificationRetry(knex, row.id, retryInSeconds, error);
        log.warn({ ...about, retryInSeconds, err: error }, 'notification delivery failed; will retry');
      }
      return false;
    }
    await markNotificationSent(knex, row.id);
    log.debug(about, 'notification delivered');
    return true;
  }

  async function processBatch(deadline: number | undefined): Promise<{ claimed: number; sent: number; failed: number }> {
    const rows = await claimDueNotifications(knex, BATCH_SIZE, LOCK_SECONDS);
    const claimedAt = Date.now();
    let sent = 0;
    let failed = 0;
    for (const [index, row] of rows.entries()) {
      const outOfTime = Date.now() - claimedAt > BATCH_BUDGET_MS || (deadline !== undefined && Date.now() > deadline);
      // Stopping or out of time: the rest go back to the queue, untried and uncounted.
      if ((deadline === undefined && !running) || outOfTime) {
        await releaseNotifications(knex, rows.slice(index).map((r) => r.id));
        break;
      }
      if (await deliver(row)) sent += 1;
      else failed += 1;
    }
    return { claimed: rows.length, sent, failed };
  }

  async function cleanupIfDue(): Promise<void> {
    if (Date.now() - lastCleanup < CLEANUP_EVERY_MS) return;
    lastCleanup = Date.now();
    const deleted = await deleteFinishedNotifications(knex, KEEP_FINISHED_DAYS);
    if (deleted > 0) log.info({ deleted }, `deleted notifications finished more than ${KEEP_FINISHED_DAYS} days ago`);
  }

  async function deliverDue(): Promise<void> {
    await cleanupIfDue();
    // Full batches mean more may be due: keep going while this instance runs.
    while (running) {
      const { claimed } = await processBatch(undefined);
      if (claimed < BATCH_SIZE) break;
    }
  }

  function schedule(delayMs: number): void {
    if (!running) return;
    clearTimeout(timer);
    timer = setTimeout(() => void tick(), delayMs);
    // The loop alone must not keep a process alive; the server's listener does that.
    timer.unref();
  }

  async function tick(): Promise<void> {
    timer = undefined;
    if (ticking) {
      tickAgain = true;
      return;
    }
    ticking = true;
    try {
      await exclusive(deliverDue);
    } catch (err) {
      // The database may be briefly unreachable; the next tick tries again.
      log.error({ err: errorMessage(err) }, 'notification delivery loop failed');
    } finally {
      ticking = false;
      const again = tickAgain;
      tickAgain = false;
      schedule(again ? 0 : POLL_MS);
    }
  }

  return {
    async queueMail(db, message) {
      const to = checkEmailRecipient(message.to);
      // .invalid never resolves (RFC 6761): it marks the placeholder addresses of guest and
      // deleted accounts, which nobody may be mailed at.
      if (to.toLowerCase().endsWith('.invalid')) return;
      const rendered = await renderMail(message.template, message.data, config);
      const payload: MailMessage = { to, ...rendered };
      await insertNotification(db, {
        channel: 'mail',
        template: message.template,
        recipient: to,
        payloadCiphertext: secrets.encrypt(JSON.stringify(payload), associatedData('mail', message.template, to)),
      });
    },

    async queueSms(db, message) {
      const to = checkPhoneRecipient(message.to);
      const payload: SmsMessage = { to, body: renderSms(message.template, message.data, config) };
      await insertNotification(db, {
        channel: 'sms',
        template: message.template,
        recipient: to,
        payloadCiphertext: secrets.encrypt(JSON.stringify(payload), associatedData('sms', message.template, to)),
      });
    },

    start() {
      if (running) return;
      running = true;
      log.info({ mail: config.mail.smtpUrl ? 'smtp' : 'outbox', sms: config.sms.twilio ? 'twilio' : 'outbox' }, 'notification delivery started');
      schedule(0);
    },

    kick() {
      if (!running) return;
      if (ticking) tickAgain = true;
      else schedule(0);
    },

    async drain(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      const totals = { sent: 0, failed: 0 };
      await exclusive(async () => {
        while (Date.now() < deadline) {
          const batch = await processBatch(deadline);
          totals.sent += batch.sent;
          totals.failed += batch.failed;
          if (batch.claimed === 0) break;
        }
      });
      return { ...totals, pending: await countPendingNotifications(knex) };
    },

    async stop() {
      running = false;
      clearTimeout(timer);
      timer = undefined;
      await lane;
    },
  };
}
