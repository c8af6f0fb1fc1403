// "Continue as guest" on the login page of applications that allow it (client metadata
// `allow_guest`). Each press creates a new anonymous account, so it is rate limited per address
// and, when a CAPTCHA is configured, always challenged: nothing else stands between a script and
// an unbounded number of accounts.
import type { Context } from 'koa';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { createGuestAccount } from '../domain/guest-accounts.ts';
import { ACR_GUEST, clientAllowsGuests } from '../oidc/guest.ts';
import { AppError } from '../errors.ts';
import type { CaptchaWidget } from '../security/captcha.ts';
import { auditMeta, clientNameOf, loadInteraction, saveInteractionResult, type InteractionDetails } from './context.ts';
import { checkedForm } from './forms.ts';
import { checkCaptcha, limitAttempt } from './guards.ts';
import { renderLogin } from './login.ts';

export interface GuestOption {
  action: string;
  /** The CAPTCHA widget for the guest form, when a vendor is configured. */
  captcha: CaptchaWidget | undefined;
}

async function allowsGuests(host: ProviderHost, details: InteractionDetails): Promise<boolean> {
  return clientAllowsGuests(await host.provider.Client.find(String(details.params.client_id)));
}

/** What the login page needs to offer "Continue as guest"; undefined when the client does not allow it. */
export async function guestOption(services: Services, host: ProviderHost, details: InteractionDetails): Promise<GuestOption | undefined> {
  if (!(await allowsGuests(host, details))) return undefined;
  return { action: `/interaction/${details.uid}/guest`, captcha: services.captcha?.widget() };
}

/** POST /interaction/:uid/guest: creates a guest account and signs the browser in as it. */
export async function submitGuest(services: Services, host: ProviderHost, ctx: Context): Promise<void> {
  const details = await loadInteraction(host.provider, ctx);
  const form = checkedForm(ctx);
  if (details.prompt.name !== 'login') {
    ctx.status = 303;
    ctx.redirect(`/interaction/${details.uid}`);
    return;
  }
  const clientId = String(details.params.client_id);
  if (!(await allowsGuests(host, details))) {
    throw new AppError('guest_not_allowed', `${await clientNameOf(host.provider, details)} does not offer guest access. Sign in or create an account instead.`, 403);
  }
  await limitAttempt(services, 'guestIp', ctx.ip);
  try {
    await checkCaptcha(services, ctx, form);
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    ctx.status = 400;
    await renderLogin(services, host, ctx, details, { error: err.message });
    return;
  }
  const accountId = await createGuestAccount(services, auditMeta(ctx, clientId));
  // Remembered: a guest has no credential to sign in with again, so a session that ended with
  // the browser would lose the account. No amr: no authentication method was used.
  const redirectTo = await saveInteractionResult(details, {
    login: { accountId, acr: ACR_GUEST, remember: true },
  }, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(redirectTo);
}
