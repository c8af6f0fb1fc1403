// Per-client rate limit in front of oidc-provider's token, introspection and revocation
// endpoints. The client is named by HTTP Basic credentials or, for client_secret_post, none and
// private_key_jwt, by the form body. oidc-provider must parse that body itself, so we read the
// raw bytes and hand them over on `ctx.req.body`, which oidc-provider accepts in place of the
// stream once the stream has been read (lib/shared/selective_body.js). No body parser runs here.
import type { Context, Middleware } from 'koa';
import type { RateLimits } from '../security/rate-limit.ts';
import { describeWait, setRetryAfter } from '../security/rate-limit.ts';
import { oauthError, tokenRequestForm } from './token-request-body.ts';
import { basicCredentials, formDecode } from '../security/credentials.ts';


export const TOKEN_ENDPOINT_PATHS: readonly string[] = ['/token', '/token/introspection', '/token/revocation'];


/** The client id of `Authorization: Basic`, decoded as RFC 6749 2.3.1 (form-encoded) asks. */
function basicClientId(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const [scheme, value, ...rest] = authorization.split(' ');
  if (rest.length || !value || scheme?.toLowerCase() !== 'basic') return undefined;
  const raw = basicCredentials(value)?.id;
  // oidc-provider rejects an undecodable id; the raw form still names one client for counting.
  return raw === undefined ? undefined : (formDecode(raw) ?? raw);
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

/**
 * Reads the form body once, leaves it where oidc-provider will find it, and returns the client
 * it names. Undefined when the request carries no form body we may read.
 */
async function clientIdFromBody(ctx: Context): Promise<{ clientId: string | undefined } | 'rejected'> {
  const params = await tokenRequestForm(ctx);
  if (params === 'rejected') return 'rejected';
  return { clientId: params?.get('client_id') || assertionSubject(params?.get('client_assertion') ?? null) };
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
