// The data export (GDPR art. 15 and 20): one JSON document with everything Gatehouse stores
// about a person, for /account and the admin API. Secrets are described, never included: no
// password hash, TOTP seed, passkey public key, recovery code or token hash leaves this way.
import type { Services } from '../services.ts';
import { AppError } from '../errors.ts';
import { findAccountRow } from '../db/accounts.ts';
import { listFactors, countUnusedRecoveryCodes } from '../db/mfa-factors.ts';
import { listGrantRecords } from '../db/account-grants.ts';
import { listApiKeyRows } from '../db/api-keys.ts';
import {
  listAccountAuditEvents,
  listAllRememberedDevices,
  listAllSessions,
  listLinkedIdentities,
  listMessages,
  listOneTimeLinks,
  listRefreshTokenRecords,
} from '../db/personal-data.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { listSubjectRoles } from './roles.ts';

export const EXPORT_FORMAT = 'gatehouse.account-export';
export const EXPORT_VERSION = 1;

type ExportServices = Pick<Services, 'knex' | 'config'>;

/** A JSON value as it appears in the document (dates as ISO 8601 strings). */
type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

function iso(value: Date | string | null | undefined): string | null {
  return value ? new Date(value).toISOString() : null;
}

export interface AccountExport {
  format: typeof EXPORT_FORMAT;
  version: typeof EXPORT_VERSION;
  exported_at: string;
  issuer: string;
  profile: { [key: string]: Json };
  mfa: { factors: { [key: string]: Json }[]; recovery_codes_remaining: number };
  sessions: { [key: string]: Json }[];
  connected_apps: { [key: string]: Json }[];
  remembered_devices: { [key: string]: Json }[];
  linked_identities: { [key: string]: Json }[];
  refresh_tokens: { [key: string]: Json }[];
  one_time_links: { [key: string]: Json }[];
  messages: { [key: string]: Json }[];
  api_keys: { [key: string]: Json }[];
  roles: { direct: string[]; effective: string[] };
  audit_events: { [key: string]: Json }[];
}

async function rolesOf(services: ExportServices, accountId: string): Promise<{ direct: string[]; effective: string[] }> {
  try {
    return await listSubjectRoles(services, { type: 'user', id: accountId });
  } catch (err) {
    // A deleted account holds no roles the roles module will describe.
    if (err instanceof AppError && err.code === 'user_not_found') return { direct: [], effective: [] };
    throw err;
  }
}

