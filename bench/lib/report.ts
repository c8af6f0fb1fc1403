// The printed table, the Gatehouse / baseline ratios and the performance targets, judged on the
// numbers of one run.
import type { MemoryResult, ScenarioResult } from './scenarios.ts';
import type { ProfileSummary } from './profile.ts';
import type { RoundTrips } from './roundtrips.ts';
import { round } from './stats.ts';

export interface TargetResult {
  label: string;
  kind: 'gatehouse' | 'baseline';
  storage: string;
  /** node:cluster workers; 0 for a single process. */
  workers: number;
  scenarios: ScenarioResult[];
  memory?: MemoryResult;
  threads?: Record<string, number>;
  startupRssBytes?: number;
  /** With --cpu-prof: the server main thread's profile, cut to each scenario's window. */
  profiles?: ProfileSummary[];
  /** Storage round trips per request, counted one request at a time. */
  roundTrips?: RoundTrips[];
}

export interface Comparison {
  target: string;
  scenario: string;
  gatehousePerSecond: number;
  baselinePerSecond: number;
  /** Gatehouse / baseline requests per second, as measured (both share the machine with the load generator). */
  ratio: number;
  /** Gatehouse / baseline requests per server CPU-second (independent of the load generator's share). */
  cpuRatio: number;
}

export interface TargetCheck {
  target: string;
  goal: string;
  measured: string;
  met: boolean;
}

export const COMPARED = ['discovery', 'jwks', 'cc-opaque', 'cc-jwt', 'introspection'];

export function compare(targets: TargetResult[]): Comparison[] {
  const baseline = targets.find((t) => t.kind === 'baseline');
  if (!baseline) return [];
  const out: Comparison[] = [];
  for (const t of targets) {
    if (t.kind !== 'gatehouse') continue;
    for (const name of COMPARED) {
      const g = t.scenarios.find((s) => s.scenario === name);
      const b = baseline.scenarios.find((s) => s.scenario === name);
      if (!g || !b) continue;
      out.push({
        target: t.label,
        scenario: name,
        gatehousePerSecond: g.perSecond,
        baselinePerSecond: b.perSecond,
        ratio: round(g.perSecond / b.perSecond, 2),
        cpuRatio: round(g.perServerCpuSecond / b.perServerCpuSecond, 2),
      });
    }
  }
  return out;
}

export function checkTargets(targets: TargetResult[], comparisons: Comparison[], argon2: ScenarioResult | undefined): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const c of comparisons) {
    const goal = c.scenario === 'discovery' || c.scenario === 'jwks' ? 0.9 : 0.8;
    checks.push({
      target: c.target,
      goal: `${c.scenario} >= ${goal}x bare oidc-provider`,
      measured: `${c.ratio}x (${c.cpuRatio}x per server CPU-second)`,
      met: c.ratio >= goal,
    });
  }
  for (const t of targets) {
    if (t.kind !== 'gatehouse') continue;
    const signin = t.scenarios.find((s) => s.scenario === 'signin');
    if (signin && argon2 && t.workers === 0) {
      const ratio = round(signin.perServerCpuSecond / argon2.perServerCpuSecond, 2);
      checks.push({
        target: t.label,
        goal: 'sign-ins per server CPU-second within 10% of argon2 verifications per CPU-second',
        measured: `${signin.perServerCpuSecond} vs ${argon2.perServerCpuSecond} (${ratio}x)`,
        met: ratio >= 0.9,
      });
    }
    for (const s of t.scenarios.filter((x) => x.scenario.endsWith('@50%'))) {
      checks.push({ target: t.label, goal: `${s.scenario}: p99 < 50 ms`, measured: `p99 ${s.latencyMs.p99} ms at ${s.targetRate} req/s`, met: s.latencyMs.p99 < 50 && s.errors === 0 });
    }
    const burst = t.scenarios.find((s) => s.scenario === 'cc-jwt during sign-ins');
    if (burst) {
      const alone = t.scenarios.find((s) => s.scenario === 'cc-jwt @50%');
      checks.push({
        target: t.label,
        goal: 'client_credentials (JWT) p99 < 50 ms while a burst of sign-ins runs',
        measured: `p99 ${burst.latencyMs.p99} ms during sign-ins${alone ? ` (${alone.latencyMs.p99} ms without)` : ''}`,
        met: burst.latencyMs.p99 < 50 && burst.errors === 0,
      });
    }
  }
  return checks;
}

