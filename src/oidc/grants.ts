// Grants as people see them ("Connected apps"): every save of an oidc-provider Grant updates its
// row in account_grants, destroying or revoking one removes the row, and authorization and token
// requests under it mark it used (at most once a minute, see grantUsage). Revoking an app's access
// ends its grants and every token issued under them, and tells the app by back-channel logout.
//
// The protocol store is reached through the adapters rather than the Provider, so an account can
// be erased by code that holds no Provider (the CLI, the admin API); the provider, when there is
// one, only adds the back-channel notifications.
import type Provider from 'oidc-provider';
import type { Adapter, Grant } from 'oidc-provider';
import type { Services } from '../services.ts';
import { AppError } from '../errors.ts';
import { deleteGrantRecords, grantIdsOf, upsertGrantRecord } from '../db/account-grants.ts';
import { unexpiredSessionIds } from '../db/personal-data.ts';
import { grantUsage } from '../domain/connected-apps.ts';
import { auditContext, recordAudit, type AuditMeta } from '../domain/audit.ts';
import { redisAdapterFactory } from './adapters/redis.ts';
import { sqlAdapterFactory } from './adapters/sql.ts';
import { notifyClient } from './sessions.ts';

/** Where the provider keeps protocol state: Redis when configured, else the database. */
export function protocolStore(services: Pick<Services, 'redis' | 'knex'>): (model: string) => Adapter {
  return services.redis ? redisAdapterFactory(services.redis) : sqlAdapterFactory(services.knex);
}

function scopeList(scope: string | undefined): string[] {
  return [...new Set((scope ?? '').split(' ').filter(Boolean))];
}

function recordOf(grant: Grant, expiration: number | undefined) {
  const resourceScopes: Record<string, string[]> = {};
  for (const [resource, scope] of Object.entries(grant.resources ?? {})) resourceScopes[resource] = scopeList(scope);
  // A new grant learns its expiry while being stored, without keeping it on the instance.
  const exp = grant.exp ?? (expiration ? Math.floor(Date.now() / 1000) + expiration : undefined);
  return {
    grantId: grant.jti,
    accountId: grant.accountId!,
    clientId: grant.clientId!,
    scopes: scopeList(grant.getOIDCScope()),
    resourceScopes,
    expiresAt: exp ? new Date(exp * 1000) : undefined,
  };
}

/** Keeps account_grants in step with the provider's grants. */
export function trackGrants(services: Services, provider: Provider): void {
  const log = (what: string) => (err: unknown) => services.logger.warn({ err }, `${what} failed`);
  const usage = grantUsage(services.knex);
  provider.on('grant.saved', (grant) => {
    if (!grant.accountId || !grant.clientId) return;
    // `expiration` is the library's TTL getter; its type declarations do not list it.
    const expiration = (grant as unknown as { expiration?: number }).expiration;
    // The row is written with "last used" set, so the authorization and the code exchange that
    // follow a consent need not write it again.
    usage.recorded(grant.jti);
    void upsertGrantRecord(services.knex, recordOf(grant, expiration)).catch(log('recording a grant'));
  });
  provider.on('grant.destroyed', (grant) => {
    usage.forget(grant.jti);
    void deleteGrantRecords(services.knex, [grant.jti]).catch(log('forgetting a grant'));
  });
  provider.on('grant.revoked', (_ctx, grantId) => {
    usage.forget(grantId);
    void deleteGrantRecords(services.knex, [grantId]).catch(log('forgetting a grant'));
  });
  const touch = (grantId: string | undefined) => {
    if (grantId) void usage.used(grantId).catch(log('marking a grant used'));
  };
  provider.on('authorization.success', (ctx) => touch(ctx.oidc.entities.Grant?.jti));
  provider.on('grant.success', (ctx) => touch(ctx.oidc.entities.Grant?.jti));
}

