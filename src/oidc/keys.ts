// Signing keys: generated on first start, stored with the private half encrypted, rotated by
// the CLI, and published in JWKS. Every instance reloads them when told over Redis pub/sub and
// on a timer, so a rotation reaches all instances without a restart.
import crypto from 'node:crypto';
import type { JWK } from 'jose';
import { calculateJwkThumbprint } from 'jose';
import type { Services } from '../services.ts';
import { insertKey, listKeys, lockSigningKeys, publishedKeys, retireActiveKeys, type SigningKeyRow } from '../db/signing-keys.ts';
import { auditContext, recordAudit, type AuditMeta } from '../domain/audit.ts';

export const KEYS_CHANNEL = 'gatehouse:signing-keys';

// RS256 for ID tokens (what OIDC relying parties expect by default) and ES256 for JWT access
// tokens, which is far cheaper to sign.
const ALGORITHMS = ['RS256', 'ES256'] as const;
type SigningAlg = (typeof ALGORITHMS)[number];

type KeyServices = Pick<Services, 'knex' | 'secrets' | 'config' | 'redis'>;

async function generateKey(alg: SigningAlg): Promise<{ kid: string; privateJwk: JWK; publicJwk: JWK }> {
  const pair = alg === 'RS256'
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicPart = pair.publicKey.export({ format: 'jwk' }) as JWK;
  const kid = await calculateJwkThumbprint(publicPart);
  const meta = { kid, alg, use: 'sig' };
  return {
    kid,
    privateJwk: { ...(pair.privateKey.export({ format: 'jwk' }) as JWK), ...meta },
    publicJwk: { ...publicPart, ...meta },
  };
}

async function createKeySet(services: KeyServices, trx: Parameters<typeof insertKey>[0]): Promise<{ kid: string; alg: string }[]> {
  const created: { kid: string; alg: string }[] = [];
  for (const alg of ALGORITHMS) {
    const key = await generateKey(alg);
    await insertKey(trx, {
      kid: key.kid,
      alg,
      private_jwk_ciphertext: services.secrets.encrypt(JSON.stringify(key.privateJwk), `signing_key:${key.kid}`),
      public_jwk: key.publicJwk as Record<string, unknown>,
    });
    created.push({ kid: key.kid, alg });
  }
  return created;
}

/** Create the first key set when there is none; returns the created keys (empty if present). */
export async function ensureSigningKeys(services: KeyServices): Promise<{ kid: string; alg: string }[]> {
  return services.knex.transaction(async (trx) => {
    await lockSigningKeys(trx);
    const active = (await listKeys(trx)).filter((k) => k.status === 'active');
    const missing = ALGORITHMS.filter((alg) => !active.some((k) => k.alg === alg));
    if (missing.length === 0) return [];
    const created = await createKeySet(services, trx);
    await recordAudit(trx, { type: 'keys.created', outcome: 'success', details: { kids: created.map((k) => k.kid) } });
    return created;
  });
}

export async function listSigningKeys(services: KeyServices): Promise<{ kid: string; alg: string; status: 'active' | 'retired'; created_at: string; retired_at: string | null }[]> {
  const rows = await listKeys(services.knex);
  return rows.map((r) => ({
    kid: r.kid,
    alg: r.alg,
    status: r.status,
    created_at: new Date(r.created_at).toISOString(),
    retired_at: r.retired_at ? new Date(r.retired_at).toISOString() : null,
  }));
}

/** New keys sign from now on; the old ones stay published for verification. */
export async function rotateSigningKeys(services: KeyServices, meta?: AuditMeta): Promise<{ created: { kid: string; alg: string }[]; retired: string[] }> {
  const result = await services.knex.transaction(async (trx) => {
    await lockSigningKeys(trx);
    const retired = await retireActiveKeys(trx);
    const created = await createKeySet(services, trx);
    await recordAudit(trx, { type: 'keys.rotated', outcome: 'success', ...auditContext(meta, { created: created.map((k) => k.kid), retired }) });
    return { created, retired };
  });
  if (services.redis) await services.redis.publish(KEYS_CHANNEL, 'rotated');
  return result;
}

/** The public halves of the published keys, for verifying tokens this issuer signed. */
export async function publishedPublicKeys(services: Pick<Services, 'knex' | 'config'>): Promise<JWK[]> {
  const since = new Date(Date.now() - services.config.retiredKeysPublishedSeconds * 1000);
  return (await publishedKeys(services.knex, since)).map((r) => r.public_jwk as JWK);
}

export interface LoadedKeys {
  /** Private JWKs for oidc-provider, signing keys first. */
  jwks: JWK[];
  /** Changes whenever the published set changes; cheap to compare. */
  fingerprint: string;
}

export async function loadSigningKeys(services: KeyServices): Promise<LoadedKeys> {
  const since = new Date(Date.now() - services.config.retiredKeysPublishedSeconds * 1000);
  const rows: SigningKeyRow[] = await publishedKeys(services.knex, since);
  const jwks = rows.map((r) => JSON.parse(services.secrets.decryptText(r.private_jwk_ciphertext, `signing_key:${r.kid}`)) as JWK);
  return { jwks, fingerprint: rows.map((r) => `${r.kid}:${r.status}`).join(',') };
}
