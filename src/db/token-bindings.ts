// Refresh-token bindings: one row per issued refresh token, keyed by a SHA-256 of its value.
import type { Knex } from 'knex';

type Db = Knex | Knex.Transaction;

export interface TokenBindingRow {
  token_hash: string;
  account_id: string;
  client_id: string;
  session_uid: string | null;
  grant_id: string | null;
  fingerprint: string;
  ua_family: string | null;
  dpop_jkt: string | null;
  remember: boolean;
  alerted_fingerprint: string | null;
  created_at: Date;
  rotated_at: Date | null;
  rotation_fingerprint: string | null;
  successor_hash: string | null;
  successor_ciphertext: string | null;
  grace_until: Date | null;
  expires_at: Date;
}

export interface NewBinding {
  tokenHash: string;
  accountId: string;
  clientId: string;
  sessionUid: string | undefined;
  grantId: string | undefined;
  fingerprint: string;
  uaFamily: string | undefined;
  dpopJkt: string | undefined;
  remember: boolean;
  alertedFingerprint: string | undefined;
  expiresAt: Date;
}

export interface Rotation {
  rotatedAt: Date;
  rotationFingerprint: string;
  successorHash: string;
  /** Only while the client's grace window is open; null otherwise. */
  successorCiphertext: string | null;
  graceUntil: Date | null;
}

export async function findBinding(db: Db, tokenHash: string): Promise<TokenBindingRow | undefined> {
  return db<TokenBindingRow>('token_bindings').where({ token_hash: tokenHash }).first();
}

type BindingColumns = Pick<TokenBindingRow, 'token_hash' | 'account_id' | 'client_id' | 'session_uid' | 'grant_id' | 'fingerprint' | 'ua_family' | 'dpop_jkt' | 'remember' | 'alerted_fingerprint' | 'expires_at'>;

/** A binding as the columns it is stored in. */
function bindingColumns(binding: NewBinding): BindingColumns {
  return {
    token_hash: binding.tokenHash,
    account_id: binding.accountId,
    client_id: binding.clientId,
    session_uid: binding.sessionUid ?? null,
    grant_id: binding.grantId ?? null,
    fingerprint: binding.fingerprint,
    ua_family: binding.uaFamily ?? null,
    dpop_jkt: binding.dpopJkt ?? null,
    remember: binding.remember,
    alerted_fingerprint: binding.alertedFingerprint ?? null,
    expires_at: binding.expiresAt,
  };
}

/** A stored binding in the shape it is written in (the inverse of bindingColumns). */
export function bindingOfRow(row: TokenBindingRow): NewBinding {
  return {
    tokenHash: row.token_hash,
    accountId: row.account_id,
    clientId: row.client_id,
    sessionUid: row.session_uid ?? undefined,
    grantId: row.grant_id ?? undefined,
    fingerprint: row.fingerprint,
    uaFamily: row.ua_family ?? undefined,
    dpopJkt: row.dpop_jkt ?? undefined,
    remember: row.remember,
    alertedFingerprint: row.alerted_fingerprint ?? undefined,
    expiresAt: row.expires_at,
  };
}

/** Stores a newly issued token's binding (a token value is never issued twice; a repeat is ignored). */
export async function insertBinding(db: Db, binding: NewBinding): Promise<void> {
  await db('token_bindings').insert(bindingColumns(binding)).onConflict('token_hash').ignore();
}

// The binding columns in a fixed order (taken from bindingColumns, so the two cannot drift apart),
// and named parameters for their values under a prefix,
// for the statements below that knex's builder cannot express (an upsert inside a WITH).
const BINDING_COLUMN_NAMES = Object.keys(bindingColumns({} as NewBinding)) as (keyof BindingColumns)[];
const BINDING_COLUMNS = BINDING_COLUMN_NAMES.join(', ');
function bindingPlaceholders(prefix: string): string {
  return BINDING_COLUMN_NAMES.map((column) => `:${prefix}${column}`).join(', ');
}

function bindingParams(prefix: string, binding: NewBinding): Record<string, string | boolean | Date | null> {
  const columns = bindingColumns(binding);
  return Object.fromEntries(BINDING_COLUMN_NAMES.map((column) => [`${prefix}${column}`, columns[column]]));
}

// The rotated token's row gets the rotation columns. It is written as an upsert because a token
// issued before bindings were recorded has no row yet and is bound from its first refresh on;
// for a token with a row only the rotation columns change.
const ROTATE = `insert into token_bindings (${BINDING_COLUMNS}, rotated_at, rotation_fingerprint, successor_hash, successor_ciphertext, grace_until)
  values (${bindingPlaceholders('p_')}, :rotatedAt, :rotationFingerprint, :successorHash, :successorCiphertext, :graceUntil)
  on conflict (token_hash) do update set
    rotated_at = excluded.rotated_at,
    rotation_fingerprint = excluded.rotation_fingerprint,
    successor_hash = excluded.successor_hash,
    successor_ciphertext = excluded.successor_ciphertext,
    grace_until = excluded.grace_until`;

// The successor's binding and the rotation in one statement (a data-modifying WITH runs exactly
// once whether or not the outer statement reads it), so one round trip records both and they
// become visible together: a request that sees the old token rotated always finds its successor.
const ROTATE_INTO_SUCCESSOR = `with rotated as (${ROTATE})
  insert into token_bindings (${BINDING_COLUMNS}) values (${bindingPlaceholders('s_')})
  on conflict (token_hash) do nothing`;

/**
 * Records that the token `rotated` describes was rotated and, when it is known, stores the
 * successor's binding (a token value is never issued twice; a repeat is ignored). `rotated` is
 * the token's stored binding, or the one it gets now when it has none.
 */
export async function recordRotation(db: Db, rotated: NewBinding, rotation: Rotation, successor: NewBinding | undefined): Promise<void> {
  const params = {
    ...bindingParams('p_', rotated),
    rotatedAt: rotation.rotatedAt,
    rotationFingerprint: rotation.rotationFingerprint,
    successorHash: rotation.successorHash,
    successorCiphertext: rotation.successorCiphertext,
    graceUntil: rotation.graceUntil,
  };
  if (successor) await db.raw(ROTATE_INTO_SUCCESSOR, { ...params, ...bindingParams('s_', successor) });
  else await db.raw(ROTATE, params);
}

export async function setAlertedFingerprint(db: Db, tokenHash: string, fingerprint: string): Promise<void> {
  await db('token_bindings').where({ token_hash: tokenHash }).update({ alerted_fingerprint: fingerprint });
}

/**
 * Housekeeping: forgets tokens past their expiry and wipes successor responses whose grace window
 * has closed (they are never served again, so they are not kept). Bounded per call.
 */
export async function sweepBindings(db: Db, now: Date, limit = 500): Promise<void> {
  await db('token_bindings')
    .whereIn('token_hash', db('token_bindings').select('token_hash').where('expires_at', '<', now).limit(limit))
    .delete();
  await db('token_bindings')
    .whereIn('token_hash', db('token_bindings').select('token_hash').whereNotNull('successor_ciphertext').andWhere('grace_until', '<', now).limit(limit))
    .update({ successor_ciphertext: null });
}
