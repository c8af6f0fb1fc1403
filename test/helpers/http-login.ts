// Drives the authorization-code + PKCE flow over plain HTTP, the way a browser would but without
// one: follows redirects by hand, keeps cookies in a small jar, fills in the hosted login and
// consent forms, and stops at the client's redirect_uri. Used by integration tests and benchmarks,
// so it has no dependencies and does no more work per step than a browser would.
import crypto from 'node:crypto';

// ---------------------------------------------------------------------------------------------
// Cookie jar (RFC 6265 subset: host-only / Domain, Path, Expires / Max-Age, Secure, SameSite).
// Like browsers, cookies are scoped by host name, not port, so two instances on localhost share
// them, which is exactly what a user behind a load balancer sees.
// ---------------------------------------------------------------------------------------------

interface StoredCookie {
  name: string;
  value: string;
  domain: string;
  hostOnly: boolean;
  path: string;
  /** Epoch ms; undefined for session cookies. */
  expires: number | undefined;
  secure: boolean;
  sameSite: 'strict' | 'lax' | 'none';
}

function defaultPath(pathname: string): string {
  if (!pathname.startsWith('/')) return '/';
  const idx = pathname.lastIndexOf('/');
  return idx <= 0 ? '/' : pathname.slice(0, idx);
}

function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

function domainMatches(host: string, domain: string): boolean {
  return host === domain || (host.endsWith(`.${domain}`) && !/^[\d.]+$/.test(host));
}

function isTrustworthyHost(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost') || host === '127.0.0.1' || host === '[::1]';
}

export class CookieJar {
  private cookies: StoredCookie[] = [];

  /** Store the Set-Cookie headers of a response to `url`. */
  store(url: URL, setCookieHeaders: readonly string[], now = Date.now()): void {
    const host = url.hostname.toLowerCase();
    for (const header of setCookieHeaders) {
      const [pair = '', ...attrs] = header.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const cookie: StoredCookie = {
        name: pair.slice(0, eq).trim(),
        value: pair.slice(eq + 1).trim(),
        domain: host,
        hostOnly: true,
        path: defaultPath(url.pathname),
        expires: undefined,
        secure: false,
        sameSite: 'lax',
      };
      let maxAge: number | undefined;
      for (const attr of attrs) {
        const i = attr.indexOf('=');
        const key = (i < 0 ? attr : attr.slice(0, i)).trim().toLowerCase();
        const val = i < 0 ? '' : attr.slice(i + 1).trim();
        if (key === 'path') cookie.path = val.startsWith('/') ? val : defaultPath(url.pathname);
        else if (key === 'domain' && val) {
          const domain = val.replace(/^\./, '').toLowerCase();
          if (!domainMatches(host, domain)) { cookie.name = ''; break; } // rejected, as browsers do
          cookie.domain = domain;
          cookie.hostOnly = false;
        } else if (key === 'max-age' && /^-?\d+$/.test(val)) maxAge = Number(val);
        else if (key === 'expires') {
          const t = Date.parse(val);
          if (!Number.isNaN(t)) cookie.expires = t;
        } else if (key === 'secure') cookie.secure = true;
        else if (key === 'samesite') {
          const v = val.toLowerCase();
          cookie.sameSite = v === 'strict' || v === 'none' ? v : 'lax';
        }
      }
      if (!cookie.name) continue;
      if (cookie.secure && url.protocol !== 'https:' && !isTrustworthyHost(host)) continue;
      if (maxAge !== undefined) cookie.expires = now + maxAge * 1000; // Max-Age wins over Expires
      this.cookies = this.cookies.filter((c) => !(c.name === cookie.name && c.domain === cookie.domain && c.path === cookie.path));
      if (cookie.expires === undefined || cookie.expires > now) this.cookies.push(cookie);
    }
  }

