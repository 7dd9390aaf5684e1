/**
 * A silently cut connection, found in seconds. The elected agent renews the aggregator Lease every
 * `electionRenewMs`, and every agent watches that one Lease, so while there is a leader each agent's
 * Lease watch gets a byte at least that often. A healthy profile watch, though, can be quiet for a
 * minute (the API server's bookmarks come about once a minute), so its own watchdog has to wait long.
 * When the Lease watch has been silent for `silenceMs`, the agent's connections are most likely cut
 * without a FIN or RST (a dead NAT entry, a black-holed proxy: what cuts one of its connections
 * usually cuts them all), and every watch is restarted at once, from its last resourceVersion. A
 * false alarm (no leader for a few seconds) costs one re-watch each, never a relist.
 */
import type { Clock, TimerHandle } from './clock.js';

export class WatchHeartbeat {
  readonly #clock: Clock;
  readonly #activityAt: () => number | undefined;
  readonly #silenceMs: number;
  readonly #onSilent: () => void;
  #timer: TimerHandle | undefined;
  /** The activity time already acted on: no second alarm before the watch shows life again. */
  #firedFor: number | undefined;
  alarms = 0;

  constructor(clock: Clock, activityAt: () => number | undefined, silenceMs: number, onSilent: () => void) {
    this.#clock = clock;
    this.#activityAt = activityAt;
    this.#silenceMs = silenceMs;
    this.#onSilent = onSilent;
  }

  start(): void {
    this.#arm();
  }

  stop(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  /** One look; exported for the tests' sake through start() and the clock. */
  #check(): void {
    const at = this.#activityAt();
    if (at !== undefined && at !== this.#firedFor && this.#clock.now() - at > this.#silenceMs) {
      this.#firedFor = at;
      this.alarms++;
      this.#onSilent();
    }
    this.#arm();
  }

  #arm(): void {
    this.#timer = this.#clock.after(Math.max(100, Math.floor(this.#silenceMs / 6)), () => this.#check());
  }
}
