// A real Chromium (playwright-core + the system browser) driving Gatehouse's hosted pages the way
// a person does: by visible labels and button names, never by internal selectors.
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A fresh, isolated browser profile (no cookies) with one page. */
export async function newPage(browser: Browser): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(15_000);
  const page = await context.newPage();
  return { context, page };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Wait for the hosted login page of `clientName` ("Sign in to <client name>"). */
export async function expectLoginPage(page: Page, clientName: string): Promise<void> {
  await page.getByRole('heading', { name: new RegExp(`Sign in to ${escapeRegExp(clientName)}`) }).waitFor();
  await page.getByLabel('Email', { exact: true }).waitFor();
  await page.getByLabel('Password', { exact: true }).waitFor();
}

/** Fill and submit the login form on the current page. Does not wait for what comes next. */
export async function signIn(page: Page, creds: { email: string; password: string; remember?: boolean }): Promise<void> {
  await page.getByLabel('Email', { exact: true }).fill(creds.email);
  await page.getByLabel('Password', { exact: true }).fill(creds.password);
  const remember = page.getByLabel('Remember me');
  if (creds.remember) await remember.check();
  else await remember.uncheck();
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

/** Answer the consent page. */
export async function consent(page: Page, answer: 'allow' | 'deny'): Promise<void> {
  await page.getByRole('button', { name: answer === 'allow' ? 'Allow' : 'Deny', exact: true }).click();
}

/** True when the current page shows the consent buttons. */
export async function isConsentPage(page: Page): Promise<boolean> {
  const allow = page.getByRole('button', { name: 'Allow', exact: true });
  const deny = page.getByRole('button', { name: 'Deny', exact: true });
  return (await allow.count()) === 1 && (await deny.count()) === 1;
}

/** Wait until the browser is on `uri` (origin + path, any query) and return the full URL. */
export async function waitForRedirect(page: Page, uri: string, timeout = 15_000): Promise<URL> {
  const target = new URL(uri);
  await page.waitForURL((u) => u.origin === target.origin && u.pathname === target.pathname, { timeout });
  return new URL(page.url());
}

/** Collect the URLs of every page the browser rendered (HTTP 200 main-frame documents). */
export function recordRenderedPages(page: Page): string[] {
  const rendered: string[] = [];
  page.on('response', (res) => {
    if (res.request().resourceType() === 'document' && res.frame() === page.mainFrame() && res.status() === 200) {
      rendered.push(res.url());
    }
  });
  return rendered;
}

/**
 * What is wrong with a page's Content-Security-Policy for Gatehouse's pages: scripts must not
 * allow 'unsafe-inline' and the page must not be framed (frame-ancestors 'none'). Empty when fine.
 */
export function cspProblems(header: string | undefined): string[] {
  if (!header) return ['no Content-Security-Policy header'];
  const directives = new Map<string, string[]>();
  for (const part of header.split(';')) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name) directives.set(name.toLowerCase(), values);
  }
  const problems: string[] = [];
  const scriptSrc = directives.get('script-src') ?? directives.get('default-src');
  if (!scriptSrc) problems.push(`neither script-src nor default-src in: ${header}`);
  else if (scriptSrc.includes("'unsafe-inline'")) problems.push(`scripts allow 'unsafe-inline': ${header}`);
  const frameAncestors = directives.get('frame-ancestors');
  if (frameAncestors?.join(' ') !== "'none'") problems.push(`frame-ancestors is not 'none': ${header}`);
  return problems;
}
