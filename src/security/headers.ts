// Security headers for every response: one set for pages, a smaller one for the provider's JSON
// endpoints, both computed once at start-up. The only third-party origins pages allow are those
// of the configured CAPTCHA vendor, if any.
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

/** Header name/value pairs, computed once and copied onto responses. */
export type HeaderList = readonly (readonly [string, string])[];

export interface SecurityHeaderSets {
  /** For pages and anything a browser may render. */
  page: HeaderList;
  /**
   * For the provider's JSON endpoints (discovery, JWKS, token, introspection, revocation,
   * userinfo): what OWASP's REST guidance asks of an API, and nothing that only applies to
   * documents (script, style or font sources, opener and resource policies). A browser that is
   * tricked into rendering such a response still may not run, frame or sniff anything in it.
   */
  api: HeaderList;
}

export function securityHeaderSets(issuer: string, additions: CspAdditions = {}): SecurityHeaderSets {
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
  const page = staticHeaders(handler);
  const api: (readonly [string, string])[] = [
    ['Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'"],
    ['X-Content-Type-Options', 'nosniff'],
    ['X-Frame-Options', 'DENY'],
    ['Referrer-Policy', 'no-referrer'],
  ];
  const hsts = page.find(([name]) => name.toLowerCase() === 'strict-transport-security');
  if (hsts) api.push(hsts);
  return { page, api };
}

export function applyHeaders(res: ServerResponse, headers: HeaderList): void {
  for (const [name, value] of headers) res.setHeader(name, value);
}

/**
 * Security headers for every response: the API set on `apiPaths`, the page set everywhere else.
 * CSP allows no inline script on pages; oidc-provider adds a hash for its own form_post
 * auto-submit script to the same header when it needs one.
 */
export function securityHeaders(sets: SecurityHeaderSets, apiPaths: ReadonlySet<string> = new Set()): Middleware {
  return (ctx, next) => {
    applyHeaders(ctx.res, apiPaths.has(ctx.path) ? sets.api : sets.page);
    return next();
  };
}

type HelmetHandler = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/** Runs helmet once against a recording response and returns the headers it set. */
function staticHeaders(handler: HelmetHandler): (readonly [string, string])[] {
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
