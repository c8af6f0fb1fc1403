// Discovery and JWKS answered by oidc-provider without passing through our Koa application.
// They are the most requested paths (every relying party and API fetches them) and nothing of
// ours has anything to do with them besides headers and the access log; skipping the outer
// application, its routers and its context halves what they cost (docs/performance.md).
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
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

/** A request listener that serves `paths` from the provider and everything else from `fallback`. */
export function withDirectEndpoints(fallback: RequestListener, direct: DirectEndpoints): RequestListener {
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
    // Koa's listener answers errors itself (oidc-provider renders them) and settles afterwards.
    direct.provider()(req, res).then(done, done);
  };
}
