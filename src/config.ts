// Every setting Gatehouse reads, in one zod schema. Nothing else in the code reads process.env.
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { parseFederation, type FederationConfig } from './federation/settings.ts';

/** Password hashes computed at once by default: one per core (see src/domain/passwords.ts). */
export const DEFAULT_HASHING_CONCURRENCY = Math.max(1, os.availableParallelism());

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

/** "POINTS/SECONDS", e.g. "20/900" = 20 per 15 minutes. */
const rateLimit = (fallback: string) => z
  .string()
  .default(fallback)
  .transform((raw, ctx) => {
    const m = /^(\d+)\/(\d+)$/.exec(raw.trim());
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) {
      ctx.addIssue({ code: 'custom', message: 'must be POINTS/SECONDS, e.g. 20/900' });
      return z.NEVER;
    }
    return { points: Number(m[1]), durationSeconds: Number(m[2]) };
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
  ACCESS_LOG: z.enum(['all', 'errors', 'off']).default('all'),
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
  REFRESH_TOKEN_TTL_SHORT: seconds(3600),
  ACCESS_TOKEN_TTL_REMEMBER: seconds(24 * 3600),
  REFRESH_FINGERPRINT_POLICY: z.enum(['allow', 'alert', 'deny']).default('alert'),
  SESSION_IDLE_TTL: seconds(30 * 60),
  SESSION_ABSOLUTE_TTL: seconds(10 * 3600),
  REMEMBER_ME_IDLE_TTL: seconds(14 * 24 * 3600),
  REMEMBER_ME_ABSOLUTE_TTL: seconds(30 * 24 * 3600),
  BACKCHANNEL_LOGOUT_ALLOW_PRIVATE: bool.default(false),
  GEOIP_DATABASE: z.string().min(1).optional(),
  INTERACTION_TTL: seconds(60 * 60),
  CLIENT_CREDENTIALS_TTL: seconds(15 * 60),
  KEYS_RELOAD_SECONDS: seconds(30),
  RETIRED_KEYS_PUBLISHED_SECONDS: seconds(7 * 24 * 3600),
  SHUTDOWN_GRACE_SECONDS: seconds(10),
  PRODUCT_NAME: z.string().min(1).max(80).default('Gatehouse'),
  SMTP_URL: z.string().regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL').optional(),
  SMTP_TLS_REJECT_UNAUTHORIZED: bool.default(true),
  MAIL_FROM: z.string().min(3).optional(),
  TWILIO_ACCOUNT_SID: z.string().optional(),
  TWILIO_AUTH_TOKEN: z.string().optional(),
  TWILIO_FROM: z.string().optional(),
  TWILIO_MESSAGING_SERVICE_SID: z.string().optional(),
  TWILIO_API_BASE_URL: z.url().optional(),
  SIGNUP_ENABLED: bool.default(true),
  REQUIRE_VERIFIED_EMAIL: bool.default(true),
  EMAIL_VERIFICATION_TTL: seconds(24 * 3600),
  EMAIL_VERIFICATION_RESEND_COOLDOWN: seconds(60),
  PASSWORD_RESET_TTL: seconds(30 * 60),
  PASSWORD_RESET_COOLDOWN: seconds(60),
  PASSWORD_RESET_DAILY_CAP: z.coerce.number().int().positive().default(5),
  INVITATION_TTL: seconds(7 * 24 * 3600),
  PHONE_CODE_TTL: seconds(5 * 60),
  LOCKOUT_THRESHOLD: z.coerce.number().int().positive().default(10),
  LOCKOUT_BASE_SECONDS: seconds(60),
  LOCKOUT_MAX_SECONDS: seconds(15 * 60),
  RATE_LIMIT_ENABLED: bool.default(true),
  RATE_LIMIT_LOGIN_IP: rateLimit('100/3600'),
  RATE_LIMIT_LOGIN_ACCOUNT_IP: rateLimit('20/900'),
  RATE_LIMIT_SIGNUP_IP: rateLimit('20/3600'),
  RATE_LIMIT_RECOVERY_IP: rateLimit('20/3600'),
  RATE_LIMIT_VERIFY_IP: rateLimit('30/3600'),
  RATE_LIMIT_OTP_ACCOUNT: rateLimit('10/900'),
  RATE_LIMIT_TOKEN_CLIENT: rateLimit('1200/60'),
  RATE_LIMIT_GUEST_IP: rateLimit('10/3600'),
  CAPTCHA_PROVIDER: z.enum(['turnstile', 'hcaptcha', 'recaptcha']).optional(),
  CAPTCHA_SITE_KEY: z.string().optional(),
  CAPTCHA_SECRET: z.string().optional(),
  CAPTCHA_VERIFY_URL: z.url().optional(),
  CAPTCHA_LOGIN_AFTER_FAILURES: z.coerce.number().int().min(0).default(3),
  MFA_POLICY: z.enum(['off', 'optional', 'required']).default('optional'),
  MAGIC_LINK_ENABLED: bool.default(true),
  MAGIC_LINK_TTL: seconds(10 * 60),
  MAGIC_LINK_SAME_BROWSER: bool.default(true),
  REMEMBER_DEVICE_DAYS: z.coerce.number().int().min(0).max(365).default(30),
  PASSWORD_HASH_MEMORY_KIB: z.coerce.number().int().min(19456).default(19456),
  PASSWORD_HASH_ITERATIONS: z.coerce.number().int().min(2).default(2),
  PASSWORD_HASH_PARALLELISM: z.coerce.number().int().min(1).default(1),
  // At most this many argon2 computations at once per process (src/domain/passwords.ts).
  PASSWORD_HASHING_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(DEFAULT_HASHING_CONCURRENCY),
  API_KEY_ROTATION_OVERLAP: z.coerce.number().int().min(0).default(24 * 3600),
  AUDIT_RETENTION_DAYS: z.coerce.number().int().min(0).default(365),
  GUEST_ACCOUNT_TTL_DAYS: z.coerce.number().int().min(0).default(30),
  METRICS_ENABLED: bool.optional(),
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters; e.g. $(openssl rand -base64 32)').optional(),
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
  /** Which requests get a log line: all, only those answered with 4xx/5xx, or none. */
  accessLog: 'all' | 'errors' | 'off';
  /** Undefined outside production: development keys are generated and stored by dev-secrets. */
  encryptionKeys: { kid: string; key: Buffer }[] | undefined;
  cookieKeys: string[] | undefined;
  ttl: {
    accessToken: number;
    /** Opaque access tokens of a "Remember me" sign-in (JWT access tokens keep `accessToken`). */
    accessTokenRemember: number;
    authorizationCode: number;
    idToken: number;
    /** Refresh tokens of a "Remember me" sign-in. */
    refreshToken: number;
    /** Refresh tokens of a sign-in without "Remember me". */
    refreshTokenShort: number;
    /** Without "Remember me": idle and absolute session limits (Keycloak's defaults). */
    sessionIdle: number;
    sessionAbsolute: number;
    /** With "Remember me". */
    rememberIdle: number;
    rememberAbsolute: number;
    interaction: number;
    clientCredentials: number;
  };
  keysReloadSeconds: number;
  /** What a refresh from another device than the token was issued to leads to. */
  refreshFingerprintPolicy: 'allow' | 'alert' | 'deny';
  /** A MaxMind DB (GeoLite2/GeoIP2 City or Country) for approximate session locations. */
  geoipDatabase: string | undefined;
  /** Allows back-channel logout calls to loopback/private addresses (development and tests). */
  backchannelLogoutAllowPrivate: boolean;
  /** How long a rotated-out signing key stays in JWKS so tokens it signed still verify. */
  retiredKeysPublishedSeconds: number;
  shutdownGraceSeconds: number;
  passwordHash: { memoryCost: number; timeCost: number; parallelism: number };
  /** Password hashes computed at once by this process; more wait their turn. */
  passwordHashingConcurrency: number;
  productName: string;
  mail: { smtpUrl: string | undefined; tlsRejectUnauthorized: boolean; from: string };
  sms: {
    twilio: { accountSid: string; authToken: string; from: string | undefined; messagingServiceSid: string | undefined; apiBaseUrl: string | undefined } | undefined;
  };
  signupEnabled: boolean;
  requireVerifiedEmail: boolean;
  lifecycle: {
    emailVerificationTtl: number;
    emailVerificationResendCooldown: number;
    passwordResetTtl: number;
    passwordResetCooldown: number;
    passwordResetDailyCap: number;
    invitationTtl: number;
    phoneCodeTtl: number;
  };
  lockout: { threshold: number; baseSeconds: number; maxSeconds: number };
  rateLimits: {
    enabled: boolean;
    loginIp: RateLimitRule;
    loginAccountIp: RateLimitRule;
    signupIp: RateLimitRule;
    recoveryIp: RateLimitRule;
    verifyIp: RateLimitRule;
    otpAccount: RateLimitRule;
    tokenClient: RateLimitRule;
    guestIp: RateLimitRule;
  };
  mfa: { policy: 'off' | 'optional' | 'required'; rememberDeviceDays: number };
  magicLink: { enabled: boolean; ttl: number; sameBrowser: boolean };
  captcha: { provider: 'turnstile' | 'hcaptcha' | 'recaptcha'; siteKey: string; secret: string; verifyUrl: string | undefined; loginAfterFailures: number } | undefined;
  /** Seconds a rotated-out API key keeps working, so its users can switch to the new one (0: none). */
  apiKeyRotationOverlap: number;
  /** Days audit events are kept before the sweep deletes them (0: forever). */
  auditRetentionDays: number;
  /** Days a guest account that was never saved lives after its last activity (0: forever). */
  guestAccountTtlDays: number;
  /** /metrics: served when enabled; with a token, only to `Authorization: Bearer <token>`. */
  metrics: { enabled: boolean; token: string | undefined };
  /** Upstream identity providers (FEDERATION_CONFIG file and <VENDOR>_CLIENT_ID shortcuts). */
  federation: FederationConfig;
}

