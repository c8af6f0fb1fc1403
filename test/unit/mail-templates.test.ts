// Every notification template renders with the product's name, full links in the text part and
// user-provided data escaped in the HTML part.
import { describe, expect, it } from 'vitest';
import { mailTemplates, renderMail, renderSms, type MailTemplateData, type MailTemplateName } from '../../src/notify/templates.ts';

const ctx = { productName: 'Acme Login', issuer: 'https://id.acme.test', env: 'test' as const };
const hostile = '<script>alert("x")</script> & Co';

// One valid data set per template, with every link a distinct URL so each can be looked for.
const samples: { [Name in MailTemplateName]: MailTemplateData<Name> } = {
  'verify-email': { name: hostile, link: 'https://id.acme.test/verify-email?token=verify123', expiresInHours: 24 },
  'signup-existing': { name: hostile, loginLink: 'https://id.acme.test/account', resetLink: 'https://id.acme.test/forgot-password' },
  'reset-password': { name: hostile, link: 'https://id.acme.test/reset-password?token=reset456', expiresInMinutes: 30 },
  'password-changed': { name: hostile, when: new Date('2026-03-04T05:06:07Z'), ip: '203.0.113.9' },
  'account-locked': { name: hostile, until: '2026-03-04T05:21:07Z', resetLink: 'https://id.acme.test/forgot-password' },
  invitation: { name: hostile, link: 'https://id.acme.test/invitation?token=invite789', expiresInDays: 7, inviterNote: `Welcome aboard ${hostile}` },
  'mfa-factor-added': { name: hostile, factor: `Authenticator app ${hostile}`, when: new Date('2026-03-04T05:06:07Z'), accountLink: 'https://id.acme.test/account?added' },
  'mfa-factor-removed': { name: hostile, factor: 'Passkey "Laptop"', when: new Date('2026-03-04T05:06:07Z'), accountLink: 'https://id.acme.test/account?removed' },
  'new-sign-in': { name: hostile, when: new Date('2026-03-04T05:06:07Z'), device: 'Chrome 142 on Linux', ip: '203.0.113.9', sessionsLink: 'https://id.acme.test/account?sessions' },
  'refresh-token-reuse': { name: hostile, when: new Date('2026-03-04T05:06:07Z'), app: `Mail ${hostile}`, ip: '203.0.113.9', sessionsLink: 'https://id.acme.test/account?reuse' },
  'refresh-token-new-device': { name: hostile, when: new Date('2026-03-04T05:06:07Z'), app: 'Mail', device: 'Firefox', ip: '203.0.113.9', refused: true, sessionsLink: 'https://id.acme.test/account?device' },
  'magic-link': { name: hostile, link: 'https://id.acme.test/magic-link?token=magic321', expiresInMinutes: 10 },
};

function linksOf(data: object): string[] {
  return Object.entries(data).filter(([key]) => /link$/i.test(key)).map(([, value]) => String(value));
}

describe('mail templates', () => {
  it('has a sample for every registered template', () => {
    expect(Object.keys(samples).sort()).toEqual(Object.keys(mailTemplates).sort());
  });

  for (const name of Object.keys(samples) as MailTemplateName[]) {
    describe(name, () => {
      it('renders a subject, an HTML part and a text part that name the product', async () => {
        const mail = await renderMail(name, samples[name], ctx);
        expect(mail.subject).toContain('Acme Login');
        expect(mail.subject).not.toMatch(/[\r\n]/);
        expect(mail.html).toMatch(/^<!doctype html>/);
        expect(mail.html).toContain('Acme Login');
        expect(mail.text).toContain('Acme Login');
        // The layout wraps every template: the footer names the issuer.
        expect(mail.text).toContain('https://id.acme.test');
      });

      it('escapes user-provided data in HTML and keeps it readable in text', async () => {
        const mail = await renderMail(name, samples[name], ctx);
        expect(mail.html).not.toContain('<script>');
        expect(mail.html).toContain('&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co');
        expect(mail.text).toContain('<script>alert("x")</script> & Co');
      });

      it('puts every link in full in the text part and as a link in the HTML part', async () => {
        const mail = await renderMail(name, samples[name], ctx);
        for (const link of linksOf(samples[name])) {
          expect(mail.text).toContain(link);
          expect(mail.html).toContain(`href="${link}"`);
        }
      });

      it('uses inline styles only (mail clients drop style sheets)', async () => {
        const mail = await renderMail(name, samples[name], ctx);
        expect(mail.html).not.toMatch(/<style|<link|<script/i);
        expect(mail.html).toMatch(/style="/);
      });
    });
  }

  it('greets by name when there is one and politely when there is none', async () => {
    const named = await renderMail('reset-password', { name: 'Ada', link: '/reset-password?token=t', expiresInMinutes: 30 }, ctx);
    const anonymous = await renderMail('reset-password', { name: null, link: '/reset-password?token=t', expiresInMinutes: 30 }, ctx);
    expect(named.text).toMatch(/^Hi Ada,$/m);
    expect(anonymous.text).toMatch(/^Hello,$/m);
  });

  it('resolves a path against the issuer, so links are always absolute', async () => {
    const mail = await renderMail('verify-email', { link: '/verify-email?token=abc', expiresInHours: 1 }, { ...ctx, issuer: 'https://acme.test/auth' });
    expect(mail.text).toContain('https://acme.test/auth/verify-email?token=abc');
    expect(mail.text).toContain('expires in 1 hour ');
  });

  it('refuses links that do not point at the issuer', async () => {
    await expect(renderMail('verify-email', { link: 'https://evil.test/verify-email?token=abc', expiresInHours: 1 }, ctx)).rejects.toThrow(/on the issuer/);
    await expect(renderMail('reset-password', { link: 'javascript:alert(1)', expiresInMinutes: 5 }, ctx)).rejects.toThrow(/on the issuer/);
  });

  it('refuses missing or malformed data when the message is rendered', async () => {
    // @ts-expect-error -- the link is required; this is what a caller bug looks like at run time.
    await expect(renderMail('verify-email', { expiresInHours: 1 }, ctx)).rejects.toThrow(/verify-email.*link/);
    await expect(renderMail('password-changed', { when: 'not a date' }, ctx)).rejects.toThrow(/when: must be a date/);
  });

  it('keeps a name from adding lines to the subject or body', async () => {
    const mail = await renderMail('password-changed', { name: 'Eve\r\nBcc: victim@example.com', when: new Date(0) }, ctx);
    expect(mail.text).toContain('Hi Eve Bcc: victim@example.com,');
    expect(mail.text).not.toMatch(/^Bcc:/m);
  });

  it('shows moments in UTC', async () => {
    const mail = await renderMail('password-changed', { when: '2026-03-04T05:06:07+02:00' }, ctx);
    expect(mail.text).toContain('4 March 2026 at 03:06 UTC');
  });
});

describe('SMS templates', () => {
  it('phone-code names the product and ends with an origin-bound code line', () => {
    const body = renderSms('phone-code', { code: '482913', expiresInMinutes: 5 }, ctx);
    expect(body).toContain('482913 is your Acme Login verification code');
    expect(body).toContain('5 minutes');
    expect(body.split('\n').at(-1)).toBe('@id.acme.test #482913');
  });

  it('phone-code refuses a code that is not a short token', () => {
    expect(() => renderSms('phone-code', { code: '12 34\n@evil.test #1234', expiresInMinutes: 5 }, ctx)).toThrow(/phone-code/);
  });
});
