// CAPTCHA verification against a local fake of the vendors' siteverify endpoint (the verify URL
// is configurable for exactly this), the widget each vendor needs, and the CSP that lets it load.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import ejs from 'ejs';
import Koa from 'koa';
import { createLogger } from '../../src/logger.ts';
import { captchaCspSources, createCaptcha, type CaptchaConfig, type CaptchaProvider } from '../../src/security/captcha.ts';
import { securityHeaderSets, securityHeaders } from '../../src/security/headers.ts';
import { ROOT } from '../helpers/server.ts';

interface VendorRequest {
  method: string;
  contentType: string | undefined;
  form: Record<string, string>;
}

type VendorBehaviour = (res: http.ServerResponse) => void;

const json = (body: unknown, status = 200): VendorBehaviour => (res) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

let server: http.Server;
let verifyUrl: string;
let requests: VendorRequest[];
let behaviour: VendorBehaviour;
let logLines: string[];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
      requests.push({ method: req.method ?? '', contentType: req.headers['content-type'], form });
      behaviour(res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  verifyUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/siteverify`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  requests = [];
  logLines = [];
  behaviour = json({ success: true });
});

function captchaFor(provider: CaptchaProvider = 'turnstile', options: { timeoutMs?: number } = {}) {
  const config: CaptchaConfig = { provider, siteKey: 'site-key-1', secret: 'vendor-secret', verifyUrl, loginAfterFailures: 3 };
  const logger = createLogger('warn', { write: (line: string) => void logLines.push(line) });
  const captcha = createCaptcha(config, logger, options);
  if (!captcha) throw new Error('expected a captcha');
  return captcha;
}

const warnings = () => logLines.map((l) => JSON.parse(l) as { msg: string; level: number });

describe('captcha verification', () => {
  it('is off when not configured', () => {
    expect(createCaptcha(undefined, createLogger('silent'))).toBeUndefined();
  });

  it('accepts a token the vendor confirms, sending secret, response and remoteip as a form', async () => {
    expect(await captchaFor().verify('token-abc', '203.0.113.7')).toBe(true);
    expect(requests).toEqual([
      { method: 'POST', contentType: 'application/x-www-form-urlencoded', form: { secret: 'vendor-secret', response: 'token-abc', remoteip: '203.0.113.7' } },
    ]);
    expect(logLines).toEqual([]);
  });

  it('leaves remoteip out when the address is unknown', async () => {
    expect(await captchaFor('hcaptcha').verify('t')).toBe(true);
    expect(requests[0]!.form).toEqual({ secret: 'vendor-secret', response: 't' });
  });

  it('refuses a token the vendor rejects, without alarming the operator', async () => {
    behaviour = json({ success: false, 'error-codes': ['invalid-input-response'] });
    expect(await captchaFor().verify('bad-token')).toBe(false);
    expect(logLines).toEqual([]);
  });

  it('refuses and warns when the vendor reports a wrong secret', async () => {
    behaviour = json({ success: false, 'error-codes': ['invalid-input-secret'] });
    expect(await captchaFor('recaptcha').verify('token')).toBe(false);
    expect(warnings().some((w) => w.msg.includes('configuration problem'))).toBe(true);
    expect(logLines.join('\n')).not.toContain('vendor-secret');
  });

  it('refuses a missing, empty or oversized token without asking the vendor', async () => {
    const captcha = captchaFor();
    expect(await captcha.verify(undefined)).toBe(false);
    expect(await captcha.verify('')).toBe(false);
    expect(await captcha.verify('x'.repeat(100_000))).toBe(false);
    expect(requests).toEqual([]);
  });

  it('fails closed when the vendor answers 500', async () => {
    behaviour = json({ success: true }, 500);
    expect(await captchaFor().verify('token')).toBe(false);
    expect(warnings().some((w) => w.msg.includes('error status'))).toBe(true);
  });

  it('fails closed on an answer that is not JSON or says nothing', async () => {
    behaviour = (res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>maintenance</html>');
    };
    expect(await captchaFor().verify('token')).toBe(false);
    behaviour = json({});
    expect(await captchaFor().verify('token')).toBe(false);
    behaviour = json({ success: 'true' });
    expect(await captchaFor().verify('token')).toBe(false);
  });

  it('fails closed when the vendor does not answer in time', async () => {
    behaviour = (res) => setTimeout(() => json({ success: true })(res), 1500);
    const started = Date.now();
    expect(await captchaFor('turnstile', { timeoutMs: 200 }).verify('token')).toBe(false);
    expect(Date.now() - started).toBeLessThan(1200);
    expect(warnings().some((w) => w.msg.includes('captcha verification failed'))).toBe(true);
  });

  it('fails closed when the vendor cannot be reached', async () => {
    const config: CaptchaConfig = { provider: 'turnstile', siteKey: 'k', secret: 's', verifyUrl: 'http://127.0.0.1:1/siteverify', loginAfterFailures: 3 };
    const captcha = createCaptcha(config, createLogger('warn', { write: (line: string) => void logLines.push(line) }))!;
    expect(await captcha.verify('token')).toBe(false);
    expect(warnings()).toHaveLength(1);
  });
});

describe('captcha widget', () => {
  it.each([
    ['turnstile', 'cf-turnstile', 'cf-turnstile-response', 'https://challenges.cloudflare.com/turnstile/v0/api.js'],
    ['hcaptcha', 'h-captcha', 'h-captcha-response', 'https://js.hcaptcha.com/1/api.js'],
    ['recaptcha', 'g-recaptcha', 'g-recaptcha-response', 'https://www.google.com/recaptcha/api.js'],
  ] as const)('%s: class, field and script', (provider, cssClass, fieldName, scriptUrl) => {
    expect(captchaFor(provider).widget()).toEqual({ provider, siteKey: 'site-key-1', scriptUrl, fieldName, cssClass });
  });

  it('renders the vendor element and external script, or nothing', async () => {
    const file = path.join(ROOT, 'views', 'partials', 'captcha.ejs');
    const html = await ejs.renderFile(file, { captcha: { ...captchaFor('hcaptcha').widget(), siteKey: 'k"><script>' } });
    expect(html).toContain('<div class="h-captcha" data-sitekey="k&#34;&gt;&lt;script&gt;"></div>');
    expect(html).toContain('<script src="https://js.hcaptcha.com/1/api.js" async defer></script>');
    // No inline script: every <script> has a src.
    expect(html.match(/<script(?![^>]*\ssrc=)[^>]*>/g)).toBeNull();
    expect((await ejs.renderFile(file, {})).trim()).toBe('');
  });
});

describe('content security policy for the captcha vendor', () => {
  async function cspFor(provider: CaptchaProvider | undefined): Promise<Record<string, string[]>> {
    const app = new Koa();
    app.use(securityHeaders(securityHeaderSets('https://id.example.com', captchaCspSources(provider ? { provider } : undefined))));
    app.use((ctx) => {
      ctx.body = 'ok';
    });
    const listener = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => listener.once('listening', resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${(listener.address() as AddressInfo).port}/`);
      const header = res.headers.get('content-security-policy') ?? '';
      return Object.fromEntries(header.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name!, values]));
    } finally {
      listener.close();
    }
  }

  it('is unchanged without a captcha', async () => {
    expect(await cspFor(undefined)).toEqual({
      'default-src': ["'self'"],
      'script-src': ["'self'"],
      'style-src': ["'self'"],
      'img-src': ["'self'", 'data:'],
      'font-src': ["'self'"],
      'connect-src': ["'self'"],
      'object-src': ["'none'"],
      'base-uri': ["'none'"],
      'frame-ancestors': ["'none'"],
    });
  });

  it('admits Turnstile for scripts and frames only', async () => {
    const csp = await cspFor('turnstile');
    expect(csp['script-src']).toEqual(["'self'", 'https://challenges.cloudflare.com']);
    expect(csp['frame-src']).toEqual(["'self'", 'https://challenges.cloudflare.com']);
    expect(csp['style-src']).toEqual(["'self'"]);
    expect(csp['connect-src']).toEqual(["'self'"]);
    expect(csp['frame-ancestors']).toEqual(["'none'"]);
  });

  it('admits hCaptcha where its documentation asks', async () => {
    const csp = await cspFor('hcaptcha');
    for (const directive of ['script-src', 'frame-src', 'style-src', 'connect-src']) {
      expect(csp[directive]).toEqual(["'self'", 'https://hcaptcha.com', 'https://*.hcaptcha.com']);
    }
  });

  it('admits reCAPTCHA paths on Google hosts and nothing of the other vendors', async () => {
    const csp = await cspFor('recaptcha');
    expect(csp['script-src']).toEqual(["'self'", 'https://www.google.com/recaptcha/', 'https://www.gstatic.com/recaptcha/']);
    expect(csp['frame-src']).toEqual(["'self'", 'https://www.google.com/recaptcha/', 'https://recaptcha.google.com/recaptcha/']);
    expect(JSON.stringify(csp)).not.toMatch(/hcaptcha|cloudflare/);
  });
});
