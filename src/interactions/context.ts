// What every interaction step needs: the current interaction (from oidc-provider's cookie),
// its client, the request's origin data for audit events, and a CSRF token for the page.
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { errors } from 'oidc-provider';
import { AppError } from '../errors.ts';
import type { AuditMeta } from '../domain/audit.ts';

export type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

function expired(): AppError {
  return new AppError('interaction_expired', 'This sign-in page has expired or was opened in another browser. Go back to the application and start again.', 400);
}

export async function loadInteraction(provider: Provider, ctx: Context): Promise<InteractionDetails> {
  try {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== ctx.params.uid) throw new errors.SessionNotFound('interaction mismatch');
    return details;
  } catch (err) {
    if (err instanceof errors.SessionNotFound) throw expired();
    throw err;
  }
}

type InteractionResult = NonNullable<InteractionDetails['result']>;

/**
 * Records a step's result on the interaction this request loaded, and returns where the browser
 * goes next: what provider.interactionResult does, without reading the interaction and its session
 * again (two storage round trips per form post). The request checked both when it loaded them.
 */
export async function saveInteractionResult(details: InteractionDetails, result: InteractionResult, { mergeWithLastSubmission }: { mergeWithLastSubmission: boolean }): Promise<string> {
  // The same remaining lifetime the provider would give it (its expiry does not move). One that
  // ran out while this request was busy (a long wait for a hashing slot) is as gone as one the
  // provider would no longer find.
  const remaining = details.remainingTTL;
  if (remaining <= 0) throw expired();
  details.result = mergeWithLastSubmission && !('error' in result) ? { ...details.lastSubmission, ...result } : result;
  await details.save(remaining);
  return details.returnTo;
}

export async function clientNameOf(provider: Provider, details: InteractionDetails): Promise<string> {
  const clientId = String(details.params.client_id);
  const client = await provider.Client.find(clientId);
  return client?.clientName ?? clientId;
}

export function auditMeta(ctx: Context, clientId?: string): AuditMeta {
  return { ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined, clientId, source: 'hosted-pages' };
}
