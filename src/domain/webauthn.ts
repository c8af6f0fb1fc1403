// Passkeys (WebAuthn) with @simplewebauthn/server: registering one from /account, and checking an
// assertion either as the second step after a password or as a passwordless sign-in with a
// discoverable credential.
//
// The relying party is the issuer: rpID is its host name and the only accepted origin is its
// origin, so a passkey made here works for no other site and no other site can ask for it.
//
// Challenges are random, single-use and short-lived. Each one is a one_time_tokens row (purpose
// 'webauthn_challenge') keyed by the SHA-256 of the challenge itself and bound to what asked for
// it (the sign-in interaction, or the /account session), so any instance can check it, several
// may be outstanding at once (the autofill request and a button click on the same page), and a
// challenge issued to one sign-in is useless in another.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { z } from 'zod';
import type { Config } from '../config.ts';
import { findFactorByCredentialId, listFactors, type FactorRow } from '../db/mfa-factors.ts';
import { insertChallengeToken, recordPasskeyUse } from '../db/webauthn.ts';
import { AppError } from '../errors.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { factorAdded } from './mfa.ts';
import { hashToken, redeemToken } from './one-time-tokens.ts';
import type { LifecycleServices } from './signup.ts';

type Db = Knex | Knex.Transaction;
type KnexServices = Pick<LifecycleServices, 'knex' | 'config'>;

/** How long the browser may take (ms), and how long a challenge stays usable after that margin. */
const CEREMONY_TIMEOUT_MS = 120_000;
const CHALLENGE_TTL_SECONDS = 300;
export const MAX_PASSKEY_NAME = 60;

export interface RelyingParty {
  rpID: string;
  rpName: string;
  origin: string;
}

export function relyingParty(config: Pick<Config, 'issuer' | 'productName'>): RelyingParty {
  const issuer = new URL(config.issuer);
  return { rpID: issuer.hostname, rpName: config.productName, origin: issuer.origin };
}

/** The WebAuthn user handle: the account id's 16 bytes (no personal data, stable, unique). */
export function userHandleOf(accountId: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(accountId.replace(/-/g, ''), 'hex'));
}