/** Destroys grants and, with each, every code and token issued under it. */
export async function endGrants(services: Pick<Services, 'redis' | 'knex'>, grantIds: Iterable<string>): Promise<void> {
  const store = protocolStore(services);
  const grants = store('Grant');
  // Both adapters delete every model's records of the grant, whichever model is asked.
  const tokens = store('AccessToken');
  for (const grantId of new Set(grantIds)) {
    await grants.destroy(grantId);
    await tokens.revokeByGrantId(grantId);
  }
}

interface StoredSession {
  jti?: string;
  accountId?: string;
  authorizations?: Record<string, { sid?: string; grantId?: string }>;
}

/** An app's place in one sign-in session, as the provider keeps it. */
export interface SessionAuthorization {
  clientId: string;
  sid: string | undefined;
  grantId: string | undefined;
}

/** One of the account's sign-in sessions in the protocol store. */
export interface LiveSession {
  uid: string;
  /** The store's key of the session (the cookie's value). */
  id: string;
  authorizations: SessionAuthorization[];
}

/**
 * The account's sign-in sessions still in the protocol store, with the apps signed in through
 * each. Rows already marked revoked are looked at too: an account being deleted has its rows
 * marked before its sessions are ended.
 */
export async function liveSessions(services: Pick<Services, 'redis' | 'knex'>, accountId: string): Promise<LiveSession[]> {
  const sessions = protocolStore(services)('Session');
  const found: LiveSession[] = [];
  for (const uid of await unexpiredSessionIds(services.knex, accountId)) {
    const stored = (await sessions.findByUid(uid)) as StoredSession | undefined;
    if (!stored?.jti || stored.accountId !== accountId) continue;
    const authorizations = Object.entries(stored.authorizations ?? {}).map(([clientId, a]) => ({ clientId, sid: a.sid, grantId: a.grantId }));
    found.push({ uid, id: stored.jti, authorizations });
  }
  return found;
}

/**
 * "Revoke access" in Connected apps: every grant the account gave the app (through any session,
 * or kept for offline access) ends with its tokens, the app is told to end its own sessions
 * (back-channel logout, when it registered for it), and a later sign-in asks for consent again.
 */
export async function revokeAppAccess(services: Services, provider: Provider, accountId: string, clientId: string, meta: AuditMeta = {}): Promise<void> {
  const authorizations = (await liveSessions(services, accountId)).flatMap((s) => s.authorizations).filter((a) => a.clientId === clientId);
  const grantIds = new Set(await grantIdsOf(services.knex, accountId, clientId));
  for (const authorization of authorizations) if (authorization.grantId) grantIds.add(authorization.grantId);
  if (grantIds.size === 0) throw new AppError('app_not_connected', 'This app has no access to your account.', 404);
  await endGrants(services, grantIds);
  await services.knex.transaction(async (trx) => {
    await deleteGrantRecords(trx, [...grantIds]);
    await recordAudit(trx, { type: 'grant.revoked', outcome: 'success', accountId, ...auditContext(meta, { grants: grantIds.size }), clientId });
  });
  await Promise.all(authorizations.map((a) => notifyClient(services, provider, clientId, accountId, a.sid)));
}

/**
 * Ends everything the provider holds for the account: each sign-in session, and each grant
 * (through a session or kept for offline access) with its codes and tokens. Returns the apps
 * that were signed in, so they can be told.
 */
export async function endAccountProtocolState(services: Pick<Services, 'redis' | 'knex'>, accountId: string): Promise<SessionAuthorization[]> {
  const sessions = await liveSessions(services, accountId);
  const authorizations = sessions.flatMap((s) => s.authorizations);
  const grantIds = new Set(await grantIdsOf(services.knex, accountId));
  for (const authorization of authorizations) if (authorization.grantId) grantIds.add(authorization.grantId);
  await endGrants(services, grantIds);
  const store = protocolStore(services)('Session');
  for (const session of sessions) await store.destroy(session.id);
  return authorizations;
}
