// Email sign-in links: a primary sign-in method (amr "email"). The link is single use, stored
// hashed and short-lived; it belongs to one authorization request, and by default only the
// browser that asked for it may use it (a cookie secret whose hash the link's record keeps), so
// a link forwarded or intercepted elsewhere signs nobody in. When cross-browser use is allowed,
// opening the link elsewhere approves the request and the original browser continues.
import { findAccountRow, findAccountRowByEmail } from '../db/accounts.ts';
import { consumeTokenById, findUsableTokenByData, mergeTokenData, recentTokens } from '../db/one-time-tokens.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { emailOrUndefined } from './emails.ts';
import { lockState } from './lockout.ts';
import { hashToken, issueToken, peekToken } from './one-time-tokens.ts';
import type { LifecycleServices } from './signup.ts';
import { maySignIn } from './users.ts';
import { wholeUnits } from './durations.ts';

const COOLDOWN_SECONDS = 60;

export async function requestMagicLink(services: LifecycleServices, rawEmail: string, request: { uid: string; browserSecret: string; linkBase: string }, meta: AuditMeta = {}): Promise<void> {
  const email = emailOrUndefined(rawEmail);
  const { config } = services;
  const sent = await services.knex.transaction(async (trx) => {
    const account = email ? await findAccountRowByEmail(trx, email) : undefined;
    if (!account || !maySignIn(account, config.requireVerifiedEmail) || lockState(account).locked) {
      await recordAudit(trx, { type: 'login.magic_link_requested', outcome: 'failure', accountId: account?.id, ...auditContext(meta, { reason: account ? 'not_allowed' : 'unknown_email' }) });
      return false;
    }
    if ((await recentTokens(trx, account.id, 'magic_link', COOLDOWN_SECONDS)).count > 0) return false;
    const token = await issueToken(trx, 'magic_link', account.id, config.magicLink.ttl, { uid: request.uid, browser: hashToken(request.browserSecret), approved: false });
    const link = new URL(request.linkBase);
    link.searchParams.set('token', token);
    await services.notifier.queueMail(trx, { to: account.email, template: 'magic-link', data: { name: account.name, link: link.toString(), expiresInMinutes: wholeUnits(config.magicLink.ttl, 60) } });
    await recordAudit(trx, { type: 'login.magic_link_requested', outcome: 'success', accountId: account.id, ...auditContext(meta) });
    return true;
  });
  if (sent) services.notifier.kick();
}

export type MagicLinkOutcome =
  | { kind: 'signed-in'; accountId: string }
  | { kind: 'approved-elsewhere' }
  | { kind: 'invalid' };

/**
 * Opening a link. In the browser that asked (same interaction, matching cookie secret) the link
 * is used up and signs the account in; in another browser it only approves the request, when
 * configuration allows that.
 */
export async function openMagicLink(services: LifecycleServices, token: unknown, browser: { uid: string | undefined; secret: string | undefined }, meta: AuditMeta = {}): Promise<MagicLinkOutcome> {
  return services.knex.transaction(async (trx) => {
    const row = await peekToken(trx, 'magic_link', token);
    const account = row?.account_id ? await findAccountRow(trx, row.account_id) : undefined;
    if (!row || !account || !maySignIn(account, services.config.requireVerifiedEmail) || lockState(account).locked) return { kind: 'invalid' } as const;
    const sameBrowser = browser.uid === row.data.uid && browser.secret !== undefined && hashToken(browser.secret) === row.data.browser;
    if (sameBrowser) {
      if (!(await consumeTokenById(trx, row.id))) return { kind: 'invalid' } as const;
      await recordAudit(trx, { type: 'login.magic_link', outcome: 'success', accountId: account.id, ...auditContext(meta) });
      return { kind: 'signed-in', accountId: account.id } as const;
    }
    if (services.config.magicLink.sameBrowser) {
      await recordAudit(trx, { type: 'login.magic_link', outcome: 'failure', accountId: account.id, ...auditContext(meta, { reason: 'other_browser' }) });
      return { kind: 'invalid' } as const;
    }
    await mergeTokenData(trx, row.id, { approved: true });
    await recordAudit(trx, { type: 'login.magic_link_approved', outcome: 'success', accountId: account.id, ...auditContext(meta) });
    return { kind: 'approved-elsewhere' } as const;
  });
}

/** In the browser that asked, after the link was opened elsewhere: the approved account. */
export async function continueAfterApproval(services: LifecycleServices, uid: string, browserSecret: string | undefined, meta: AuditMeta = {}): Promise<string | undefined> {
  if (!browserSecret) return undefined;
  return services.knex.transaction(async (trx) => {
    const row = await findUsableTokenByData(trx, 'magic_link', { uid, browser: hashToken(browserSecret), approved: true });
    if (!row?.account_id || !(await consumeTokenById(trx, row.id))) return undefined;
    await recordAudit(trx, { type: 'login.magic_link', outcome: 'success', accountId: row.account_id, ...auditContext(meta, { approved_elsewhere: true }) });
    return row.account_id;
  });
}
