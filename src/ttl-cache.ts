// A small in-process cache for durable data that every request reads and that changes rarely
// (clients, resource servers). Entries live a few seconds, so a change made by another process
// reaches every instance within that time; concurrent misses share one load; failed loads are
// not remembered; the size is bounded so unknown keys cannot grow it.
export class TtlCache<V> {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #entries = new Map<string, { expires: number; value: Promise<V> }>();

  constructor(ttlMs: number, maxEntries = 1_000) {
    this.#ttlMs = ttlMs;
    this.#maxEntries = maxEntries;
  }

  get(key: string, load: () => Promise<V>): Promise<V> {
    const now = Date.now();
    const entry = this.#entries.get(key);
    if (entry && entry.expires > now) return entry.value;
    if (entry) this.#entries.delete(key);
    if (this.#entries.size >= this.#maxEntries) {
      for (const [k, e] of this.#entries) if (e.expires <= now) this.#entries.delete(k);
      // Still full of fresh entries: drop the oldest (Map keeps insertion order).
      if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    }
    const value = load();
    const created = { expires: now + this.#ttlMs, value };
    this.#entries.set(key, created);
    value.catch(() => {
      if (this.#entries.get(key) === created) this.#entries.delete(key);
    });
    return value;
  }
}
