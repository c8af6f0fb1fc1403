// "Security activity" in /account: a person's own audit events in plain words, so they can spot
// a sign-in or a change they did not make. Only events recorded against their account are shown
// (a failed sign-in for an unknown email belongs to no one); internal details stay out.
import type { Knex } from 'knex';
import { UAParser } from 'ua-parser-js';
import { listAccountActivity, type AccountActivityRow } from '../db/audit.ts';
import type { GeoIp } from '../geoip.ts';

export const ACTIVITY_PAGE_SIZE = 50;

export interface ActivityEntry {
  occurredAt: Date;
  /** What happened, in plain words; an event type we have no words for is shown as it is. */
  description: string;
  outcome: 'success' | 'failure';
  /** Why an attempt failed, in plain words, when the reason is one a person can act on. */
  reason: string | undefined;
  /** The application the event came through, when there was one. */
  app: string | undefined;
  /** Made by an administrator (admin API or command line) rather than by the person. */
  byAdministrator: boolean;
  ip: string | undefined;
  location: string | undefined;
  browser: string | undefined;
  os: string | undefined;
}

export interface ActivityPage {
  entries: ActivityEntry[];
  /** Cursor for the next, older page; undefined on the last page. */
  older: string | undefined;
}

const DESCRIPTIONS: Record<string, string> = {
  'login.password': 'Sign-in with password',
  'login.passkey': 'Sign-in with a passkey',
  'login.magic_link': 'Sign-in with an emailed link',
  'login.magic_link_requested': 'Sign-in link requested by email',
  'login.magic_link_approved': 'Sign-in link approved for another browser',
  'mfa.totp': 'Two-step check with authenticator app',
  'mfa.sms': 'Two-step check with text message code',
  'mfa.recovery_code': 'Two-step check with a recovery code',
  'mfa.webauthn': 'Two-step check with a passkey',
  'mfa.factor_added': 'Two-step verification method added',
  'mfa.factor_removed': 'Two-step verification method removed',
  'mfa.recovery_codes_regenerated': 'New recovery codes created',
  'user.locked': 'Account locked for a while after failed attempts',
  'user.created': 'Account created',
  'user.signup': 'Account created (sign-up)',
  'user.invited': 'Invitation sent',
  'user.invitation_accepted': 'Invitation accepted',
  'user.updated': 'Account details changed',
  'user.name_changed': 'Name changed',
  'user.password_changed': 'Password changed',
  'user.password_set': 'Password set',
  'user.password_reset': 'Password reset',
  'password_reset.requested': 'Password reset requested',
  'user.email_verified': 'Email address confirmed',
  'user.verification_resent': 'Confirmation email sent again',
  'user.phone_added': 'Phone number added',
  'user.phone_verified': 'Phone number confirmed',
  'user.phone_removed': 'Phone number removed',
  'consent.granted': 'Access given to an app',
  'consent.denied': 'Access refused to an app',
  'session.revoked': 'Session signed out',
  'session.backchannel_logout': 'App told about a sign-out',
  'token.reuse_detected': 'App access ended: an old token was used again',
  'token.refresh_replayed': 'App token used again within its grace period',
  'token.fingerprint_mismatch': 'App token used from a different device',
  'role.assigned': 'Role given',
  'role.unassigned': 'Role removed',
  'account.erasure_refused': 'Request to delete the account refused',
  'account.exported': 'Your data downloaded',
  'grant.revoked': 'Access taken away from an app',
  'guest.created': 'Guest account started',
  'guest.upgraded': 'Guest account saved with an email address',
  'federation.sign_in': 'Sign-in through a linked account',
  'federation.account_created': 'Account created through a linked account',
  'federation.linked': 'Sign-in method linked',
  'federation.unlinked': 'Sign-in method unlinked',
  'federation.callback': 'Sign-in through a linked account failed',
  'api_key.created': 'API key created',
  'api_key.rotated': 'API key replaced',
  'api_key.revoked': 'API key revoked',
};

const REASONS: Record<string, string> = {
  bad_password: 'wrong password',
  wrong_code: 'wrong code',
  locked: 'account was locked',
  email_not_verified: 'email address not confirmed yet',
  no_password: 'no password is set',
  other_browser: 'link opened in another browser',
  second_factor: 'too many wrong codes',
};

const SOURCES_OF_ADMINISTRATORS = new Set(['cli', 'admin-api']);

function describeDevice(userAgent: string | null): { browser?: string; os?: string } {
  if (!userAgent) return {};
  const parsed = new UAParser(userAgent).getResult();
  return {
    browser: [parsed.browser.name, parsed.browser.major].filter(Boolean).join(' ') || undefined,
    os: [parsed.os.name, parsed.os.version].filter(Boolean).join(' ') || undefined,
  };
}

function entryOf(row: AccountActivityRow, geoip: GeoIp | undefined, appNames: Readonly<Record<string, string>>): ActivityEntry {
  const details = row.details ?? {};
  const source = typeof details.source === 'string' ? details.source : undefined;
  const byAdministrator = (source !== undefined && SOURCES_OF_ADMINISTRATORS.has(source)) || details.actor !== undefined;
  const reason = typeof details.reason === 'string' ? REASONS[details.reason] : undefined;
  // An administrator's address and browser are theirs, not this person's: leave them out.
  const ip = byAdministrator ? undefined : row.ip ?? undefined;
  const device = byAdministrator ? {} : describeDevice(row.user_agent);
  const app = row.client_id ? appNames[row.client_id] ?? row.client_name ?? row.client_id : undefined;
  return {
    occurredAt: new Date(row.occurred_at),
    description: DESCRIPTIONS[row.event_type] ?? row.event_type,
    outcome: row.outcome,
    reason,
    app,
    byAdministrator,
    ip,
    location: ip ? geoip?.locate(ip) : undefined,
    browser: device.browser,
    os: device.os,
  };
}

/** A cursor from the query string: the id of the last event of the previous page. */
export function parseActivityCursor(raw: unknown): string | undefined {
  return typeof raw === 'string' && /^[1-9][0-9]{0,17}$/.test(raw) ? raw : undefined;
}

/**
 * One page of an account's events, newest first. `appNames` names built-in clients that are not
 * in the clients table (the account page itself).
 */
export async function securityActivity(
  deps: { knex: Knex; geoip: GeoIp | undefined },
  accountId: string,
  options: { before?: string; appNames?: Readonly<Record<string, string>>; pageSize?: number } = {},
): Promise<ActivityPage> {
  const pageSize = options.pageSize ?? ACTIVITY_PAGE_SIZE;
  // One row more than shown tells whether an older page exists without a count query.
  const rows = await listAccountActivity(deps.knex, accountId, { beforeId: options.before, limit: pageSize + 1 });
  const shown = rows.slice(0, pageSize);
  return {
    entries: shown.map((row) => entryOf(row, deps.geoip, options.appNames ?? {})),
    older: rows.length > pageSize ? String(shown.at(-1)?.id) : undefined,
  };
}
