// oidc-provider looks clients up through the adapter of the `Client` model. Ours reads the
// durable clients table (registered by the CLI / admin API) and decrypts the secret for the
// provider's constant-time comparison; dynamic registration is not enabled, so writes never come.
//
// The provider asks on every request that names a client (token, introspection, revocation,
// /auth), introspection twice (the caller and the token's owner), so answers are kept for a few
// seconds: a database round trip and a decryption per request become one per client per
// CACHE_TTL_MS. Clients change only through the CLI or the admin API, in other processes, so a
// change or deletion reaches every instance within that time (docs/decisions.md).
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { Services } from '../services.ts';
import { loadProviderClientMetadata } from '../domain/clients.ts';
import { ACCOUNT_CLIENT_ID, accountClientMetadata } from '../account/session.ts';
import { TtlCache } from '../ttl-cache.ts';

/** How long a looked-up client (or its absence) is reused, in milliseconds. */
export const CACHE_TTL_MS = 5_000;

export class ClientAdapter implements Adapter {
  readonly #services: Services;
  readonly #cache = new TtlCache<AdapterPayload | undefined>(CACHE_TTL_MS);

  constructor(services: Services) {
    this.#services = services;
  }

  /** The stored metadata, from the cache when it is fresh; each caller gets its own copy. */
  async #cached(id: string): Promise<AdapterPayload | undefined> {
    const payload = await this.#cache.get(id, () => loadProviderClientMetadata(this.#services, id) as Promise<AdapterPayload | undefined>);
    // The provider must not be able to change what later requests see.
    return payload === undefined ? undefined : structuredClone(payload);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    if (id === ACCOUNT_CLIENT_ID) return accountClientMetadata(this.#services) as AdapterPayload;
    return this.#cached(id);
  }

  async upsert(): Promise<void> {
    throw new Error('clients are registered with the gatehouse CLI or the admin API');
  }

  async findByUserCode(): Promise<undefined> {
    return undefined;
  }

  async findByUid(): Promise<undefined> {
    return undefined;
  }

  async consume(): Promise<void> {
    throw new Error('clients cannot be consumed');
  }

  async destroy(): Promise<void> {
    throw new Error('clients are deleted with the gatehouse CLI or the admin API');
  }

  async revokeByGrantId(): Promise<void> {
    // clients do not belong to grants
  }
}
