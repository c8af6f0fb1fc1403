// Holds the live Provider and swaps it when the signing keys change. oidc-provider fixes its
// keystore at construction, and all of its state lives in the adapters, so a new instance with
// the new keys is equivalent to the old one; requests in flight finish on the instance they
// started with. Changes arrive over Redis pub/sub at once, and through a periodic check for
// deployments without Redis or messages lost while a connection was down.
import type Koa from 'koa';
import type { Middleware } from 'koa';
import mount from 'koa-mount';
import type Provider from 'oidc-provider';
import type { Redis } from 'ioredis';
import type { Services } from '../services.ts';
import { KEYS_CHANNEL, loadSigningKeys } from './keys.ts';
import { createProvider } from './provider.ts';
import { recordDirectAnswers, type ProviderListener } from './direct-endpoints.ts';

export class ProviderHost {
  readonly #services: Services;
  #provider!: Provider;
  #handler!: Middleware;
  #listener!: ProviderListener;
  #fingerprint = '';
  #timer: NodeJS.Timeout | undefined;
  #subscriber: Redis | undefined;
  #reloading: Promise<void> | undefined;

  constructor(services: Services) {
    this.#services = services;
  }

  get provider(): Provider {
    return this.#provider;
  }

  /** The current provider as a request listener of its own (see direct-endpoints.ts). */
  get listener(): ProviderListener {
    return this.#listener;
  }

  /** Koa middleware that always delegates to the current provider. */
  readonly middleware: Middleware = (ctx, next) => this.#handler(ctx, next);

  async start(): Promise<void> {
    await this.reload();
    this.#timer = setInterval(() => void this.reload(), this.#services.config.keysReloadSeconds * 1000);
    this.#timer.unref();
    if (this.#services.redis) {
      // A subscribed connection may only send (P)SUBSCRIBE and friends; auto-pipelining could put
      // a reconnect's SELECT behind the SUBSCRIBE, so it is off here.
      const subscriber = this.#services.redis.duplicate({ enableAutoPipelining: false });
      this.#subscriber = subscriber;
      subscriber.on('message', (channel: string) => {
        if (channel === KEYS_CHANNEL) void this.reload();
      });
      subscriber.on('error', (err: Error) => this.#services.logger.warn({ err: err.message }, 'key change subscription error'));
      await subscriber.subscribe(KEYS_CHANNEL);
    }
  }

  /** Re-read the keys; build a new provider only when the published set changed. */
  reload(): Promise<void> {
    this.#reloading ??= this.#doReload().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #doReload(): Promise<void> {
    try {
      const keys = await loadSigningKeys(this.#services);
      if (keys.fingerprint === this.#fingerprint) return;
      const provider = createProvider(this.#services, keys.jwks);
      provider.use(recordDirectAnswers);
      this.#provider = provider;
      // Provider extends Koa in v9; its types predate that, hence the cast.
      this.#handler = mount(provider as unknown as Koa);
      this.#listener = (provider as unknown as Koa).callback() as ProviderListener;
      if (this.#fingerprint) this.#services.logger.info({ keys: keys.fingerprint }, 'signing keys changed; provider reloaded');
      this.#fingerprint = keys.fingerprint;
    } catch (err) {
      // A failed reload keeps serving with the previous keys; only the first load is fatal.
      if (!this.#fingerprint) throw err;
      this.#services.logger.error({ err }, 'signing key reload failed');
    }
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#subscriber) await this.#subscriber.quit().catch(() => this.#subscriber?.disconnect());
  }
}
