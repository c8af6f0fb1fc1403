// Every setting Gatehouse reads, in one zod schema. Nothing else in the code reads process.env.
import path from 'node:path';
import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const seconds = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/** `kid:base64key` pairs, comma separated; the first one encrypts, all of them decrypt. */
const encryptionKeys = z
  .string()
  .transform((raw, ctx) => {
    const keys: { kid: string; key: Buffer }[] = [];
    for (const part of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
      const idx = part.indexOf(':');
      const kid = idx > 0 ? part.slice(0, idx) : '';
      const key = Buffer.from(idx > 0 ? part.slice(idx + 1) : '', 'base64');
      if (!/^[A-Za-z0-9_-]{1,32}$/.test(kid) || key.length !== 32) {
        ctx.addIssue({ code: 'custom', message: 'each entry must be KID:BASE64 with a 32-byte key (e.g. k1:$(openssl rand -base64 32))' });
        return z.NEVER;
      }
      keys.push({ kid, key });
    }
    if (keys.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'at least one key is required' });
      return z.NEVER;
    }
    return keys;
  });

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().optional(),
  ISSUER: z.url().optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
  DATABASE_POOL_MAX: z.coerce.number().int().positive().default(10),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').optional(),
  TRUST_PROXY: bool.default(false),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ENCRYPTION_KEYS: encryptionKeys.optional(),
  COOKIE_KEYS: z
    .string()
    .transform((s) => s.split(',').map((k) => k.trim()).filter(Boolean))
    .refine((keys) => keys.length > 0 && keys.every((k) => k.length >= 32), 'comma-separated keys of at least 32 characters each')
    .optional(),
  ACCESS_TOKEN_TTL: seconds(15 * 60),
  AUTHORIZATION_CODE_TTL: seconds(60),
  ID_TOKEN_TTL: seconds(60 * 60),
  REFRESH_TOKEN_TTL: seconds(14 * 24 * 3600),
  SESSION_TTL: seconds(14 * 24 * 3600),
  INTERACTION_TTL: seconds(60 * 60),
  CLIENT_CREDENTIALS_TTL: seconds(15 * 60),
  KEYS_RELOAD_SECONDS: seconds(30),
  RETIRED_KEYS_PUBLISHED_SECONDS: seconds(7 * 24 * 3600),
  SHUTDOWN_GRACE_SECONDS: seconds(10),
  PASSWORD_HASH_MEMORY_KIB: z.coerce.number().int().min(19456).default(19456),
  PASSWORD_HASH_ITERATIONS: z.coerce.number().int().min(2).default(2),
  PASSWORD_HASH_PARALLELISM: z.coerce.number().int().min(1).default(1),
});

export interface Config {
  env: 'development' | 'production' | 'test';
  port: number;
  host: string | undefined;
  issuer: string;
  dataDir: string;
  databaseUrl: string | undefined;
  databasePoolMax: number;
  redisUrl: string | undefined;
  trustProxy: boolean;
  logLevel: string;
  /** Undefined outside production: development keys are generated and stored by dev-secrets. */
  encryptionKeys: { kid: string; key: Buffer }[] | undefined;
  cookieKeys: string[] | undefined;
  ttl: {
    accessToken: number;
    authorizationCode: number;
    idToken: number;
    refreshToken: number;
    session: number;
    interaction: number;
    clientCredentials: number;
  };
  keysReloadSeconds: number;
  /** How long a rotated-out signing key stays in JWKS so tokens it signed still verify. */
  retiredKeysPublishedSeconds: number;
  shutdownGraceSeconds: number;
  passwordHash: { memoryCost: number; timeCost: number; parallelism: number };
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

function isLocalhost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '127.0.0.1' || hostname === '[::1]' || hostname.endsWith('.localhost');
}

/** Parse the environment into a typed Config; throws ConfigError naming every setting to fix. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Empty strings mean "unset" (docker-compose and shells often pass VAR= through).
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || 'environment'}: ${i.message}`));
  }
  const e = parsed.data;
  const issuer = (e.ISSUER ?? `http://localhost:${e.PORT}`).replace(/\/$/, '');
  const problems: string[] = [];
  const issuerUrl = new URL(issuer);
  if (issuerUrl.search || issuerUrl.hash) problems.push('ISSUER: must not contain a query or fragment');
  if (e.NODE_ENV === 'production') {
    if (issuerUrl.protocol !== 'https:' && !isLocalhost(issuerUrl.hostname)) {
      problems.push(`ISSUER: must be https:// in production (got ${issuer})`);
    }
    if (!e.ENCRYPTION_KEYS) problems.push('ENCRYPTION_KEYS: required in production (generated development keys are refused); e.g. k1:$(openssl rand -base64 32)');
    if (!e.COOKIE_KEYS) problems.push('COOKIE_KEYS: required in production; e.g. $(openssl rand -base64 48)');
  }
  if (problems.length) throw new ConfigError(problems);
  return {
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    issuer,
    dataDir: path.resolve(e.DATA_DIR),
    databaseUrl: e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    redisUrl: e.REDIS_URL,
    trustProxy: e.TRUST_PROXY,
    logLevel: e.LOG_LEVEL,
    encryptionKeys: e.ENCRYPTION_KEYS,
    cookieKeys: e.COOKIE_KEYS,
    ttl: {
      accessToken: e.ACCESS_TOKEN_TTL,
      authorizationCode: e.AUTHORIZATION_CODE_TTL,
      idToken: e.ID_TOKEN_TTL,
      refreshToken: e.REFRESH_TOKEN_TTL,
      session: e.SESSION_TTL,
      interaction: e.INTERACTION_TTL,
      clientCredentials: e.CLIENT_CREDENTIALS_TTL,
    },
    keysReloadSeconds: e.KEYS_RELOAD_SECONDS,
    retiredKeysPublishedSeconds: e.RETIRED_KEYS_PUBLISHED_SECONDS,
    shutdownGraceSeconds: e.SHUTDOWN_GRACE_SECONDS,
    passwordHash: {
      memoryCost: e.PASSWORD_HASH_MEMORY_KIB,
      timeCost: e.PASSWORD_HASH_ITERATIONS,
      parallelism: e.PASSWORD_HASH_PARALLELISM,
    },
  };
}