  /** The Cookie header for a request to `url` ('' when none apply). */
  header(url: URL, { crossSite = false, now = Date.now() } = {}): string {
    const host = url.hostname.toLowerCase();
    const secureOk = url.protocol === 'https:' || isTrustworthyHost(host);
    this.cookies = this.cookies.filter((c) => c.expires === undefined || c.expires > now);
    return this.cookies
      .filter((c) => (c.hostOnly ? c.domain === host : domainMatches(host, c.domain))
        && pathMatches(url.pathname, c.path)
        && (!c.secure || secureOk)
        && !(crossSite && c.sameSite === 'strict'))
      // Longer paths first, as RFC 6265 asks (Array.prototype.sort is stable).
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  /** Snapshot for assertions and debugging. */
  list(): readonly Readonly<StoredCookie>[] {
    return this.cookies.map((c) => ({ ...c }));
  }

  /** Forget cookies; with a name, only those cookies. */
  clear(name?: string): void {
    this.cookies = name === undefined ? [] : this.cookies.filter((c) => c.name !== name);
  }
}

// ---------------------------------------------------------------------------------------------
// Minimal HTML form parsing: enough for server-rendered pages with ordinary markup.
// ---------------------------------------------------------------------------------------------

const NAMED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, ent: string) => {
    if (ent[0] === '#') {
      const code = ent[1] === 'x' || ent[1] === 'X' ? parseInt(ent.slice(2), 16) : parseInt(ent.slice(1), 10);
      return Number.isFinite(code) && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return NAMED_ENTITIES[ent.toLowerCase()] ?? whole;
  });
}

