// Authentication of a confidential client by its secret (RFC 6749 2.3.1), for endpoints of our
// own that sit beside oidc-provider's and must accept the same credentials: HTTP Basic for
// client_secret_basic clients, client_id + client_secret in the form for client_secret_post ones.
// As in oidc-provider, a client must use the method it is registered with, and only one method
// per request. Clients that authenticate otherwise (private_key_jwt) or not at all (public
// clients) are refused: these endpoints are for confidential clients holding a secret.
import type { Context } from 'koa';
import { basicCredentials, formDecode, sameSecret } from './credentials.ts';
import { loadProviderClientMetadata } from '../domain/clients.ts';
import { tokenRequestForm } from '../oidc/token-request-body.ts';
import type { Services } from '../services.ts';

export type SecretAuthMethod = 'client_secret_basic' | 'client_secret_post';

export type ClientAuthentication =
  | { ok: true; clientId: string; method: SecretAuthMethod }
  | {
    ok: false;
    /** invalid_client (answer 401) or invalid_request (answer 400), as RFC 6749 5.2 names them. */
    error: 'invalid_client' | 'invalid_request';
    description: string;
  };

const INVALID_CLIENT = { ok: false, error: 'invalid_client', description: 'client authentication failed' } as const;

function invalidRequest(description: string): ClientAuthentication {
  return { ok: false, error: 'invalid_request', description };
}

interface Presented {
  clientId: string;
  secret: string;
  method: SecretAuthMethod;
}

function presentedCredentials(ctx: Context, form: URLSearchParams | undefined): Presented | ClientAuthentication {
  const authorization = ctx.get('authorization');
  const formSecrets = form?.getAll('client_secret') ?? [];
  const formIds = form?.getAll('client_id') ?? [];
  if (formSecrets.length > 1 || formIds.length > 1) return invalidRequest('client_id and client_secret must be given once');
  if (form?.has('client_assertion')) return INVALID_CLIENT;
  if (authorization) {
    const [scheme, value, ...rest] = authorization.split(' ');
    if (scheme?.toLowerCase() !== 'basic' || !value || rest.length > 0) return invalidRequest('only HTTP Basic client authentication is accepted in the Authorization header');
    if (formSecrets.length > 0) return invalidRequest('client authentication must only be provided using one mechanism');
    const raw = basicCredentials(value);
    const clientId = raw ? formDecode(raw.id) : undefined;
    const secret = raw ? formDecode(raw.secret) : undefined;
    if (!clientId || secret === undefined) return invalidRequest('client_id and client_secret in the authorization header are not properly encoded');
    if (formIds[0] !== undefined && formIds[0] !== clientId) return invalidRequest('mismatch in body and authorization client ids');
    return { clientId, secret, method: 'client_secret_basic' };
  }
  if (formIds[0] && formSecrets[0] !== undefined) return { clientId: formIds[0], secret: formSecrets[0], method: 'client_secret_post' };
  // No credentials, or a client named without a secret (a public client, or a confidential one
  // that left it out).
  return INVALID_CLIENT;
}

/**
 * Authenticates the client of a form-encoded request by its secret. `form` is the request's form
 * body when the caller has read it already; otherwise it is read here and left readable for
 * oidc-provider (see token-request-body.ts).
 */
export async function authenticateClientSecret(services: Pick<Services, 'knex' | 'secrets'>, ctx: Context, form?: URLSearchParams): Promise<ClientAuthentication> {
  let params = form;
  if (params === undefined) {
    const read = await tokenRequestForm(ctx);
    // The request was already answered (its body was too large to read).
    if (read === 'rejected') return invalidRequest('failed to parse the request body');
    params = read;
  }
  const presented = presentedCredentials(ctx, params);
  if ('ok' in presented) return presented;
  const client = await loadProviderClientMetadata(services, presented.clientId);
  if (!client) return INVALID_CLIENT;
  const registered = client.token_endpoint_auth_method ?? 'client_secret_basic';
  if (registered !== presented.method || client.client_secret === undefined) return INVALID_CLIENT;
  if (!sameSecret(client.client_secret, presented.secret)) return INVALID_CLIENT;
  return { ok: true, clientId: presented.clientId, method: presented.method };
}
