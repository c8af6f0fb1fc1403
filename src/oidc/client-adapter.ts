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

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}

export class ClientAdapter implements Adapter {
  readonly #services: Services;
  readonly #cache = new TtlCache<AdapterPayload | undefined>(CACHE_TTL_MS);

  constructor(services: Services) {
    this.#services = services;
  }

  /**
   * The stored metadata, from the cache when it is fresh. Every caller gets the same object,
   * frozen, so the provider cannot change what later requests see: a copy per request cost more
   * than the rest of the lookup (docs/performance.md), and the provider only reads it (it hashes
   * it to find its own parsed client, and copies what it keeps when it parses a new one).
   */
  #cached(id: string): Promise<AdapterPayload | undefined> {
    return this.#cache.get(id, async () => deepFreeze(await loadProviderClientMetadata(this.#services, id) as AdapterPayload | undefined));
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
