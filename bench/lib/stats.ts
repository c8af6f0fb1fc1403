// Latency samples and the summary every scenario reports.

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Collects latencies in milliseconds (sub-millisecond resolution, unlike autocannon's histogram). */
export class Samples {
  #values = new Float64Array(1024);
  #count = 0;

  add(ms: number): void {
    if (this.#count === this.#values.length) {
      const bigger = new Float64Array(this.#values.length * 2);
      bigger.set(this.#values);
      this.#values = bigger;
    }
    this.#values[this.#count++] = ms;
  }

  get count(): number {
    return this.#count;
  }

  summary(): LatencySummary {
    if (this.#count === 0) return { p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
    const sorted = this.#values.slice(0, this.#count).sort();
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
    let sum = 0;
    for (const v of sorted) sum += v;
    return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1]!, mean: sum / sorted.length };
  }
}

/** What a load generator reports for the measured part of a scenario. */
export interface LoadReport {
  /** autocannon / wrk: HTTP load tools at saturation; paced: the open-loop fixed-rate generator; http-driver: the scripted sign-in; in-process: argon2 alone. */
  tool: 'autocannon' | 'wrk' | 'paced' | 'http-driver' | 'in-process';
  connections: number;
  /** Requests per second asked for (fixed-rate runs); undefined when saturating. */
  targetRate: number | undefined;
  seconds: number;
  /** Completed operations: HTTP responses, or whole sign-ins for the sign-in scenario. */
  operations: number;
  latencyMs: LatencySummary;
  /** Failed operations: socket errors, timeouts and unexpected statuses. */
  errors: number;
  /** Status codes seen (HTTP scenarios). */
  statusCodes?: Record<string, number>;
  /** CPU seconds the load generator itself used. */
  generatorCpuSeconds: number;
  /** Scenario-specific facts (e.g. HTTP requests per sign-in). */
  notes?: Record<string, number | string>;
}

export function round(value: number, digits = 2): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
