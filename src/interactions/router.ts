// Routes of the hosted sign-in pages. Everything sits under /interaction/:uid because
// oidc-provider scopes its interaction cookie to that path.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { AppError } from '../errors.ts';
import { verifyCsrf } from '../security/csrf.ts';
import { loadInteraction } from './context.ts';
import { renderLogin, submitLogin } from './login.ts';
import { renderConsent, submitConsent } from './consent.ts';

export function interactionRouter(services: Services, host: ProviderHost): Router {
  const router = new Router({ prefix: '/interaction/:uid' });
  const body = bodyParser({ enableTypes: ['form'], formLimit: '32kb' });

  router.get('/', async (ctx) => {
    const details = await loadInteraction(host.provider, ctx);
    ctx.set('cache-control', 'no-store');
    if (details.prompt.name === 'login') return renderLogin(services, host, ctx, details);
    if (details.prompt.name === 'consent') return renderConsent(services, host, ctx, details);
    throw new AppError('unsupported_prompt', `This sign-in step (${details.prompt.name}) is not supported.`, 400);
  });

  router.post('/login', body, (ctx) => submitLogin(services, host, ctx));
  router.post('/consent', body, (ctx) => submitConsent(services, host, ctx));

  router.post('/abort', body, async (ctx) => {
    await loadInteraction(host.provider, ctx);
    verifyCsrf(ctx, (ctx.request as { body?: Record<string, unknown> }).body?._csrf);
    const redirectTo = await host.provider.interactionResult(ctx.req, ctx.res, {
      error: 'access_denied',
      error_description: 'The user cancelled the sign-in',
    }, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(redirectTo);
  });

  return router;
}
