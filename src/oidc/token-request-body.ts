// The form body of a token-endpoint request, read once by our middlewares (rate limit, refresh
// token lifecycle) and left for oidc-provider: it accepts an already-read raw body on
// `ctx.req.body` in place of the stream (lib/shared/selective_body.js). No body parser runs in
// front of the provider, so it still parses and validates the body itself.
import type { Context } from 'koa';

/** oidc-provider's own limit for request bodies. */
export const TOKEN_BODY_LIMIT = 56 * 1024;

const FORM = 'application/x-www-form-urlencoded';

type RawBodyRequest = Context['req'] & { body?: Buffer | string };

/** An OAuth-style JSON error response (RFC 6749 5.2). */
export function oauthError(ctx: Context, status: number, error: string, description: string): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
  ctx.body = { error, error_description: description };
}

/** The parameters of each request's form, parsed once however many middlewares ask. */
const parsed = new WeakMap<object, URLSearchParams>();

/** The whole body, or 'too-large' once it passes the limit (the rest is left unread). */
function readBody(req: Context['req'], limit: number): Promise<Buffer | 'too-large'> {
  // Events rather than an async iterator over the stream: the iterator cost a tenth of a
  // client_credentials request (docs/performance.md), and a form body is one or two chunks.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const stop = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer | string) => {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      received += buffer.length;
      if (received > limit) {
        // Stop reading but keep the socket: our own error response still has to go out on it.
        stop();
        req.pause();
        resolve('too-large');
        return;
      }
      chunks.push(buffer);
    };
    const onEnd = () => {
      stop();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
    };
    const onError = (err: Error) => {
      stop();
      reject(err);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** The form parameters, read once and left on `ctx.req.body` for oidc-provider. */
export async function tokenRequestForm(ctx: Context): Promise<URLSearchParams | undefined | 'rejected'> {
  const req = ctx.req as RawBodyRequest;
  const known = parsed.get(req);
  if (known) return known;
  if (!ctx.is(FORM)) return undefined;
  if (req.body !== undefined) return remember(req, typeof req.body === 'string' ? req.body : req.body.toString('utf8'));
  if (!ctx.req.readable) return undefined;
  // A declared length over the limit: leave the stream alone and let oidc-provider refuse it.
  if (ctx.request.length !== undefined && ctx.request.length > TOKEN_BODY_LIMIT) return undefined;
  const raw = await readBody(ctx.req, TOKEN_BODY_LIMIT);
  if (raw === 'too-large') {
    // The stream is partly read, so oidc-provider cannot see this request; answer as it would.
    oauthError(ctx, 400, 'invalid_request', 'failed to parse the request body');
    return 'rejected';
  }
  let text: string;
  try {
    // Decoded as oidc-provider decodes a stream it reads itself: by the declared charset.
    text = ctx.request.charset ? new TextDecoder(ctx.request.charset).decode(raw) : raw.toString('utf8');
  } catch {
    oauthError(ctx, 400, 'invalid_request', 'failed to parse the request body');
    return 'rejected';
  }
  req.body = ctx.request.charset ? text : raw;
  return remember(req, text);
}

function remember(req: RawBodyRequest, text: string): URLSearchParams {
  const params = new URLSearchParams(text);
  parsed.set(req, params);
  return params;
}
