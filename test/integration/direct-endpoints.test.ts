// Discovery and JWKS are answered straight from the provider and their answers remembered
// (src/oidc/direct-endpoints.ts). A remembered answer must be the one the provider would give to
// that very request: endpoint URLs follow the request's origin (Host, and X-Forwarded-* behind a
// trusted proxy), CORS follows its Origin, and every response still gets its own request id.
import http from 'node:http';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, tempDataDir, type RunningServer } from '../helpers/server.ts';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A GET with exactly these headers (fetch would not let a test set Host). */
function get(server: RunningServer, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, path, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const DISCOVERY = '/.well-known/openid-configuration';

describe('discovery and JWKS answers', () => {
  let dataDir: string;
  let server: RunningServer;
  let jwksPath: string;

  beforeAll(async () => {
    dataDir = tempDataDir('gh-direct-');
    server = await startServer({ DATA_DIR: dataDir, TRUST_PROXY: 'true' });
    const discovery = JSON.parse((await get(server, DISCOVERY)).body) as { jwks_uri: string };
    jwksPath = new URL(discovery.jwks_uri).pathname;
  });

  afterAll(async () => {
    await server?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('repeats the same document with fresh request ids and the API headers', async () => {
    const first = await get(server, DISCOVERY);
    const second = await get(server, DISCOVERY);
    for (const answer of [first, second]) {
      expect(answer.status).toBe(200);
      expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(answer.headers['content-security-policy']).toBe("default-src 'none'; frame-ancestors 'none'");
      expect(answer.headers['access-control-allow-origin']).toBe('*');
      expect(answer.headers.vary).toBe('Origin');
      expect(Number(answer.headers['content-length'])).toBe(Buffer.byteLength(answer.body));
    }
    expect(second.body).toBe(first.body);
    expect(second.headers['x-request-id']).not.toBe(first.headers['x-request-id']);
    const traced = await get(server, DISCOVERY, { 'x-request-id': 'trace-1234-abcd' });
    expect(traced.headers['x-request-id']).toBe('trace-1234-abcd');
  });

  it('answers each origin with its own endpoint URLs', async () => {
    const local = JSON.parse((await get(server, DISCOVERY, { host: `localhost:${server.port}` })).body) as Record<string, string>;
    const other = JSON.parse((await get(server, DISCOVERY, { host: `id.example.test:${server.port}` })).body) as Record<string, string>;
    const proxied = JSON.parse((await get(server, DISCOVERY, { host: `localhost:${server.port}`, 'x-forwarded-proto': 'https', 'x-forwarded-host': 'login.example.test' })).body) as Record<string, string>;
    const again = JSON.parse((await get(server, DISCOVERY, { host: `localhost:${server.port}` })).body) as Record<string, string>;
    expect(local.token_endpoint).toBe(`http://localhost:${server.port}/token`);
    expect(other.token_endpoint).toBe(`http://id.example.test:${server.port}/token`);
    expect(proxied.token_endpoint).toBe('https://login.example.test/token');
    expect(again.token_endpoint).toBe(local.token_endpoint);
    // The issuer is configured, not taken from the request.
    for (const doc of [local, other, proxied]) expect(doc.issuer).toBe(`http://localhost:${server.port}`);
  });

  it('answers CORS per Origin, also for JWKS', async () => {
    for (const path of [DISCOVERY, jwksPath]) {
      const anyone = await get(server, path);
      const rp = await get(server, path, { origin: 'https://rp.example.test' });
      const other = await get(server, path, { origin: 'https://other.example.test' });
      const anyoneAgain = await get(server, path);
      expect(anyone.headers['access-control-allow-origin']).toBe('*');
      expect(rp.headers['access-control-allow-origin']).toBe('https://rp.example.test');
      expect(other.headers['access-control-allow-origin']).toBe('https://other.example.test');
      expect(anyoneAgain.headers['access-control-allow-origin']).toBe('*');
      expect(rp.body).toBe(anyone.body);
    }
    const jwks = await get(server, jwksPath);
    expect(jwks.headers['content-type']).toBe('application/jwk-set+json; charset=utf-8');
    expect((JSON.parse(jwks.body) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
  });

  it('leaves HEAD, preflight and other methods to the provider', async () => {
    await get(server, DISCOVERY);
    const head = await get(server, DISCOVERY, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    const preflight = await get(server, DISCOVERY, { origin: 'https://rp.example.test', 'access-control-request-method': 'GET' }, 'OPTIONS');
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-methods']).toBe('GET');
    const post = await get(server, DISCOVERY, {}, 'POST');
    expect(post.status).toBeGreaterThanOrEqual(400);
    expect(post.status).toBeLessThan(500);
    const after = await get(server, DISCOVERY);
    expect(after.status).toBe(200);
    expect(after.headers['access-control-allow-methods']).toBeUndefined();
  });
});
