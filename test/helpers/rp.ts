// The relying-party side of end-to-end tests: clients created with the `gatehouse` CLI, an
// openid-client v6 configuration for each, and a tiny local HTTP server standing in for the
// RP's callback and post-logout pages (it records every request it receives).
import http from 'node:http';
import type net from 'node:net';
import * as client from 'openid-client';
import { runCli } from './server.ts';

export interface CallbackServer {
  origin: string;
  /** `<origin>/cb`, the redirect URI to register. */
  redirectUri: string;
  /** `<origin>/logged-out`, the post-logout redirect URI to register. */
  postLogoutRedirectUri: string;
  /** Every request received, in order. */
  hits: URL[];
  hitsFor(pathname: string): URL[];
  close(): Promise<void>;
}

/** Listen on 127.0.0.1 (random port) and answer every request with a small 200 page. */
export async function startCallbackServer(): Promise<CallbackServer> {
  const hits: URL[] = [];
  let origin = '';
  const server = http.createServer((req, res) => {
    hits.push(new URL(req.url ?? '/', origin));
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end('<!doctype html><title>RP</title><p>relying party</p>');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    redirectUri: `${origin}/cb`,
    postLogoutRedirectUri: `${origin}/logged-out`,
    hits,
    hitsFor: (pathname) => hits.filter((u) => u.pathname === pathname),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Run the CLI and return its JSON output; throws with stdout/stderr when it fails. */
export async function gatehouse<T = Record<string, unknown>>(env: Record<string, string>, args: string[]): Promise<T> {
  const res = await runCli(env, args);
  if (res.code !== 0 || res.json === undefined) {
    throw new Error(`gatehouse ${args.join(' ')} exited ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  }
  return res.json as T;
}

export type AuthMethod = 'client_secret_basic' | 'client_secret_post' | 'none';

export interface ClientOptions {
  name: string;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  grantTypes?: string[];
  scope?: string;
  authMethod?: AuthMethod;
  firstParty?: boolean;
}

export interface CreatedClient {
  client_id: string;
  client_secret?: string;
  name: string;
  authMethod: AuthMethod;
}

export async function createClient(env: Record<string, string>, opts: ClientOptions): Promise<CreatedClient> {
  const args = ['client', 'create', '--name', opts.name];
  for (const uri of opts.redirectUris ?? []) args.push('--redirect-uri', uri);
  for (const uri of opts.postLogoutRedirectUris ?? []) args.push('--post-logout-redirect-uri', uri);
  for (const grant of opts.grantTypes ?? []) args.push('--grant-type', grant);
  if (opts.scope) args.push('--scope', opts.scope);
  if (opts.authMethod) args.push('--auth-method', opts.authMethod);
  if (opts.firstParty) args.push('--first-party');
  const out = await gatehouse<{ client_id?: unknown; client_secret?: unknown }>(env, args);
  if (typeof out.client_id !== 'string') throw new Error(`client create printed no client_id: ${JSON.stringify(out)}`);
  return {
    client_id: out.client_id,
    client_secret: typeof out.client_secret === 'string' ? out.client_secret : undefined,
    name: opts.name,
    authMethod: opts.authMethod ?? 'client_secret_basic',
  };
}

export interface CreatedUser {
  id: string;
  email: string;
  password: string;
  name?: string;
}

export async function createUser(
  env: Record<string, string>,
  opts: { email: string; password: string; name?: string; verified?: boolean },
): Promise<CreatedUser> {
  const args = ['user', 'create', '--email', opts.email, '--password', opts.password];
  if (opts.name) args.push('--name', opts.name);
  if (opts.verified) args.push('--verified');
  const out = await gatehouse<{ id?: unknown; email?: unknown }>(env, args);
  if (typeof out.id !== 'string' && typeof out.id !== 'number') throw new Error(`user create printed no id: ${JSON.stringify(out)}`);
  return { id: String(out.id), email: opts.email, password: opts.password, name: opts.name };
}

/** Discovery + client configuration; plain http is allowed because the test issuer is http://localhost. */
export async function rpConfig(
  issuer: string,
  c: { client_id: string; client_secret?: string; authMethod?: AuthMethod },
  overrideSecret?: string,
): Promise<client.Configuration> {
  const secret = overrideSecret ?? c.client_secret;
  const method = c.authMethod ?? 'client_secret_basic';
  const auth =
    method === 'none' ? client.None() : method === 'client_secret_post' ? client.ClientSecretPost(secret) : client.ClientSecretBasic(secret);
  return client.discovery(new URL(issuer), c.client_id, secret, auth, { execute: [client.allowInsecureRequests] });
}

export interface AuthRequest {
  url: URL;
  state: string;
  nonce: string;
  codeVerifier: string;
  redirectUri: string;
}

/** An authorization request with PKCE S256, state and nonce. */
export async function authRequest(
  config: client.Configuration,
  opts: { redirectUri: string; scope?: string; prompt?: string; extra?: Record<string, string> },
): Promise<AuthRequest> {
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params: Record<string, string> = {
    redirect_uri: opts.redirectUri,
    response_type: 'code',
    scope: opts.scope ?? 'openid profile email',
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...(opts.prompt ? { prompt: opts.prompt } : {}),
    ...opts.extra,
  };
  return { url: client.buildAuthorizationUrl(config, params), state, nonce, codeVerifier, redirectUri: opts.redirectUri };
}

/** Exchange the code in `callbackUrl` with openid-client's full response and ID token validation. */
export async function exchangeCode(config: client.Configuration, callbackUrl: URL, req: AuthRequest) {
  return client.authorizationCodeGrant(config, callbackUrl, {
    pkceCodeVerifier: req.codeVerifier,
    expectedState: req.state,
    expectedNonce: req.nonce,
    idTokenExpected: true,
  });
}

/** HTTP status of a userinfo call with `accessToken` (200 when the token is accepted). */
export async function userinfoStatus(config: client.Configuration, accessToken: string): Promise<number> {
  const endpoint = config.serverMetadata().userinfo_endpoint;
  if (!endpoint) throw new Error('discovery has no userinfo_endpoint');
  const res = await fetch(endpoint, { headers: { authorization: `Bearer ${accessToken}` } });
  await res.arrayBuffer();
  return res.status;
}

export interface OAuthFailure {
  error: string;
  status: number;
  description?: string;
}

/** Await an openid-client call that must fail with an OAuth error response; returns that error. */
export async function oauthError(promise: Promise<unknown>): Promise<OAuthFailure> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof client.ResponseBodyError) {
      return { error: err.error, status: err.status, description: err.error_description };
    }
    // A 401 with a WWW-Authenticate challenge (e.g. invalid_client): the JSON body, left unread
    // by openid-client, carries the error; the challenge's parameters are the fallback.
    if (err instanceof client.WWWAuthenticateChallengeError) {
      const body = (await err.response.json().catch(() => ({}))) as { error?: unknown; error_description?: unknown };
      const challenge = err.cause[0]?.parameters;
      const error = typeof body.error === 'string' ? body.error : challenge?.error;
      if (!error) throw err;
      const description = typeof body.error_description === 'string' ? body.error_description : challenge?.error_description;
      return { error, status: err.status, description };
    }
    throw err;
  }
  throw new Error('expected an OAuth error response, but the request succeeded');
}

/** POST a form to an endpoint with optional HTTP Basic client authentication. */
export async function postForm(
  endpoint: string,
  form: Record<string, string>,
  basic?: { id: string; secret: string },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (basic) {
    const enc = (s: string) => encodeURIComponent(s);
    headers.authorization = `Basic ${Buffer.from(`${enc(basic.id)}:${enc(basic.secret)}`).toString('base64')}`;
  }
  const res = await fetch(endpoint, { method: 'POST', headers, body: new URLSearchParams(form) });
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { raw: text };
  }
  return { status: res.status, body };
}
