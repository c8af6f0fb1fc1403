// GET /account/activity: the signed-in person's security activity, newest first, 50 events a
// page with an "Older" link carrying the cursor. Read-only, so no form and no CSRF token.
import type Router from '@koa/router';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { parseActivityCursor, securityActivity } from '../domain/security-activity.ts';
import { ACCOUNT_CLIENT_ID, currentAccount } from './session.ts';

/** Registers GET /activity on the /account router. */
export function registerActivityRoutes(router: Router, services: Services, host: ProviderHost): void {
  router.get('/activity', async (ctx) => {
    const signedIn = await currentAccount(services, host, ctx);
    if (!signedIn) {
      ctx.status = 303;
      ctx.redirect('/account');
      return;
    }
    const before = parseActivityCursor(ctx.query.before);
    const page = await securityActivity(services, signedIn.account.id, {
      before,
      appNames: { [ACCOUNT_CLIENT_ID]: 'your account page' },
    });
    ctx.set('cache-control', 'no-store');
    await ctx.render('account-activity', {
      entries: page.entries,
      olderHref: page.older ? `/account/activity?before=${encodeURIComponent(page.older)}` : undefined,
      firstPage: before === undefined,
      geoipEnabled: services.geoip !== undefined,
    });
  });
}
