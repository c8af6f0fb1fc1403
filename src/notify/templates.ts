// Message templates. A mail template is two files, views/mail/<name>.html.ejs and
// views/mail/<name>.text.ejs, wrapped in one shared layout, plus one entry below (subject and the
// data it accepts). Data is validated when the message is rendered, which is when it is queued,
// so a caller passing a wrong field fails in its own request instead of in the delivery worker.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ejs from 'ejs';
import { z } from 'zod';
import type { Config } from '../config.ts';

const MAIL_VIEWS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'views', 'mail');

export type TemplateContext = Pick<Config, 'productName' | 'issuer' | 'env'>;

export interface RenderedMail {
  subject: string;
  html: string;
  text: string;
}

const dateFormat = new Intl.DateTimeFormat('en-GB', { dateStyle: 'long', timeStyle: 'short', timeZone: 'UTC' });

/** Field schemas that need the issuer (links) or shape values for display (names, dates). */
function fieldKit(issuer: string) {
  const issuerUrl = new URL(`${issuer}/`);
  return {
    /** A display name (accounts may have none: null); control characters are removed so a name cannot add lines or headers. */
    name: () => z
      .string()
      .nullish()
      // eslint-disable-next-line no-control-regex
      .transform((s) => s?.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 100) || undefined),
    /** An absolute URL on the issuer; a path starting with "/" is resolved against the issuer. */
    link: () => z.string().transform((raw, ctx) => {
      let url: URL;
      try {
        url = raw.startsWith('/') && !raw.startsWith('//') ? new URL(`${issuer}${raw}`) : new URL(raw);
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be an absolute URL or a path starting with /' });
        return z.NEVER;
      }
      // Links in our mail only ever point at our own pages; anything else is a bug or an attack.
      const onIssuer = url.pathname.startsWith(issuerUrl.pathname) || `${url.pathname}/` === issuerUrl.pathname;
      if (url.origin !== issuerUrl.origin || !onIssuer) {
        ctx.addIssue({ code: 'custom', message: `must be a URL on the issuer ${issuer}` });
        return z.NEVER;
      }
      return url.href;
    }),
    /** A positive whole number (hours, minutes, days). */
    count: () => z.number().int().positive(),
    /** A moment (Date, epoch milliseconds or any string Date parses), shown in UTC so every reader sees the same text. */
    moment: () => z.union([z.date(), z.string(), z.number()]).transform((value, ctx) => {
      const date = new Date(value);
      if (Number.isNaN(date.getTime())) {
        ctx.addIssue({ code: 'custom', message: 'must be a date' });
        return z.NEVER;
      }
      return `${dateFormat.format(date)} UTC`;
    }),
    /** Optional free text (shown escaped, kept to a sane length). */
    note: (max: number) => z.string().trim().max(max).nullish().transform((s) => s || undefined),
  };
}

type FieldKit = ReturnType<typeof fieldKit>;

interface MailTemplate<Schema extends z.ZodType> {
  data(fields: FieldKit): Schema;
  subject(data: z.output<Schema>, ctx: TemplateContext): string;
}

// Identity helper: lets TypeScript infer each entry's schema type so the data types follow it.
function mail<Schema extends z.ZodType>(template: MailTemplate<Schema>): MailTemplate<Schema> {
  return template;
}

export const mailTemplates = {
  'verify-email': mail({
    data: (f) => z.object({ name: f.name(), link: f.link(), expiresInHours: f.count() }),
    subject: (_d, ctx) => `Confirm your email address for ${ctx.productName}`,
  }),
  'signup-existing': mail({
    data: (f) => z.object({ name: f.name(), loginLink: f.link(), resetLink: f.link() }),
    subject: (_d, ctx) => `Someone tried to sign up for ${ctx.productName} with your email address`,
  }),
  'reset-password': mail({
    data: (f) => z.object({ name: f.name(), link: f.link(), expiresInMinutes: f.count() }),
    subject: (_d, ctx) => `Reset your ${ctx.productName} password`,
  }),
  'password-changed': mail({
    data: (f) => z.object({ name: f.name(), when: f.moment(), ip: f.note(64) }),
    subject: (_d, ctx) => `Your ${ctx.productName} password was changed`,
  }),
  'account-locked': mail({
    data: (f) => z.object({ name: f.name(), until: f.moment(), resetLink: f.link().nullish() }),
    subject: (_d, ctx) => `Your ${ctx.productName} account is temporarily locked`,
  }),
  invitation: mail({
    data: (f) => z.object({ name: f.name(), link: f.link(), expiresInDays: f.count(), inviterNote: f.note(1000) }),
    subject: (_d, ctx) => `You are invited to ${ctx.productName}`,
  }),
  'mfa-factor-added': mail({
    data: (f) => z.object({ name: f.name(), factor: f.note(120), when: f.moment(), accountLink: f.link() }),
    subject: (_d, ctx) => `A sign-in method was added to your ${ctx.productName} account`,
  }),
  'mfa-factor-removed': mail({
    data: (f) => z.object({ name: f.name(), factor: f.note(120), when: f.moment(), accountLink: f.link() }),
    subject: (_d, ctx) => `A sign-in method was removed from your ${ctx.productName} account`,
  }),
  'new-sign-in': mail({
    data: (f) => z.object({ name: f.name(), when: f.moment(), device: f.note(200), ip: f.note(64), sessionsLink: f.link() }),
    subject: (_d, ctx) => `New sign-in to your ${ctx.productName} account`,
  }),
  'magic-link': mail({
    data: (f) => z.object({ name: f.name(), link: f.link(), expiresInMinutes: f.count() }),
    subject: (_d, ctx) => `Your ${ctx.productName} sign-in link`,
  }),
  'refresh-token-reuse': mail({
    data: (f) => z.object({ name: f.name(), when: f.moment(), app: f.note(200), ip: f.note(64), sessionsLink: f.link() }),
    subject: (_d, ctx) => `We signed you out of an app on your ${ctx.productName} account`,
  }),
  'refresh-token-new-device': mail({
    data: (f) => z.object({ name: f.name(), when: f.moment(), app: f.note(200), device: f.note(120), ip: f.note(64), refused: z.boolean(), sessionsLink: f.link() }),
    subject: (_d, ctx) => `An app on your ${ctx.productName} account was used from another device`,
  }),
};

