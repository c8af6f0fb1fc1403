// "Email me a sign-in link" on the login page.
import crypto from 'node:crypto';
import type { Context } from 'koa';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { continueAfterApproval, openMagicLink, requestMagicLink } from '../domain/magic-link.ts';
import { AppError } from '../errors.ts';
import { csrfToken } from '../security/csrf.ts';
import { auditMeta, loadInteraction, type InteractionDetails } from './context.ts';
import { checkedForm, formErrors, text } from './forms.ts';
import { checkCaptcha, limitAttempt } from './guards.ts';
import { afterFirstFactor } from './mfa.ts';

const COOKIE = 'gatehouse.magic';

function secure(services: Services): boolean {
  return services.config.issuer.startsWith('https:');
}

function browserSecret(ctx: Context): string | undefined {
  return ctx.cookies.get(COOKIE, { signed: true }) ?? undefined;
}

async function renderSent(services: Services, ctx: Context, uid: string): Promise<void> {
  const crossBrowser = !services.config.magicLink.sameBrowser;
  await ctx.render('check-email', {
    message: crossBrowser
      ? 'If an account can sign in with this address, we sent it a sign-in link. Open it on any device, then press Continue here.'
      : 'If an account can sign in with this address, we sent it a sign-in link. Open it in this browser to continue.',
    email: '',
    resendAction: undefined,
    csrfToken: csrfToken(ctx, secure(services)),
    continueAction: crossBrowser ? `/interaction/${uid}/magic-link/continue` : undefined,
    backHref: `/interaction/${uid}`,
    backLabel: 'Back to sign in',
  });
}

export async function submitMagicLinkRequest(services: Services, host: ProviderHost, ctx: Context): Promise<void> {
  if (!services.config.magicLink.enabled) throw new AppError('not_found', 'Sign-in links are turned off.', 404);
  const details = await loadInteraction(host.provider, ctx);
  const form = checkedForm(ctx);
  await limitAttempt(services, 'recoveryIp', ctx.ip);
  try {
    await checkCaptcha(services, ctx, form);
  } catch (err) {
    const { error, status } = formErrors(err);
    ctx.status = status;
    await ctx.render('notice', { heading: 'Sign-in link not sent', message: error ?? '', problem: true, links: [{ href: `/interaction/${details.uid}`, label: 'Back to sign in' }] });
    return;
  }
  const secret = crypto.randomBytes(32).toString('base64url');
  ctx.cookies.set(COOKIE, secret, { httpOnly: true, sameSite: 'lax', signed: true, secure: secure(services), path: `/interaction/${details.uid}`, maxAge: services.config.magicLink.ttl * 1000, overwrite: true });
  await requestMagicLink(services, text(form, 'email', 320), {
    uid: details.uid,
    browserSecret: secret,
    linkBase: `${services.config.issuer}/interaction/${details.uid}/magic-link/open`,
  }, auditMeta(ctx, String(details.params.client_id)));
  await renderSent(services, ctx, details.uid);
}

async function signedIn(services: Services, host: ProviderHost, ctx: Context, details: InteractionDetails, accountId: string): Promise<void> {
  ctx.cookies.set(COOKIE, null, { path: `/interaction/${details.uid}` });
  // The email link is the first factor; accounts with a second factor are asked for it next.
  await afterFirstFactor(services, host, ctx, details, { accountId, amr: ['email'], remember: false });
}

export async function openMagicLinkPage(services: Services, host: ProviderHost, ctx: Context): Promise<void> {
  ctx.set('cache-control', 'no-store');
  let details: InteractionDetails | undefined;
  try {
    details = await loadInteraction(host.provider, ctx);
  } catch {
    details = undefined; // another browser: the interaction cookie is not here
  }
  const outcome = await openMagicLink(services, ctx.query.token, { uid: details?.uid, secret: browserSecret(ctx) }, auditMeta(ctx));
  if (outcome.kind === 'signed-in' && details) return signedIn(services, host, ctx, details, outcome.accountId);
  if (outcome.kind === 'approved-elsewhere') {
    await ctx.render('notice', { heading: 'Sign-in approved', message: 'Go back to the browser where you asked for the link and press Continue.' });
    return;
  }
  ctx.status = 400;
  await ctx.render('notice', {
    heading: 'This link cannot be used',
    message: services.config.magicLink.sameBrowser
      ? 'The link is invalid, has expired or was already used, or it was opened in another browser than the one that asked for it. Ask for a new one from the sign-in page.'
      : 'The link is invalid, has expired or was already used. Ask for a new one from the sign-in page.',
    problem: true,
  });
}

export async function continueMagicLink(services: Services, host: ProviderHost, ctx: Context): Promise<void> {
  const details = await loadInteraction(host.provider, ctx);
  checkedForm(ctx);
  const accountId = await continueAfterApproval(services, details.uid, browserSecret(ctx), auditMeta(ctx, String(details.params.client_id)));
  if (!accountId) {
    await renderSent(services, ctx, details.uid);
    return;
  }
  await signedIn(services, host, ctx, details, accountId);
}
