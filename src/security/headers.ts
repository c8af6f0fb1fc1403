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
  return async (ctx, next) => {
    await new Promise<void>((resolve, reject) => {
      handler(ctx.req as IncomingMessage, ctx.res as ServerResponse, (err?: unknown) => (err ? reject(err) : resolve()));
    });
    await next();
  };
}
