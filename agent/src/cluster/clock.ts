/**
 * The clock seam of the cluster code: the status queue, the election and the aggregator read the
 * time and set timers only through this, so their tests drive time by hand (tests/helpers/fake-clock.ts).
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Calls `fn` once after `ms`; cancel() before then stops it. */
  after(ms: number, fn: () => void): TimerHandle;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  after: (ms, fn) => {
    const t = setTimeout(fn, Math.max(0, ms));
    return { cancel: () => clearTimeout(t) };
  },
};

/** Kubernetes MicroTime (RFC 3339 with microseconds) and Time (seconds) of an epoch ms value. */
export const microTime = (ms: number): string => new Date(ms).toISOString().replace(/Z$/, '000Z');
export const secondsTime = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
