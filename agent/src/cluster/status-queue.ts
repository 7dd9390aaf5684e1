/**
 * A keyed work queue: one run at a time per key, at most `concurrency` runs at once, changes to a
 * key coalesced for `coalesceMs`, and two runs of the same key at least `minGapMs` apart (so a
 * profile that every node reports on in turn is written once or twice, not once per node). A run
 * that throws is retried after `retryMs`. Time comes from the Clock seam; one timer at a time,
 * and none while every slot is busy (a run that ends re-arms it).
 */
import type { Clock, TimerHandle } from './clock.js';

export interface KeyedQueueOptions {
  clock: Clock;
  concurrency: number;
  coalesceMs: number;
  minGapMs: number;
  retryMs: number;
  /** The work; `false` means it wrote nothing, so the gap does not start from this run. */
  run: (key: string) => Promise<boolean | void>;
  /** Told of a run that threw (it is retried after retryMs unless this returns false). */
  onError: (key: string, e: unknown) => boolean;
}

export class KeyedQueue {
  readonly #o: KeyedQueueOptions;
  /** key → when its run is due */
  readonly #due = new Map<string, number>();
  readonly #inFlight = new Set<string>();
  readonly #lastRun = new Map<string, number>();
  #timer: TimerHandle | undefined;
  #timerDue = Infinity;
  #stopped = false;
  #idle: (() => void)[] = [];
  runs = 0;

  constructor(o: KeyedQueueOptions) {
    this.#o = o;
  }

  /** Asks for a run of `key` after `delayMs` (default: the coalescing delay), never sooner than the gap allows. */
  enqueue(key: string, delayMs = this.#o.coalesceMs): void {
    if (this.#stopped) return;
    const now = this.#o.clock.now();
    const last = this.#lastRun.get(key);
    const due = Math.max(now + delayMs, last === undefined ? -Infinity : last + this.#o.minGapMs);
    const cur = this.#due.get(key);
    if (cur !== undefined && cur <= due) return;
    this.#due.set(key, due);
    if (!this.#inFlight.has(key)) this.#armAt(due);
  }

  /** Forgets a key (its object is gone). A run in flight finishes. */
  forget(key: string): void {
    this.#due.delete(key);
    this.#lastRun.delete(key);
    this.#resolveIdle();
  }

  get pending(): number {
    return this.#due.size;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Resolves when nothing is queued or running (tests). */
  whenIdle(): Promise<void> {
    if (this.#due.size === 0 && this.#inFlight.size === 0) return Promise.resolve();
    return new Promise((res) => this.#idle.push(res));
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #armAt(due: number): void {
    if (this.#stopped || due === Infinity || due >= this.#timerDue) return;
    if (this.#inFlight.size >= this.#o.concurrency) return;
    this.#timer?.cancel();
    this.#timerDue = due;
    this.#timer = this.#o.clock.after(due - this.#o.clock.now(), () => this.#drain());
  }

  #arm(): void {
    let next = Infinity;
    for (const [key, due] of this.#due) if (due < next && !this.#inFlight.has(key)) next = due;
    this.#armAt(next);
  }

  #drain(): void {
    this.#timer = undefined;
    this.#timerDue = Infinity;
    if (this.#stopped) return;
    const now = this.#o.clock.now();
    const ready: [string, number][] = [];
    for (const [key, due] of this.#due) if (due <= now && !this.#inFlight.has(key)) ready.push([key, due]);
    ready.sort((a, b) => a[1] - b[1]);
    for (const [key] of ready.slice(0, Math.max(0, this.#o.concurrency - this.#inFlight.size))) this.#start(key);
    this.#arm();
  }

  #start(key: string): void {
    this.#due.delete(key);
    this.#inFlight.add(key);
    const before = this.#lastRun.get(key);
    this.#lastRun.set(key, this.#o.clock.now());
    this.runs++;
    this.#o
      .run(key)
      .then((did) => {
        if (did !== false) return;
        if (before === undefined) this.#lastRun.delete(key);
        else this.#lastRun.set(key, before);
      })
      .catch((e: unknown) => {
        if (this.#o.onError(key, e)) this.enqueue(key, this.#o.retryMs);
      })
      .finally(() => {
        this.#inFlight.delete(key);
        this.#arm();
        this.#resolveIdle();
      });
  }

  #resolveIdle(): void {
    if (this.#due.size === 0 && this.#inFlight.size === 0) for (const f of this.#idle.splice(0)) f();
  }
}
