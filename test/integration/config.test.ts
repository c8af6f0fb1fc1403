// Production start-up refuses unsafe settings before doing anything else, and says which
// setting is wrong; with proper settings it starts and advertises the configured issuer.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, ROOT, startServer, tempDataDir, testSecrets } from '../helpers/server.ts';

const NODE = path.join(ROOT, 'node_modules', '.bin', 'node');
const dirs: string[] = [];

/** Run `node src/main.ts` and wait for it to exit on its own (it must, for a bad configuration). */
async function runMain(extra: Record<string, string>, timeoutMs = 20_000): Promise<{ code: number | null; output: string }> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith('TEST_') || k.startsWith('VITEST') || k.startsWith('npm_') || k === 'NODE_ENV') continue;
    // Nothing of the caller's own Gatehouse configuration may leak in.
    if (['ENCRYPTION_KEYS', 'COOKIE_KEYS', 'ISSUER', 'DATABASE_URL', 'REDIS_URL', 'PORT', 'DATA_DIR'].includes(k)) continue;
    env[k] = v;
  }
  const dataDir = tempDataDir('gh-config-');
  dirs.push(dataDir);
  const child = spawn(NODE, ['--disable-warning=ExperimentalWarning', path.join(ROOT, 'src', 'main.ts')], {
    cwd: ROOT,
    env: { ...env, LOG_LEVEL: 'info', DATA_DIR: dataDir, PORT: String(await freePort()), ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  if (timedOut) throw new Error(`node src/main.ts ${JSON.stringify(extra)} was still running after ${timeoutMs} ms:\n${output}`);
  return { code, output };
}

afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

describe('production configuration', () => {
  const { ENCRYPTION_KEYS, COOKIE_KEYS } = testSecrets();

  it('refuses to start without ENCRYPTION_KEYS and COOKIE_KEYS', async () => {
    const { code, output } = await runMain({ NODE_ENV: 'production', ISSUER: 'https://id.example.com' });
    expect(code, output).not.toBe(0);
    expect(code, output).not.toBeNull();
    expect(output).toContain('ENCRYPTION_KEYS');
    expect(output).toContain('COOKIE_KEYS');
  });

  it('refuses to start without ENCRYPTION_KEYS alone', async () => {
    const { code, output } = await runMain({ NODE_ENV: 'production', ISSUER: 'https://id.example.com', COOKIE_KEYS: COOKIE_KEYS! });
    expect(code, output).not.toBe(0);
    expect(output).toContain('ENCRYPTION_KEYS');
  });

  it('refuses a plain-http issuer that is not localhost', async () => {
    const { code, output } = await runMain({ NODE_ENV: 'production', ISSUER: 'http://example.com', ENCRYPTION_KEYS: ENCRYPTION_KEYS!, COOKIE_KEYS: COOKIE_KEYS! });
    expect(code, output).not.toBe(0);
    expect(code, output).not.toBeNull();
    expect(output).toContain('ISSUER');
    expect(output).not.toContain('ENCRYPTION_KEYS');
  });

  it('refuses malformed ENCRYPTION_KEYS', async () => {
    const { code, output } = await runMain({
      NODE_ENV: 'production', ISSUER: 'https://id.example.com',
      ENCRYPTION_KEYS: `k1:${crypto.randomBytes(16).toString('base64')}`, COOKIE_KEYS: COOKIE_KEYS!,
    });
    expect(code, output).not.toBe(0);
    expect(output).toContain('ENCRYPTION_KEYS');
  });

  it('starts with keys and an https issuer (TLS terminated in front of it)', async () => {
    const dataDir = tempDataDir('gh-config-ok-');
    dirs.push(dataDir);
    const server = await startServer({
      NODE_ENV: 'production', ISSUER: 'https://id.example.com', TRUST_PROXY: 'true',
      DATA_DIR: dataDir, ENCRYPTION_KEYS: ENCRYPTION_KEYS!, COOKIE_KEYS: COOKIE_KEYS!,
    });
    try {
      // As seen through the TLS-terminating proxy.
      const res = await fetch(`${server.url}/.well-known/openid-configuration`, {
        headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'id.example.com' },
      });
      expect(res.status).toBe(200);
      const discovery = (await res.json()) as { issuer: string; authorization_endpoint: string };
      expect(discovery.issuer).toBe('https://id.example.com');
      expect(discovery.authorization_endpoint.startsWith('https://id.example.com/')).toBe(true);
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(200);
      await ready.body?.cancel();
    } finally {
      expect(await server.stop(), server.logs()).toBe(0);
    }
  });

  it('refuses a PASSWORD_HASHING_CONCURRENCY that is not a positive whole number', async () => {
    for (const value of ['0', 'two']) {
      const { code, output } = await runMain({ PASSWORD_HASHING_CONCURRENCY: value });
      expect(code, output).not.toBe(0);
      expect(code, output).not.toBeNull();
      expect(output).toContain('PASSWORD_HASHING_CONCURRENCY');
    }
  });

  it('sizes hashing and libuv\'s threadpool by PASSWORD_HASHING_CONCURRENCY, and reports it in the metrics', async () => {
    const dataDir = tempDataDir('gh-config-hashing-');
    dirs.push(dataDir);
    const server = await startServer({ DATA_DIR: dataDir, PASSWORD_HASHING_CONCURRENCY: '1', METRICS_ENABLED: 'true' });
    try {
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toMatch(/^gatehouse_password_hashing_concurrency 1$/m);
      expect(metrics).toMatch(/^gatehouse_password_hashes\{state="waiting"\} 0$/m);
      // Linux names libuv's pool threads; the pool exists once start-up has signed or read anything.
      const threads = fs.readdirSync(`/proc/${server.child.pid}/task`).map((tid) => fs.readFileSync(`/proc/${server.child.pid}/task/${tid}/comm`, 'utf8').trim());
      expect(threads.filter((name) => name === 'libuv-worker')).toHaveLength(5);
    } finally {
      expect(await server.stop(), server.logs()).toBe(0);
    }
  });
});
