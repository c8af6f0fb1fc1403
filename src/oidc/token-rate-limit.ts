// Per-client rate limit in front of oidc-provider's token, introspection and revocation
// endpoints. The client is named by HTTP Basic credentials or, for client_secret_post, none and
// private_key_jwt, by the form body. oidc-provider must parse that body itself, so we read the
// raw bytes and hand them over on `ctx.req.body`, which oidc-provider accepts in place of the
// stream once the stream has been read (lib/shared/selective_body.js). No body parser runs here.
import type { Context, Middleware } from 'koa';
import type { RateLimits } from '../security/rate-limit.ts';
import { describeWait, setRetryAfter } from '../security/rate-limit.ts';

/** oidc-provider's own limit for request bodies. */
export const TOKEN_BODY_LIMIT = 56 * 1024;

export const TOKEN_ENDPOINT_PATHS: readonly string[] = ['/token', '/token/introspection', '/token/revocation'];

const FORM = 'application/x-www-form-urlencoded';

type RawBodyRequest = Context['req'] & { body?: Buffer | string };

class BodyTooLarge extends Error {}

function oauthError(ctx: Context, status: number, error: string, description: string): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error, error_description: description };
}

/** The client id of `Authorization: Basic`, decoded as RFC 6749 2.3.1 (form-encoded) asks. */
function basicClientId(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const [scheme, value, ...rest] = authorization.split(' ');
  if (rest.length || !value || scheme?.toLowerCase() !== 'basic') return undefined;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  const raw = decoded.slice(0, colon);
  try {
    return decodeURIComponent(raw.replace(/\+/g, '%20'));
  } catch {
    // oidc-provider rejects such a header; the raw form still names one client for counting.
    return raw;
  }
}

/** The unverified `sub` of a client_assertion JWT: good enough to pick a bucket, nothing more. */
function assertionSubject(assertion: string | null): string | undefined {
  const payload = assertion?.split('.')[1];
  if (!payload) return undefined;
  try {
    const sub = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub?: unknown }).sub;
    return typeof sub === 'string' && sub ? sub : undefined;
  } catch {
    return undefined;
  }
}

async function readRawBody(ctx: Context): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let received = 0;
  // destroyOnReturn: false keeps the socket usable for our own error response.
  for await (const chunk of ctx.req.iterator({ destroyOnReturn: false })) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    received += buffer.length;
    if (received > TOKEN_BODY_LIMIT) throw new BodyTooLarge();
    chunks.push(buffer);
  }
  return Buffer.concat(chunks, received);
}

/**
 * Reads the form body once, leaves it where oidc-provider will find it, and returns the client
 * it names. Undefined when the request carries no form body we may read.
 */
async function clientIdFromBody(ctx: Context): Promise<{ clientId: string | undefined } | 'rejected'> {
  if (!ctx.is(FORM) || !ctx.req.readable) return { clientId: undefined };
  // A declared length over the limit: leave the stream alone and let oidc-provider refuse it.
  if (ctx.request.length !== undefined && ctx.request.length > TOKEN_BODY_LIMIT) return { clientId: undefined };
  let raw: Buffer;
  try {
    raw = await readRawBody(ctx);
  } catch (err) {
    // The stream is partly read, so oidc-provider cannot see this request; answer as it would.
    if (err instanceof BodyTooLarge) {
      oauthError(ctx, 400, 'invalid_request', 'failed to parse the request body');
      return 'rejected';
    }
    throw err;
  }
  let text: string;
  try {
    // Decoded as oidc-provider decodes a stream it reads itself: by the declared charset.
    text = ctx.request.charset ? new TextDecoder(ctx.request.charset).decode(raw) : raw.toString('utf8');
  } catch {
    oauthError(ctx, 400, 'invalid_request', 'failed to parse the request body');
    return 'rejected';
  }
  (ctx.req as RawBodyRequest).body = ctx.request.charset ? text : raw;
  const params = new URLSearchParams(text);
  return { clientId: params.get('client_id') || assertionSubject(params.get('client_assertion')) };
}

export function tokenEndpointRateLimit(rateLimits: RateLimits, paths: readonly string[] = TOKEN_ENDPOINT_PATHS): Middleware {
  const guarded = new Set(paths);
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || !guarded.has(ctx.path)) return next();
    let clientId = basicClientId(ctx.get('authorization') || undefined);
    if (clientId === undefined) {
      const fromBody = await clientIdFromBody(ctx);
      if (fromBody === 'rejected') return undefined;
      clientId = fromBody.clientId;
    }
    // Without a client id oidc-provider refuses the request anyway; there is no bucket to charge.
    if (clientId === undefined) return next();
    const result = await rateLimits.consume('tokenClient', clientId);
    if (!result.ok) {
      setRetryAfter(ctx, result.retryAfterSeconds);
      oauthError(ctx, 429, 'rate_limited', `Too many requests for this client. Try again in ${describeWait(result.retryAfterSeconds)}.`);
      return undefined;
    }
    return next();
  };
}
