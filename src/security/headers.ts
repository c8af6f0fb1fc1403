// Security headers for every response. CSP allows no inline script; oidc-provider adds a hash
// for its own form_post auto-submit script to this same header when it needs one.
import type { Middleware } from 'koa';
import helmet from 'helmet';
import type { IncomingMessage, ServerResponse } from 'node:http';

export function securityHeaders(issuer: string): Middleware {
  const https = new URL(issuer).protocol === 'https:';
  const handler = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        'default-src': ["'self'"],
        'script-src': ["'self'"],
        'style-src': ["'self'"],
        'img-src': ["'self'", 'data:'],
        'font-src': ["'self'"],
        'connect-src': ["'self'"],
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
