// SMS delivery: Twilio when its credentials are set, otherwise JSON files under
// DATA_DIR/outbox/sms so development installs can read the codes they send.
import path from 'node:path';
import twilio from 'twilio';
import type RequestClient from 'twilio/lib/base/RequestClient.js';
// The SDK's typings are CommonJS with an `export default`, which an ES module sees as `.default`.
import type TwilioResponse from 'twilio/lib/http/response.js';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { PermanentDeliveryError, writeOutboxFile } from './mail-transport.ts';

export interface SmsMessage {
  to: string;
  body: string;
}

export interface SmsTransport {
  readonly kind: 'twilio' | 'outbox';
  send(message: SmsMessage): Promise<void>;
}

type TwilioConfig = NonNullable<Config['sms']['twilio']>;

// Bounded so one slow API call cannot hold a claimed batch past its lock (see notifier.ts).
const TWILIO_TIMEOUT_MS = 15_000;

/**
 * Sends the SDK's requests to another base URL (TWILIO_API_BASE_URL: a test double, or an egress
 * proxy). The SDK's edge/region settings can only change the host name under twilio.com, not the
 * scheme, host or port, so the URL is rewritten here, the one place every request goes through.
 */
class RebasedRequestClient extends twilio.RequestClient {
  readonly #base: URL;

  constructor(baseUrl: string, options: RequestClient.RequestClientOptions) {
    super(options);
    this.#base = new URL(baseUrl);
  }

  override request<TData>(opts: RequestClient.RequestOptions<TData>): Promise<TwilioResponse.default<TData>> {
    const original = new URL(opts.uri);
    const target = new URL(this.#base);
    target.pathname = `${this.#base.pathname.replace(/\/$/, '')}${original.pathname}`;
    target.search = original.search;
    return super.request({ ...opts, uri: target.href });
  }
}

interface TwilioError extends Error {
  status?: number;
}

function createTwilioTransport(settings: TwilioConfig): SmsTransport {
  const httpClient = settings.apiBaseUrl ? new RebasedRequestClient(settings.apiBaseUrl, { timeout: TWILIO_TIMEOUT_MS }) : undefined;
  const client = twilio(settings.accountSid, settings.authToken, {
    timeout: TWILIO_TIMEOUT_MS,
    // Settings come from our configuration only, not from TWILIO_* variables the SDK would read.
    env: {},
    ...(httpClient ? { httpClient } : {}),
  });
  // A messaging service picks the sender itself; a fixed number is used only without one.
  const sender = settings.messagingServiceSid ? { messagingServiceSid: settings.messagingServiceSid } : { from: settings.from! };
  return {
    kind: 'twilio',
    async send(message) {
      try {
        await client.messages.create({ to: message.to, body: message.body, ...sender });
      } catch (err) {
        // 400 means Twilio rejected this message (invalid or unreachable number, opted out);
        // sending it again gives the same answer. Auth, rate and server errors are retried.
        if ((err as TwilioError).status === 400) throw new PermanentDeliveryError((err as Error).message);
        throw err;
      }
    },
  };
}

function createOutboxTransport(config: Config, logger: Logger): SmsTransport {
  const dir = path.join(config.dataDir, 'outbox', 'sms');
  return {
    kind: 'outbox',
    async send(message) {
      const content = `${JSON.stringify({ to: message.to, body: message.body, created_at: new Date().toISOString() }, null, 2)}\n`;
      const file = await writeOutboxFile(dir, 'json', content);
      logger.info({ to: message.to, file }, 'SMS written to outbox (Twilio is not configured)');
    },
  };
}

export function createSmsTransport(config: Config, logger: Logger): SmsTransport {
  return config.sms.twilio ? createTwilioTransport(config.sms.twilio) : createOutboxTransport(config, logger);
}