export type MailTemplateName = keyof typeof mailTemplates;

/** What a caller passes for a mail template (dates may be Date objects or ISO strings). */
export type MailTemplateData<Name extends MailTemplateName> = z.input<ReturnType<(typeof mailTemplates)[Name]['data']>>;

interface SmsTemplate<Schema extends z.ZodType> {
  data(fields: FieldKit): Schema;
  body(data: z.output<Schema>, ctx: TemplateContext): string;
}

function sms<Schema extends z.ZodType>(template: SmsTemplate<Schema>): SmsTemplate<Schema> {
  return template;
}

export const smsTemplates = {
  'phone-code': sms({
    data: (f) => z.object({ code: z.string().regex(/^[0-9A-Za-z]{4,12}$/), expiresInMinutes: f.count() }),
    // The last line is an origin-bound one-time code (`@host #code`): browsers and phones offer
    // to fill the code in only on the issuer's site, which blunts phishing pages asking for it.
    body: (d, ctx) => `${d.code} is your ${ctx.productName} verification code. It expires in ${d.expiresInMinutes} minutes. Never share it with anyone.\n\n@${new URL(ctx.issuer).hostname} #${d.code}`,
  }),
};

export type SmsTemplateName = keyof typeof smsTemplates;

export type SmsTemplateData<Name extends SmsTemplateName> = z.input<ReturnType<(typeof smsTemplates)[Name]['data']>>;

export class TemplateDataError extends Error {
  constructor(template: string, error: z.ZodError) {
    super(`notification template "${template}": invalid data: ${error.issues.map((i) => `${i.path.join('.') || 'data'}: ${i.message}`).join('; ')}`);
    this.name = 'TemplateDataError';
  }
}

function parseData(template: string, schema: z.ZodType, data: unknown): Record<string, unknown> {
  const parsed = schema.safeParse(data);
  if (!parsed.success) throw new TemplateDataError(template, parsed.error);
  return parsed.data as Record<string, unknown>;
}

function hasTemplate<T extends object>(registry: T, name: string): name is Extract<keyof T, string> {
  return Object.hasOwn(registry, name);
}

// ejs evaluates templates inside `with (locals)`, so an optional field left out of the data would
// be looked up as a global and throw; every declared field is therefore present, maybe undefined.
function withEveryField(schema: z.ZodType, data: Record<string, unknown>): Record<string, unknown> {
  const shape = schema instanceof z.ZodObject ? (schema.shape as Record<string, unknown>) : {};
  return { ...Object.fromEntries(Object.keys(shape).map((key) => [key, undefined])), ...data };
}

function plural(count: number, unit: string): string {
  return `${count} ${unit}${count === 1 ? '' : 's'}`;
}

async function renderFile(file: string, locals: Record<string, unknown>, ctx: TemplateContext): Promise<string> {
  return ejs.renderFile(path.join(MAIL_VIEWS, file), locals, { cache: ctx.env === 'production', async: false });
}

// Text parts: ejs control lines leave blank runs behind; readers get at most one blank line.
function tidyText(text: string): string {
  return `${text.replace(/[ \t]+\n/g, '\n').replace(/\n{3,}/g, '\n\n').trim()}\n`;
}

export async function renderMail<Name extends MailTemplateName>(name: Name, data: MailTemplateData<Name>, ctx: TemplateContext): Promise<RenderedMail> {
  if (!hasTemplate(mailTemplates, name)) throw new Error(`unknown mail template "${String(name)}"`);
  // The registry maps each name to its own schema type; TypeScript cannot follow that through an
  // indexed access, so the entry is viewed through the common shape it was validated against.
  const template = mailTemplates[name] as unknown as MailTemplate<z.ZodType<Record<string, unknown>>>;
  const schema = template.data(fieldKit(ctx.issuer));
  const values = withEveryField(schema, parseData(name, schema, data));
  const subject = template.subject(values, ctx);
  const locals = { ...values, productName: ctx.productName, issuer: ctx.issuer, subject, plural };
  const [htmlBody, textBody] = await Promise.all([
    renderFile(`${name}.html.ejs`, locals, ctx),
    renderFile(`${name}.text.ejs`, locals, ctx),
  ]);
  const [html, text] = await Promise.all([
    renderFile('layout.html.ejs', { ...locals, body: htmlBody }, ctx),
    renderFile('layout.text.ejs', { ...locals, body: tidyText(textBody) }, ctx),
  ]);
  return { subject, html, text: tidyText(text) };
}

export function renderSms<Name extends SmsTemplateName>(name: Name, data: SmsTemplateData<Name>, ctx: TemplateContext): string {
  if (!hasTemplate(smsTemplates, name)) throw new Error(`unknown SMS template "${String(name)}"`);
  const template = smsTemplates[name] as unknown as SmsTemplate<z.ZodType<Record<string, unknown>>>;
  const schema = template.data(fieldKit(ctx.issuer));
  return template.body(parseData(name, schema, data), ctx);
}

export function isMailTemplateName(name: string): name is MailTemplateName {
  return hasTemplate(mailTemplates, name);
}

export function isSmsTemplateName(name: string): name is SmsTemplateName {
  return hasTemplate(smsTemplates, name);
}
