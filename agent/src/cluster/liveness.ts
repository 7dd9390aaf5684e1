/**
 * Which nodes are live, for the aggregator: a node counts while its Node object exists and its
 * agent's Lease (`seccomp-agent-<node>`, kube/lease.ts) has not expired; the aggregator counts
 * itself. Fed by the aggregator's informers; tells when the set changes, including when a lease
 * expires with nobody writing anything (a timer at the next expiry).
 */
import type { LeaseView } from '../kube/lease.js';
import type { Clock, TimerHandle } from './clock.js';

export class LiveNodes {
  readonly #clock: Clock;
  readonly #self: string;
  readonly #onChange: (live: readonly string[]) => void;
  readonly #leases = new Map<string, LeaseView>();
  readonly #nodes = new Set<string>();
  #live: string[] = [];
  #timer: TimerHandle | undefined;

  constructor(clock: Clock, self: string, onChange: (live: readonly string[]) => void) {
    this.#clock = clock;
    this.#self = self;
    this.#onChange = onChange;
    this.#live = [self];
  }

  /** Sorted names of the live nodes. */
  get live(): readonly string[] {
    return this.#live;
  }

  setLease(key: string, l: LeaseView | undefined): void {
    if (l === undefined) this.#leases.delete(key);
    else this.#leases.set(key, l);
    this.check();
  }

  setNode(name: string, present: boolean): void {
    if (present) this.#nodes.add(name);
    else this.#nodes.delete(name);
    this.check();
  }

  stop(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  check(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    const now = this.#clock.now();
    const out = new Set<string>([this.#self]);
    let next = Infinity;
    for (const l of this.#leases.values()) {
      if (l.expiresAt > now) {
        next = Math.min(next, l.expiresAt);
        if (this.#nodes.has(l.node)) out.add(l.node);
      }
    }
    const live = [...out].sort();
    if (next !== Infinity) this.#timer = this.#clock.after(next - now + 50, () => this.check());
    if (live.join(',') !== this.#live.join(',')) {
      this.#live = live;
      this.#onChange(live);
    }
  }
}