/** Builds the export of one account (no audit event: the callers record who asked). */
async function buildAccountExport(services: ExportServices, accountId: string): Promise<AccountExport> {
  const knex = services.knex;
  const account = await findAccountRow(knex, accountId);
  if (!account) throw new AppError('account_not_found', 'no account has this id', 404);
  const factors = await listFactors(knex, accountId);
  const grants = await listGrantRecords(knex, accountId);
  const keys = await listApiKeyRows(knex, { ownerAccountId: accountId });
  return {
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    exported_at: new Date().toISOString(),
    issuer: services.config.issuer,
    profile: {
      id: account.id,
      email: account.email,
      email_verified: account.email_verified,
      name: account.name,
      phone_number: account.phone_number,
      phone_number_verified: account.phone_number_verified,
      status: account.status,
      has_password: account.password_hash !== null,
      failed_login_count: account.failed_login_count,
      locked_until: iso(account.locked_until),
      last_login_at: iso(account.last_login_at),
      created_at: iso(account.created_at),
      updated_at: iso(account.updated_at),
    },
    mfa: {
      factors: factors.map((f) => ({
        id: f.id,
        type: f.type,
        name: f.name,
        confirmed: f.confirmed_at !== null,
        created_at: iso(f.created_at),
        confirmed_at: iso(f.confirmed_at),
        last_used_at: iso(f.last_used_at),
        ...(f.type === 'webauthn'
          ? { transports: f.transports ?? [], backup_eligible: f.backup_eligible, backed_up: f.backup_state, authenticator_model: f.aaguid }
          : {}),
      })),
      recovery_codes_remaining: await countUnusedRecoveryCodes(knex, accountId),
    },
    sessions: (await listAllSessions(knex, accountId)).map((s) => ({
      id: s.id,
      signed_in_at: iso(s.created_at),
      last_active_at: iso(s.last_active_at),
      expires_at: iso(s.expires_at),
      login_ip: s.login_ip,
      last_ip: s.last_ip,
      login_user_agent: s.login_user_agent,
      last_user_agent: s.last_user_agent,
      browser: s.browser,
      os: s.os,
      device_type: s.device_type,
      location: s.location,
      remember_me: s.remember,
      methods: s.amr,
      acr: s.acr,
      apps: s.clients,
      revoked_at: iso(s.revoked_at),
      revoked_reason: s.revoked_reason,
    })),
    connected_apps: grants.map((g) => ({
      grant_id: g.grant_id,
      client_id: g.client_id,
      client_name: g.client_name,
      scopes: g.scopes,
      resource_scopes: g.resource_scopes,
      granted_at: iso(g.created_at),
      updated_at: iso(g.updated_at),
      last_used_at: iso(g.last_used_at),
      expires_at: iso(g.expires_at),
    })),
    remembered_devices: (await listAllRememberedDevices(knex, accountId)).map((d) => ({
      id: d.id,
      ip: d.ip,
      user_agent: d.user_agent,
      created_at: iso(d.created_at),
      last_used_at: iso(d.last_used_at),
      expires_at: iso(d.expires_at),
    })),
    linked_identities: (await listLinkedIdentities(knex, accountId)).map((l) => ({
      provider: l.provider,
      subject: l.subject,
      email: l.email,
      email_verified: l.email_verified,
      display_name: l.display_name,
      linked_at: iso(l.created_at),
      last_used_at: iso(l.last_used_at),
    })),
    refresh_tokens: (await listRefreshTokenRecords(knex, accountId)).map((t) => ({
      client_id: t.client_id,
      grant_id: t.grant_id,
      browser_family: t.ua_family,
      remember_me: t.remember,
      issued_at: iso(t.created_at),
      rotated_at: iso(t.rotated_at),
      expires_at: iso(t.expires_at),
    })),
    one_time_links: (await listOneTimeLinks(knex, accountId)).map((t) => ({
      purpose: t.purpose,
      created_at: iso(t.created_at),
      expires_at: iso(t.expires_at),
      used_at: iso(t.consumed_at),
    })),
    messages: (await listMessages(knex, { email: account.email, phone: account.phone_number })).map((m) => ({
      channel: m.channel,
      template: m.template,
      recipient: m.recipient,
      queued_at: iso(m.created_at),
      sent_at: iso(m.sent_at),
      failed_at: iso(m.failed_at),
    })),
    api_keys: keys.map((k) => ({
      id: k.id,
      name: k.name,
      key_hint: k.key_hint,
      api: k.resource_identifier,
      scopes: k.scopes,
      created_at: iso(k.created_at),
      expires_at: iso(k.expires_at),
      last_used_at: iso(k.last_used_at),
      usage_count: Number(k.usage_count),
      revoked_at: iso(k.revoked_at),
    })),
    roles: await rolesOf(services, accountId),
    audit_events: (await listAccountAuditEvents(knex, accountId)).map((e) => ({
      id: String(e.id),
      occurred_at: iso(e.occurred_at),
      type: e.event_type,
      outcome: e.outcome,
      client_id: e.client_id,
      ip: e.ip,
      user_agent: e.user_agent,
      details: e.details as { [key: string]: Json },
    })),
  };
}

/**
 * The export, audited as `account.exported` (the event itself is recorded after the document
 * is built, so it is not in it).
 */
export async function exportAccountData(services: ExportServices, accountId: string, meta: AuditMeta = {}): Promise<AccountExport> {
  const document = await buildAccountExport(services, accountId);
  await recordAudit(services.knex, { type: 'account.exported', outcome: 'success', accountId, ...auditContext(meta) });
  return document;
}
