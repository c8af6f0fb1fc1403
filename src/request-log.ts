// What every request gets on the way in and out: a request id (the proxy's when it is trusted)
// and, when it is finished, the access log line and the request metric. Shared by the Koa
// application and the provider endpoints answered without it (oidc/direct-endpoints.ts).
import crypto from 'node:crypto';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import type { Metrics, RequestSummary } from './metrics.ts';

const REQUEST_ID = /^[A-Za-z0-9._-]{8,128}$/;

export function requestIdFor(incoming: string | string[] | undefined, trustProxy: boolean): string {
  return trustProxy && typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
}

export type RequestFinished = (request: RequestSummary, requestId: string, ms: number) => void;

export function requestFinisher(config: Pick<Config, 'accessLog'>, logger: Logger, metrics: Metrics): RequestFinished {
  // Access lines carry only fixed, non-secret fields, so they skip the redaction every other log
  // line goes through (a few microseconds per request on the hottest endpoints).
  const accessLogger = logger.child({}, { redact: [] });
  const { accessLog } = config;
  return (request, requestId, ms) => {
    // The path only: query strings carry codes and tokens. A line per request costs a noticeable
    // share of the cheapest endpoints (docs/performance.md); ACCESS_LOG=errors keeps only refused
    // and failed requests.
    if (accessLog === 'all' || (accessLog === 'errors' && request.status >= 400)) {
      accessLogger.info({ requestId, method: request.method, path: request.path, status: request.status, ms: Math.round(ms) }, 'request');
    }
    metrics.observeRequest(request, ms / 1000);
  };
}
