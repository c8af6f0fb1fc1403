// Adding a passkey from /account. The page's script asks for creation options, lets the browser
// make the credential and posts it back; removal is the generic factor removal of the account
// page. Both endpoints need the signed-in session, and the POST its CSRF token (in a header,
// since the body is JSON).
import type Router from '@koa/router';
import type { Middleware } from 'koa';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { registrationOptions, verifyRegistration } from '../domain/webauthn.ts';
import { AppError } from '../errors.ts';
import { verifyCsrf } from '../security/csrf.ts';
import { auditMeta } from '../interactions/context.ts';
import { jsonBody, jsonEndpoint, passkeyJsonBody } from '../interactions/passkeys.ts';
import { currentAccount, type SignedIn } from './session.ts';

/**
 * GET /passkeys/options and POST /passkeys under the /account router. `_formBody` is that
 * router's form parser: these endpoints take JSON and bring their own parser.
 */
export function registerPasskeyAccountRoutes(router: Router, services: Services, host: ProviderHost, _formBody: Middleware): void {
  const json = passkeyJsonBody();

  const signedIn = async (ctx: Parameters<Middleware>[0]): Promise<SignedIn> => {
    const current = await currentAccount(services, host, ctx);
    if (!current) throw new AppError('login_required', 'You are signed out. Reload the page and sign in again.', 401);
    return current;
  };

  router.get('/passkeys/options', jsonEndpoint(async (ctx) => {
    const { account, sessionUid } = await signedIn(ctx);
    ctx.body = await registrationOptions(services, account, sessionUid);
  }));

  router.post('/passkeys', json, jsonEndpoint(async (ctx) => {
    const { account, sessionUid } = await signedIn(ctx);
    verifyCsrf(ctx, ctx.get('x-csrf-token'));
    const body = jsonBody(ctx);
    await verifyRegistration(services, { accountId: account.id, sessionUid }, { name: body.name, response: body.response }, auditMeta(ctx));
    ctx.body = { redirect: '/account?done=passkey-added' };
  }));
}
