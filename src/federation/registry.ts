// The configured providers by id, and one Upstreams (metadata cache) per Services object, shared
// by the sign-in pages, the callback and /account without a process-wide singleton.
import type { Services } from '../services.ts';
import { AppError } from '../errors.ts';
import type { FederationProvider } from './settings.ts';
import { Upstreams } from './upstream.ts';

const upstreams = new WeakMap<Services, Upstreams>();

export function upstreamsFor(services: Services): Upstreams {
  let found = upstreams.get(services);
  if (!found) {
    found = new Upstreams(services.logger);
    upstreams.set(services, found);
  }
  return found;
}

export function federationProviders(services: Services): FederationProvider[] {
  return services.config.federation.providers;
}

export function providerById(services: Services, id: string | undefined): FederationProvider {
  const provider = federationProviders(services).find((p) => p.id === id);
  if (!provider) throw new AppError('unknown_provider', 'This sign-in option is not available.', 404);
  return provider;
}

/** A provider's display name, or its id when it was removed from the configuration since. */
export function providerName(services: Services, id: string): string {
  return federationProviders(services).find((p) => p.id === id)?.name ?? id;
}
