// Refresh-token lifecycle in front of oidc-provider's token endpoint. oidc-provider rotates a
// refresh token at every use and, when a rotated one comes back, revokes its grant. Around that
// this middleware adds what the provider does not know about:
//
// - device binding: every issued refresh token is recorded (token_bindings, keyed by a SHA-256 of
//   the value) with the fingerprint of the request that obtained it: the client, the user agent
//   family and, for DPoP, the key thumbprint. A successor inherits the binding. A refresh from
//   another fingerprint is reported and, by REFRESH_FINGERPRINT_POLICY, refused;
// - a per-client grace window (`refresh_token_grace_seconds`): the device that rotated a token
//   and lost the response may present the old token again and gets the same successor back;
// - reuse: any other presentation of a rotated token ends the grant and the sign-in session it
//   came from (with back-channel logout), is audited as `token.reuse_detected` and mailed;
// - "Remember me": the lifetimes of the tokens issued depend on the sign-in they come from. The
//   provider's TTL functions are synchronous, so the flag is looked up here, before the provider
//   runs, and read back by `accessTokenTtl` / `refreshTokenTtl` through the request's context.
//
// Like the token rate limit, the form body is read once and handed to the provider on
// `ctx.req.body`; a body already read by the rate limit is reused.
import crypto from 'node:crypto';
import { basicCredentials, formDecode, sameSecret } from '../security/credentials.ts';
import type { Context, Middleware } from 'koa';
import type { Knex } from 'knex';
import { calculateJwkThumbprint, decodeProtectedHeader, type JWK } from 'jose';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../config.ts';
import { userAgentFamily } from '../user-agent.ts';
import type { Services } from '../services.ts';
import type { ProviderHost } from './provider-host.ts';
import { oauthError, tokenRequestForm } from './token-request-body.ts';
import { revokeSessions } from './sessions.ts';
import { bindingOfRow, findBinding, insertBinding, recordRotation, setAlertedFingerprint, sweepBindings, type NewBinding, type TokenBindingRow } from '../db/token-bindings.ts';
import { findSession } from '../db/account-sessions.ts';
import { recordAudit, type AuditEvent } from '../domain/audit.ts';
import { findAccountById } from '../domain/users.ts';
import { pageLink } from '../domain/links.ts';

const SWEEP_INTERVAL_MS = 10 * 60 * 1000;
// How long a request presenting a token the provider has just rotated waits for that rotation to
// be recorded (it happens right after the provider's answer, usually within milliseconds).
const ROTATION_WAIT_MS = 2000;


type RefreshTokenModel = InstanceType<Provider['RefreshToken']>;
type ClientModel = InstanceType<Provider['Client']>;

// ---------------------------------------------------------------------------------------------
// Lifetimes
// ---------------------------------------------------------------------------------------------

/** "Remember me" of the sign-in behind the token request being answered, keyed by its context. */
const rememberedRequests = new WeakMap<object, boolean>();

function rememberOf(ctx: unknown): boolean {
  return typeof ctx === 'object' && ctx !== null && rememberedRequests.get(ctx) === true;
}

/**
 * Access token lifetime: longer for opaque tokens of a "Remember me" sign-in; JWT access tokens,
 * which cannot be revoked once issued, keep the short lifetime.
 */
export function accessTokenTtl(config: Pick<Config, 'ttl'>, ctx: unknown, format: string | undefined): number {
  return format !== 'jwt' && rememberOf(ctx) ? config.ttl.accessTokenRemember : config.ttl.accessToken;
}

/**
 * Refresh token lifetime: REFRESH_TOKEN_TTL with "Remember me", REFRESH_TOKEN_TTL_SHORT without,
 * counted again at every rotation but never past the absolute session lifetime of the same kind,
 * measured from the first token of the chain (`iiat`), so refreshing cannot keep it alive forever.
 */
export function refreshTokenTtl(config: Pick<Config, 'ttl'>, ctx: unknown, token: { iiat?: number; iat?: number }): number {
  const remember = rememberOf(ctx);
  const lifetime = remember ? config.ttl.refreshToken : config.ttl.refreshTokenShort;
  const absolute = remember ? config.ttl.rememberAbsolute : config.ttl.sessionAbsolute;
  const now = Math.floor(Date.now() / 1000);
  const start = token.iiat ?? token.iat ?? now;
  return Math.max(1, Math.min(lifetime, start + absolute - now));
}

