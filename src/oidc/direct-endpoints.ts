// Discovery and JWKS answered by oidc-provider without passing through our Koa application, and
// remembered. They are the most requested paths (every relying party and API fetches them) and
// nothing of ours has anything to do with them besides headers and the access log; skipping the
// outer application, its routers and its context halves what they cost (docs/performance.md).
//
// Their answers depend only on the provider instance (its configuration and keystore, both fixed
// at construction; a new instance comes with new keys) and on the request headers that
// oidc-provider reads while answering: Host and, behind a trusted proxy, X-Forwarded-Host/Proto
// (endpoint URLs are resolved against the request's origin) and Origin (CORS). So the first
// answer for a given provider and such headers is kept and replayed byte for byte, which spares
// the provider's routing, context and JSON rendering on every later request. A key rotation
// replaces the provider and with it every remembered answer, on every instance (provider-host.ts).
import type { IncomingMessage, OutgoingHttpHeaders, RequestListener, ServerResponse } from 'node:http';
import type { Middleware } from 'koa';
import { LruCache } from '../lru-cache.ts';
import { applyHeaders, type HeaderList } from '../security/headers.ts';
import { requestIdFor, type RequestFinished } from '../request-log.ts';

export type ProviderListener = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export interface DirectEndpoints {
  /** Exact request paths (no query) handed straight to the provider. */
  paths: ReadonlySet<string>;
  headers: HeaderList;
  trustProxy: boolean;
  /** The current provider's request listener (it changes when signing keys do). */
  provider: () => ProviderListener;
  finished: RequestFinished;
}

interface RememberedAnswer {
  headers: OutgoingHttpHeaders;
  body: Buffer;
}

// Distinct Host/Origin combinations a deployment sees are few (its own names, its relying
// parties' origins); the bound only stops a client sending endless made-up values from growing
// memory, which costs it nothing but cache misses.
const REMEMBERED_ANSWERS = 256;

// Set on a request whose answer may be remembered, read by `recordDirectAnswers` inside the provider.
const recorders = new WeakMap<IncomingMessage, (answer: RememberedAnswer) => void>();

/**
 * Provider middleware (`provider.use`) that hands a direct request's successful JSON answer to
 * its recorder. It runs around the provider's router, so after `next()` the body is the object
 * Koa is about to render and the headers are everything the request will carry.
 */
export const recordDirectAnswers: Middleware = async (ctx, next) => {
  // The recorder is set before the provider sees the request; every other provider request (the
  // token endpoints among them) passes straight on without waiting here.
  const record = recorders.get(ctx.req);
  if (!record) return next();
  await next();
  // Only a plain object, which Koa renders with JSON.stringify and no indentation, exactly as
  // here (whatever the content type: JWKS is application/jwk-set+json); never a stream or buffer.
  const { body: answer } = ctx;
  if (ctx.status !== 200 || answer === null || typeof answer !== 'object' || Object.getPrototypeOf(answer) !== Object.prototype) return;
  const body = Buffer.from(JSON.stringify(answer));
  const headers: OutgoingHttpHeaders = { ...ctx.response.headers };
  delete headers['x-request-id'];
  headers['content-length'] = body.length;
  record({ headers, body });
};

function headerValue(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(',') : (value ?? '');
}

/** Everything the provider's answer on a direct path depends on, besides the provider itself. */
function answerKey(req: IncomingMessage, path: string): string {
  const { headers } = req;
  const tls = 'encrypted' in req.socket && req.socket.encrypted ? 'https' : 'http';
  return [path, tls, headerValue(headers.host), headerValue(headers['x-forwarded-host']), headerValue(headers['x-forwarded-proto']), headerValue(headers.origin)].join('\n');
}

/** A request listener that serves `paths` from the provider and everything else from `fallback`. */
export function withDirectEndpoints(fallback: RequestListener, direct: DirectEndpoints): RequestListener {
  let answersOf: ProviderListener | undefined;
  let answers = new LruCache<string, RememberedAnswer>(REMEMBERED_ANSWERS);
  return (req, res) => {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (!direct.paths.has(path)) {
      fallback(req, res);
      return;
    }
    const requestId = requestIdFor(req.headers['x-request-id'], direct.trustProxy);
    applyHeaders(res, direct.headers);
    res.setHeader('x-request-id', requestId);
    const started = performance.now();
    const done = () => direct.finished({ method: req.method ?? 'GET', path, status: res.statusCode }, requestId, performance.now() - started);

    const provider = direct.provider();
    if (provider !== answersOf) {
      answersOf = provider;
      answers = new LruCache(REMEMBERED_ANSWERS);
    }
    // Only GET is remembered: HEAD and OPTIONS (CORS preflight) answers differ, and are rare.
    if (req.method === 'GET') {
      const key = answerKey(req, path);
      const remembered = answers.get(key);
      if (remembered) {
        res.writeHead(200, remembered.headers);
        res.end(remembered.body);
        done();
        return;
      }
      const cache = answers;
      recorders.set(req, (answer) => cache.set(key, answer));
    }
    // Koa's listener answers errors itself (oidc-provider renders them) and settles afterwards.
    provider(req, res).then(done, done);
  };
}
