// CAPTCHA from Cloudflare Turnstile, hCaptcha or Google reCAPTCHA (v2 checkbox), chosen by
// configuration. The browser solves the vendor's widget; we check the resulting token with the
// vendor's siteverify endpoint. Anything but a clear "success" from the vendor counts as a
// failed check, so an outage or a misconfigured secret never waves requests through.
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';

export type CaptchaProvider = 'turnstile' | 'hcaptcha' | 'recaptcha';

export type CaptchaConfig = NonNullable<Config['captcha']>;

export interface CaptchaWidget {
  provider: CaptchaProvider;
  siteKey: string;
  /** The vendor's script, loaded from its origin (our CSP allows it; no inline script needed). */
  scriptUrl: string;
  /** The form field the vendor's script fills with the token. */
  fieldName: string;
  /** The class the vendor's script looks for to render its widget. */
  cssClass: string;
}

export interface Captcha {
  widget(): CaptchaWidget;
  /** True only when the vendor confirms the token; false for missing tokens and vendor errors. */
  verify(token: string | undefined, remoteIp?: string): Promise<boolean>;
}

/** Extra Content-Security-Policy sources a vendor's widget needs, per directive. */
export interface CspSources {
  scriptSrc: string[];
  frameSrc: string[];
  styleSrc: string[];
  connectSrc: string[];
}

interface Vendor {
  scriptUrl: string;
  verifyUrl: string;
  fieldName: string;
  cssClass: string;
  csp: CspSources;
}

// Endpoints, field names and CSP sources as each vendor documents them.
const VENDORS: Record<CaptchaProvider, Vendor> = {
  turnstile: {
    scriptUrl: 'https://challenges.cloudflare.com/turnstile/v0/api.js',
    verifyUrl: 'https://challenges.cloudflare.com/turnstile/v0/siteverify',
    fieldName: 'cf-turnstile-response',
    cssClass: 'cf-turnstile',
    csp: { scriptSrc: ['https://challenges.cloudflare.com'], frameSrc: ['https://challenges.cloudflare.com'], styleSrc: [], connectSrc: [] },
  },
  hcaptcha: {
    scriptUrl: 'https://js.hcaptcha.com/1/api.js',
    verifyUrl: 'https://api.hcaptcha.com/siteverify',
    fieldName: 'h-captcha-response',
    cssClass: 'h-captcha',
    // hCaptcha asks for all four, and for the wildcard: its asset hosts change over time.
    csp: {
      scriptSrc: ['https://hcaptcha.com', 'https://*.hcaptcha.com'],
      frameSrc: ['https://hcaptcha.com', 'https://*.hcaptcha.com'],
      styleSrc: ['https://hcaptcha.com', 'https://*.hcaptcha.com'],
      connectSrc: ['https://hcaptcha.com', 'https://*.hcaptcha.com'],
    },
  },
  recaptcha: {
    scriptUrl: 'https://www.google.com/recaptcha/api.js',
    verifyUrl: 'https://www.google.com/recaptcha/api/siteverify',
    fieldName: 'g-recaptcha-response',
    cssClass: 'g-recaptcha',
    // api.js comes from www.google.com and loads the widget code from www.gstatic.com.
    csp: {
      scriptSrc: ['https://www.google.com/recaptcha/', 'https://www.gstatic.com/recaptcha/'],
      frameSrc: ['https://www.google.com/recaptcha/', 'https://recaptcha.google.com/recaptcha/'],
      styleSrc: [],
      connectSrc: [],
    },
  },
};

const DEFAULT_TIMEOUT_MS = 5000;
// Vendor tokens are a few kilobytes at most; anything larger is not worth forwarding.
const MAX_TOKEN_LENGTH = 8192;

/** The CSP sources the configured vendor needs (empty lists when CAPTCHA is off). */
export function captchaCspSources(captcha: Pick<CaptchaConfig, 'provider'> | undefined): CspSources {
  if (!captcha) return { scriptSrc: [], frameSrc: [], styleSrc: [], connectSrc: [] };
  const { csp } = VENDORS[captcha.provider];
  return { scriptSrc: [...csp.scriptSrc], frameSrc: [...csp.frameSrc], styleSrc: [...csp.styleSrc], connectSrc: [...csp.connectSrc] };
}

/** The form field that carries the token for the configured vendor. */
export function captchaFieldName(provider: CaptchaProvider): string {
  return VENDORS[provider].fieldName;
}

/** Undefined when CAPTCHA is not configured: callers then skip the check entirely. */
export function createCaptcha(
  config: CaptchaConfig | undefined,
  logger: Logger,
  options: { timeoutMs?: number } = {},
): Captcha | undefined {
  if (!config) return undefined;
  const vendor = VENDORS[config.provider];
  const verifyUrl = config.verifyUrl ?? vendor.verifyUrl;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const widget: CaptchaWidget = {
    provider: config.provider,
    siteKey: config.siteKey,
    scriptUrl: vendor.scriptUrl,
    fieldName: vendor.fieldName,
    cssClass: vendor.cssClass,
  };

  const verify = async (token: string | undefined, remoteIp?: string): Promise<boolean> => {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return false;
    const form = new URLSearchParams({ secret: config.secret, response: token });
    if (remoteIp) form.set('remoteip', remoteIp);
    try {
      const response = await fetch(verifyUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form,
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'error',
      });
      if (!response.ok) {
        logger.warn({ provider: config.provider, status: response.status }, 'captcha verification: vendor answered with an error status');
        return false;
      }
      const result = (await response.json()) as { success?: unknown; 'error-codes'?: unknown };
      if (result.success === true) return true;
      // Error codes tell an operator about a wrong secret or site key; a bad token is routine.
      const errorCodes = Array.isArray(result['error-codes']) ? result['error-codes'].filter((c): c is string => typeof c === 'string') : [];
      const configProblem = errorCodes.some((c) => /secret|sitekey/i.test(c));
      if (configProblem) logger.warn({ provider: config.provider, errorCodes }, 'captcha verification: vendor reports a configuration problem');
      return false;
    } catch (err) {
      // Network failure, timeout or a non-JSON answer: refuse rather than let the request through.
      logger.warn({ provider: config.provider, err: err instanceof Error ? err.message : String(err) }, 'captcha verification failed');
      return false;
    }
  };

  return { widget: () => ({ ...widget }), verify };
}
