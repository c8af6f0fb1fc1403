// Consent: the user sees what the application asks for in plain words and allows or denies.
// Allow records the scopes in a Grant (kept by oidc-provider); Deny returns access_denied.
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { recordAudit } from '../domain/audit.ts';
import { findAccountById } from '../domain/users.ts';
import { csrfToken, verifyCsrf } from '../security/csrf.ts';
import { auditMeta, clientNameOf, loadInteraction, saveInteractionResult, type InteractionDetails } from './context.ts';

export const SCOPE_WORDS: Record<string, string> = {
  openid: 'Confirm who you are',
  profile: 'See your name',
  email: 'See your email address and whether it is verified',
  phone: 'See your phone number and whether it is verified',
  offline_access: 'Stay connected when you are not using it',
};

function describeScopes(details: InteractionDetails): string[] {
  const requested = String(details.params.scope ?? '').split(' ').filter(Boolean);
  const words = requested.map((s) => SCOPE_WORDS[s] ?? `Use the "${s}" permission`);
  const missingResource = (details.prompt.details.missingResourceScopes ?? {}) as Record<string, string[]>;
  for (const [resource, scopes] of Object.entries(missingResource)) {
    for (const scope of scopes) words.push(`Use the "${scope}" permission of ${resource}`);
  }
  return [...new Set(words)];
}

export async function renderConsent(services: Services, host: ProviderHost, ctx: Context, details: InteractionDetails): Promise<void> {
  const account = details.session?.accountId ? await findAccountById(services.knex, details.session.accountId) : undefined;
  await ctx.render('consent', {
    uid: details.uid,
    clientName: await clientNameOf(host.provider, details),
    // A guest's stored address is a placeholder; it is no one's to show.
    accountEmail: account?.isGuest ? 'a guest' : (account?.email ?? ''),
    scopes: describeScopes(details),
    csrfToken: csrfToken(ctx, services.config.issuer.startsWith('https:')),
  });
}

async function grantRequested(provider: Provider, details: InteractionDetails): Promise<string> {
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? (await provider.Grant.find(details.grantId))!
    : new provider.Grant({ accountId: session!.accountId, clientId: String(params.client_id) });
  const missingScope = prompt.details.missingOIDCScope as string[] | undefined;
  const missingClaims = prompt.details.missingOIDCClaims as string[] | undefined;
  const missingResource = prompt.details.missingResourceScopes as Record<string, string[]> | undefined;
  if (missingScope) grant.addOIDCScope(missingScope.join(' '));
  if (missingClaims) grant.addOIDCClaims(missingClaims);
  for (const [indicator, scopes] of Object.entries(missingResource ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
  return grant.save();
}

export async function submitConsent(services: Services, host: ProviderHost, ctx: Context): Promise<void> {
  const provider = host.provider;
  const details = await loadInteraction(provider, ctx);
  const body = (ctx.request as { body?: Record<string, unknown> }).body;
  verifyCsrf(ctx, body?._csrf);
  if (details.prompt.name !== 'consent') {
    ctx.redirect(`/interaction/${details.uid}`);
    return;
  }
  const clientId = String(details.params.client_id);
  const accountId = details.session?.accountId;
  const allow = body?.decision === 'allow';
  const meta = auditMeta(ctx, clientId);
  let result;
  if (allow) {
    const grantId = await grantRequested(provider, details);
    result = { consent: { grantId } };
  } else {
    result = { error: 'access_denied', error_description: 'The user denied the request' };
  }
  await recordAudit(services.knex, {
    type: allow ? 'consent.granted' : 'consent.denied',
    outcome: allow ? 'success' : 'failure',
    accountId,
    clientId,
    ip: meta.ip,
    userAgent: meta.userAgent,
    details: { scope: details.params.scope },
  });
  const redirectTo = await saveInteractionResult(details, result, { mergeWithLastSubmission: true });
  ctx.status = 303;
  ctx.redirect(redirectTo);
}
