// Guest sign-ins as the protocol sees them. A guest session reports its own acr (no factor was
// checked, so it must never read as a password sign-in), and it only reaches applications that
// accept guests: single sign-on from a guest session into any other application asks for a real
// sign-in first, so an application that never opted in never meets an anonymous account.
import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { ACCOUNT_CLIENT_ID } from '../account/session.ts';

/** The acr of a guest sign-in; RFC 8176 has no amr value for "nothing was checked", so none is sent. */
export const ACR_GUEST = 'urn:gatehouse:acr:guest';

export const GUEST_NOT_ALLOWED_REASON = 'guest_not_allowed';

/** Whether the client's login page offers "Continue as guest" (client metadata `allow_guest`). */
export function clientAllowsGuests(client: unknown): boolean {
  return (client as { allow_guest?: unknown } | undefined)?.allow_guest === true;
}

/** Whether the client accepts a session of a guest: guest clients, and /account (to save it). */
function clientAcceptsGuestSessions(client: { clientId: string } | undefined): boolean {
  return client !== undefined && (client.clientId === ACCOUNT_CLIENT_ID || clientAllowsGuests(client));
}

/** Adds the guest check to the login prompt of `policy` (oidc-provider's prompt list). */
export function withGuestCheck(policy: interactionPolicy.Prompt[]): interactionPolicy.Prompt[] {
  const login = policy.find((p) => p.name === 'login');
  if (!login) throw new Error('the interaction policy has no login prompt');
  login.checks.push(new interactionPolicy.Check(GUEST_NOT_ALLOWED_REASON, 'this client does not accept guest accounts', (ctx: KoaContextWithOIDC) => {
    const guest = (ctx.oidc.account as { guest?: unknown } | undefined)?.guest === true;
    return guest && !clientAcceptsGuestSessions(ctx.oidc.client) ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT;
  }));
  return policy;
}
