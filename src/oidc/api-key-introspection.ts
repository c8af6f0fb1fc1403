// Introspection of API keys (RFC 7662) at oidc-provider's own introspection endpoint, so a
// resource server checks `ghk_...` keys exactly as it checks access tokens. oidc-provider only
// knows its own tokens, so this middleware runs in front of it and answers requests whose
// `token` is an API key; every other request, body untouched, goes on to the provider.
//
// As in the provider's policy for its tokens, any confidential client may introspect a key;
// here it must authenticate with its client secret (Basic or form). A public client, or one
// with a wrong secret, gets 401 invalid_client (a key is never a public client's own token); a
// request naming no client at all gets 400 invalid_request, as the provider answers it.
//
// Introspecting counts as a use of the key (usage count, last used): a resource server asks
// because the key's holder is calling it, so the count tracks how much the key is used.
import type { Context, Middleware } from 'koa';
import { authenticateApiKey, looksLikeApiKey } from '../domain/api-keys.ts';
import { authenticateClientSecret } from '../security/client-auth.ts';
import type { Services } from '../services.ts';
import type { ProviderHost } from './provider-host.ts';
import { oauthError, tokenRequestForm } from './token-request-body.ts';

/** RFC 7662 2.2 answer for an API key; `token_type` says what was introspected. */
export interface ApiKeyIntrospection {
  active: true;
  token_type: 'api_key';
  scope: string;
  client_id?: string;
  sub?: string;
  aud: string;
  iss: string;
  jti: string;
  exp?: number;
  iat: number;
  name: string;
}

function seconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

function answer(ctx: Context, body: ApiKeyIntrospection | { active: false }): void {
  ctx.status = 200;
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
  ctx.body = body;
}

export function apiKeyIntrospection(services: Services, host: ProviderHost): Middleware {
  // The provider is swapped when signing keys change, its routes never (they are configuration).
  const introspectionPath = host.provider.pathFor('introspection');
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || ctx.path !== introspectionPath) return next();
    const form = await tokenRequestForm(ctx);
    if (form === 'rejected') return undefined;
    const tokens = form?.getAll('token') ?? [];
    // Repeated parameters are the provider's to refuse, with its own message.
    if (tokens.length !== 1 || !looksLikeApiKey(tokens[0]!)) return next();

    // The provider's answer to a request naming no client, so both kinds of token see the same.
    if (!ctx.get('authorization') && !form?.get('client_id')) {
      oauthError(ctx, 400, 'invalid_request', 'no client authentication mechanism provided');
      return undefined;
    }
    const client = await authenticateClientSecret(services, ctx, form);
    if (!client.ok) {
      if (client.error === 'invalid_client' && ctx.get('authorization')) {
        ctx.set('WWW-Authenticate', `Basic realm="${services.config.issuer}", error="invalid_client"`);
      }
      oauthError(ctx, client.error === 'invalid_client' ? 401 : 400, client.error, client.description);
      return undefined;
    }

    const result = await authenticateApiKey(services, tokens[0]!);
    if (!result.ok) {
      answer(ctx, { active: false });
      return undefined;
    }
    const { key } = result;
    answer(ctx, {
      active: true,
      token_type: 'api_key',
      scope: key.scopes.join(' '),
      ...(key.ownerClientId !== undefined ? { client_id: key.ownerClientId } : {}),
      ...(key.ownerAccountId !== undefined ? { sub: key.ownerAccountId } : {}),
      aud: key.resourceIdentifier,
      iss: services.config.issuer,
      jti: key.id,
      ...(key.expiresAt !== undefined ? { exp: seconds(key.expiresAt) } : {}),
      iat: seconds(key.createdAt),
      name: key.name,
    });
    return undefined;
  };
}
