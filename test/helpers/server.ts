// Runs Gatehouse the way an operator does: `node src/main.ts` and `bin/gatehouse.js` as child
// processes with their own environment, so tests exercise the real start-up, storage and CLI.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const NODE = path.join(ROOT, 'node_modules', '.bin', 'node');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export function tempDataDir(prefix = 'gh-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Fixed keys so several instances (and restarts) of one test share secrets. */
export function testSecrets(): Record<string, string> {
  return {
    ENCRYPTION_KEYS: `t1:${crypto.randomBytes(32).toString('base64')}`,
    COOKIE_KEYS: crypto.randomBytes(32).toString('base64url'),
  };
}

export interface RunningServer {
  url: string;
  port: number;
  env: Record<string, string>;
  child: ChildProcess;
  logs(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function baseEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    // The test runner's own settings must not leak into the product under test.
    if (k.startsWith('TEST_') || k.startsWith('VITEST') || k.startsWith('npm_') || k === 'NODE_ENV') continue;
    env[k] = v;
  }
  return { ...env, LOG_LEVEL: 'warn', ...extra };
}

/** Start a server; resolves once GET /healthz answers 200. `env` needs at least DATA_DIR. */
export async function startServer(env: Record<string, string>, { timeoutMs = 120_000 } = {}): Promise<RunningServer> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const fullEnv = baseEnv({ PORT: String(port), ISSUER: `http://localhost:${port}`, ...env });
  const child = spawn(NODE, ['--disable-warning=ExperimentalWarning', path.join(ROOT, 'src', 'main.ts')], {
    cwd: ROOT,
    env: fullEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((c) => { exitCode = c; });
  const url = `http://localhost:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exitCode !== undefined) throw new Error(`server exited with ${exitCode} before it was ready:\n${output}`);
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server not ready after ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    port,
    env: fullEnv,
    child,
    logs: () => output,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (exitCode !== undefined) return exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON when it is JSON. */
  json: unknown;
}

/** Run `gatehouse ARGS` with the given environment (DATA_DIR / DATABASE_URL ...). */
export async function runCli(env: Record<string, string>, args: string[]): Promise<CliResult> {
  const child = spawn(NODE, [path.join(ROOT, 'bin', 'gatehouse.js'), ...args], { cwd: ROOT, env: baseEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    json = undefined;
  }
  return { code, stdout, stderr, json };
}
