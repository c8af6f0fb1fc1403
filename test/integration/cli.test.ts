// The `gatehouse` command as an operator runs it: bin/gatehouse.js in a child process against an
// embedded database in a temporary DATA_DIR. Every call opens PGlite (a few seconds), so the
// tests share one directory and build on each other in order.
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { loadProviderClientMetadata } from '../../src/domain/clients.ts';
import { authenticateWithPassword } from '../../src/domain/users.ts';
import { createLogger } from '../../src/logger.ts';
import { createServices } from '../../src/services.ts';
import { runCli, tempDataDir, testSecrets, type CliResult } from '../helpers/server.ts';
import { migrations } from '../../migrations/index.ts';

const dataDir = tempDataDir('gh-cli-');
const env = { DATA_DIR: dataDir, ...testSecrets() };
const cli = (...args: string[]) => runCli(env, args);

type Json = Record<string, unknown>;

function ok(result: CliResult): Json {
  expect(result.stderr, 'nothing on stderr').toBe('');
  expect(result.code).toBe(0);
  expect(result.json, `stdout is one JSON document: ${result.stdout}`).toBeTypeOf('object');
  return result.json as Json;
}

function appError(result: CliResult): { error: string; message: string } {
  expect(result.code).toBe(1);
  expect(result.stdout).toBe('');
  return JSON.parse(result.stderr.trim()) as { error: string; message: string };
}

function usageError(result: CliResult): string {
  expect(result.code).toBe(2);
  expect(result.stdout).toBe('');
  expect(result.stderr).toContain('(add --help for usage)');
  return result.stderr;
}

