/**
 * Interning with reference counts: equal values share one small integer id, and an id is freed (and
 * may be reused) only when nothing refers to it any more. The event ring keeps a few ids per event
 * instead of a dozen strings; an id that a held event still uses never changes meaning, whatever the
 * ring overwrites or the aggregates evict. Bounded by construction: at most as many live ids as
 * references, and references are bounded by the ring.
 */

/** Entries of the hash-indexed cache of recent ids (a power of two). */
const RECENT = 256;

/** Values of one kind, each given an id; `key` must tell two values apart exactly. */
export class Interner<T> {
  private readonly byKey = new Map<string, number>();
  private values: (T | undefined)[] = [];
  private keys: (string | undefined)[] = [];
  private refs = new Uint32Array(16);
  private readonly free: number[] = [];
  private readonly keyOf: (v: T) => string;
  /** The last value interned and its id: consecutive records mostly share values. */
  private lastValue: T | undefined;
  private lastId = -1;
  private readonly same: (a: T, b: T) => boolean;
  private readonly copy: (v: T) => T;
  /** Recently used ids by the caller's hash (direct-mapped, -1 empty): skips making the key string. */
  private readonly recent = new Int32Array(RECENT).fill(-1);

  /**
   * `key` makes the identity string; `same` is a cheap field-by-field check against the last value;
   * `copy` takes the fields of a value that is kept (the caller's object may change or be larger).
   */
  constructor(key: (v: T) => string, same: (a: T, b: T) => boolean, copy: (v: T) => T) {
    this.keyOf = key;
    this.same = same;
    this.copy = copy;
  }

  /**
   * The id of `v`, taking one reference. `hash` (any integer the caller computes from `v`'s fields;
   * equal values must give equal hashes) finds a recently used id without building the key.
   */
  acquire(v: T, hash?: number): number {
    if (this.lastId >= 0 && this.lastValue !== undefined && this.same(this.lastValue, v)) {
      // The last value may have been freed since: only reuse an id that is still live.
      if ((this.refs[this.lastId] ?? 0) > 0) {
        this.refs[this.lastId] = (this.refs[this.lastId] ?? 0) + 1;
        return this.lastId;
      }
    }
    const slot = hash === undefined ? -1 : hash & (RECENT - 1);
    if (slot >= 0) {
      const r = this.recent[slot] ?? -1;
      // A freed id has no references (and may hold another value once reused): checked first.
      if (r >= 0 && (this.refs[r] ?? 0) > 0) {
        const rv = this.values[r];
        if (rv !== undefined && this.same(rv, v)) {
          this.refs[r] = (this.refs[r] ?? 0) + 1;
          this.lastValue = rv;
          this.lastId = r;
          return r;
        }
      }
    }
    const k = this.keyOf(v);
    let id = this.byKey.get(k);
    if (id === undefined) {
      id = this.free.pop() ?? this.values.length;
      if (id >= this.refs.length) {
        const grown = new Uint32Array(this.refs.length * 2);
        grown.set(this.refs);
        this.refs = grown;
      }
      this.values[id] = this.copy(v);
      this.keys[id] = k;
      this.byKey.set(k, id);
    }
    this.refs[id] = (this.refs[id] ?? 0) + 1;
    this.lastValue = this.values[id];
    this.lastId = id;
    if (slot >= 0) this.recent[slot] = id;
    return id;
  }

  /** Drops one reference to `id`; the id is freed when none is left. */
  release(id: number): void {
    const n = this.refs[id] ?? 0;
    if (n === 0) throw new RangeError(`interned id ${id} released more often than acquired`);
    this.refs[id] = n - 1;
    if (n > 1) return;
    const k = this.keys[id];
    if (k !== undefined) this.byKey.delete(k);
    this.values[id] = undefined;
    this.keys[id] = undefined;
    this.free.push(id);
  }

  /** The value of a live id. */
  get(id: number): T {
    const v = this.values[id];
    if (v === undefined) throw new RangeError(`interned id ${id} is not live`);
    return v;
  }

  /** Every live value with its id. */
  forEach(f: (v: T, id: number) => void): void {
    for (const id of this.byKey.values()) {
      const v = this.values[id];
      if (v !== undefined) f(v, id);
    }
  }

  /** References held on `id` (0 when free). */
  refsOf(id: number): number {
    return this.refs[id] ?? 0;
  }

  /** Live ids. */
  get size(): number {
    return this.byKey.size;
  }
}

/** A key part for a string or null that no other string or null produces (length-prefixed). */
export const keyPart = (s: string | null): string => (s === null ? '-' : `${s.length}:${s}`);

/** A key part for a number or null. */
export const numPart = (n: number | null): string => (n === null ? '-' : String(n));
