// wrk, when installed, for the scenarios that repeat one request: it is written in C and takes
// far less CPU than a Node load generator from a machine the server shares. Its Lua hooks set
// the request and print exact percentiles as JSON when the run ends.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cpuSeconds } from './proc.ts';
import type { LoadReport } from './stats.ts';

export interface WrkRequest {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

let available: string | undefined | null = null;

/** The wrk version string, or undefined when wrk is not on PATH. */
export function wrkVersion(): string | undefined {
  if (available !== null) return available;
  const probe = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  const text = `${probe.stdout ?? ''}${probe.stderr ?? ''}`;
  available = probe.error ? undefined : (/^wrk\s+(\S+)/m.exec(text)?.[1] ?? 'unknown');
  return available;
}

const lua = (s: string) => JSON.stringify(s); // a JSON string literal is a valid Lua string literal here (ASCII only)

function script(req: WrkRequest): string {
  const lines = [`wrk.method = ${lua(req.method)}`, `wrk.path = ${lua(req.path)}`];
  if (req.body !== undefined) lines.push(`wrk.body = ${lua(req.body)}`);
  for (const [k, v] of Object.entries(req.headers ?? {})) lines.push(`wrk.headers[${lua(k)}] = ${lua(v)}`);
  lines.push(
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format("WRKJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p50\\":%d,\\"p90\\":%d,\\"p99\\":%d,\\"max\\":%d,\\"mean\\":%f}\\n",',
    '    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,',
    '    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))',
    'end',
  );
  return `${lines.join('\n')}\n`;
}

interface WrkJson {
  requests: number;
  duration_us: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

function runWrk(url: string, scriptFile: string, connections: number, seconds: number): Promise<{ json: WrkJson; cpuSeconds: number }> {
  return new Promise((resolve, reject) => {
    // One thread: wrk's C event loop drives thousands of requests per second per core.
    const child = spawn('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '-s', scriptFile, url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let cpu = 0;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      // Read wrk's CPU while it is still alive, as it prints its summary.
      if (cpu === 0 && out.includes('WRKJSON')) cpu = cpuSeconds([child.pid!]);
    });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = /WRKJSON (\{.*\})/.exec(out);
      if (code !== 0 || !line) reject(new Error(`wrk exited with ${code}:\n${out}`));
      else resolve({ json: JSON.parse(line[1]!) as WrkJson, cpuSeconds: cpu });
    });
  });
}

export async function wrkLoad(
  baseUrl: string,
  req: WrkRequest,
  opts: { connections: number; warmupSeconds: number; seconds: number; tmpDir: string; onMeasuring: () => void },
): Promise<LoadReport> {
  const scriptFile = path.join(opts.tmpDir, `wrk-${process.pid}-${Date.now()}.lua`);
  fs.writeFileSync(scriptFile, script(req));
  try {
    if (opts.warmupSeconds > 0) await runWrk(baseUrl, scriptFile, opts.connections, opts.warmupSeconds);
    opts.onMeasuring();
    const { json, cpuSeconds: generatorCpu } = await runWrk(baseUrl, scriptFile, opts.connections, opts.seconds);
    const seconds = json.duration_us / 1e6;
    return {
      tool: 'wrk',
      connections: opts.connections,
      targetRate: undefined,
      seconds,
      operations: json.requests,
      latencyMs: { p50: json.p50 / 1000, p90: json.p90 / 1000, p99: json.p99 / 1000, max: json.max / 1000, mean: json.mean / 1000 },
      errors: json.connect + json.read + json.write + json.status + json.timeout,
      generatorCpuSeconds: generatorCpu,
    };
  } finally {
    fs.rmSync(scriptFile, { force: true });
  }
}
