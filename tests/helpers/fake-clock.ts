/**
 * A Clock (agent/src/cluster/clock.ts) whose time moves only when a test says so. `advance(ms)`
 * fires the timers that fall due in the window in time order (ties in the order they were set),
 * including timers set by timers it fired, and lets pending promise callbacks run after each one,
 * so code that awaits a (fake) API call between timers sees time as it would in production.
 */
import type { Clock, TimerHandle } from '../../agent/src/cluster/clock.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

/** Lets every queued promise callback run (and those they queue), then returns. */
export const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Set<Timer>();
  /** How many timers were set in all (a test can check that something stayed quiet). */
  timersSet = 0;

  constructor(start = Date.UTC(2025, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  after(ms: number, fn: () => void): TimerHandle {
    const t: Timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn };
    this.#timers.add(t);
    this.timersSet++;
    return { cancel: () => this.#timers.delete(t) };
  }

  /** Timers set and neither fired nor cancelled. */
  get pending(): number {
    return this.#timers.size;
  }

  /** When the next timer is due (Infinity: none). */
  get nextAt(): number {
    return this.#next()?.at ?? Infinity;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way; flushes after each. */
  async advance(ms: number): Promise<void> {
    await this.advanceTo(this.#now + ms);
  }

  /** Like advance, to an absolute time. */
  async advanceTo(target: number): Promise<void> {
    await flush();
    for (let fired = 0; ; fired++) {
      if (fired > 100_000) throw new Error('FakeClock: more than 100000 timers in one advance (a timer loop?)');
      const t = this.#next();
      if (t === undefined || t.at > target) break;
      this.#timers.delete(t);
      this.#now = Math.max(this.#now, t.at);
      t.fn();
      await flush();
    }
    this.#now = Math.max(this.#now, target);
    await flush();
  }

  #next(): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.#timers)
      if (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    return best;
  }
}
