// Reading and driving the hosted pages as a person does, shared by the browser suites.
import type { Page, Response } from 'playwright-core';

/** The visible text of the page's card (what a person reads), whitespace collapsed. */
export async function pageText(page: Page): Promise<string> {
  return (await page.locator('main').innerText()).replace(/\s+/g, ' ').trim();
}

/** Runs `action` (a click or submit) and returns the final, non-redirect document response. */
export async function submit(page: Page, action: () => Promise<void>): Promise<Response> {
  const final = page.waitForResponse(
    (r) => r.request().resourceType() === 'document' && r.frame() === page.mainFrame() && (r.status() < 300 || r.status() >= 400),
  );
  await action();
  const res = await final;
  await page.waitForLoadState('domcontentloaded');
  return res;
}

export async function goto(page: Page, url: string | URL): Promise<Response> {
  const res = await page.goto(String(url));
  if (!res) throw new Error(`no response for ${String(url)}`);
  return res;
}

export async function alertText(page: Page): Promise<string> {
  return (await page.getByRole('alert').first().innerText()).trim();
}

/** A mailbox address unique to this run, so repeated runs never meet each other's accounts. */
export function address(label: string): string {
  return `${label}-${Date.now().toString(36)}@example.test`;
}