/**
 * What a sign-in costs oidc-provider itself: the baseline's sign-ins (minimal pages, no password
 * hash, no database) next to Gatehouse's and to one argon2id verification, in server CPU per
 * sign-in. A product on oidc-provider spends at least the baseline's CPU on a sign-in besides the
 * hash, so sign-ins per CPU-second can reach at most argon2 / (argon2 + bare) of the
 * verifications per CPU-second: the best ratio the argon2 target can show with this hash.
 */
export interface SigninFloor {
  /** The baseline target measured (in memory, or with --baseline-redis in Redis). */
  baseline: string;
  bareSignInsPerSecond: number;
  bareSignInsPerServerCpuSecond: number;
  bareErrors: number;
  bareHttpRequestsPerSignIn?: number;
  bareServerCpuMsPerSignIn: number;
  /** With --cpu-prof: the busy main-thread time per sign-in (the profile's, without libuv's threadpool). */
  bareMainThreadMsPerSignIn?: number;
  /** Server CPU of one verification alone (the argon2 scenario), when it ran. */
  argon2CpuMsPerVerification?: number;
  /** argon2 / (argon2 + bare): the highest sign-ins / verifications per CPU-second ratio reachable on oidc-provider with this hash. */
  bestRatio?: number;
  gatehouse: {
    target: string;
    signInsPerServerCpuSecond: number;
    serverCpuMsPerSignIn: number;
    mainThreadMsPerSignIn?: number;
    /** Sign-ins / verifications per CPU-second, as in the target. */
    ratio?: number;
    /** Server CPU per sign-in besides the verification. */
    nonHashMsPerSignIn?: number;
    /** The baseline's sign-in CPU as a share of that, in percent: how much of it is oidc-provider's own. */
    bareSharePercent?: number;
  }[];
}

function mainThreadMs(t: TargetResult, scenario: string): number | undefined {
  const us = t.profiles?.find((p) => p.scenario === scenario && p.busyUsPerOperation !== undefined)?.busyUsPerOperation;
  return us === undefined ? undefined : round(us / 1000, 2);
}

export function signinFloors(targets: TargetResult[], argon2: ScenarioResult | undefined): SigninFloor[] {
  const argon2Ms = argon2 && argon2.perServerCpuSecond > 0 ? 1000 / argon2.perServerCpuSecond : undefined;
  const floors: SigninFloor[] = [];
  for (const b of targets) {
    const bare = b.kind === 'baseline' ? b.scenarios.find((s) => s.scenario === 'signin') : undefined;
    if (!bare || !(bare.perServerCpuSecond > 0)) continue;
    const bareMs = 1000 / bare.perServerCpuSecond;
    const bareMainMs = mainThreadMs(b, 'signin');
    const requests = bare.notes?.httpRequestsPerSignIn;
    floors.push({
      baseline: b.label,
      bareSignInsPerSecond: bare.perSecond,
      bareSignInsPerServerCpuSecond: bare.perServerCpuSecond,
      bareErrors: bare.errors,
      ...(typeof requests === 'number' ? { bareHttpRequestsPerSignIn: requests } : {}),
      bareServerCpuMsPerSignIn: round(bareMs, 2),
      ...(bareMainMs !== undefined ? { bareMainThreadMsPerSignIn: bareMainMs } : {}),
      ...(argon2Ms !== undefined ? { argon2CpuMsPerVerification: round(argon2Ms, 2), bestRatio: round(argon2Ms / (argon2Ms + bareMs), 2) } : {}),
      gatehouse: targets.flatMap((t) => {
        const g = t.kind === 'gatehouse' ? t.scenarios.find((s) => s.scenario === 'signin') : undefined;
        if (!g || !(g.perServerCpuSecond > 0)) return [];
        const ms = 1000 / g.perServerCpuSecond;
        const mainMs = mainThreadMs(t, 'signin');
        const nonHash = argon2Ms !== undefined ? ms - argon2Ms : undefined;
        return [{
          target: t.label,
          signInsPerServerCpuSecond: g.perServerCpuSecond,
          serverCpuMsPerSignIn: round(ms, 2),
          ...(mainMs !== undefined ? { mainThreadMsPerSignIn: mainMs } : {}),
          ...(argon2 ? { ratio: round(g.perServerCpuSecond / argon2.perServerCpuSecond, 2) } : {}),
          ...(nonHash !== undefined ? { nonHashMsPerSignIn: round(nonHash, 2) } : {}),
          ...(nonHash !== undefined && nonHash > 0 ? { bareSharePercent: Math.round((bareMs / nonHash) * 100) } : {}),
        }];
      }),
    });
  }
  return floors;
}

