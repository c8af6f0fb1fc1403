// The state of one round trip to an upstream provider, kept in the browser rather than in any
// process: an encrypted (AES-GCM, so also tamper-proof) cookie per flow, named after the hash of
// its `state`, read back only by the callback of the provider it was started for. Any instance
// behind the load balancer can finish what another started.
//
// The callback then hands what it learnt to the page that continues (the sign-in interaction or
// /account) in a second encrypted cookie scoped to that page's path, since the interaction
// cookie is not sent to the callback's path.
import crypto from 'node:crypto';
import type { Context } from 'koa';
import * as client from 'openid-client';
import { z } from 'zod';
import type { Services } from '../services.ts';
import type { FederationProvider } from './settings.ts';
import { upstreamsFor } from './registry.ts';

const FLOW_COOKIE = 'gatehouse.fed.';
const RESULT_COOKIE = 'gatehouse.fedresult';
const FLOW_TTL_SECONDS = 10 * 60;
const RESULT_TTL_SECONDS = 10 * 60;

export type FlowPurpose = { kind: 'login'; uid: string; remember: boolean } | { kind: 'link'; accountId: string };

const Purpose = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('login'), uid: z.string(), remember: z.boolean() }),
  z.object({ kind: z.literal('link'), accountId: z.string() }),
]);

const Flow = z.object({
  provider: z.string(),
  state: z.string(),
  nonce: z.string(),
  codeVerifier: z.string(),
  purpose: Purpose,
  expiresAt: z.number(),
});
export type Flow = z.infer<typeof Flow>;

const Identity = z.object({
  provider: z.string(),
  subject: z.string(),
  email: z.string().nullable(),
  emailVerified: z.boolean(),
  name: z.string().nullable(),
});

const Result = z.object({
  provider: z.string(),
  purpose: Purpose,
  identity: Identity.optional(),
  /** Set instead of `identity` when the round trip failed. */
  failure: z.string().optional(),
  expiresAt: z.number(),
});
export type FlowResult = z.infer<typeof Result>;

function secure(services: Services): boolean {
  return services.config.issuer.startsWith('https:');
}

function flowCookieName(state: string): string {
  return `${FLOW_COOKIE}${crypto.createHash('sha256').update(state).digest('base64url').slice(0, 16)}`;
}

export function callbackUri(services: Services, provider: FederationProvider): string {
  return `${services.config.issuer}/federation/callback/${provider.id}`;
}

/** Starts a round trip: remembers its secrets in this browser and returns the upstream URL. */
export async function beginFlow(services: Services, ctx: Context, provider: FederationProvider, purpose: FlowPurpose): Promise<URL> {
  const flow: Flow = {
    provider: provider.id,
    state: client.randomState(),
    nonce: client.randomNonce(),
    codeVerifier: client.randomPKCECodeVerifier(),
    purpose,
    expiresAt: Date.now() + FLOW_TTL_SECONDS * 1000,
  };
  const url = await upstreamsFor(services).authorizationUrl(provider, { redirectUri: callbackUri(services, provider), state: flow.state, nonce: flow.nonce, codeVerifier: flow.codeVerifier });
  ctx.cookies.set(flowCookieName(flow.state), services.secrets.encrypt(JSON.stringify(flow), `federation-flow:${flow.state}`), {
    httpOnly: true,
    secure: secure(services),
    // Apple answers with a cross-site form POST, which a SameSite=Lax cookie would not reach.
    // The cookie only opens the callback of this one flow, whose state it must match.
    sameSite: provider.kind === 'apple' && secure(services) ? 'none' : 'lax',
    path: `/federation/callback/${provider.id}`,
    maxAge: FLOW_TTL_SECONDS * 1000,
    overwrite: true,
  });
  return url;
}

function decode<T>(services: Services, schema: z.ZodType<T>, ciphertext: string | undefined, associatedData: string): T | undefined {
  if (!ciphertext) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(services.secrets.decryptText(ciphertext, associatedData)));
    return parsed.success ? parsed.data : undefined;
  } catch {
    // Tampered, truncated, or encrypted under a key that is gone: no flow.
    return undefined;
  }
}

/** The flow the callback's `state` belongs to, once: its cookie is cleared whatever the outcome. */
export function takeFlow(services: Services, ctx: Context, provider: FederationProvider, state: string | undefined): Flow | undefined {
  if (!state || state.length > 200) return undefined;
  const name = flowCookieName(state);
  const path = `/federation/callback/${provider.id}`;
  const flow = decode(services, Flow, ctx.cookies.get(name), `federation-flow:${state}`);
  ctx.cookies.set(name, null, { path });
  if (!flow || flow.provider !== provider.id || flow.state !== state || flow.expiresAt < Date.now()) return undefined;
  return flow;
}

function resultPath(purpose: FlowPurpose): string {
  return purpose.kind === 'login' ? `/interaction/${purpose.uid}` : '/account';
}

/** Where the browser continues after the callback. */
export function continuePath(purpose: FlowPurpose): string {
  return purpose.kind === 'login' ? `/interaction/${purpose.uid}/federation/continue` : '/account/linked/continue';
}

export function storeResult(services: Services, ctx: Context, result: Omit<FlowResult, 'expiresAt'>): void {
  const full: FlowResult = { ...result, expiresAt: Date.now() + RESULT_TTL_SECONDS * 1000 };
  ctx.cookies.set(RESULT_COOKIE, services.secrets.encrypt(JSON.stringify(full), 'federation-result'), {
    httpOnly: true,
    secure: secure(services),
    sameSite: 'lax',
    path: resultPath(result.purpose),
    maxAge: RESULT_TTL_SECONDS * 1000,
    overwrite: true,
  });
}

/** The callback's outcome for the page at hand, if it belongs to it and has not expired. */
export function readResult(services: Services, ctx: Context, expected: { kind: 'login'; uid: string } | { kind: 'link' }): FlowResult | undefined {
  const result = decode(services, Result, ctx.cookies.get(RESULT_COOKIE), 'federation-result');
  if (!result || result.expiresAt < Date.now() || result.purpose.kind !== expected.kind) return undefined;
  if (expected.kind === 'login' && result.purpose.kind === 'login' && result.purpose.uid !== expected.uid) return undefined;
  return result;
}

export function clearResult(ctx: Context, purpose: FlowPurpose): void {
  ctx.cookies.set(RESULT_COOKIE, null, { path: resultPath(purpose) });
}
