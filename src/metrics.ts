// Prometheus metrics (prom-client) for /metrics. Each instance counts what it served itself and
// exposes its own registry; Prometheus scrapes every instance and sums across them. Label values
// come from small fixed sets (route patterns, method names, grant types, rule names), never from
// request data, so the number of series stays bounded whatever clients send.
import { sameSecret } from './security/credentials.ts';
import type { Middleware } from 'koa';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { hashingLoad } from './domain/passwords.ts';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import { observeAuditEvents, type AuditEvent } from './domain/audit.ts';
import { RATE_LIMIT_RULES, type RateLimitRuleName } from './security/rate-limit.ts';

export interface Metrics {
  registry: Registry;
  /** One finished HTTP request; called by the request-logging middleware. */
  observeRequest(request: RequestSummary, seconds: number): void;
  /** A token endpoint grant that issued tokens (oidc-provider's grant.success). */
  tokenIssued(grantType: unknown): void;
  /** A request refused by one of the rate limits. */
  rateLimitHit(rule: RateLimitRuleName): void;
  /** Stops listening for audit events. */
  close(): void;
}

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

// Fixed paths answered without a router match (e.g. a 429 from the token rate limit, which runs
// before oidc-provider routes the request). Anything else unmatched is one "unmatched" series.
const FIXED_PATHS = new Set([
  '/auth', '/token', '/token/introspection', '/token/revocation', '/jwks', '/me', '/session/end',
  '/request', '/device', '/device/auth', '/reg', '/.well-known/openid-configuration', '/metrics',
]);

/** What the request metric needs of a finished request: a Koa context, or the same fields. */
export interface RequestSummary {
  method: string;
  path: string;
  status: number;
}

/** The route pattern a request matched ("/interaction/:uid/login"), never the raw path. */
export function routeLabel(ctx: Pick<RequestSummary, 'path'>): string {
  // @koa/router (ours and oidc-provider's) records the pattern of the route that handled the request.
  const matched = (ctx as { _matchedRoute?: unknown })._matchedRoute;
  if (typeof matched === 'string' && matched) return matched;
  if (ctx.path.startsWith('/static/')) return '/static';
  if (FIXED_PATHS.has(ctx.path)) return ctx.path;
  return 'unmatched';
}

const GRANTS: Record<string, string> = {
  authorization_code: 'authorization_code',
  refresh_token: 'refresh_token',
  client_credentials: 'client_credentials',
  'urn:ietf:params:oauth:grant-type:device_code': 'device_code',
  'urn:openid:params:grant-type:ciba': 'ciba',
  'urn:ietf:params:oauth:grant-type:token-exchange': 'token_exchange',
};

// Second-factor checks are counted as steps of their own, so a password + TOTP sign-in adds one
// to method="password" and one to method="totp".
const SECOND_FACTOR_EVENTS: Record<string, string> = {
  'mfa.totp': 'totp',
  'mfa.sms': 'sms',
  'mfa.recovery_code': 'recovery_code',
  'mfa.webauthn': 'webauthn',
};

/**
 * The sign-in method an audit event records, if it records a sign-in attempt: every `login.<method>`
 * event (password, passkey, magic_link and any added later) except the steps around an email
 * link (`..._requested`, `..._approved`), which are not attempts to sign in.
 */
export function signInMethod(eventType: string): string | undefined {
  const secondFactor = SECOND_FACTOR_EVENTS[eventType];
  if (secondFactor) return secondFactor;
  const method = /^login\.([a-z_]{1,32})$/.exec(eventType)?.[1];
  if (!method || /_(requested|approved)$/.test(method)) return undefined;
  return method;
}

/** Locks that failed attempts caused; an administrator locking an account is not one. */
function isAutomaticLockout(event: AuditEvent): boolean {
  return event.type === 'user.locked' && event.details?.source === undefined && event.details?.actor === undefined;
}

/** What an instance with METRICS_ENABLED off uses: nothing is counted, nothing is sampled. */
function disabledMetrics(): Metrics {
  return { registry: new Registry(), observeRequest() {}, tokenIssued() {}, rateLimitHit() {}, close() {} };
}