export function formatSigninFloors(floors: SigninFloor[]): string {
  const out: string[] = [];
  const ms = (n: number | undefined) => (n === undefined ? '-' : `${n.toFixed(2)} ms`);
  for (const f of floors) {
    out.push('', `sign-in floor: ${f.baseline}, minimal pages, no password hash, no database`);
    out.push(`  ${f.bareSignInsPerSecond} sign-ins/s, ${f.bareSignInsPerServerCpuSecond} per server CPU-second, ${f.bareErrors} errors`
      + `${f.bareHttpRequestsPerSignIn !== undefined ? `, ${f.bareHttpRequestsPerSignIn} HTTP requests per sign-in` : ''}`);
    const cpu = [`bare ${ms(f.bareServerCpuMsPerSignIn)}${f.bareMainThreadMsPerSignIn !== undefined ? ` (main thread ${ms(f.bareMainThreadMsPerSignIn)})` : ''}`];
    for (const g of f.gatehouse) cpu.push(`${g.target} ${ms(g.serverCpuMsPerSignIn)}${g.mainThreadMsPerSignIn !== undefined ? ` (main thread ${ms(g.mainThreadMsPerSignIn)})` : ''}`);
    if (f.argon2CpuMsPerVerification !== undefined) cpu.push(`one argon2id verification ${ms(f.argon2CpuMsPerVerification)}`);
    out.push(`  server CPU per sign-in: ${cpu.join(', ')}`);
    for (const g of f.gatehouse) {
      if (g.nonHashMsPerSignIn === undefined) continue;
      out.push(`  ${g.target}: ${ms(g.nonHashMsPerSignIn)} per sign-in besides the verification, of which oidc-provider's own (bare) ${ms(f.bareServerCpuMsPerSignIn)}`
        + `${g.bareSharePercent !== undefined ? ` (${g.bareSharePercent} %)` : ''}`);
    }
    if (f.bestRatio !== undefined) {
      const measured = f.gatehouse.filter((g) => g.ratio !== undefined).map((g) => `${g.target} ${g.ratio}x`).join(', ');
      out.push(`  best sign-ins / argon2 verifications per CPU-second on oidc-provider with this hash: argon2 / (argon2 + bare) = ${f.bestRatio}x`
        + ` (the target asks 0.9x${measured ? `; measured ${measured}` : ''})`);
    }
  }
  return out.join('\n');
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padEnd(n) : s.padStart(n);
}

function fmt(n: number | undefined, digits = 1): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  return n >= 1000 ? Math.round(n).toString() : n.toFixed(digits);
}

