// Routes of the hosted sign-in pages. Everything sits under /interaction/:uid because
// oidc-provider scopes its interaction cookie to that path.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { AppError } from '../errors.ts';
import { verifyCsrf } from '../security/csrf.ts';
import { loadInteraction, saveInteractionResult } from './context.ts';
import { renderLogin, submitLogin } from './login.ts';
import { renderConsent, submitConsent } from './consent.ts';
import { finishLogin, pendingLogin, renderMfa, sendMfaSms, startStepUp, submitMfa } from './mfa.ts';
import { finishEnrollmentStep, showEnrollmentStep, submitEnrollmentStep } from './mfa-enroll.ts';
import { STEP_UP_REASON } from '../oidc/acr.ts';
import { continueMagicLink, openMagicLinkPage, submitMagicLinkRequest } from './magic-link.ts';
import { renderSignup, submitResend, submitSignup } from './signup.ts';
import { renderForgot, showReset, submitForgot, submitReset } from './recovery.ts';
import { showInvitation, showVerifyEmail, submitInvitation } from './verification.ts';
import { registerPasskeyInteractionRoutes } from './passkeys.ts';
import { registerFederationInteractionRoutes } from '../federation/interaction.ts';
import { submitGuest } from './guest.ts';

export function interactionRouter(services: Services, host: ProviderHost): Router {
  const router = new Router({ prefix: '/interaction/:uid' });
  const body = bodyParser({ enableTypes: ['form'], formLimit: '32kb' });
  // Before the login page's route: it offers the providers to that page ("Continue with ...").
  registerFederationInteractionRoutes(router, services, host, body);

  router.get('/', async (ctx) => {
    const details = await loadInteraction(host.provider, ctx);
    ctx.set('cache-control', 'no-store');
    if (details.prompt.name === 'login') {
      const pending = pendingLogin(details);
      if (pending?.enroll) return showEnrollmentStep(services, host, ctx, details, pending);
      if (pending?.enrolled) return finishLogin(services, ctx, details, pending);
      if (pending) return renderMfa(services, host, ctx, details, pending);
      if (details.prompt.reasons.includes(STEP_UP_REASON) && (await startStepUp(services, host, ctx, details))) return;
      return renderLogin(services, host, ctx, details);
    }
    if (details.prompt.name === 'consent') return renderConsent(services, host, ctx, details);
    throw new AppError('unsupported_prompt', `This sign-in step (${details.prompt.name}) is not supported.`, 400);
  });

  router.post('/login', body, (ctx) => submitLogin(services, host, ctx));
  router.post('/guest', body, (ctx) => submitGuest(services, host, ctx));
  router.post('/magic-link', body, (ctx) => submitMagicLinkRequest(services, host, ctx));
  router.get('/magic-link/open', (ctx) => openMagicLinkPage(services, host, ctx));
  router.post('/magic-link/continue', body, (ctx) => continueMagicLink(services, host, ctx));
  router.post('/mfa', body, (ctx) => submitMfa(services, host, ctx));
  router.post('/mfa/sms', body, (ctx) => sendMfaSms(services, host, ctx));
  router.post('/mfa/enroll', body, (ctx) => submitEnrollmentStep(services, host, ctx));
  router.post('/mfa/enroll/done', body, (ctx) => finishEnrollmentStep(services, host, ctx));
  router.get('/signup', (ctx) => renderSignup(services, host, ctx));
  router.post('/signup', body, (ctx) => submitSignup(services, host, ctx));
  router.post('/signup/resend', body, (ctx) => submitResend(services, host, ctx));
  router.get('/forgot', async (ctx) => {
    const details = await loadInteraction(host.provider, ctx);
    await renderForgot(services, ctx, { action: `/interaction/${details.uid}/forgot`, back: `/interaction/${details.uid}` });
  });
  router.post('/forgot', body, async (ctx) => {
    const details = await loadInteraction(host.provider, ctx);
    await submitForgot(services, ctx, { action: `/interaction/${details.uid}/forgot`, back: `/interaction/${details.uid}` }, String(details.params.client_id));
  });
  router.post('/consent', body, (ctx) => submitConsent(services, host, ctx));
  registerPasskeyInteractionRoutes(router, services, host, body);

  router.post('/abort', body, async (ctx) => {
    const details = await loadInteraction(host.provider, ctx);
    verifyCsrf(ctx, (ctx.request as { body?: Record<string, unknown> }).body?._csrf);
    const redirectTo = await saveInteractionResult(details, {
      error: 'access_denied',
      error_description: 'The user cancelled the sign-in',
    }, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(redirectTo);
  });

  return router;
}

/** Pages opened from mailed links, outside any sign-in. */
export function linksRouter(services: Services): Router {
  const router = new Router();
  const body = bodyParser({ enableTypes: ['form'], formLimit: '32kb' });
  router.get('/verify-email', (ctx) => showVerifyEmail(services, ctx));
  router.get('/forgot-password', (ctx) => renderForgot(services, ctx, { action: '/forgot-password', back: undefined }));
  router.post('/forgot-password', body, (ctx) => submitForgot(services, ctx, { action: '/forgot-password', back: undefined }));
  router.get('/reset-password', (ctx) => showReset(services, ctx));
  router.post('/reset-password', body, (ctx) => submitReset(services, ctx));
  router.get('/invitation', (ctx) => showInvitation(services, ctx));
  router.post('/invitation', body, (ctx) => submitInvitation(services, ctx));
  return router;
}
