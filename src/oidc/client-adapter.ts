// oidc-provider looks clients up through the adapter of the `Client` model. Ours reads the
// durable clients table (registered by the CLI / admin API) and decrypts the secret for the
// provider's constant-time comparison; dynamic registration is not enabled, so writes never come.
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { Services } from '../services.ts';
import { loadProviderClientMetadata } from '../domain/clients.ts';

export class ClientAdapter implements Adapter {
  readonly #services: Services;

  constructor(services: Services) {
    this.#services = services;
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return (await loadProviderClientMetadata(this.#services, id)) as AdapterPayload | undefined;
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