export function formatTable(targets: TargetResult[], comparisons: Comparison[], argon2: ScenarioResult | undefined): string {
  // srv CPU: the server's CPU use in the window, in percent of one core; others: CPU of every
  // process that is neither the server, the load generator, PostgreSQL nor Redis (noise).
  const header = ['scenario', 'ops/s', 'p50 ms', 'p99 ms', 'errors', 'srv CPU', 'ops/CPU-s', 'vs bare', 'vs bare/CPU', 'others'];
  const widths = [34, 9, 8, 8, 7, 8, 10, 8, 11, 7];
  const line = (cells: string[]) => cells.map((c, i) => pad(c, widths[i]!, i === 0)).join(' ');
  const out: string[] = [];
  const rows = (title: string, scenarios: ScenarioResult[], target?: string) => {
    out.push('', title, line(header), '-'.repeat(widths.reduce((a, b) => a + b + 1, 0)));
    for (const s of scenarios) {
      const c = target ? comparisons.find((x) => x.target === target && x.scenario === s.scenario) : undefined;
      const util = Number.isFinite(s.serverCpuSeconds) ? `${Math.round((s.serverCpuSeconds / s.seconds) * 100)}%` : '-';
      out.push(line([
        `${s.scenario}${s.unit === 'requests' ? '' : ` (${s.unit})`}`,
        fmt(s.perSecond),
        fmt(s.latencyMs.p50, 2),
        fmt(s.latencyMs.p99, 2),
        String(s.errors),
        util,
        fmt(s.perServerCpuSecond),
        c ? `${c.ratio.toFixed(2)}x` : '',
        c ? `${c.cpuRatio.toFixed(2)}x` : '',
        Number.isFinite(s.otherCpuSeconds) ? `${Math.round((s.otherCpuSeconds / s.seconds) * 100)}%` : '-',
      ]));
    }
  };
  if (argon2) rows('password verification alone (argon2id, Gatehouse\'s verifyPassword)', [argon2]);
  for (const t of targets) {
    const workers = t.workers > 0 ? `, ${t.workers} workers` : '';
    rows(`${t.label} (${t.storage}${workers})`, t.scenarios, t.label);
    if (t.memory) {
      const m = t.memory;
      const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
      out.push(`  memory: RSS ${mb(m.rssAfterWarmupBytes)} after warm-up, ${mb(m.rssAfterSessionsBytes)} after ${m.sessions} more sessions/grants`
        + ` (${m.run.perSecond} sign-ins/s, ${m.run.errors} errors)`);
      if (m.redis) {
        out.push(`  redis: ${mb(m.redis.before.usedMemoryBytes)} -> ${mb(m.redis.after.usedMemoryBytes)}, ${m.redis.bytesPerSession} bytes per sign-in`
          + ` (${m.redis.after.keys} keys: ${Object.entries(m.redis.after.byModel).map(([k, v]) => `${k.replace(/^gatehouse:/, '')} ${v.keys}x${v.avgBytes}B`).join(', ')})`);
      }
      if (m.storageBytesBefore !== undefined && m.storageBytesAfter !== undefined) {
        out.push(`  database: ${mb(m.storageBytesBefore)} -> ${mb(m.storageBytesAfter)}`);
      }
    }
    if (t.workers > 0) {
      const single = targets.find((x) => x.kind === 'gatehouse' && x.workers === 0 && x.storage === t.storage);
      const scaling = t.scenarios.flatMap((s) => {
        const one = single?.scenarios.find((x) => x.scenario === s.scenario);
        return one ? [`${s.scenario} ${(s.perSecond / one.perSecond).toFixed(2)}x (${fmt(s.perSecond / t.workers)}/s per worker)`] : [];
      });
      if (scaling.length) out.push(`  vs one process: ${scaling.join(', ')}`);
    }
    if (t.roundTrips?.length) {
      out.push(`  storage round trips per operation (PostgreSQL queries / Redis commands): ${t.roundTrips.map((r) => `${r.operation} ${r.postgresPerOp} / ${r.redisPerOp}`).join(', ')}`);
    }
  }
  return out.join('\n');
}

export function formatChecks(checks: TargetCheck[]): string {
  return ['', 'targets:', ...checks.map((c) => `  [${c.met ? 'met' : 'NOT met'}] ${c.target}: ${c.goal} — ${c.measured}`)].join('\n');
}
