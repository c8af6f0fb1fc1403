// Mail delivery: SMTP when SMTP_URL is set, otherwise `.eml` files under DATA_DIR/outbox/mail so
// a development install (or an operator testing one) can read every message without a mail server.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { parseConnectionUrl } from 'nodemailer/lib/shared/index.js';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type StreamTransport from 'nodemailer/lib/stream-transport/index.js';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';

export interface MailMessage {
  to: string;
  subject: string;
  html: string;
  text: string;
}

export interface MailTransport {
  readonly kind: 'smtp' | 'outbox';
  send(message: MailMessage): Promise<void>;
}

/** Thrown when retrying cannot help (the server refused the recipient for good). */
export class PermanentDeliveryError extends Error {
  readonly permanent = true;
  constructor(message: string) {
    super(message);
    this.name = 'PermanentDeliveryError';
  }
}

// Bounded so one unresponsive server cannot hold a claimed batch past its lock (see notifier.ts).
const SMTP_TIMEOUTS = { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 20_000 };

/** A sortable, collision-free file name: `<UTC timestamp>-<random>.<ext>`. */
export function outboxFileName(ext: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('.', '');
  return `${stamp}-${crypto.randomBytes(6).toString('hex')}.${ext}`;
}

/** Write a new file only the service user can read (messages carry one-time links). */
export async function writeOutboxFile(dir: string, ext: string, content: string | Buffer): Promise<string> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, outboxFileName(ext));
  await fs.writeFile(file, content, { mode: 0o600, flag: 'wx' });
  return file;
}

function smtpOptions(config: Config): SMTPTransport.Options {
  const fromUrl = parseConnectionUrl(config.mail.smtpUrl!);
  return {
    ...fromUrl,
    ...SMTP_TIMEOUTS,
    // SMTP_TLS_REJECT_UNAUTHORIZED is the documented switch, so it wins over a tls.* URL parameter.
    tls: { ...fromUrl.tls, rejectUnauthorized: config.mail.tlsRejectUnauthorized },
    // Messages are built from our templates only; never let content make the transport read
    // local files or fetch URLs.
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}

interface SmtpError extends Error {
  code?: string;
  responseCode?: number;
}

function createSmtpTransport(config: Config): MailTransport {
  const transporter = nodemailer.createTransport(smtpOptions(config), { from: config.mail.from });
  return {
    kind: 'smtp',
    async send(message) {
      try {
        await transporter.sendMail({ to: message.to, subject: message.subject, html: message.html, text: message.text });
      } catch (err) {
        const smtpErr = err as SmtpError;
        // A 5xx answer to RCPT TO (no such mailbox, domain refused) will not change on retry.
        if (smtpErr.code === 'EENVELOPE' && smtpErr.responseCode !== undefined && smtpErr.responseCode >= 500) {
          throw new PermanentDeliveryError(smtpErr.message);
        }
        throw err;
      }
    },
  };
}

function createOutboxTransport(config: Config, logger: Logger): MailTransport {
  const dir = path.join(config.dataDir, 'outbox', 'mail');
  // The stream transport runs the same MIME composer as SMTP, so the file is the exact message
  // (headers, encodings, CRLF line ends) a mail server would have received.
  const options: StreamTransport.Options = { streamTransport: true, buffer: true, newline: 'windows', disableFileAccess: true, disableUrlAccess: true };
  const composer = nodemailer.createTransport(options);
  return {
    kind: 'outbox',
    async send(message) {
      const info = await composer.sendMail({ from: config.mail.from, to: message.to, subject: message.subject, html: message.html, text: message.text });
      // `buffer: true` above makes the composed message a Buffer rather than a stream.
      const file = await writeOutboxFile(dir, 'eml', info.message as Buffer);
      logger.info({ to: message.to, subject: message.subject, file }, 'mail written to outbox (SMTP_URL is not set)');
    },
  };
}

export function createMailTransport(config: Config, logger: Logger): MailTransport {
  return config.mail.smtpUrl ? createSmtpTransport(config) : createOutboxTransport(config, logger);
}
