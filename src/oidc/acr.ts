// Authentication context classes and methods. `acr` says how strongly the person was
// authenticated; `amr` (RFC 8176) lists the methods used. Relying parties ask for a class with
// `acr_values`; asking for MFA inside a single-factor session makes the provider request the
// missing factor (step-up).
import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';

export const ACR_PASSWORD = 'urn:gatehouse:acr:pwd';
export const ACR_MFA = 'urn:gatehouse:acr:mfa';
export const ACR_VALUES = [ACR_PASSWORD, ACR_MFA];

// Methods that count as a second factor next to a password, and those that are multi-factor on
// their own (a passkey with user verification is something you have plus something you are/know).
const SECOND_FACTORS = new Set(['otp', 'sms', 'hwk', 'swk']);
const MULTI_FACTOR_ALONE = new Set(['hwk', 'swk']);

/** The amr a sign-in reports, with `mfa` added when more than one factor was used. */
export function withMfa(amr: string[]): string[] {
  const unique = [...new Set(amr.filter((m) => m !== 'mfa'))];
  const factors = unique.filter((m) => m === 'pwd' || m === 'email' || m === 'fed' || SECOND_FACTORS.has(m));
  const multi = factors.length >= 2 || unique.some((m) => MULTI_FACTOR_ALONE.has(m) && unique.includes('user'));
  return multi ? [...unique, 'mfa'] : unique;
}

export function acrFor(amr: string[]): string {
  return withMfa(amr).includes('mfa') ? ACR_MFA : ACR_PASSWORD;
}

function requestedAcrs(ctx: KoaContextWithOIDC): string[] {
  const raw = ctx.oidc.params?.acr_values;
  return typeof raw === 'string' ? raw.split(' ').filter(Boolean) : [];
}

/** True when the request asks for MFA and the current session has not done it. */
export function needsStepUp(ctx: KoaContextWithOIDC): boolean {
  const requested = requestedAcrs(ctx);
  if (!requested.includes(ACR_MFA) || requested.includes(ACR_PASSWORD)) return false;
  return ctx.oidc.session?.acr !== ACR_MFA && ctx.oidc.result?.login?.acr !== ACR_MFA;
}

export const STEP_UP_REASON = 'acr_values_mfa';

export const ACCOUNT_UNAVAILABLE_REASON = 'account_unavailable';

/**
 * oidc-provider's default prompts plus two login checks: a session whose account may no longer
 * sign in (suspended, password reset since) must sign in again, and a request for MFA inside a
 * single-factor session asks for the missing second factor.
 */
export function interactionPolicyWithStepUp(hasSecondFactor: (accountId: string) => Promise<boolean>): interactionPolicy.Prompt[] {
  const policy = interactionPolicy.base();
  const login = policy.find((p) => p.name === 'login')!;
  // findAccount refuses such accounts, so the session names an account but none was loaded;
  // without this check the later consent checks would run without an account.
  login.checks.splice(1, 0, new interactionPolicy.Check(ACCOUNT_UNAVAILABLE_REASON, 'the session account can no longer sign in', (ctx) =>
    (ctx.oidc.session?.accountId && !ctx.oidc.account ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT)));
  // acr_values is a request, not a demand (OIDC Core 3.1.2.1): an account without a second factor
  // finishes with the single-factor acr and the application decides what to do with it.
  login.checks.push(new interactionPolicy.Check(STEP_UP_REASON, 'a second factor is required by acr_values', async (ctx) => {
    const accountId = ctx.oidc.session?.accountId;
    return accountId && needsStepUp(ctx) && (await hasSecondFactor(accountId)) ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT;
  }));
  return policy;
}
