// Upstream identity providers ("Continue with Google"): parsed from the JSON file named by
// FEDERATION_CONFIG (default config/federation.json when it exists) and from per-vendor
// environment shortcuts. Called by src/config.ts with the environment it was given, so
// nothing here reads process.env; secrets in the file may be "env:NAME" references instead.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

export const PROVIDER_KINDS = ['oidc', 'google', 'microsoft', 'apple', 'github', 'facebook', 'x'] as const;
export type ProviderKind = (typeof PROVIDER_KINDS)[number];

/** Kinds spoken to with OpenID Connect (discovery, ID token, nonce); the rest are plain OAuth 2.0. */
export const OIDC_KINDS: ReadonlySet<ProviderKind> = new Set(['oidc', 'google', 'microsoft', 'apple']);

export interface AppleKey {
  teamId: string;
  keyId: string;
  /** PKCS#8 PEM of the "Sign in with Apple" key; the client secret is a JWT signed with it. */
  privateKey: string;
}

export interface FederationProvider {
  /** Slug in URLs: /federation/callback/<id>. */
  id: string;
  kind: ProviderKind;
  /** Shown on the button: "Continue with <name>". */
  name: string;
  clientId: string;
  /** Undefined for Apple, whose secret is minted from `apple`, and for public clients. */
  clientSecret: string | undefined;
  apple: AppleKey | undefined;
  /** OpenID Connect issuer (discovery) for the OIDC kinds. */
  issuer: string | undefined;
  scopes: string[];
  /** Whether the upstream's word that an email is verified is believed (account matching and creation). */
  trustEmailVerified: boolean;
  /** Whether a first sign-in may create an account; undefined follows SIGNUP_ENABLED. */
  allowSignup: boolean | undefined;
  /** PKCE (S256) on the authorization request; only turned off for an upstream that rejects it. */
  pkce: boolean;
  /** How the client secret is sent to the token endpoint (OIDC kinds; the others use their vendor's way). */
  tokenEndpointAuthMethod: 'client_secret_basic' | 'client_secret_post';
  /** Endpoint overrides for the plain OAuth kinds (GitHub Enterprise Server, a Graph API version). */
  endpoints: { authorization?: string; token?: string; api?: string };
}

export interface FederationConfig {
  providers: FederationProvider[];
  /** The file the providers were read from, if any (for start-up logs). */
  file: string | undefined;
}

const DEFAULT_FILE = 'config/federation.json';

const DEFAULT_NAMES: Record<ProviderKind, string> = {
  oidc: 'Single sign-on',
  google: 'Google',
  microsoft: 'Microsoft',
  apple: 'Apple',
  github: 'GitHub',
  facebook: 'Facebook',
  x: 'X',
};

const DEFAULT_SCOPES: Record<ProviderKind, string[]> = {
  oidc: ['openid', 'email', 'profile'],
  google: ['openid', 'email', 'profile'],
  microsoft: ['openid', 'email', 'profile'],
  apple: ['openid', 'email', 'name'],
  github: ['read:user', 'user:email'],
  facebook: ['email', 'public_profile'],
  x: ['users.read', 'tweet.read'],
};

// Microsoft's `email` claim is whatever the tenant's administrator typed, and it carries no
// email_verified claim: matching on it is opt-in.
const DEFAULT_TRUST: Record<ProviderKind, boolean> = {
  oidc: true,
  google: true,
  microsoft: false,
  apple: true,
  github: true,
  facebook: true,
  x: false,
};

// JSON has no comments: "_comment" fields are allowed and ignored.
const Comment = z.union([z.string(), z.array(z.string())]).optional();

