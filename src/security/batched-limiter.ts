// A rate limit counted in this process and written to the shared store in batches, for limits
// on requests that must not wait for a storage round trip each (the token endpoint: one Redis
// command per token was a sixth of what a client_credentials token cost).
//
// Each key's points are admitted against what the shared store said at the last write plus what
// this process admitted since; every `flushMs` (or sooner, once a tenth of the limit is waiting)
// the waiting points are added to the store in one command per key, and its answer becomes the
// new starting point. One process alone therefore never admits more than the limit. Several
// processes sharing the store see each other's counts only at their writes, so together they may
// admit up to one batch each beyond the limit before all of them refuse: the limit is exact per
// process and approximate across processes (docs/decisions.md).
import { RateLimiterRes } from 'rate-limiter-flexible';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';

/** The part of a rate-limiter-flexible limiter this one stands in for. */
export type LimiterStore = Pick<RateLimiterAbstract, 'consume' | 'get' | 'reward' | 'delete'>;

export interface BatchedLimiterOptions {
  /** Where the shared count lives (RateLimiterRedis or the database store). */
  store: LimiterStore;
  points: number;
  durationSeconds: number;
  /** Longest time admitted points wait before they are written (default 100 ms). */
  flushMs?: number;
  /** Keys tracked in memory at most; requests for further keys go to the store directly. */
  maxKeys?: number;
  /** Told when a write fails; the points then count in this process only. */
  onStoreError?: (err: unknown) => void;
}

interface KeyState {
  /** Points the store had counted for the key at the last write, all processes together. */
  stored: number;
  /** Points admitted here and not yet written. */
  pending: number;
  /** Points in the write under way (the store's answer will include them). */
  writing: number;
  /** That write, for flush() to wait on. */
  write: Promise<void> | undefined;
  /** When the store's window for the key ends (this host's clock), 0 before the first write. */
  windowEndsAt: number;
}

export class BatchedLimiter implements LimiterStore {
  readonly #store: LimiterStore;
  readonly #points: number;
  readonly #durationMs: number;
  readonly #flushMs: number;
  readonly #maxKeys: number;
  readonly #batchSize: number;
  readonly #onStoreError: (err: unknown) => void;
  readonly #keys = new Map<string, KeyState>();
  #timer: NodeJS.Timeout | undefined;
  #lastEviction = 0;

  constructor(options: BatchedLimiterOptions) {
    this.#store = options.store;
    this.#points = options.points;
    this.#durationMs = options.durationSeconds * 1000;
    this.#flushMs = options.flushMs ?? 100;
    this.#maxKeys = options.maxKeys ?? 10_000;
    this.#batchSize = Math.max(1, Math.floor(options.points / 10));
    this.#onStoreError = options.onStoreError ?? (() => undefined);
  }

  /** Admits or refuses at once, like RateLimiterAbstract.consume: resolves, or rejects with a RateLimiterRes. */
  async consume(key: string | number, points = 1): Promise<RateLimiterRes> {
    const id = String(key);
    const now = Date.now();
    let state = this.#keys.get(id);
    if (!state) {
      // An unbounded map would let requests naming endless made-up clients fill memory; past the
      // bound, counting goes to the store directly, exactly and one round trip per request.
      if (this.#keys.size >= this.#maxKeys && !this.#evictIdle(now)) return this.#store.consume(id, points);
      state = { stored: 0, pending: 0, writing: 0, write: undefined, windowEndsAt: 0 };
      this.#keys.set(id, state);
    }
    // The store's window is over, so is its count; what waits here counts in the next one.
    if (state.windowEndsAt !== 0 && state.windowEndsAt <= now) {
      state.stored = 0;
      state.windowEndsAt = 0;
    }
    const consumed = state.stored + state.writing + state.pending + points;
    const msBeforeNext = state.windowEndsAt === 0 ? this.#durationMs : state.windowEndsAt - now;
    if (consumed > this.#points) throw new RateLimiterRes(0, msBeforeNext, consumed, false);
    state.pending += points;
    if (state.pending >= this.#batchSize) this.#write(id, state);
    else this.#schedule();
    return new RateLimiterRes(this.#points - consumed, msBeforeNext, consumed, consumed === points);
  }

  /** The store's count plus what waits here. */
  async get(key: string | number): Promise<RateLimiterRes | null> {
    const id = String(key);
    const stored = await this.#store.get(id);
    const state = this.#keys.get(id);
    const pending = state ? state.pending + state.writing : 0;
    if (!stored) return pending > 0 ? new RateLimiterRes(Math.max(this.#points - pending, 0), this.#durationMs, pending, false) : null;
    const consumed = stored.consumedPoints + pending;
    return new RateLimiterRes(Math.max(this.#points - consumed, 0), stored.msBeforeNext, consumed, false);
  }

  /** Gives back points still waiting here first, then in the store. */
  async reward(key: string | number, points = 1): Promise<RateLimiterRes> {
    const id = String(key);
    const state = this.#keys.get(id);
    const local = Math.min(points, state?.pending ?? 0);
    if (state) state.pending -= local;
    return this.#store.reward(id, points - local);
  }

  async delete(key: string | number): Promise<boolean> {
    const id = String(key);
    this.#keys.delete(id);
    return this.#store.delete(id);
  }

  /** Writes everything waiting now and waits for the writes under way (shutdown, tests). */
  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await Promise.all([...this.#keys].map(async ([id, state]) => {
      await state.write;
      this.#write(id, state);
      await state.write;
    }));
  }

  #schedule(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      for (const [id, state] of this.#keys) this.#write(id, state);
    }, this.#flushMs);
    // Waiting points must not keep a stopping process alive; they are at most one batch.
    this.#timer.unref();
  }

  /** Starts writing what waits for the key, unless a write is under way (it reschedules). */
  #write(id: string, state: KeyState): void {
    if (state.writing > 0 || state.pending === 0) return;
    const points = state.pending;
    state.pending = 0;
    state.writing = points;
    state.write = this.#send(id, state, points);
  }

  async #send(id: string, state: KeyState, points: number): Promise<void> {
    try {
      this.#settle(state, await this.#store.consume(id, points));
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        // Over the limit, all processes together: the count says so, and consume refuses.
        this.#settle(state, err);
      } else {
        // The store is unreachable: the points count here alone, so this process still limits.
        state.stored += points;
        if (state.windowEndsAt === 0) state.windowEndsAt = Date.now() + this.#durationMs;
        this.#onStoreError(err);
      }
    } finally {
      state.writing = 0;
      state.write = undefined;
    }
    // Points admitted while the write was under way go in the next one.
    if (state.pending > 0) this.#schedule();
  }

  #settle(state: KeyState, res: RateLimiterRes): void {
    state.stored = res.consumedPoints;
    state.windowEndsAt = res.msBeforeNext >= 0 ? Date.now() + res.msBeforeNext : 0;
  }

  /** Forgets keys with nothing waiting and no live window; true when room was made. */
  #evictIdle(now: number): boolean {
    // A scan of every key at most once a second, not once per request for an unknown key.
    if (now - this.#lastEviction < 1000) return false;
    this.#lastEviction = now;
    const before = this.#keys.size;
    for (const [id, state] of this.#keys) {
      if (state.pending === 0 && state.writing === 0 && (state.windowEndsAt === 0 || state.windowEndsAt <= now)) this.#keys.delete(id);
    }
    return this.#keys.size < before;
  }
}