/** Attributes of one start tag (`<input a="1" b='2' c=3 d>`), names lower-cased, values decoded. */
export function parseAttributes(tag: string): Record<string, string> {
  const attrs: Record<string, string> = {};
  const body = tag.replace(/^<\s*[a-z0-9-]+/i, '').replace(/\/?>$/, '');
  const re = /([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  for (const m of body.matchAll(re)) {
    const name = m[1]!.toLowerCase();
    if (name in attrs) continue; // first occurrence wins, as in HTML
    attrs[name] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

export interface ParsedForm {
  action: string;
  method: string;
  /** Hidden inputs, in document order. */
  hidden: [string, string][];
  /** Names of every input / select / textarea (any type). */
  fields: Set<string>;
  /** Submit buttons (`<button>` and `<input type=submit>`) with their name / value. */
  buttons: { name: string; value: string }[];
}

export function parseForms(html: string): ParsedForm[] {
  const forms: ParsedForm[] = [];
  const withoutComments = html.replace(/<!--[\s\S]*?-->/g, '');
  for (const m of withoutComments.matchAll(/<form\b[^>]*>([\s\S]*?)<\/form\s*>/gi)) {
    const openTag = m[0].slice(0, m[0].indexOf('>') + 1);
    const attrs = parseAttributes(openTag);
    const form: ParsedForm = {
      action: attrs.action ?? '',
      method: (attrs.method ?? 'get').toLowerCase(),
      hidden: [],
      fields: new Set(),
      buttons: [],
    };
    for (const t of m[1]!.matchAll(/<(input|button|select|textarea)\b[^>]*>/gi)) {
      const kind = t[1]!.toLowerCase();
      const a = parseAttributes(t[0]);
      const type = (a.type ?? (kind === 'button' ? 'submit' : 'text')).toLowerCase();
      if (kind === 'button' || (kind === 'input' && type === 'submit')) {
        if (type === 'submit') form.buttons.push({ name: a.name ?? '', value: a.value ?? '' });
        continue;
      }
      if (!a.name) continue;
      form.fields.add(a.name);
      if (kind === 'input' && type === 'hidden' && !('disabled' in a)) form.hidden.push([a.name, a.value ?? '']);
    }
    forms.push(form);
  }
  return forms;
}

// ---------------------------------------------------------------------------------------------
// The flow.
// ---------------------------------------------------------------------------------------------

export interface AuthorizeOptions {
  issuer: string;
  clientId: string;
  redirectUri: string;
  /** Only needed when the login page is shown (not for SSO / prompt=none). */
  email?: string;
  password?: string;
  scope: string;
  prompt?: string;
  /** Extra authorization request parameters (e.g. response_mode, max_age, acr_values). */
  extraParams?: Record<string, string>;
  /** Instance the authorization request is sent to (default: the issuer). */
  baseUrl?: string;
  /** Instance every later request (login, consent, resume) is sent to (default: baseUrl). */
  continueBaseUrl?: string;
  /** Tick the "remember me" box on the login page (default false). */
  remember?: boolean;
  /** Button pressed on the consent page (default allow). */
  consent?: 'allow' | 'deny';
  /** Reuse a jar to keep the provider session between flows (SSO); a fresh one by default. */
  jar?: CookieJar;
  /** Safety net against redirect loops. */
  maxSteps?: number;
}

export interface AuthorizeResult {
  code: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  /** The redirect_uri URL the provider sent the user agent to (with form_post: without the response). */
  callbackUrl: string;
  jar: CookieJar;
  /** Which hosted pages were shown, in order ('login' | 'consent'). */
  pages: string[];
}

/** The flow ended at redirect_uri with an OAuth error (e.g. login_required, access_denied). */
export class AuthorizeError extends Error {
  readonly error: string;
  readonly errorDescription: string | undefined;
  readonly callbackUrl: string;
  constructor(callback: URL) {
    const error = callback.searchParams.get('error') ?? 'unknown_error';
    const description = callback.searchParams.get('error_description') ?? undefined;
    super(`authorization ended with ${error}${description ? `: ${description}` : ''} (${callback.href})`);
    this.name = 'AuthorizeError';
    this.error = error;
    this.errorDescription = description;
    this.callbackUrl = callback.href;
  }
}

export function pkcePair(): { codeVerifier: string; codeChallenge: string } {
  const codeVerifier = crypto.randomBytes(32).toString('base64url');
  const codeChallenge = crypto.createHash('sha256').update(codeVerifier).digest('base64url');
  return { codeVerifier, codeChallenge };
}

const endpointCache = new Map<string, Promise<string>>();

/** The authorization endpoint from discovery (fetched once per issuer and instance). */
function authorizationEndpoint(issuer: URL, instance: URL): Promise<string> {
  const key = `${issuer.href} ${instance.origin}`;
  let cached = endpointCache.get(key);
  if (!cached) {
    const base = issuer.href.replace(/\/$/, '');
    const discoveryUrl = new URL(`${base}/.well-known/openid-configuration`);
    cached = fetch(new URL(discoveryUrl.pathname, instance.origin)).then(async (res) => {
      if (!res.ok) throw new Error(`discovery at ${instance.origin}${discoveryUrl.pathname} answered ${res.status}`);
      return ((await res.json()) as { authorization_endpoint: string }).authorization_endpoint;
    });
    cached.catch(() => endpointCache.delete(key));
    endpointCache.set(key, cached);
  }
  return cached;
}

function excerpt(body: string): string {
  const text = body.replace(/<style[\s\S]*?<\/style>|<script[\s\S]*?<\/script>/gi, '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
  return decodeEntities(text).slice(0, 500);
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

/**
 * Run one authorization request to completion and return the code. Throws AuthorizeError when
 * the provider redirects back with an error, and a plain Error for anything unexpected (with the
 * page text, so a failing test says what the user would have seen).
 */
export async function authorizeOverHttp(opts: AuthorizeOptions): Promise<AuthorizeResult> {
  const jar = opts.jar ?? new CookieJar();
  const issuer = new URL(opts.issuer);
  const start = new URL(opts.baseUrl ?? opts.issuer);
  const later = new URL(opts.continueBaseUrl ?? start.href);
  // Origins that belong to the provider; any of them is rewritten to the instance in use.
  const providerOrigins = new Set([issuer.origin, start.origin, later.origin]);
  const redirect = new URL(opts.redirectUri);
  const maxSteps = opts.maxSteps ?? 25;

  const { codeVerifier, codeChallenge } = pkcePair();
  const state = crypto.randomBytes(12).toString('base64url');
  const nonce = crypto.randomBytes(12).toString('base64url');
  const authEndpoint = new URL(await authorizationEndpoint(issuer, start));
  const params = new URLSearchParams({
    client_id: opts.clientId,
    redirect_uri: opts.redirectUri,
    response_type: 'code',
    scope: opts.scope,
    state,
    nonce,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
  });
  if (opts.prompt !== undefined) params.set('prompt', opts.prompt);
  for (const [k, v] of Object.entries(opts.extraParams ?? {})) params.set(k, v);
  authEndpoint.search = params.toString();

  // Instances are addressed as if behind one load balancer at the issuer's origin: URLs the
  // provider writes (with whichever instance's origin) are read as issuer URLs, cookies belong to
  // the issuer's host, and each request is routed to the instance in use for that step.
  const logical = (u: URL): URL => (providerOrigins.has(u.origin) && u.origin !== issuer.origin ? new URL(u.pathname + u.search, issuer.origin) : u);
  const route = (u: URL, instance: URL): URL => (u.origin === issuer.origin ? new URL(u.pathname + u.search, instance.origin) : u);
  const isCallback = (u: URL) => u.origin === redirect.origin && u.pathname === redirect.pathname;

  const finish = (callback: URL, q: URLSearchParams): AuthorizeResult => {
    if (q.get('error')) {
      const withParams = new URL(callback);
      withParams.search = q.toString();
      throw new AuthorizeError(withParams);
    }
    const code = q.get('code');
    if (!code) throw new Error(`redirected to redirect_uri without code or error: ${callback.href}`);
    if (q.get('state') !== state) throw new Error(`state mismatch: sent ${state}, got ${q.get('state')} (${callback.href})`);
    const iss = q.get('iss');
    if (iss !== null && iss !== opts.issuer.replace(/\/$/, '')) throw new Error(`iss mismatch: expected ${opts.issuer}, got ${iss} (${callback.href})`);
    return { code, state, nonce, codeVerifier, callbackUrl: callback.href, jar, pages };
  };

  let url = logical(authEndpoint);
  let method = 'GET';
  let body: URLSearchParams | undefined;
  let referer: string | undefined;
  // The flow starts with a top-level navigation from the client's site: SameSite=Strict cookies
  // stay home until the user submits a form on the provider's own pages.
  let crossSite = true;
  const pages: string[] = [];

  for (let step = 0; step < maxSteps; step++) {
    const actual = route(url, step === 0 ? start : later);
    const headers: Record<string, string> = { accept: 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8' };
    const cookie = jar.header(url, { crossSite });
    if (cookie) headers.cookie = cookie;
    if (body) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin = url.origin;
    }
    if (referer) headers.referer = referer;
    const res = await fetch(actual, { method, headers, body, redirect: 'manual' });
    jar.store(url, res.headers.getSetCookie());

    if (isRedirect(res.status)) {
      await res.body?.cancel();
      const location = res.headers.get('location');
      if (!location) throw new Error(`${res.status} from ${method} ${actual.href} without a Location`);
      const next = logical(new URL(location, actual));
      if (isCallback(next)) return finish(next, next.searchParams);
      // 307/308 repeat the method and body; 301/302/303 become GET, as in browsers.
      if (res.status !== 307 && res.status !== 308) {
        method = 'GET';
        body = undefined;
      }
      url = next;
      continue;
    }

    const html = await res.text();
    const forms = parseForms(html);
    // response_mode=form_post: an auto-submitting form carrying the response to redirect_uri.
    const post = res.status === 200 ? forms.find((f) => f.action && isCallback(new URL(f.action, actual))) : undefined;
    if (post) return finish(new URL(post.action, actual), new URLSearchParams(post.hidden));
    const login = forms.find((f) => f.fields.has('password') && f.fields.has('email'));
    const consent = forms.find((f) => f.buttons.some((b) => b.name === 'decision'));
    if (login && pages.at(-1) === 'login') {
      throw new Error(`login was refused (the login page came back with ${res.status}): ${excerpt(html)}`);
    }
    if (res.status !== 200) {
      throw new Error(`unexpected ${res.status} from ${method} ${actual.href}: ${excerpt(html)}`);
    }
    let form: ParsedForm;
    const fields = new URLSearchParams();
    if (login) {
      if (opts.email === undefined || opts.password === undefined) {
        throw new Error(`the login page was shown but no credentials were given: ${actual.href}`);
      }
      form = login;
      for (const [k, v] of form.hidden) fields.append(k, v);
      fields.set('email', opts.email);
      fields.set('password', opts.password);
      if (opts.remember) fields.set('remember', '1');
      pages.push('login');
    } else if (consent) {
      form = consent;
      for (const [k, v] of form.hidden) fields.append(k, v);
      const decision = opts.consent ?? 'allow';
      if (!form.buttons.some((b) => b.name === 'decision' && b.value === decision)) {
        throw new Error(`consent page has no "${decision}" button: ${excerpt(html)}`);
      }
      fields.set('decision', decision);
      pages.push('consent');
    } else {
      throw new Error(`page at ${actual.href} has neither a login nor a consent form: ${excerpt(html)}`);
    }
    if (form.method !== 'post') throw new Error(`expected a POST form on ${actual.href}, got method=${form.method}`);
    referer = url.href;
    url = logical(new URL(form.action || actual.href, actual));
    method = 'POST';
    body = fields;
    crossSite = false;
  }
  throw new Error(`no redirect to ${opts.redirectUri} after ${maxSteps} requests (last: ${url.href}, pages: ${pages.join(',')})`);
}

// ---------------------------------------------------------------------------------------------
// Token endpoint helpers shared by the tests.
// ---------------------------------------------------------------------------------------------

export interface TokenResponse {
  access_token?: string;
  id_token?: string;
  refresh_token?: string;
  token_type?: string;
  expires_in?: number;
  scope?: string;
  error?: string;
  error_description?: string;
}

export interface ClientCredentials {
  clientId: string;
  clientSecret?: string;
  /** client_secret_basic (default when a secret is given), client_secret_post or none. */
  authMethod?: 'client_secret_basic' | 'client_secret_post' | 'none';
}

/** POST to a token endpoint; returns the HTTP status and parsed JSON body. */
export async function tokenRequest(tokenEndpoint: string, client: ClientCredentials, params: Record<string, string>): Promise<{ status: number; body: TokenResponse }> {
  const form = new URLSearchParams(params);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  const method = client.authMethod ?? (client.clientSecret ? 'client_secret_basic' : 'none');
  if (method === 'client_secret_basic') {
    const enc = (s: string) => encodeURIComponent(s);
    headers.authorization = `Basic ${Buffer.from(`${enc(client.clientId)}:${enc(client.clientSecret ?? '')}`).toString('base64')}`;
  } else {
    form.set('client_id', client.clientId);
    if (method === 'client_secret_post') form.set('client_secret', client.clientSecret ?? '');
  }
  const res = await fetch(tokenEndpoint, { method: 'POST', headers, body: form });
  const text = await res.text();
  let body: TokenResponse;
  try {
    body = JSON.parse(text) as TokenResponse;
  } catch {
    body = { error: 'non_json_response', error_description: `${res.status}: ${text.slice(0, 300)}` };
  }
  return { status: res.status, body };
}

/** Decode a JWT's header and payload without verifying (verification is the test's job). */
export function decodeJwt(jwt: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [h = '', p = ''] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>,
  };
}