afterAll(() => {
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('gatehouse CLI', () => {
  it('migrate applies the schema and names the database it used', async () => {
    expect(ok(await cli('migrate'))).toEqual({ migrated: migrations.map(([name]) => name), database: 'pglite' });
  });

  it('client create honours --client-id and --client-secret', async () => {
    const client = ok(await cli(
      'client', 'create', '--name', 'Web app',
      '--redirect-uri', 'https://app.example.com/cb', '--redirect-uri', 'http://localhost:3001/cb',
      '--post-logout-redirect-uri', 'https://app.example.com/',
      '--scope', 'openid profile email offline_access',
      '--client-id', 'cli-web', '--client-secret', 'a-secret-of-24-characters',
      '--first-party', '--id-token-alg', 'ES256',
    ));
    expect(client).toEqual({
      client_id: 'cli-web',
      client_secret: 'a-secret-of-24-characters',
      client_name: 'Web app',
      redirect_uris: ['https://app.example.com/cb', 'http://localhost:3001/cb'],
      post_logout_redirect_uris: ['https://app.example.com/'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid profile email offline_access',
      id_token_signed_response_alg: 'ES256',
      first_party: true,
    });
  });

  it('client create with --auth-method none makes a public client without a secret', async () => {
    const client = ok(await cli('client', 'create', '--name', 'SPA', '--redirect-uri', 'http://127.0.0.1:5173/cb', '--auth-method', 'none', '--client-id', 'cli-spa'));
    expect(client).not.toHaveProperty('client_secret');
    expect(client).toMatchObject({ client_id: 'cli-spa', token_endpoint_auth_method: 'none', first_party: false });
  });

  it('client create with only --grant-type client_credentials needs no redirect URI and has no response types', async () => {
    const client = ok(await cli('client', 'create', '--name', 'Nightly job', '--grant-type', 'client_credentials'));
    expect(client).toMatchObject({ grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic' });
    expect(client.client_id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(client.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('client create reports a rule violation as a JSON error and exits 1', async () => {
    const error = appError(await cli('client', 'create', '--name', 'Bad', '--redirect-uri', 'http://app.example.com/cb'));
    expect(error.error).toBe('invalid_redirect_uri');
    expect(error.message).toContain('https');
  });

  it('client list shows every client and no secret', async () => {
    const result = await cli('client', 'list');
    const { clients } = ok(result) as { clients: Json[] };
    expect(clients.map((c) => c.client_name)).toEqual(['Web app', 'SPA', 'Nightly job']);
    expect(result.stdout).not.toContain('"client_secret"');
    expect(result.stdout).not.toContain('a-secret-of-24-characters');
  });

  it('client delete removes a client; deleting it again is an error', async () => {
    expect(ok(await cli('client', 'delete', 'cli-spa'))).toEqual({ deleted: 'cli-spa' });
    expect(appError(await cli('client', 'delete', 'cli-spa'))).toEqual({ error: 'client_not_found', message: 'no client has id "cli-spa"' });
  });

  it('user create makes an account; the same email in another case exits non-zero', async () => {
    const user = ok(await cli('user', 'create', '--email', 'Ada@Example.COM', '--password', 'first password', '--name', 'Ada Lovelace', '--verified'));
    expect(user).toMatchObject({ email: 'Ada@example.com', name: 'Ada Lovelace', email_verified: true, status: 'active' });
    expect(user).not.toHaveProperty('password_hash');
    expect(appError(await cli('user', 'create', '--email', 'ada@example.com', '--password', 'other password'))).toEqual({
      error: 'email_taken',
      message: 'an account with this email already exists',
    });
  });

  it('user set-password replaces the password', async () => {
    const result = ok(await cli('user', 'set-password', '--email', 'ADA@example.com', '--password', 'second password'));
    expect(result).toMatchObject({ password_set: true, account: { email: 'Ada@example.com' } });
  });

  it('user list shows accounts without password hashes', async () => {
    const result = await cli('user', 'list');
    const { users } = ok(result) as { users: Json[] };
    expect(users).toEqual([expect.objectContaining({ email: 'Ada@example.com', email_verified: true })]);
    expect(result.stdout).not.toContain('argon2');
  });

  it('resource create and resource list', async () => {
    const resource = ok(await cli('resource', 'create', '--identifier', 'https://api.example.com', '--scope', 'read write', '--format', 'opaque', '--access-token-ttl', '600', '--name', 'API'));
    expect(resource).toMatchObject({ identifier: 'https://api.example.com', scope: 'read write', access_token_format: 'opaque', access_token_ttl: 600, name: 'API' });
    const { resources } = ok(await cli('resource', 'list')) as { resources: Json[] };
    expect(resources.filter((r) => !r.built_in)).toEqual([expect.objectContaining({ identifier: 'https://api.example.com', scope: 'read write' })]);
  });

  it('keys rotate creates active keys that keys list shows', async () => {
    const rotated = ok(await cli('keys', 'rotate')) as { created: { kid: string; alg: string }[]; retired: string[] };
    expect(rotated.created.length).toBeGreaterThan(0);
    expect(Array.isArray(rotated.retired)).toBe(true);
    const { keys } = ok(await cli('keys', 'list')) as { keys: { kid: string; status: string }[] };
    for (const { kid } of rotated.created) {
      expect(keys).toContainEqual(expect.objectContaining({ kid, status: 'active' }));
    }
  });

  it('left the data readable by the product: secret encrypted at rest, new password works', async () => {
    const services = await createServices(loadConfig(env), createLogger('silent'));
    try {
      const row = await services.knex('clients').where({ client_id: 'cli-web' }).first<{ client_secret_ciphertext: string }>();
      expect(row.client_secret_ciphertext).not.toContain('a-secret-of-24-characters');
      expect((await loadProviderClientMetadata(services, 'cli-web'))?.client_secret).toBe('a-secret-of-24-characters');
      expect((await authenticateWithPassword(services, { email: 'ada@example.com', password: 'second password' })).ok).toBe(true);
      expect((await authenticateWithPassword(services, { email: 'ada@example.com', password: 'first password' })).ok).toBe(false);
      const sources = await services.knex('audit_events').whereIn('event_type', ['client.created', 'user.created']).pluck('details');
      expect(sources.every((details: { source?: string }) => details.source === 'cli')).toBe(true);
    } finally {
      await services.close();
    }
  });

  describe('usage errors exit 2 with a message on stderr', () => {
    it('a missing required option', async () => {
      expect(usageError(await cli('client', 'create', '--redirect-uri', 'https://app.example.com/cb'))).toContain("required option '--name <name>' not specified");
    });

    it('a value outside the allowed choices', async () => {
      expect(usageError(await cli('client', 'create', '--name', 'x', '--grant-type', 'implicit'))).toContain("'implicit' is invalid");
    });

    it('a lifetime that is not a number', async () => {
      expect(usageError(await cli('resource', 'create', '--identifier', 'https://x.example', '--scope', 'read', '--access-token-ttl', 'soon'))).toContain('--access-token-ttl');
    });

    it('an unknown command', async () => {
      expect(usageError(await cli('frobnicate'))).toContain("unknown command 'frobnicate'");
    });
  });

  it('--help prints usage on stdout and exits 0', async () => {
    const result = await cli('user', 'create', '--help');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('--email <email>');
  });

  it('invalid configuration is reported and exits 1', async () => {
    const result = await runCli({ ...env, DATABASE_URL: 'mysql://localhost/db' }, ['user', 'list']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('DATABASE_URL: must be a postgres:// URL');
  });
});