export interface RateLimitRule {
  points: number;
  durationSeconds: number;
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
  const twilioParts = [e.TWILIO_ACCOUNT_SID, e.TWILIO_AUTH_TOKEN].filter(Boolean).length;
  if (twilioParts === 1) problems.push('TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set together');
  if (twilioParts === 2 && !e.TWILIO_FROM && !e.TWILIO_MESSAGING_SERVICE_SID) problems.push('TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID is required with Twilio credentials');
  const captchaParts = [e.CAPTCHA_PROVIDER, e.CAPTCHA_SITE_KEY, e.CAPTCHA_SECRET].filter(Boolean).length;
  if (captchaParts > 0 && captchaParts < 3) problems.push('CAPTCHA_PROVIDER, CAPTCHA_SITE_KEY and CAPTCHA_SECRET must be set together');
  if (e.NODE_ENV === 'production' && e.BACKCHANNEL_LOGOUT_ALLOW_PRIVATE) problems.push('BACKCHANNEL_LOGOUT_ALLOW_PRIVATE: must not be set in production (it lets clients make the server call internal addresses)');
  if (e.LOCKOUT_MAX_SECONDS < e.LOCKOUT_BASE_SECONDS) problems.push('LOCKOUT_MAX_SECONDS must be at least LOCKOUT_BASE_SECONDS');
  const federation = parseFederation(cleaned);
  problems.push(...federation.problems);
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
    accessLog: e.ACCESS_LOG,
    encryptionKeys: e.ENCRYPTION_KEYS,
    cookieKeys: e.COOKIE_KEYS,
    ttl: {
      accessToken: e.ACCESS_TOKEN_TTL,
      accessTokenRemember: e.ACCESS_TOKEN_TTL_REMEMBER,
      authorizationCode: e.AUTHORIZATION_CODE_TTL,
      idToken: e.ID_TOKEN_TTL,
      refreshToken: e.REFRESH_TOKEN_TTL,
      refreshTokenShort: e.REFRESH_TOKEN_TTL_SHORT,
      sessionIdle: e.SESSION_IDLE_TTL,
      sessionAbsolute: e.SESSION_ABSOLUTE_TTL,
      rememberIdle: e.REMEMBER_ME_IDLE_TTL,
      rememberAbsolute: e.REMEMBER_ME_ABSOLUTE_TTL,
      interaction: e.INTERACTION_TTL,
      clientCredentials: e.CLIENT_CREDENTIALS_TTL,
    },
    keysReloadSeconds: e.KEYS_RELOAD_SECONDS,
    refreshFingerprintPolicy: e.REFRESH_FINGERPRINT_POLICY,
    backchannelLogoutAllowPrivate: e.BACKCHANNEL_LOGOUT_ALLOW_PRIVATE,
    geoipDatabase: e.GEOIP_DATABASE ? path.resolve(e.GEOIP_DATABASE) : undefined,
    retiredKeysPublishedSeconds: e.RETIRED_KEYS_PUBLISHED_SECONDS,
    shutdownGraceSeconds: e.SHUTDOWN_GRACE_SECONDS,
    passwordHash: {
      memoryCost: e.PASSWORD_HASH_MEMORY_KIB,
      timeCost: e.PASSWORD_HASH_ITERATIONS,
      parallelism: e.PASSWORD_HASH_PARALLELISM,
    },
    passwordHashingConcurrency: e.PASSWORD_HASHING_CONCURRENCY,
    productName: e.PRODUCT_NAME,
    mail: {
      smtpUrl: e.SMTP_URL,
      tlsRejectUnauthorized: e.SMTP_TLS_REJECT_UNAUTHORIZED,
      from: e.MAIL_FROM ?? `${e.PRODUCT_NAME} <no-reply@${issuerUrl.hostname}>`,
    },
    sms: {
      twilio: e.TWILIO_ACCOUNT_SID && e.TWILIO_AUTH_TOKEN
        ? { accountSid: e.TWILIO_ACCOUNT_SID, authToken: e.TWILIO_AUTH_TOKEN, from: e.TWILIO_FROM, messagingServiceSid: e.TWILIO_MESSAGING_SERVICE_SID, apiBaseUrl: e.TWILIO_API_BASE_URL }
        : undefined,
    },
    signupEnabled: e.SIGNUP_ENABLED,
    requireVerifiedEmail: e.REQUIRE_VERIFIED_EMAIL,
    lifecycle: {
      emailVerificationTtl: e.EMAIL_VERIFICATION_TTL,
      emailVerificationResendCooldown: e.EMAIL_VERIFICATION_RESEND_COOLDOWN,
      passwordResetTtl: e.PASSWORD_RESET_TTL,
      passwordResetCooldown: e.PASSWORD_RESET_COOLDOWN,
      passwordResetDailyCap: e.PASSWORD_RESET_DAILY_CAP,
      invitationTtl: e.INVITATION_TTL,
      phoneCodeTtl: e.PHONE_CODE_TTL,
    },
    lockout: { threshold: e.LOCKOUT_THRESHOLD, baseSeconds: e.LOCKOUT_BASE_SECONDS, maxSeconds: e.LOCKOUT_MAX_SECONDS },
    rateLimits: {
      enabled: e.RATE_LIMIT_ENABLED,
      loginIp: e.RATE_LIMIT_LOGIN_IP,
      loginAccountIp: e.RATE_LIMIT_LOGIN_ACCOUNT_IP,
      signupIp: e.RATE_LIMIT_SIGNUP_IP,
      recoveryIp: e.RATE_LIMIT_RECOVERY_IP,
      verifyIp: e.RATE_LIMIT_VERIFY_IP,
      otpAccount: e.RATE_LIMIT_OTP_ACCOUNT,
      tokenClient: e.RATE_LIMIT_TOKEN_CLIENT,
      guestIp: e.RATE_LIMIT_GUEST_IP,
    },
    mfa: { policy: e.MFA_POLICY, rememberDeviceDays: e.REMEMBER_DEVICE_DAYS },
    magicLink: { enabled: e.MAGIC_LINK_ENABLED, ttl: e.MAGIC_LINK_TTL, sameBrowser: e.MAGIC_LINK_SAME_BROWSER },
    captcha: e.CAPTCHA_PROVIDER && e.CAPTCHA_SITE_KEY && e.CAPTCHA_SECRET
      ? { provider: e.CAPTCHA_PROVIDER, siteKey: e.CAPTCHA_SITE_KEY, secret: e.CAPTCHA_SECRET, verifyUrl: e.CAPTCHA_VERIFY_URL, loginAfterFailures: e.CAPTCHA_LOGIN_AFTER_FAILURES }
      : undefined,
    apiKeyRotationOverlap: e.API_KEY_ROTATION_OVERLAP,
    auditRetentionDays: e.AUDIT_RETENTION_DAYS,
    guestAccountTtlDays: e.GUEST_ACCOUNT_TTL_DAYS,
    // A token only makes sense for an endpoint that exists: setting one switches /metrics on.
    metrics: { enabled: e.METRICS_ENABLED ?? e.METRICS_TOKEN !== undefined, token: e.METRICS_TOKEN },
    federation: federation.config,
  };
}
