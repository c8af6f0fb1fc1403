// The form body of a token-endpoint request, read once by our middlewares (rate limit, refresh
// token lifecycle) and left for oidc-provider: it accepts an already-read raw body on
// `ctx.req.body` in place of the stream (lib/shared/selective_body.js). No body parser runs in
// front of the provider, so it still parses and validates the body itself.
import type { Context } from 'koa';

/** oidc-provider's own limit for request bodies. */
export const TOKEN_BODY_LIMIT = 56 * 1024;

const FORM = 'application/x-www-form-urlencoded';

type RawBodyRequest = Context['req'] & { body?: Buffer | string };

class BodyTooLarge extends Error {}

/** An OAuth-style JSON error response (RFC 6749 5.2). */
export function oauthError(ctx: Context, status: number, error: string, description: string): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
  ctx.body = { error, error_description: description };
}

/** The form parameters, read once and left on `ctx.req.body` for oidc-provider. */
export async function tokenRequestForm(ctx: Context): Promise<URLSearchParams | undefined | 'rejected'> {
  if (!ctx.is(FORM)) return undefined;
  const req = ctx.req as RawBodyRequest;
  if (req.body !== undefined) return new URLSearchParams(typeof req.body === 'string' ? req.body : req.body.toString('utf8'));
  if (!ctx.req.readable) return undefined;
  // A declared length over the limit: leave the stream alone and let oidc-provider refuse it.
  if (ctx.request.length !== undefined && ctx.request.length > TOKEN_BODY_LIMIT) return undefined;
  const chunks: Buffer[] = [];
  let received = 0;
  try {
    // destroyOnReturn: false keeps the socket usable for our own error response.
    for await (const chunk of ctx.req.iterator({ destroyOnReturn: false })) {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      received += buffer.length;
      if (received > TOKEN_BODY_LIMIT) throw new BodyTooLarge();
      chunks.push(buffer);
    }
  } catch (err) {
    // The stream is partly read, so oidc-provider cannot see this request; answer as it would.
    if (err instanceof BodyTooLarge) {
      oauthError(ctx, 400, 'invalid_request', 'failed to parse the request body');
      return 'rejected';
    }
    throw err;
  }
  const raw = Buffer.concat(chunks, received);
  let text: string;
  try {
    // Decoded as oidc-provider decodes a stream it reads itself: by the declared charset.
    text = ctx.request.charset ? new TextDecoder(ctx.request.charset).decode(raw) : raw.toString('utf8');
  } catch {
    oauthError(ctx, 400, 'invalid_request', 'failed to parse the request body');
    return 'rejected';
  }
  req.body = ctx.request.charset ? text : raw;
  return new URLSearchParams(text);
}

