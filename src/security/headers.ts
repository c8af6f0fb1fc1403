// Security headers for every response. CSP allows no inline script; oidc-provider adds a hash
// for its own form_post auto-submit script to this same header when it needs one. The only
// third-party origins allowed are those of the configured CAPTCHA vendor, if any.
import type { Middleware } from 'koa';
import helmet from 'helmet';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Origins added to CSP directives beyond 'self' (e.g. a CAPTCHA vendor's, see captchaCspSources). */
export interface CspAdditions {
  scriptSrc?: readonly string[];
  frameSrc?: readonly string[];
  styleSrc?: readonly string[];
  connectSrc?: readonly string[];
}

export function securityHeaders(issuer: string, additions: CspAdditions = {}): Middleware {
  const https = new URL(issuer).protocol === 'https:';
  const frameSrc = additions.frameSrc ?? [];
  const handler = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        'default-src': ["'self'"],
        'script-src': ["'self'", ...(additions.scriptSrc ?? [])],
        'style-src': ["'self'", ...(additions.styleSrc ?? [])],
        'img-src': ["'self'", 'data:'],
        'font-src': ["'self'"],
        'connect-src': ["'self'", ...(additions.connectSrc ?? [])],
        // Without additions frames fall back to default-src 'self', as before.
        ...(frameSrc.length ? { 'frame-src': ["'self'", ...frameSrc] } : {}),
        'object-src': ["'none'"],
        'base-uri': ["'none'"],
        'frame-ancestors': ["'none'"],
        // No form-action: browsers apply it to the redirect back to the relying party after a
        // form post, which would break every sign-in.
      },
    },
    strictTransportSecurity: https ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    // Discovery, JWKS and token endpoints are read cross-origin by browser-based apps.
    crossOriginResourcePolicy: false,
    crossOriginEmbedderPolicy: false,
    referrerPolicy: { policy: 'no-referrer' },
  });
  // helmet's headers are the same for every response here (no per-request nonces), so they are
  // computed once and copied onto each response: running helmet per request cost about a fifth
  // of the time of the cheapest endpoints (discovery, JWKS).
  const headers = staticHeaders(handler);
  return async (ctx, next) => {
    const res = ctx.res as ServerResponse;
    for (const [name, value] of headers) res.setHeader(name, value);
    res.removeHeader('x-powered-by');
    await next();
  };
}

type HelmetHandler = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/** Runs helmet once against a recording response and returns the headers it set. */
function staticHeaders(handler: HelmetHandler): [string, string][] {
  const recorded = new Map<string, string>();
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      recorded.set(name, Array.isArray(value) ? value.join(', ') : String(value));
      return recorder;
    },
    removeHeader(name: string) {
      recorded.delete(name);
    },
    getHeader(name: string) {
      return recorded.get(name);
    },
  };
  let failure: unknown;
  let finished = false;
  handler({ headers: {}, method: 'GET', url: '/' } as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => {
    failure = err;
    finished = true;
  });
  // helmet finishes synchronously; anything else would mean headers that depend on the request.
  if (!finished || failure) throw new Error('security headers could not be computed once at start-up');
  return [...recorded];
}
