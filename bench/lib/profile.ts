// Summaries of V8 CPU profiles (node --cpu-prof) of the server's main thread: where the samples
// landed, by function and by package, and the inclusive time of Gatehouse's own functions. The
// samples can be cut to a scenario's measured window: V8 stamps them with CLOCK_MONOTONIC
// microseconds, the clock the benchmark records its windows on. Runnable by hand too:
//   node bench/lib/profile.ts path/to/file.cpuprofile [more...]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  file: string;
  /** The scenario whose window the samples were cut to, if any. */
  scenario?: string;
  sampledMs: number;
  /** Share of the main thread's time not idle, in percent. */
  busyPercent: number;
  /**
   * Busy main-thread microseconds per operation, when the window's operation count is known: the
   * figure that compares two servers (a share of busy time does not, when their totals differ).
   */
  busyUsPerOperation?: number;
  byPackage: { pkg: string; percentOfBusy: number; usPerOperation?: number }[];
  topSelf: { fn: string; percentOfBusy: number; usPerOperation?: number }[];
  /** Gatehouse's own functions by inclusive (self + callees) time. */
  gatehouseInclusive: { fn: string; percentOfBusy: number }[];
}

export interface LoadedProfile {
  file: string;
  profile: CpuProfile;
  /** Absolute CLOCK_MONOTONIC time of each sample, microseconds. */
  times: number[];
}

export function loadProfile(file: string): LoadedProfile {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const times: number[] = [];
  let t = profile.startTime;
  for (const delta of profile.timeDeltas) {
    t += delta;
    times.push(t);
  }
  return { file, profile, times };
}

function packageOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native: syscalls, crypto, compression)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return 'node internals';
  if (url.includes('/src/')) return 'gatehouse';
  return path.basename(url);
}

function label(frame: CallFrame): string {
  const where = frame.url ? `${frame.url.replace(/^file:\/\/.*?\/(node_modules|src)\//, '$1/')}:${frame.lineNumber + 1}` : '';
  return `${frame.functionName || '(anonymous)'} ${where}`.trim();
}

const isOwn = (url: string) => url.includes('/src/') && !url.includes('node_modules');

export function summarizeProfile(loaded: LoadedProfile, window?: { scenario: string; startUs: number; endUs: number; operations?: number }, top = 20): ProfileSummary {
  const { profile, times } = loaded;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    if (window && (times[i]! < window.startUs || times[i]! > window.endUs)) return;
    // A sample stands for the time until the next one.
    const us = (times[i + 1] ?? profile.endTime) - times[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + us);
  });

  let total = 0;
  let idle = 0;
  const fnSelf = new Map<string, number>();
  const pkgSelf = new Map<string, number>();
  const ownInclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    total += us;
    if (node.callFrame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const fn = label(node.callFrame);
    fnSelf.set(fn, (fnSelf.get(fn) ?? 0) + us);
    const pkg = packageOf(node.callFrame.url, node.callFrame.functionName);
    pkgSelf.set(pkg, (pkgSelf.get(pkg) ?? 0) + us);
    // Inclusive time of our functions: each distinct Gatehouse frame on the stack counts once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)!.callFrame;
      if (!isOwn(frame.url)) continue;
      const key = label(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      ownInclusive.set(key, (ownInclusive.get(key) ?? 0) + us);
    }
  }
  const busy = Math.max(1, total - idle);
  const share = (us: number) => Math.round((us / busy) * 1000) / 10;
  const operations = window?.operations;
  const perOperation = (us: number) => (operations ? { usPerOperation: Math.round((us / operations) * 10) / 10 } : {});
  const rank = (m: Map<string, number>, n: number) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
  return {
    file: loaded.file,
    ...(window ? { scenario: window.scenario } : {}),
    sampledMs: Math.round(total / 1000),
    busyPercent: Math.round(((total - idle) / Math.max(1, total)) * 1000) / 10,
    ...(operations ? { busyUsPerOperation: Math.round((total - idle) / operations) } : {}),
    byPackage: rank(pkgSelf, 12).map(([pkg, us]) => ({ pkg, percentOfBusy: share(us), ...perOperation(us) })),
    topSelf: rank(fnSelf, top).map(([fn, us]) => ({ fn, percentOfBusy: share(us), ...perOperation(us) })),
    gatehouseInclusive: rank(ownInclusive, 12).map(([fn, us]) => ({ fn, percentOfBusy: share(us) })),
  };
}

export function formatProfile(s: ProfileSummary): string {
  const perOp = s.busyUsPerOperation === undefined ? '' : `, ${s.busyUsPerOperation} µs per operation`;
  const title = `${s.scenario ? `${s.scenario}: ` : ''}${path.basename(s.file)}, ${s.sampledMs} ms sampled, main thread ${s.busyPercent}% busy${perOp}`;
  const us = (r: { usPerOperation?: number }) => (r.usPerOperation === undefined ? '' : `${r.usPerOperation.toFixed(1).padStart(7)} µs`);
  const col = (rows: { percentOfBusy: number; usPerOperation?: number }[], name: (r: never) => string) => rows.map((r) => `    ${String(r.percentOfBusy).padStart(5)}%${us(r)}  ${name(r as never)}`);
  return [
    title,
    '  self time by package:', ...col(s.byPackage, (r: { pkg: string }) => r.pkg),
    '  self time by function:', ...col(s.topSelf, (r: { fn: string }) => r.fn),
    '  Gatehouse functions, inclusive:', ...col(s.gatehouseInclusive, (r: { fn: string }) => r.fn),
  ].join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const file of process.argv.slice(2)) process.stdout.write(`${formatProfile(summarizeProfile(loadProfile(file)))}\n\n`);
}