function sameUserHandle(encoded: string | undefined, accountId: string): boolean {
  if (!encoded) return false;
  const given = Buffer.from(encoded, 'base64url');
  const expected = Buffer.from(userHandleOf(accountId));
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

// ---------------------------------------------------------------------------------------------
// Challenges
// ---------------------------------------------------------------------------------------------

export type ChallengeBinding =
  | { purpose: 'registration'; accountId: string; sessionUid: string }
  | { purpose: 'second-factor'; accountId: string; interactionUid: string }
  | { purpose: 'passwordless'; interactionUid: string };

function newChallenge(): Uint8Array<ArrayBuffer> {
  return new Uint8Array(crypto.randomBytes(32));
}

async function storeChallenge(db: Db, challenge: string, binding: ChallengeBinding): Promise<void> {
  const accountId = 'accountId' in binding ? binding.accountId : null;
  await insertChallengeToken(db, { tokenHash: hashToken(challenge), accountId, data: { ...binding }, ttlSeconds: CHALLENGE_TTL_SECONDS });
}

const ClientData = z.object({ challenge: z.string().min(16).max(256) });

/** The challenge the browser signed, read from clientDataJSON (the signature check comes later). */
function signedChallenge(clientDataJSON: string): string | undefined {
  try {
    const parsed = ClientData.safeParse(JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8')));
    return parsed.success ? parsed.data.challenge : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Uses up the challenge the response answers; true only when it was issued for exactly this
 * binding, unexpired and unused. A challenge is spent even when the rest of the check fails.
 */
async function redeemChallenge(db: Db, challenge: string, binding: ChallengeBinding): Promise<boolean> {
  const row = await redeemToken(db, 'webauthn_challenge', challenge);
  if (!row) return false;
  const stored = row.data as Record<string, unknown>;
  return Object.entries(binding).every(([key, value]) => stored[key] === value)
    && Object.keys(stored).length === Object.keys(binding).length;
}

// ---------------------------------------------------------------------------------------------
// Stored credentials
// ---------------------------------------------------------------------------------------------

function transportsOf(row: FactorRow): string[] {
  // jsonb normally arrives parsed; a driver returning text is tolerated.
  const raw: unknown = typeof row.transports === 'string' ? JSON.parse(row.transports) : row.transports;
  return Array.isArray(raw) ? raw.filter((t): t is string => typeof t === 'string') : [];
}

async function passkeysOf(db: Db, accountId: string): Promise<FactorRow[]> {
  return (await listFactors(db, accountId, { confirmedOnly: true })).filter((f) => f.type === 'webauthn' && f.credential_id && f.public_key);
}

async function insertPasskey(db: Db, row: Partial<FactorRow> & { account_id: string; name: string; credential_id: string }): Promise<FactorRow | undefined> {
  const values = { ...row, type: 'webauthn', transports: JSON.stringify(row.transports ?? []) };
  // The credential id is unique across accounts; a second registration of it is ignored, not a 500.
  const [inserted] = await db('mfa_factors').insert(values).onConflict('credential_id').ignore().returning<FactorRow[]>('*');
  return inserted;
}

export function normalizePasskeyName(raw: unknown): string {
  // eslint-disable-next-line no-control-regex
  const cleaned = typeof raw === 'string' ? raw.normalize('NFC').replace(/[\u0000-\u001f\u007f]/g, '').trim() : '';
  return [...cleaned].slice(0, MAX_PASSKEY_NAME).join('') || 'Passkey';
}

// ---------------------------------------------------------------------------------------------
// Registration (from /account)
// ---------------------------------------------------------------------------------------------

export async function registrationOptions(services: KnexServices, account: { id: string; email: string; name: string | null }, sessionUid: string): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const rp = relyingParty(services.config);
  const existing = await passkeysOf(services.knex, account.id);
  const options = await generateRegistrationOptions({
    rpName: rp.rpName,
    rpID: rp.rpID,
    userName: account.email,
    userDisplayName: account.name ?? account.email,
    userID: userHandleOf(account.id),
    challenge: newChallenge(),
    timeout: CEREMONY_TIMEOUT_MS,
    attestationType: 'none',
    // Passkeys this account already has: the authenticator refuses to make a second one.
    excludeCredentials: existing.map((f) => ({ id: f.credential_id!, transports: transportsOf(f) })),
    // Discoverable, so the same credential also signs in without an email or password.
    authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'preferred' },
  });
  await storeChallenge(services.knex, options.challenge, { purpose: 'registration', accountId: account.id, sessionUid });
  return options;
}

const RegistrationShape = z.object({
  id: z.string().min(1).max(1024),
  rawId: z.string().min(1).max(1024),
  type: z.literal('public-key'),
  response: z.object({ clientDataJSON: z.string().max(8192), attestationObject: z.string().max(65536) }).loose(),
}).loose();

const AuthenticationShape = z.object({
  id: z.string().min(1).max(1024),
  rawId: z.string().min(1).max(1024),
  type: z.literal('public-key'),
  response: z.object({
    clientDataJSON: z.string().max(8192),
    authenticatorData: z.string().max(8192),
    signature: z.string().max(4096),
    userHandle: z.string().max(256).optional().nullable(),
  }).loose(),
}).loose();

const NOT_ADDED = 'The passkey could not be added. Try again.';

/**
 * Checks a new credential and stores it as a confirmed factor; audits every outcome and, on
 * success, mails the owner (factorAdded). Throws an AppError the page can show when refused.
 */
export async function verifyRegistration(services: LifecycleServices, binding: { accountId: string; sessionUid: string }, input: { name: unknown; response: unknown }, meta: AuditMeta = {}): Promise<{ factorId: string; name: string }> {
  const { accountId } = binding;
  const refuse = async (reason: string, message = NOT_ADDED): Promise<never> => {
    await recordAudit(services.knex, { type: 'mfa.factor_added', outcome: 'failure', accountId, ...auditContext(meta, { factor: 'webauthn', reason }) });
    throw new AppError('passkey_not_added', message, 400, { reason });
  };
  const parsed = RegistrationShape.safeParse(input.response);
  if (!parsed.success) return refuse('invalid_response');
  const challenge = signedChallenge(parsed.data.response.clientDataJSON);
  if (!challenge || !(await redeemChallenge(services.knex, challenge, { purpose: 'registration', ...binding }))) {
    return refuse('challenge_invalid', 'This request expired. Try adding the passkey again.');
  }
  const rp = relyingParty(services.config);
  let info;
  try {
    const result = await verifyRegistrationResponse({
      // Shape checked above; the library validates the encoded contents itself.
      response: parsed.data as unknown as RegistrationResponseJSON,
      expectedChallenge: challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.rpID,
      requireUserVerification: false,
    });
    info = result.verified ? result.registrationInfo : undefined;
  } catch {
    info = undefined;
  }
  if (!info) return refuse('verification_failed');

  const name = normalizePasskeyName(input.name);
  const factor = await services.knex.transaction(async (trx) => {
    const row = await insertPasskey(trx, {
      account_id: accountId,
      name,
      credential_id: info.credential.id,
      public_key: Buffer.from(info.credential.publicKey).toString('base64url'),
      sign_count: info.credential.counter,
      transports: info.credential.transports ?? [],
      backup_eligible: info.credentialDeviceType === 'multiDevice',
      backup_state: info.credentialBackedUp,
      aaguid: info.aaguid,
      confirmed_at: new Date(),
    });
    if (!row) return undefined;
    await factorAdded(services, trx, accountId, { type: 'webauthn', name }, meta, { recoveryCodes: false });
    return row;
  });
  if (!factor) return refuse('already_registered', 'This passkey is already registered.');
  services.notifier.kick();
  return { factorId: factor.id, name };
}

// ---------------------------------------------------------------------------------------------
// Authentication (second factor or passwordless)
// ---------------------------------------------------------------------------------------------

export type AuthenticationBinding = Extract<ChallengeBinding, { purpose: 'second-factor' | 'passwordless' }>;

export async function authenticationOptions(services: KnexServices, binding: AuthenticationBinding): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const rp = relyingParty(services.config);
  // A second factor may only be a passkey of the account that gave its password; passwordless
  // lists none, so the browser offers whatever discoverable credential it holds for this site.
  const allowCredentials = binding.purpose === 'second-factor'
    ? (await passkeysOf(services.knex, binding.accountId)).map((f) => ({ id: f.credential_id!, transports: transportsOf(f) }))
    : [];
  if (binding.purpose === 'second-factor' && allowCredentials.length === 0) {
    throw new AppError('no_passkey', 'This account has no passkey.', 400);
  }
  const options = await generateAuthenticationOptions({
    rpID: rp.rpID,
    allowCredentials,
    challenge: newChallenge(),
    timeout: CEREMONY_TIMEOUT_MS,
    // Alone, a passkey must be two factors (the device, and the PIN or biometric that unlocks
    // it); next to a password, possession is enough and verification is a bonus.
    userVerification: binding.purpose === 'passwordless' ? 'required' : 'preferred',
  });
  await storeChallenge(services.knex, options.challenge, binding);
  return options;
}

export type PasskeyFailure =
  | 'invalid_response'
  | 'challenge_invalid'
  | 'unknown_credential'
  | 'foreign_credential'
  | 'user_handle_mismatch'
  | 'verification_failed'
  | 'user_not_verified'
  | 'backup_eligibility_changed'
  | 'counter_regression';

export type PasskeyCheck =
  | { ok: true; accountId: string; factorId: string; name: string; amr: string[]; userVerified: boolean; backedUp: boolean }
  | { ok: false; reason: PasskeyFailure; accountId?: string; factorId?: string; details?: Record<string, unknown> };

/**
 * Checks an assertion. Returns why it failed rather than throwing, so the caller can audit with
 * its own event type. `beforeSignatureCheck` runs once the credential (and so the account) is
 * known, e.g. to apply a per-account rate limit; it may throw.
 *
 * amr: `swk` for a backup-eligible (synced) credential, `hwk` for a device-bound one, plus `user`
 * when the authenticator verified the user.
 */
export async function verifyAuthentication(
  services: KnexServices,
  binding: AuthenticationBinding,
  response: unknown,
  hooks: { beforeSignatureCheck?: (accountId: string) => Promise<void> } = {},
): Promise<PasskeyCheck> {
  const knownAccount = binding.purpose === 'second-factor' ? { accountId: binding.accountId } : {};
  const parsed = AuthenticationShape.safeParse(response);
  if (!parsed.success) return { ok: false, reason: 'invalid_response', ...knownAccount };
  const challenge = signedChallenge(parsed.data.response.clientDataJSON);
  if (!challenge || !(await redeemChallenge(services.knex, challenge, binding))) return { ok: false, reason: 'challenge_invalid', ...knownAccount };

  const factor = await findFactorByCredentialId(services.knex, parsed.data.id);
  if (!factor?.public_key) return { ok: false, reason: 'unknown_credential', ...knownAccount };
  const about = { accountId: factor.account_id, factorId: factor.id };
  if (binding.purpose === 'second-factor' && factor.account_id !== binding.accountId) {
    return { ok: false, reason: 'foreign_credential', accountId: binding.accountId, factorId: factor.id };
  }
  // A discoverable credential names its user; it must be the account the credential belongs to.
  if (binding.purpose === 'passwordless' && !sameUserHandle(parsed.data.response.userHandle ?? undefined, factor.account_id)) {
    return { ok: false, reason: 'user_handle_mismatch', ...about };
  }
  await hooks.beforeSignatureCheck?.(factor.account_id);

  const storedCounter = Number(factor.sign_count ?? 0);
  const rp = relyingParty(services.config);
  let info;
  try {
    const result = await verifyAuthenticationResponse({
      response: parsed.data as unknown as AuthenticationResponseJSON,
      expectedChallenge: challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.rpID,
      // The counter is compared below, after the signature, so a regression is told apart from
      // a bad signature and audited as what it is.
      credential: { id: factor.credential_id!, publicKey: new Uint8Array(Buffer.from(factor.public_key, 'base64url')), counter: 0, transports: transportsOf(factor) },
      requireUserVerification: false,
    });
    info = result.verified ? result.authenticationInfo : undefined;
  } catch {
    info = undefined;
  }
  if (!info) return { ok: false, reason: 'verification_failed', ...about };
  if (binding.purpose === 'passwordless' && !info.userVerified) return { ok: false, reason: 'user_not_verified', ...about };

  // Backup eligibility is fixed when a credential is made; a change means a different authenticator.
  const eligible = info.credentialDeviceType === 'multiDevice';
  if (factor.backup_eligible !== null && factor.backup_eligible !== eligible) {
    return { ok: false, reason: 'backup_eligibility_changed', ...about, details: { stored: factor.backup_eligible, reported: eligible } };
  }
  // A credential that has reported counters must report a higher one each time; anything else
  // suggests a cloned authenticator. Counters of 0 throughout mean the authenticator keeps none.
  const counter = info.newCounter;
  const regression = { ok: false as const, reason: 'counter_regression' as const, ...about, details: { stored: storedCounter, reported: counter } };
  if ((counter > 0 || storedCounter > 0) && counter <= storedCounter) return regression;
  if (!(await recordPasskeyUse(services.knex, factor.id, { counter, backupState: info.credentialBackedUp }))) return regression;

  const amr = [eligible ? 'swk' : 'hwk', ...(info.userVerified ? ['user'] : [])];
  return { ok: true, ...about, name: factor.name, amr, userVerified: info.userVerified, backedUp: info.credentialBackedUp };
}