export function createMetrics(enabled = true): Metrics {
  // Off, the per-request histogram, the audit observer and the default collectors (event-loop
  // delay sampling, GC observation) would cost every request for figures nobody can read.
  if (!enabled) return disabledMetrics();
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const requestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time to answer HTTP requests, by method, route pattern and status class.',
    labelNames: ['method', 'route', 'status_class'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const signIns = new Counter({
    name: 'gatehouse_sign_ins_total',
    help: 'Sign-in steps by outcome and method (first factors and second-factor checks).',
    labelNames: ['outcome', 'method'] as const,
    registers: [registry],
  });
  const tokensIssued = new Counter({
    name: 'gatehouse_tokens_issued_total',
    help: 'Successful token endpoint requests, by grant type.',
    labelNames: ['grant'] as const,
    registers: [registry],
  });
  const rateLimitHits = new Counter({
    name: 'gatehouse_rate_limit_hits_total',
    help: 'Requests refused by a rate limit, by rule.',
    labelNames: ['limit'] as const,
    registers: [registry],
  });
  const lockouts = new Counter({
    name: 'gatehouse_lockouts_total',
    help: 'Accounts temporarily locked after repeated failed sign-in attempts.',
    registers: [registry],
  });

  // Read when scraped: a queue of waiting hashes is the sign that sign-ins outrun the cores given
  // to hashing (PASSWORD_HASHING_CONCURRENCY, docs/performance.md).
  new Gauge({
    name: 'gatehouse_password_hashes',
    help: 'Password hashes (argon2id) in this process: running, and waiting for a hashing slot.',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const load = hashingLoad();
      this.labels('running').set(load.running);
      this.labels('waiting').set(load.waiting);
    },
  });
  new Gauge({
    name: 'gatehouse_password_hashing_concurrency',
    help: 'Password hashes this process computes at once (PASSWORD_HASHING_CONCURRENCY).',
    registers: [registry],
    collect() {
      this.set(hashingLoad().concurrency);
    },
  });

  // Series of the common label values exist from the start at 0, so rate() and alerts see the
  // first increase instead of a series appearing out of nothing.
  for (const method of ['password', 'passkey', 'magic_link', 'totp', 'sms', 'recovery_code', 'webauthn']) {
    for (const outcome of ['success', 'failure']) signIns.labels(outcome, method).inc(0);
  }
  for (const grant of ['authorization_code', 'refresh_token', 'client_credentials']) tokensIssued.labels(grant).inc(0);
  for (const rule of RATE_LIMIT_RULES) rateLimitHits.labels(rule).inc(0);

  const stopObserving = observeAuditEvents((event) => {
    const method = signInMethod(event.type);
    if (method) signIns.labels(event.outcome, method).inc();
    if (isAutomaticLockout(event)) lockouts.inc();
  });

  return {
    registry,
    observeRequest(ctx, seconds) {
      const method = HTTP_METHODS.has(ctx.method) ? ctx.method : 'other';
      const statusClass = `${Math.floor(ctx.status / 100)}xx`;
      requestDuration.labels(method, routeLabel(ctx), statusClass).observe(seconds);
    },
    tokenIssued(grantType) {
      tokensIssued.labels(typeof grantType === 'string' ? GRANTS[grantType] ?? 'other' : 'other').inc();
    },
    rateLimitHit(rule) {
      rateLimitHits.labels(rule).inc();
    },
    close() {
      stopObserving();
    },
  };
}

/** Compares a bearer token in constant time (both sides hashed to one length first). */
function bearerMatches(authorization: string, expected: string): boolean {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
  return sameSecret(expected, match?.[1] ?? '') && match !== null;
}

/**
 * GET /metrics in the Prometheus text format. Absent (404) unless METRICS_ENABLED; with
 * METRICS_TOKEN it answers only `Authorization: Bearer <token>`.
 */
export function metricsEndpoint(metrics: Metrics, config: Pick<Config, 'metrics' | 'env'>, logger: Logger): Middleware {
  const { enabled, token } = config.metrics;
  if (enabled && !token && config.env === 'production') {
    logger.warn('/metrics is open to anyone who can reach this server; set METRICS_TOKEN or block the path at the proxy');
  }
  return async (ctx, next) => {
    if (!enabled || ctx.path !== '/metrics') return next();
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.set('Allow', 'GET, HEAD');
      ctx.status = 405;
      return undefined;
    }
    ctx.set('Cache-Control', 'no-store');
    if (token && !bearerMatches(ctx.get('authorization'), token)) {
      ctx.set('WWW-Authenticate', 'Bearer realm="metrics"');
      ctx.status = 401;
      ctx.type = 'text/plain';
      ctx.body = 'A valid bearer token is required.\n';
      return undefined;
    }
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
    return undefined;
  };
}
