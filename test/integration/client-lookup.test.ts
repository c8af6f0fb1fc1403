// Client lookups on the token endpoints: oidc-provider's parsed client is remembered per cached
// metadata object (src/oidc/client-adapter.ts rememberParsedClients) instead of being found again
// by hashing the metadata on every request. What must hold: the same client object while the
// metadata is cached, a changed client (a rotated secret) seen once the cache entry expires, and
// unknown or deleted clients still unknown.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type Provider from 'oidc-provider';
import { loadConfig } from '../../src/config.ts';
import { createClient, deleteClient, rotateClientSecret } from '../../src/domain/clients.ts';
import { createLogger } from '../../src/logger.ts';
import { CACHE_TTL_MS } from '../../src/oidc/client-adapter.ts';
import { ensureSigningKeys, loadSigningKeys } from '../../src/oidc/keys.ts';
import { createProvider } from '../../src/oidc/provider.ts';
import { createServices, type Services } from '../../src/services.ts';
import { tempDataDir } from '../helpers/server.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('client lookups', () => {
  let dataDir: string;
  let services: Services;
  let provider: Provider;

  beforeAll(async () => {
    dataDir = tempDataDir('gh-client-lookup-');
    services = await createServices(loadConfig({ DATA_DIR: dataDir }), createLogger('silent'));
    await ensureSigningKeys(services);
    provider = createProvider(services, (await loadSigningKeys(services)).jwks);
  });

  afterAll(async () => {
    await services?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('gives the same parsed client while cached, and the changed one after the cache expires', async () => {
    const created = await createClient(services, { name: 'Lookup job', clientId: 'lookup-job', grantTypes: ['client_credentials'] });
    const first = await provider.Client.find('lookup-job');
    expect(first?.clientId).toBe('lookup-job');
    expect(first?.clientSecret).toBe(created.client_secret);
    expect(await provider.Client.find('lookup-job')).toBe(first);

    const rotated = await rotateClientSecret(services, 'lookup-job');
    // Within the cache's lifetime the instance keeps what it read (documented in docs/decisions.md).
    expect((await provider.Client.find('lookup-job'))?.clientSecret).toBe(created.client_secret);
    await sleep(CACHE_TTL_MS + 200);
    const changed = await provider.Client.find('lookup-job');
    expect(changed).not.toBe(first);
    expect(changed?.clientSecret).toBe(rotated.client_secret);
    expect(await provider.Client.find('lookup-job')).toBe(changed);

    await deleteClient(services, 'lookup-job');
    await sleep(CACHE_TTL_MS + 200);
    expect(await provider.Client.find('lookup-job')).toBeUndefined();
  }, 20_000);

  it('answers nothing for unknown and malformed client ids', async () => {
    expect(await provider.Client.find('no-such-client')).toBeUndefined();
    expect(await provider.Client.find('')).toBeUndefined();
  });
});
