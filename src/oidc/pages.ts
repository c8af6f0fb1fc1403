// Pages oidc-provider renders through our templates: protocol errors that must not redirect,
// the RP-initiated logout confirmation and the signed-out page.
import type { ErrorOut, KoaContextWithOIDC } from 'oidc-provider';
import type { Services } from '../services.ts';

// Plain words for the errors people actually meet; others show the library's description.
const FRIENDLY: Record<string, string> = {
  invalid_redirect_uri: 'The application asked to send you back to an address it has not registered, so the request was stopped and nothing was sent to it.',
  invalid_client: 'The application that sent you here is not known to this sign-in service.',
  invalid_request: 'The application sent an invalid request.',
  server_error: 'Something went wrong on our side. Please try again.',
};

export async function renderProviderError(services: Services, ctx: KoaContextWithOIDC, out: ErrorOut, error: Error): Promise<void> {
  const code = out.error;
  if (code === 'server_error') services.logger.error({ err: error, requestId: ctx.state.requestId }, 'protocol request failed');
  ctx.type = 'html';
  await ctx.render('error', {
    heading: 'This sign-in request could not be completed',
    message: FRIENDLY[code] ?? out.error_description ?? 'The request was invalid.',
    code: [code, code !== 'server_error' ? out.error_description : undefined].filter(Boolean).join(': '),
    requestId: ctx.state.requestId,
  });
}

function clientName(ctx: KoaContextWithOIDC): string | undefined {
  const client = ctx.oidc.client;
  return client ? (client.clientName ?? client.clientId) : undefined;
}

export async function renderLogoutPrompt(_services: Services, ctx: KoaContextWithOIDC, form: string): Promise<void> {
  await ctx.render('logout', { host: ctx.host, clientName: clientName(ctx), form });
}

export async function renderLogoutSuccess(_services: Services, ctx: KoaContextWithOIDC): Promise<void> {
  await ctx.render('logged-out', { clientName: clientName(ctx) });
}