const ProviderEntry = z.object({
  _comment: Comment,
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'lowercase letters, digits and dashes (at most 40)')
    // Path segments of our own routes under /interaction/:uid/federation/.
    .refine((id) => !['link', 'continue'].includes(id), 'is reserved'),
  kind: z.enum(PROVIDER_KINDS),
  name: z.string().trim().min(1).max(60).optional(),
  client_id: z.string().min(1),
  client_secret: z.string().min(1).optional(),
  issuer: z.url().optional(),
  /** Microsoft: a tenant id or domain (single-tenant apps); default "common". */
  tenant: z.string().regex(/^[A-Za-z0-9.-]+$/).optional(),
  team_id: z.string().min(1).optional(),
  key_id: z.string().min(1).optional(),
  private_key: z.string().min(1).optional(),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/)).min(1).optional(),
  trust_email_verified: z.boolean().optional(),
  allow_signup: z.boolean().optional(),
  pkce: z.boolean().optional(),
  token_endpoint_auth_method: z.enum(['client_secret_basic', 'client_secret_post']).optional(),
  authorization_endpoint: z.url().optional(),
  token_endpoint: z.url().optional(),
  api_base_url: z.url().optional(),
}).strict();
type ProviderEntry = z.infer<typeof ProviderEntry>;

const FileSchema = z.object({ _comment: Comment, providers: z.array(ProviderEntry) }).strict();

function isLoopback(url: URL): boolean {
  return url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]' || url.hostname.endsWith('.localhost');
}

/** "env:NAME" reads NAME from the environment; "file:PATH" reads a file; anything else is the value. */
function resolveSecret(raw: string | undefined, env: Record<string, string | undefined>, where: string, problems: string[]): string | undefined {
  if (raw === undefined) return undefined;
  if (raw.startsWith('env:')) {
    const value = env[raw.slice(4)];
    if (!value) problems.push(`${where}: environment variable ${raw.slice(4)} is not set`);
    return value;
  }
  if (raw.startsWith('file:')) {
    try {
      return fs.readFileSync(path.resolve(raw.slice(5)), 'utf8');
    } catch {
      problems.push(`${where}: cannot read ${raw.slice(5)}`);
      return undefined;
    }
  }
  return raw;
}

function toProvider(entry: ProviderEntry, env: Record<string, string | undefined>, where: string, problems: string[]): FederationProvider | undefined {
  const at = `${where} (${entry.id})`;
  const clientSecret = resolveSecret(entry.client_secret, env, `${at}.client_secret`, problems);
  let issuer = entry.issuer;
  if (entry.kind === 'google') issuer ??= 'https://accounts.google.com';
  if (entry.kind === 'apple') issuer ??= 'https://appleid.apple.com';
  if (entry.kind === 'microsoft') issuer ??= `https://login.microsoftonline.com/${entry.tenant ?? 'common'}/v2.0`;
  if (entry.kind === 'oidc' && !issuer) problems.push(`${at}: "issuer" is required for kind "oidc"`);
  if (!OIDC_KINDS.has(entry.kind) && entry.issuer) problems.push(`${at}: "issuer" applies to OpenID Connect kinds only`);
  if (issuer) {
    const url = new URL(issuer);
    if (url.protocol !== 'https:' && !isLoopback(url)) problems.push(`${at}: issuer must be https:// (got ${issuer})`);
  }
  let apple: AppleKey | undefined;
  if (entry.kind === 'apple') {
    const privateKey = resolveSecret(entry.private_key, env, `${at}.private_key`, problems);
    if (!entry.team_id || !entry.key_id || !entry.private_key) problems.push(`${at}: Apple needs "team_id", "key_id" and "private_key"`);
    else if (privateKey) apple = { teamId: entry.team_id, keyId: entry.key_id, privateKey };
  } else if (!clientSecret && entry.kind !== 'x') {
    // X allows public clients (PKCE only); every other upstream authenticates its clients.
    problems.push(`${at}: "client_secret" is required`);
  }
  const scopes = entry.scopes ?? DEFAULT_SCOPES[entry.kind];
  if (OIDC_KINDS.has(entry.kind) && !scopes.includes('openid')) problems.push(`${at}: scopes must include "openid"`);
  return {
    id: entry.id,
    kind: entry.kind,
    name: entry.name ?? DEFAULT_NAMES[entry.kind],
    clientId: entry.client_id,
    clientSecret,
    apple,
    issuer,
    scopes,
    trustEmailVerified: entry.trust_email_verified ?? DEFAULT_TRUST[entry.kind],
    allowSignup: entry.allow_signup,
    pkce: entry.pkce ?? true,
    // HTTP Basic is the default of OAuth 2.0 and of client registration; Apple takes POST only.
    tokenEndpointAuthMethod: entry.token_endpoint_auth_method ?? (entry.kind === 'apple' ? 'client_secret_post' : 'client_secret_basic'),
    endpoints: { authorization: entry.authorization_endpoint, token: entry.token_endpoint, api: entry.api_base_url },
  };
}

