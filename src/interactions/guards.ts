// Abuse protection for the hosted forms: rate limits (shared by every instance through Redis or
// the database) and the CAPTCHA challenge.
import type { Context } from 'koa';
import type { Services } from '../services.ts';
import { AppError } from '../errors.ts';
import { tooManyRequests, type RateLimitRuleName } from '../security/rate-limit.ts';
import type { FormBody } from './forms.ts';

/** Counts one attempt against `rule`; refuses with 429 once the limit is used up. */
export async function limitAttempt(services: Services, rule: RateLimitRuleName, key: string): Promise<void> {
  const result = await services.rateLimits.consume(rule, key);
  if (!result.ok) throw tooManyRequests(result.retryAfterSeconds);
}

/**
 * Refuses with 429 while any of the rules is used up for its key, without counting this request.
 * The rules are looked at together (one round trip to the shared store for all of them); the
 * first one used up, in the order given, is the refusal.
 */
export async function refuseWhileLimited(services: Services, ...checks: [rule: RateLimitRuleName, key: string][]): Promise<void> {
  const states = await Promise.all(checks.map(([rule, key]) => services.rateLimits.peek(rule, key)));
  const blocked = states.findIndex((state) => state.blocked);
  if (blocked === -1) return;
  // consume() reports its own refusals to the metrics; a refusal made by peeking is counted here.
  services.metrics.rateLimitHit(checks[blocked]![0]);
  throw tooManyRequests(states[blocked]!.retryAfterSeconds);
}

/** Shows the CAPTCHA widget on the page being rendered. */
export function offerCaptcha(services: Services, ctx: Context): void {
  if (services.captcha) ctx.state.captcha = services.captcha.widget();
}

/** Checks the CAPTCHA answer in a form (when a vendor is configured). */
export async function checkCaptcha(services: Services, ctx: Context, form: FormBody): Promise<void> {
  const captcha = services.captcha;
  if (!captcha) return;
  const answer = form[captcha.widget().fieldName];
  if (!(await captcha.verify(typeof answer === 'string' ? answer : undefined, ctx.ip))) {
    throw new AppError('captcha_failed', 'Please complete the challenge to show you are not a robot, then try again.', 400);
  }
}

/** Login shows a CAPTCHA once an address has failed a few times. */
export async function loginNeedsCaptcha(services: Services, ip: string): Promise<boolean> {
  const config = services.config.captcha;
  if (!services.captcha || !config) return false;
  const failures = await services.rateLimits.peek('loginIp', ip);
  return failures.consumed >= config.loginAfterFailures;
}
