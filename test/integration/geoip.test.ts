// Approximate session locations from a GeoIP database: a MaxMind DB file written by the test
// (test/helpers/mmdb.ts) maps loopback addresses to a made-up city, the server is started with
// GEOIP_DATABASE, and a sign-in from this machine shows that place in the session list.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeOverHttp } from '../helpers/http-login.ts';
import { writeCityDatabase } from '../helpers/mmdb.ts';
import { runCli, startServer, tempDataDir, type RunningServer } from '../helpers/server.ts';
import { openGeoIp } from '../../src/geoip.ts';
import { createLogger } from '../../src/logger.ts';

const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const user = { email: 'geo-user@example.test', password: 'maple syrup canoe paddle' };

describe('session locations from GEOIP_DATABASE', () => {
  let dataDir: string;
  let database: string;
  let server: RunningServer;
  let clientId: string;

  beforeAll(async () => {
    dataDir = tempDataDir('gh-geoip-');
    database = path.join(dataDir, 'city.mmdb');
    writeCityDatabase(database, '127.0.0.0', 'Loopville', 'Exampleland', 'EX');
    const env = { DATA_DIR: dataDir, GEOIP_DATABASE: database };
    const client = await runCli(env, ['client', 'create', '--name', 'Geo RP', '--redirect-uri', REDIRECT_URI, '--first-party', '--auth-method', 'none']);
    expect(client.code).toBe(0);
    clientId = (client.json as { client_id: string }).client_id;
    expect((await runCli(env, ['user', 'create', '--email', user.email, '--password', user.password, '--verified'])).code).toBe(0);
    server = await startServer(env);
  });

  afterAll(async () => {
    await server?.stop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('records the place of a sign-in and lists it with the session', async () => {
    await authorizeOverHttp({ issuer: server.url, clientId, redirectUri: REDIRECT_URI, email: user.email, password: user.password, scope: 'openid' });
    let sessions: { location: string | null; loginIp: string | null }[] = [];
    // The session row is written as the provider saves the session, just after the redirect.
    for (let i = 0; i < 20 && sessions.length === 0; i += 1) {
      const listed = await runCli(server.env, ['session', 'list', '--user', user.email]);
      sessions = (listed.json as { sessions: typeof sessions }).sessions;
      if (sessions.length === 0) await new Promise((r) => setTimeout(r, 250));
    }
    expect(sessions).toHaveLength(1);
    expect(sessions[0]!.location).toBe('Loopville, Exampleland');
  });

  it('looks up addresses locally and answers nothing for unknown ones or a missing file', async () => {
    const logger = createLogger('silent');
    const geoip = await openGeoIp(database, logger);
    expect(geoip?.locate('127.0.0.9')).toBe('Loopville, Exampleland');
    expect(geoip?.locate('::ffff:127.0.0.1')).toBe('Loopville, Exampleland');
    expect(geoip?.locate('198.51.100.7')).toBeUndefined();
    expect(geoip?.locate('not an address')).toBeUndefined();
    expect(await openGeoIp(path.join(dataDir, 'missing.mmdb'), logger)).toBeUndefined();
  });
});
