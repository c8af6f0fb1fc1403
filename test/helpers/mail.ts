// A local SMTP server standing in for the mail provider: Gatehouse is pointed at it with
// SMTP_URL, every message it accepts is parsed with mailparser and kept, and tests wait for the
// mail a person would receive and follow the links in it.
import type { AddressInfo } from 'node:net';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface CapturedMail {
  /** Envelope recipients (RCPT TO), lower-cased. */
  to: string[];
  /** The From header as text. */
  from: string;
  subject: string;
  text: string;
  html: string;
  receivedAt: Date;
  parsed: ParsedMail;
}

export interface MailQuery {
  /** Recipient address (compared case-insensitively with the envelope and the To header). */
  to: string;
  /** Substring of the subject (case-insensitive) or a pattern it must match. */
  subject?: string | RegExp;
  timeoutMs?: number;
}

export interface MailSink {
  /** `smtp://127.0.0.1:<port>`, for SMTP_URL. */
  url: string;
  port: number;
  /** Every message received, in order. */
  messages: CapturedMail[];
  /** Messages for `to` (optionally with a matching subject) received so far. */
  mailsTo(to: string, subject?: string | RegExp): CapturedMail[];
  /**
   * Resolves with the oldest matching message not yet returned by an earlier waitForMail, so
   * waiting twice for "Reset your password" gives the first and then the second such mail.
   */
  waitForMail(query: MailQuery): Promise<CapturedMail>;
  close(): Promise<void>;
}

function addressesOf(field: AddressObject | AddressObject[] | undefined): string[] {
  if (!field) return [];
  const list = Array.isArray(field) ? field : [field];
  return list.flatMap((a) => a.value.map((v) => (v.address ?? '').toLowerCase())).filter(Boolean);
}

function subjectMatches(subject: string, wanted: string | RegExp | undefined): boolean {
  if (wanted === undefined) return true;
  if (typeof wanted === 'string') return subject.toLowerCase().includes(wanted.toLowerCase());
  return wanted.test(subject);
}

function describe(mail: CapturedMail): string {
  return `${mail.to.join(',')}: "${mail.subject}"`;
}

export async function startMailSink(): Promise<MailSink> {
  const messages: CapturedMail[] = [];
  const handedOut = new Set<CapturedMail>();
  const waiters = new Set<() => void>();

  const server = new SMTPServer({
    authOptional: true,
    // Plain SMTP on loopback: no certificate for the client to reject.
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    size: 5 * 1024 * 1024,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', callback);
      stream.on('end', () => {
        simpleParser(Buffer.concat(chunks)).then((parsed) => {
          const envelope = session.envelope.rcptTo.map((r) => r.address.toLowerCase());
          const headerTo = addressesOf(parsed.to);
          messages.push({
            to: [...new Set([...envelope, ...headerTo])],
            from: parsed.from?.text ?? '',
            subject: parsed.subject ?? '',
            text: parsed.text ?? '',
            html: typeof parsed.html === 'string' ? parsed.html : '',
            receivedAt: new Date(),
            parsed,
          });
          callback();
          for (const wake of [...waiters]) wake();
        }, (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))));
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;

  const mailsTo = (to: string, subject?: string | RegExp) =>
    messages.filter((m) => m.to.includes(to.toLowerCase()) && subjectMatches(m.subject, subject));

  const waitForMail = ({ to, subject, timeoutMs = 15_000 }: MailQuery): Promise<CapturedMail> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = mailsTo(to, subject).find((m) => !handedOut.has(m));
        if (!found) return false;
        handedOut.add(found);
        resolve(found);
        return true;
      };
      if (check()) return;
      const wake = () => {
        if (check()) done();
      };
      const timer = setTimeout(() => {
        done();
        const seen = messages.map(describe).join('\n  ') || '(none)';
        reject(new Error(`no mail to ${to}${subject ? ` with subject ${String(subject)}` : ''} within ${timeoutMs} ms; received:\n  ${seen}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(wake);
      };
      waiters.add(wake);
    });

  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    messages,
    mailsTo,
    waitForMail,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The first link in `mail` (text part, then HTML hrefs) whose path starts with `pathPrefix`,
 * e.g. linkIn(mail, '/verify-email'). Throws, listing the links found, when there is none.
 */
export function linkIn(mail: CapturedMail, pathPrefix: string): URL {
  const candidates = [
    ...(mail.text.match(/https?:\/\/[^\s<>"')\]]+/g) ?? []),
    ...[...mail.html.matchAll(/href\s*=\s*"([^"]+)"/gi)].map((m) => m[1]!.replace(/&amp;/g, '&')),
  ];
  for (const raw of candidates) {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      continue;
    }
    if (url.pathname.startsWith(pathPrefix)) return url;
  }
  throw new Error(`no link to ${pathPrefix} in mail ${describe(mail)}; links: ${candidates.join(', ') || '(none)'}`);
}
