// Absolute links to our own pages, for messages sent outside the browser.
import type { Config } from '../config.ts';

export type LinkPage = 'verify-email' | 'reset-password' | 'invitation' | 'forgot-password' | 'account';

export function pageLink(config: Pick<Config, 'issuer'>, page: LinkPage, token?: string): string {
  const url = new URL(`${config.issuer}/${page}`);
  if (token) url.searchParams.set('token', token);
  return url.toString();
}
