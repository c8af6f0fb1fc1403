// Paired rounds: the same scenario on Gatehouse and on the baseline, one right after the other,
// several times, alternating which goes first. On a shared or virtual machine the speed of the
// whole machine drifts by tens of percent within minutes (the same bare server measured 20,000
// and 12,000 discovery requests per second a minute apart); a ratio taken from two runs minutes
// apart measures that drift as much as Gatehouse. Within a pair both sides see nearly the same
// machine, and the median over pairs resists the rounds that caught a drift.
import type { ScenarioResult } from './scenarios.ts';
import { round } from './stats.ts';

export interface PairedRound {
  gatehouse: ScenarioResult;
  baseline: ScenarioResult;
  /** Gatehouse / baseline requests per second in this round. */
  ratio: number;
  /** Gatehouse / baseline requests per server CPU-second in this round. */
  cpuRatio: number;
}

export interface PairedResult {
  scenario: string;
  rounds: PairedRound[];
  gatehousePerCpuSecond: number;
  baselinePerCpuSecond: number;
  /** Medians over rounds. */
  ratio: number;
  cpuRatio: number;
  cpuRatioMin: number;
  cpuRatioMax: number;
}

/** Target ratios: discovery and JWKS 0.9x, tokens and introspection 0.8x. */
export const PAIRED_GOALS: Record<string, number> = { discovery: 0.9, jwks: 0.9, 'cc-opaque': 0.8, 'cc-jwt': 0.8, introspection: 0.8 };

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function pairRound(gatehouse: ScenarioResult, baseline: ScenarioResult): PairedRound {
  return {
    gatehouse,
    baseline,
    ratio: round(gatehouse.perSecond / baseline.perSecond, 3),
    cpuRatio: round(gatehouse.perServerCpuSecond / baseline.perServerCpuSecond, 3),
  };
}

export function summarizePairs(scenario: string, rounds: PairedRound[]): PairedResult {
  const cpuRatios = rounds.map((r) => r.cpuRatio);
  return {
    scenario,
    rounds,
    gatehousePerCpuSecond: round(median(rounds.map((r) => r.gatehouse.perServerCpuSecond)), 0),
    baselinePerCpuSecond: round(median(rounds.map((r) => r.baseline.perServerCpuSecond)), 0),
    ratio: round(median(rounds.map((r) => r.ratio)), 2),
    cpuRatio: round(median(cpuRatios), 2),
    cpuRatioMin: round(Math.min(...cpuRatios), 2),
    cpuRatioMax: round(Math.max(...cpuRatios), 2),
  };
}

export function formatPaired(results: readonly PairedResult[], baselineLabel: string): string {
  const rounds = results[0]?.rounds.length ?? 0;
  const lines = [
    `paired rounds: Gatehouse (PostgreSQL + Redis) against ${baselineLabel}, ${rounds} rounds per scenario, medians`,
    `${'scenario'.padEnd(16)}${'gatehouse ops/CPU-s'.padStart(21)}${'bare ops/CPU-s'.padStart(16)}${'vs bare/CPU'.padStart(13)}${'range'.padStart(14)}${'vs bare'.padStart(10)}  goal`,
    '-'.repeat(100),
  ];
  for (const r of results) {
    const goal = PAIRED_GOALS[r.scenario];
    const verdict = goal === undefined ? '' : `>= ${goal}x ${r.cpuRatio >= goal ? 'met' : 'NOT met'}`;
    lines.push(`${r.scenario.padEnd(16)}${String(r.gatehousePerCpuSecond).padStart(21)}${String(r.baselinePerCpuSecond).padStart(16)}${`${r.cpuRatio}x`.padStart(13)}${`${r.cpuRatioMin}-${r.cpuRatioMax}x`.padStart(14)}${`${r.ratio}x`.padStart(10)}  ${verdict}`);
  }
  return lines.join('\n');
}