/** Providers configured by environment variables alone: <VENDOR>_CLIENT_ID and friends. */
function fromEnvironment(env: Record<string, string | undefined>): ProviderEntry[] {
  const entries: ProviderEntry[] = [];
  const simple: [ProviderKind, string][] = [['google', 'GOOGLE'], ['microsoft', 'MICROSOFT'], ['github', 'GITHUB'], ['facebook', 'FACEBOOK'], ['x', 'X']];
  for (const [kind, prefix] of simple) {
    const clientId = env[`${prefix}_CLIENT_ID`];
    if (!clientId) continue;
    entries.push({
      id: kind,
      kind,
      client_id: clientId,
      client_secret: env[`${prefix}_CLIENT_SECRET`],
      ...(kind === 'microsoft' && env.MICROSOFT_TENANT ? { tenant: env.MICROSOFT_TENANT } : {}),
    });
  }
  if (env.APPLE_CLIENT_ID) {
    entries.push({
      id: 'apple',
      kind: 'apple',
      client_id: env.APPLE_CLIENT_ID,
      team_id: env.APPLE_TEAM_ID,
      key_id: env.APPLE_KEY_ID,
      private_key: env.APPLE_PRIVATE_KEY ?? (env.APPLE_PRIVATE_KEY_FILE ? `file:${env.APPLE_PRIVATE_KEY_FILE}` : undefined),
    });
  }
  return entries;
}

/** Reads and checks every upstream provider; `problems` names each setting to fix. */
export function parseFederation(env: Record<string, string | undefined>): { config: FederationConfig; problems: string[] } {
  const problems: string[] = [];
  const entries: { entry: ProviderEntry; where: string }[] = [];
  const explicit = env.FEDERATION_CONFIG;
  const file = explicit ? path.resolve(explicit) : fs.existsSync(DEFAULT_FILE) ? path.resolve(DEFAULT_FILE) : undefined;
  if (file) {
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      problems.push(`FEDERATION_CONFIG: cannot read ${file} as JSON (${(err as Error).message})`);
    }
    if (raw !== undefined) {
      const parsed = FileSchema.safeParse(raw);
      if (!parsed.success) {
        for (const issue of parsed.error.issues) problems.push(`FEDERATION_CONFIG ${file}: ${issue.path.join('.') || 'file'}: ${issue.message}`);
      } else {
        for (const entry of parsed.data.providers) entries.push({ entry, where: `FEDERATION_CONFIG providers` });
      }
    }
  }
  for (const entry of fromEnvironment(env)) {
    const parsed = ProviderEntry.safeParse(entry);
    if (parsed.success) entries.push({ entry: parsed.data, where: `${entry.kind.toUpperCase()}_CLIENT_ID` });
    else problems.push(`${entry.kind.toUpperCase()}_CLIENT_ID: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  const providers: FederationProvider[] = [];
  const seen = new Set<string>();
  for (const { entry, where } of entries) {
    if (seen.has(entry.id)) {
      problems.push(`${where}: provider id "${entry.id}" is configured twice`);
      continue;
    }
    seen.add(entry.id);
    const provider = toProvider(entry, env, where, problems);
    if (provider) providers.push(provider);
  }
  return { config: { providers, file }, problems };
}
