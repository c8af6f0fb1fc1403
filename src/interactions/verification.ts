// Pages opened from mailed links: email verification and invitations.
import type { Context } from 'koa';
import type { Services } from '../services.ts';
import { verifyEmail } from '../domain/email-verification.ts';
import { acceptInvitation, invitationDetails } from '../domain/invitations.ts';
import { INVALID_LINK } from '../domain/password-reset.ts';
import { csrfToken } from '../security/csrf.ts';
import { auditMeta } from './context.ts';
import { checkedForm, formErrors, text } from './forms.ts';

function invalid(ctx: Context, heading = 'This link cannot be used'): Promise<void> {
  ctx.status = 400;
  return ctx.render('notice', { heading, message: INVALID_LINK, problem: true });
}

export async function showVerifyEmail(services: Services, ctx: Context): Promise<void> {
  ctx.set('cache-control', 'no-store');
  const verified = await verifyEmail(services, ctx.query.token, auditMeta(ctx));
  if (!verified) return invalid(ctx);
  await ctx.render('notice', { heading: 'Email verified', message: `Thank you: ${verified.email} is verified. Go back to the application and sign in.` });
}

async function renderInvitation(services: Services, ctx: Context, token: string, invite: { email: string; name: string | null }, state: { errors?: Record<string, string>; name?: string } = {}): Promise<void> {
  await ctx.render('set-password', {
    heading: 'Set up your account',
    intro: `You were invited to ${services.config.productName} as ${invite.email}. Choose a password to finish.`,
    action: '/invitation',
    token,
    askName: true,
    name: state.name ?? invite.name ?? '',
    submitLabel: 'Create my account',
    csrfToken: csrfToken(ctx, services.config.issuer.startsWith('https:')),
    errors: state.errors ?? {},
    error: undefined,
  });
}

export async function showInvitation(services: Services, ctx: Context): Promise<void> {
  ctx.set('cache-control', 'no-store');
  const token = typeof ctx.query.token === 'string' ? ctx.query.token : '';
  const invite = await invitationDetails(services, token);
  if (!invite) return invalid(ctx);
  await renderInvitation(services, ctx, token, invite);
}

export async function submitInvitation(services: Services, ctx: Context): Promise<void> {
  const body = checkedForm(ctx);
  const token = text(body, 'token', 256);
  const name = text(body, 'name', 400);
  try {
    await acceptInvitation(services, token, { password: text(body, 'new_password'), name }, auditMeta(ctx));
  } catch (err) {
    const { errors, error, status } = formErrors(err);
    const invite = error ? undefined : await invitationDetails(services, token);
    if (!invite) return invalid(ctx);
    ctx.status = status;
    return renderInvitation(services, ctx, token, invite, { errors: { password: Object.values(errors)[0] ?? '' }, name });
  }
  await ctx.render('notice', { heading: 'Your account is ready', message: 'Your password is saved and your email address is verified. Go back to the application and sign in.' });
}
