// How long a sign-in session lives: a sliding idle timeout, capped by an absolute lifetime counted
// from the sign-in, both longer with "Remember me" (a non-transient session).
import type { Config } from '../config.ts';

export function sessionTtl(config: Pick<Config, 'ttl'>, session: { transient?: boolean; loginTs?: number }): number {
  const remember = !session.transient;
  const idle = remember ? config.ttl.rememberIdle : config.ttl.sessionIdle;
  const absolute = remember ? config.ttl.rememberAbsolute : config.ttl.sessionAbsolute;
  const now = Math.floor(Date.now() / 1000);
  const left = (session.loginTs ?? now) + absolute - now;
  return Math.max(1, Math.min(idle, left));
}

