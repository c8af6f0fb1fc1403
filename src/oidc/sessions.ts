// Sign-in sessions as people see them: every save of an oidc-provider session updates its row
// in account_sessions (who, when, where from, which apps), and revoking one ends the provider
// session, destroys the grants and tokens issued through it, and tells each app by back-channel
// logout. All of it lives in the shared database and the protocol store, never in one process.
import type Provider from 'oidc-provider';
import type { Services } from '../services.ts';
import type { Notifier } from '../notify/notifier.ts';
import { markSessionsRevoked, upsertSession, type SessionSeen } from '../db/account-sessions.ts';
import { findAccountById } from '../domain/users.ts';
import { pageLink } from '../domain/links.ts';
import { auditContext, recordAudit, type AuditMeta } from '../domain/audit.ts';
import { sessionTtl } from './session-lifetime.ts';
import { describeUserAgent } from '../user-agent.ts';

interface ProviderSession {
  uid: string;
  accountId?: string;
  loginTs?: number;
  transient?: boolean;
  amr?: string[];
  acr?: string;
  authorizations?: Record<string, { sid?: string; grantId?: string }>;
  destroy(): Promise<void>;
}

/** Keeps account_sessions in step with the provider's sessions. */
export function trackSessions(services: Services, provider: Provider, ProviderClass: { ctx: unknown }): void {
  provider.on('session.saved', (saved: unknown) => {
    const session = saved as ProviderSession;
    if (!session.accountId) return;
    const ctx = ProviderClass.ctx as { ip?: string; get?(name: string): string } | undefined;
    const userAgent = ctx?.get?.('user-agent') || undefined;
    const device = describeUserAgent(userAgent);
    const now = Date.now();
    const seen: SessionSeen = {
      id: session.uid,
      accountId: session.accountId,
      loginAt: new Date((session.loginTs ?? Math.floor(now / 1000)) * 1000),
      expiresAt: new Date(now + sessionTtl(services.config, session) * 1000),
      ip: ctx?.ip,
      userAgent,
      browser: device.browser,
      os: device.os,
      deviceType: device.deviceType,
      location: services.geoip?.locate(ctx?.ip),
      remember: !session.transient,
      amr: session.amr ?? [],
      acr: session.acr,
      clients: Object.keys(session.authorizations ?? {}),
    };
    void recordSession(services, seen).catch((err: unknown) => services.logger.warn({ err }, 'recording a session failed'));
  });
}

/** What recording a session needs; the notifier only queues (in the write's transaction) and kicks. */
export interface SessionRecordDeps {
  knex: Services['knex'];
  config: Services['config'];
  notifier: Pick<Notifier, 'queueMail' | 'kick'>;
}

/** Stores the sighting; a first sign-in from a browser and system never seen on the account is mailed. */
export async function recordSession(services: SessionRecordDeps, seen: SessionSeen): Promise<void> {
  const sighting = await upsertSession(services.knex, seen);
  // A first sign-in ever is not news; a new browser or system on an account with history is.
  if (!sighting.firstSighting || !sighting.otherSessions || sighting.knownDevice) return;
  // Read only now: the account is needed for the mail alone, and most sightings send none.
  const account = await findAccountById(services.knex, seen.accountId);
  if (!account) return;
  await services.knex.transaction((trx) => services.notifier.queueMail(trx, {
    to: account.email,
    template: 'new-sign-in',
    data: {
      name: account.name,
      when: seen.loginAt,
      device: `${[seen.browser, seen.os].filter(Boolean).join(' on ') || 'an unknown browser'}${seen.location ? `, near ${seen.location}` : ''}`,
      ip: seen.ip,
      sessionsLink: pageLink(services.config, 'account'),
    },
  }));
  services.notifier.kick();
}

/** Tells an app by back-channel logout (when it registered for it) that a session with it ended. */
export async function notifyClient(services: Services, provider: Provider, clientId: string, accountId: string, sid: string | undefined): Promise<void> {
  // The library's type declarations predate Client#backchannelLogout.
  const client = (await provider.Client.find(clientId)) as unknown as { backchannelLogoutUri?: string; backchannelLogout(sub: string, sid: string): Promise<void> } | undefined;
  if (!client?.backchannelLogoutUri) return;
  let lastError: unknown;
  for (const delayMs of [0, 500, 2000]) {
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    try {
      await client.backchannelLogout(accountId, sid ?? '');
      await recordAudit(services.knex, { type: 'session.backchannel_logout', outcome: 'success', accountId, clientId });
      return;
    } catch (err) {
      lastError = err;
    }
  }
  services.logger.warn({ clientId, err: lastError instanceof Error ? lastError.message : String(lastError) }, 'back-channel logout failed');
  await recordAudit(services.knex, { type: 'session.backchannel_logout', outcome: 'failure', accountId, clientId, details: { error: lastError instanceof Error ? lastError.message : String(lastError) } });
}

/** Ends one provider session: its grants and tokens, its apps (back-channel), the session itself. */
async function endProviderSession(services: Services, provider: Provider, uid: string): Promise<void> {
  const session = (await provider.Session.findByUid(uid)) as unknown as ProviderSession | undefined;
  if (!session) return;
  const accountId = session.accountId;
  const notifications: Promise<void>[] = [];
  for (const [clientId, authorization] of Object.entries(session.authorizations ?? {})) {
    if (authorization.grantId) {
      const grant = await provider.Grant.find(authorization.grantId);
      await grant?.destroy();
      // Every token stored under the grant (access, refresh, codes) goes with it.
      await provider.AccessToken.revokeByGrantId(authorization.grantId);
    }
    if (accountId) notifications.push(notifyClient(services, provider, clientId, accountId, authorization.sid));
  }
  await session.destroy();
  await Promise.all(notifications);
}

export interface RevokeSelection {
  accountId: string;
  /** One session; all of the account's sessions when absent. */
  uid?: string;
  /** Keep this one (e.g. "sign out everywhere else"). */
  exceptUid?: string;
}

/** Revokes sessions; returns the uids ended. */
export async function revokeSessions(services: Services, provider: Provider, selection: RevokeSelection, reason: string, meta: AuditMeta = {}): Promise<string[]> {
  const uids = await services.knex.transaction(async (trx) => {
    const ended = await markSessionsRevoked(trx, { accountId: selection.accountId, id: selection.uid, exceptId: selection.exceptUid }, reason);
    if (ended.length) await recordAudit(trx, { type: 'session.revoked', outcome: 'success', accountId: selection.accountId, ...auditContext(meta, { sessions: ended, reason }) });
    return ended;
  });
  for (const uid of uids) {
    try {
      await endProviderSession(services, provider, uid);
    } catch (err) {
      services.logger.error({ err, uid }, 'ending a revoked session failed');
    }
  }
  return uids;
}