// ---------------------------------------------------------------------------------------------
// Request details
// ---------------------------------------------------------------------------------------------

interface PresentedClient {
  clientId: string | undefined;
  secret: string | undefined;
  /** How the client authenticated (or claims to): HTTP Basic, form secret, assertion, or none. */
  method: 'basic' | 'post' | 'assertion' | 'none';
}

/** The client named by the request, unverified (oidc-provider authenticates it when it runs). */
function presentedClient(ctx: Context, params: URLSearchParams): PresentedClient {
  const [scheme, value] = (ctx.get('authorization') || '').split(' ');
  if (scheme?.toLowerCase() === 'basic' && value) {
    // Undecodable parts are kept as sent: oidc-provider refuses them when it runs.
    const raw = basicCredentials(value);
    if (raw) return { clientId: formDecode(raw.id) ?? raw.id, secret: formDecode(raw.secret) ?? raw.secret, method: 'basic' };
  }
  const assertion = params.get('client_assertion');
  if (assertion) {
    let sub: unknown;
    try {
      sub = (JSON.parse(Buffer.from(assertion.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown }).sub;
    } catch {
      sub = undefined;
    }
    return { clientId: params.get('client_id') ?? (typeof sub === 'string' ? sub : undefined), secret: undefined, method: 'assertion' };
  }
  const secret = params.get('client_secret');
  return { clientId: params.get('client_id') ?? undefined, secret: secret ?? undefined, method: secret !== null ? 'post' : 'none' };
}

export interface Fingerprint {
  value: string;
  uaFamily: string;
  jkt: string | undefined;
}

export function fingerprintOf(clientId: string, uaFamily: string, jkt: string | undefined): Fingerprint {
  const value = crypto.createHash('sha256').update(`${clientId}\n${uaFamily}\n${jkt ?? ''}`).digest('base64url');
  return { value, uaFamily, jkt };
}

/**
 * The thumbprint of the key in the request's DPoP proof, read without verifying the proof:
 * oidc-provider verifies it before anything is issued. 'unreadable' when the header is malformed.
 */
async function dpopThumbprint(ctx: Context): Promise<string | undefined | 'unreadable'> {
  const proof = ctx.get('dpop');
  if (!proof) return undefined;
  try {
    const { jwk } = decodeProtectedHeader(proof);
    if (!jwk) return 'unreadable';
    return await calculateJwkThumbprint(jwk as JWK, 'sha256');
  } catch {
    return 'unreadable';
  }
}

function sha256(value: string): string {
  return crypto.createHash('sha256').update(value).digest('hex');
}

function secretMatches(expected: string | undefined, actual: string | undefined): boolean {
  return expected !== undefined && actual !== undefined && sameSecret(expected, actual);
}

function successorAssociatedData(tokenHash: string): string {
  return `refresh_successor:${tokenHash}`;
}

/** The grace window a client is registered with, in seconds (0: off). */
function graceSecondsOf(client: ClientModel | undefined): number {
  // Extra client metadata keeps its registered (snake_case) name on the provider's client.
  const value = (client as unknown as { refresh_token_grace_seconds?: unknown } | undefined)?.refresh_token_grace_seconds;
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : 0;
}

/** What a chain of refresh tokens passes from each token to its successor. */
type ChainBinding = Pick<NewBinding, 'fingerprint' | 'uaFamily' | 'dpopJkt' | 'remember' | 'alertedFingerprint'>;

/**
 * What oidc-provider resolved while answering the request (the authenticated client, the token it
 * issued). The provider runs mounted on the same context and defines `oidc` on it; a request
 * answered before reaching the provider has none.
 */
function providerEntities(ctx: Context): KoaContextWithOIDC['oidc']['entities'] | undefined {
  return (ctx as Partial<Pick<KoaContextWithOIDC, 'oidc'>>).oidc?.entities;
}

// ---------------------------------------------------------------------------------------------
// The middleware
// ---------------------------------------------------------------------------------------------

interface Meta {
  ip: string;
  userAgent: string | undefined;
}

export function refreshTokenLifecycle(services: Services, host: ProviderHost): Middleware {
  const { knex, logger, config } = services;
  let lastSweep = 0;

  const sweepNow = (): void => {
    const now = Date.now();
    if (now - lastSweep < SWEEP_INTERVAL_MS) return;
    lastSweep = now;
    void sweepBindings(knex, new Date(now)).catch((err: unknown) => logger.warn({ err }, 'sweeping refresh token bindings failed'));
  };

  const findToken = async (provider: Provider, value: string): Promise<RefreshTokenModel | undefined> => {
    try {
      return await provider.RefreshToken.find(value, { ignoreExpiration: true });
    } catch {
      // Malformed values: the provider answers them with its own error.
      return undefined;
    }
  };

  /** "Remember me" of a provider session, from the session itself or, once it is gone, its record. */
  const sessionRemember = async (provider: Provider, sessionUid: string | undefined): Promise<boolean> => {
    if (!sessionUid) return false;
    const session = await provider.Session.findByUid(sessionUid);
    if (session) return !session.transient;
    return (await findSession(knex, sessionUid))?.remember ?? false;
  };

  const codeRemember = async (provider: Provider, code: string): Promise<boolean> => {
    try {
      const found = await provider.AuthorizationCode.find(code);
      return found ? await sessionRemember(provider, found.sessionUid) : false;
    } catch {
      return false;
    }
  };

  /** The token endpoint's answer, when it issued a refresh token. */
  const issuedRefreshToken = (ctx: Context): { body: Record<string, unknown>; refreshToken: string } | undefined => {
    if (ctx.status !== 200 || typeof ctx.body !== 'object' || ctx.body === null || Buffer.isBuffer(ctx.body)) return undefined;
    const body = ctx.body as Record<string, unknown>;
    return typeof body.refresh_token === 'string' ? { body, refreshToken: body.refresh_token } : undefined;
  };

  /**
   * The binding of a refresh token the provider has just issued in answer to `ctx`. The provider
   * leaves the token it issued on the request's context, and an opaque token's value is its id,
   * so it is taken from there rather than read back from the store (which stays the fallback).
   */
  const issuedBinding = async (ctx: Context, provider: Provider, value: string, chain: ChainBinding): Promise<NewBinding | undefined> => {
    const issued = providerEntities(ctx)?.RefreshToken;
    const token = issued?.jti === value ? issued : await findToken(provider, value);
    if (!token?.accountId || !token.clientId) return undefined;
    // A token read back from the store has its expiry; one just saved has its lifetime, which the
    // provider fixed while saving it.
    const exp = token.exp ?? Math.floor(Date.now() / 1000) + token.remainingTTL;
    return {
      ...chain,
      tokenHash: sha256(value),
      accountId: token.accountId,
      clientId: token.clientId,
      sessionUid: token.sessionUid,
      grantId: token.grantId,
      expiresAt: new Date((Number.isFinite(exp) ? exp : Math.floor(Date.now() / 1000) + config.ttl.refreshToken) * 1000),
    };
  };

  /** CORS for answers given here, by the rule oidc-provider applies to the token endpoint. */
  const allowOrigin = (ctx: Context, client: ClientModel | undefined): void => {
    const origin = ctx.get('origin');
    ctx.vary('Origin');
    if (!origin || origin === 'null' || client?.clientAuthMethod !== 'none') return;
    if ((client.redirectUris ?? []).some((uri) => URL.parse(uri)?.origin === origin)) ctx.set('Access-Control-Allow-Origin', origin);
  };

  const clientAuthenticated = (client: ClientModel | undefined, presented: PresentedClient): boolean => {
    if (!client || presented.clientId !== client.clientId) return false;
    switch (client.clientAuthMethod) {
      case 'none':
        return presented.method === 'none';
      case 'client_secret_basic':
        return presented.method === 'basic' && secretMatches(client.clientSecret, presented.secret);
      case 'client_secret_post':
        return presented.method === 'post' && secretMatches(client.clientSecret, presented.secret);
      default:
        // Assertion-based methods are never offered a grace window (see domain/clients.ts).
        return false;
    }
  };

  /**
   * Writes the audit event and, with `message` and an account to send it to, queues the mail in
   * the same transaction, so the record and the notice exist together or not at all.
   */
  const auditAndMail = async (event: AuditEvent & { accountId: string }, message?: (to: { email: string; name: string | null }, trx: Knex.Transaction) => Promise<void>): Promise<void> => {
    const account = message ? await findAccountById(knex, event.accountId) : undefined;
    await knex.transaction(async (trx) => {
      await recordAudit(trx, event);
      if (account && message) await message(account, trx);
    });
    if (account) services.notifier.kick();
  };

  /**
   * A rotated token came back outside the grace window, from another device or client: someone
   * holds a copy. The grant goes (every token issued under it), so does the sign-in session it
   * came from, and the account holder is told.
   */
  const reuseDetected = async (provider: Provider, token: RefreshTokenModel, row: TokenBindingRow | undefined, presented: PresentedClient, fingerprint: Fingerprint, meta: Meta): Promise<void> => {
    const accountId = token.accountId ?? row?.account_id;
    const grantId = token.grantId ?? row?.grant_id ?? undefined;
    const sessionUid = token.sessionUid ?? row?.session_uid ?? undefined;
    const clientId = token.clientId ?? row?.client_id;
    if (grantId) {
      const grant = await provider.Grant.find(grantId);
      await grant?.destroy();
      await Promise.all([provider.RefreshToken.revokeByGrantId(grantId), provider.AccessToken.revokeByGrantId(grantId), provider.AuthorizationCode.revokeByGrantId(grantId)]);
    }
    if (!accountId) return;
    if (sessionUid) await revokeSessions(services, provider, { accountId, uid: sessionUid }, 'refresh_token_reuse', meta);
    const client = clientId ? await provider.Client.find(clientId) : undefined;
    const when = new Date();
    await auditAndMail(
      {
        type: 'token.reuse_detected',
        outcome: 'failure',
        accountId,
        clientId,
        ip: meta.ip,
        userAgent: meta.userAgent,
        details: {
          grant: grantId,
          session: sessionUid,
          rotated_at: row?.rotated_at ? new Date(row.rotated_at).toISOString() : undefined,
          presented_by: presented.clientId,
          user_agent_family: fingerprint.uaFamily,
        },
      },
      (to, trx) => services.notifier.queueMail(trx, {
        to: to.email,
        template: 'refresh-token-reuse',
        data: { name: to.name, when, app: client?.clientName ?? clientId, ip: meta.ip, sessionsLink: pageLink(config, 'account') },
      }),
    );
  };

  /** A refresh from another device than the token was issued to. */
  const fingerprintMismatch = async (provider: Provider, row: TokenBindingRow, fingerprint: Fingerprint, refused: boolean, meta: Meta): Promise<void> => {
    const policy = config.refreshFingerprintPolicy;
    // One report per new device per chain: a chain keeps its original binding, so every later
    // refresh from the same device would otherwise report again.
    const firstTime = row.alerted_fingerprint !== fingerprint.value;
    if (!refused && !firstTime) return;
    const client = await provider.Client.find(row.client_id);
    const audit = {
      type: 'token.fingerprint_mismatch',
      outcome: refused ? ('failure' as const) : ('success' as const),
      accountId: row.account_id,
      clientId: row.client_id,
      ip: meta.ip,
      userAgent: meta.userAgent,
      details: {
        policy,
        refused,
        issued_to: row.ua_family,
        seen: fingerprint.uaFamily,
        dpop_key_changed: (row.dpop_jkt ?? undefined) !== fingerprint.jkt,
        session: row.session_uid,
      },
    };
    const tell = policy !== 'allow' && firstTime;
    await auditAndMail(audit, tell
      ? (to, trx) => services.notifier.queueMail(trx, {
        to: to.email,
        template: 'refresh-token-new-device',
        data: { name: to.name, when: new Date(), app: client?.clientName ?? row.client_id, device: fingerprint.uaFamily, ip: meta.ip, refused, sessionsLink: pageLink(config, 'account') },
      })
      : undefined);
    if (firstTime) await setAlertedFingerprint(knex, row.token_hash, fingerprint.value);
  };

  /** The stored successor response, when the grace window allows this request to have it again. */
  const graceReplay = async (provider: Provider, row: TokenBindingRow, presented: PresentedClient, fingerprint: Fingerprint): Promise<{ body: Record<string, unknown>; client: ClientModel } | undefined> => {
    const now = Date.now();
    if (!row.rotated_at || !row.grace_until || new Date(row.grace_until).getTime() < now) return undefined;
    if (!row.successor_ciphertext || !row.successor_hash) return undefined;
    // Only the device that rotated the token, i.e. the one that lost the answer.
    if (presented.clientId !== row.client_id || row.rotation_fingerprint !== fingerprint.value) return undefined;
    const client = await provider.Client.find(row.client_id);
    if (!client || !clientAuthenticated(client, presented)) return undefined;
    // "Just rotated": once the successor has been used itself, the old token is plain reuse.
    const successor = await findBinding(knex, row.successor_hash);
    if (successor?.rotated_at) return undefined;
    const body = JSON.parse(services.secrets.decryptText(row.successor_ciphertext, successorAssociatedData(row.token_hash))) as Record<string, unknown>;
    if (typeof body.refresh_token !== 'string') return undefined;
    const successorToken = await findToken(provider, body.refresh_token);
    if (!successorToken || successorToken.consumed || successorToken.isExpired) return undefined;
    // The same tokens; only the remaining lifetime is brought up to date.
    if (typeof body.expires_in === 'number') {
      body.expires_in = Math.max(1, body.expires_in - Math.floor((now - new Date(row.rotated_at).getTime()) / 1000));
    }
    return { body, client };
  };

  /** A token the provider has rotated but whose rotation is not recorded yet: wait a moment for it. */
  const awaitRotation = async (tokenHash: string, row: TokenBindingRow | undefined): Promise<TokenBindingRow | undefined> => {
    const deadline = Date.now() + ROTATION_WAIT_MS;
    let current = row;
    while (!current?.rotated_at && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      current = await findBinding(knex, tokenHash);
    }
    return current;
  };

  const exchangeCode = async (ctx: Context, next: () => Promise<unknown>, params: URLSearchParams): Promise<void> => {
    const provider = host.provider;
    const code = params.get('code');
    const remember = code ? await codeRemember(provider, code) : false;
    rememberedRequests.set(ctx, remember);
    await next();
    const issued = issuedRefreshToken(ctx);
    if (!issued) return;
    try {
      const presented = presentedClient(ctx, params);
      const jkt = await dpopThumbprint(ctx);
      const uaFamily = userAgentFamily(ctx.get('user-agent') || undefined);
      // A 200 means oidc-provider verified the DPoP proof, so its key is the one to bind to.
      const fingerprint = fingerprintOf(presented.clientId ?? '', uaFamily, jkt === 'unreadable' ? undefined : jkt);
      const binding = await issuedBinding(ctx, provider, issued.refreshToken, { fingerprint: fingerprint.value, uaFamily, dpopJkt: fingerprint.jkt, remember, alertedFingerprint: undefined });
      if (binding) await insertBinding(knex, binding);
      sweepNow();
    } catch (err) {
      logger.error({ err, requestId: ctx.state.requestId }, 'recording an issued refresh token failed');
    }
  };

  const refresh = async (ctx: Context, next: () => Promise<unknown>, params: URLSearchParams): Promise<void> => {
    const value = params.get('refresh_token');
    if (!value) {
      await next();
      return;
    }
    const provider = host.provider;
    const tokenHash = sha256(value);
    // The binding is read here, apart from the write that records the rotation (recordRotation):
    // what it says (rotated, grace window, device) decides whether the provider runs at all, and
    // the write needs the successor, which exists only once the provider has answered. Claiming
    // the row in the read instead (an UPDATE ... RETURNING) would turn every read, reuse and
    // refused requests included, into a write that has to be undone when the provider refuses.
    // Both reads go out at once, so the select costs no extra wait.
    const [token, stored] = await Promise.all([findToken(provider, value), findBinding(knex, tokenHash)]);
    // Unknown, revoked or expired-and-gone: the provider gives its usual answer.
    if (!token) {
      await next();
      return;
    }
    let row = stored;
    const presented = presentedClient(ctx, params);
    const jkt = await dpopThumbprint(ctx);
    const fingerprint = fingerprintOf(presented.clientId ?? '', userAgentFamily(ctx.get('user-agent') || undefined), jkt === 'unreadable' ? undefined : jkt);
    const meta: Meta = { ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined };

    if (token.consumed || row?.rotated_at) {
      if (!row?.rotated_at) row = await awaitRotation(tokenHash, row);
      const replay = row ? await graceReplay(provider, row, presented, fingerprint) : undefined;
      if (row && replay) {
        await recordAudit(knex, { type: 'token.refresh_replayed', outcome: 'success', accountId: row.account_id, clientId: row.client_id, ip: meta.ip, userAgent: meta.userAgent, details: { session: row.session_uid } });
        allowOrigin(ctx, replay.client);
        ctx.status = 200;
        ctx.set('Cache-Control', 'no-store');
        ctx.set('Pragma', 'no-cache');
        ctx.body = replay.body;
        return;
      }
      await reuseDetected(provider, token, row, presented, fingerprint, meta);
      allowOrigin(ctx, presented.clientId ? await provider.Client.find(presented.clientId) : undefined);
      oauthError(ctx, 400, 'invalid_grant', 'refresh token already used');
      return;
    }

    const remember = row?.remember ?? (await sessionRemember(provider, token.sessionUid));
    rememberedRequests.set(ctx, remember);
    // A malformed DPoP header or another client's token is the provider's to refuse; neither says
    // anything about the device.
    const mismatch = row !== undefined && jkt !== 'unreadable' && presented.clientId === token.clientId && row.fingerprint !== fingerprint.value;
    if (row && mismatch && config.refreshFingerprintPolicy === 'deny') {
      await fingerprintMismatch(provider, row, fingerprint, true, meta);
      allowOrigin(ctx, presented.clientId ? await provider.Client.find(presented.clientId) : undefined);
      oauthError(ctx, 400, 'invalid_grant', 'refresh token was issued to another device');
      return;
    }

    await next();
    const issued = issuedRefreshToken(ctx);
    if (!issued || issued.refreshToken === value) return;
    try {
      // The client the provider authenticated: the token's own (it refuses any other).
      const client = providerEntities(ctx)?.Client ?? (await provider.Client.find(row?.client_id ?? token.clientId ?? ''));
      const grace = graceSecondsOf(client);
      // A token issued before bindings were recorded is bound from its first refresh on.
      const rotated: NewBinding = row ? bindingOfRow(row) : {
        tokenHash,
        accountId: token.accountId,
        clientId: token.clientId ?? presented.clientId ?? '',
        sessionUid: token.sessionUid,
        grantId: token.grantId,
        fingerprint: fingerprint.value,
        uaFamily: fingerprint.uaFamily,
        dpopJkt: fingerprint.jkt,
        remember,
        alertedFingerprint: undefined,
        expiresAt: new Date((token.exp ?? Math.floor(Date.now() / 1000)) * 1000),
      };
      if (row && mismatch) await fingerprintMismatch(provider, row, fingerprint, false, meta);
      // The successor inherits the chain's binding.
      const successor = await issuedBinding(ctx, provider, issued.refreshToken, {
        fingerprint: rotated.fingerprint,
        uaFamily: rotated.uaFamily,
        dpopJkt: rotated.dpopJkt,
        remember,
        alertedFingerprint: mismatch ? fingerprint.value : rotated.alertedFingerprint,
      });
      const rotatedAt = new Date();
      await recordRotation(knex, rotated, {
        rotatedAt,
        rotationFingerprint: fingerprint.value,
        successorHash: successor?.tokenHash ?? sha256(issued.refreshToken),
        successorCiphertext: grace > 0 ? services.secrets.encrypt(JSON.stringify(issued.body), successorAssociatedData(tokenHash)) : null,
        graceUntil: grace > 0 ? new Date(rotatedAt.getTime() + grace * 1000) : null,
      }, successor);
      sweepNow();
    } catch (err) {
      logger.error({ err, requestId: ctx.state.requestId }, 'recording a refresh token rotation failed');
    }
  };

  return async (ctx, next) => {
    if (ctx.method !== 'POST' || ctx.path !== '/token') return next();
    const params = await tokenRequestForm(ctx);
    if (params === 'rejected') return undefined;
    const grantType = params?.get('grant_type');
    if (params && grantType === 'authorization_code') return exchangeCode(ctx, next, params);
    if (params && grantType === 'refresh_token') return refresh(ctx, next, params);
    return next();
  };
}
