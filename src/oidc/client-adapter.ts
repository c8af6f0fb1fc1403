// oidc-provider looks clients up through the adapter of the `Client` model. Ours reads the
// durable clients table (registered by the CLI / admin API) and decrypts the secret for the
// provider's constant-time comparison; dynamic registration is not enabled, so writes never come.
//
// The provider asks on every request that names a client (token, introspection, revocation,
// /auth), introspection twice (the caller and the token's owner), so answers are kept for a few
// seconds: a database round trip and a decryption per request become one per client per
// CACHE_TTL_MS. Clients change only through the CLI or the admin API, in other processes, so a
// change or deletion reaches every instance within that time (docs/decisions.md).
import type Provider from 'oidc-provider';
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

type ProviderClient = NonNullable<Awaited<ReturnType<Provider['Client']['find']>>>;

/**
 * oidc-provider finds its parsed copy of a stored client by hashing the metadata (JSON and
 * SHA-256 of the whole document) on every lookup: a token request looks its client up once, an
 * introspection twice (the caller and the token's owner), a few microseconds each on the hottest
 * endpoints. Our adapter hands out one frozen object per client while it is cached, so the parsed
 * client is remembered per object: the same metadata gives the same parsed client, as with the
 * library's own hash, and a changed client arrives as a new object after CACHE_TTL_MS, which the
 * library then parses as before. Anything the adapter does not know (no such client) goes to the
 * library's own lookup unchanged.
 */
export function rememberParsedClients(provider: Provider): void {
  const { Client } = provider;
  const find = Client.find.bind(Client);
  // The model's adapter (ours, the instance holding the cache); the type declarations omit it.
  const adapter = (Client as unknown as { adapter: Adapter }).adapter;
  const parsed = new WeakMap<object, ProviderClient>();
  Client.find = async (id: string) => {
    const metadata = typeof id === 'string' && id ? await adapter.find(id) : undefined;
    if (!metadata) return find(id);
    const known = parsed.get(metadata);
    if (known) return known;
    const client = await find(id);
    // Only an object the adapter keeps: a fresh object per call would never be asked for again.
    if (client && Object.isFrozen(metadata)) parsed.set(metadata, client);
    return client;
  };
}
