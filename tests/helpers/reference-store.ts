/**
 * The event store as it was before the columnar ring (one object per held event), kept as the oracle
 * of tests/unit/events/store-columns.test.ts: the columnar store must answer every query as this
 * one does. Not used by the agent.
 *
 * What the agent remembers about syscall events, in bounded memory:
 * - a ring of the most recent events (default 10,000);
 * - per-container aggregates (syscall → count, actions, arches, first and last time) that outlive
 *   the ring, capped in number of containers (least recently active dropped first);
 * - subscribers that see every new event (the HTTP follow streams).
 * Pure data structure: no I/O, no timers.
 */
import type { AttributionKind } from '../../agent/src/events/attribute.js';
import type { PodRef } from '../../agent/src/events/pod-index.js';

/**
 * Distinct unnamed `arch:nr` pairs kept per container; calls with further ones are only counted
 * (`unresolvedOther`). Named syscalls are bounded by the syscall tables (500 names).
 */
export const MAX_UNRESOLVED = 64;

/** One syscall event as the HTTP API shows it. */
export interface SyscallEvent {
  /** Position in the agent's event sequence (SSE id, `after=`). */
  readonly seq: number;
  /** RFC 3339 with milliseconds, from the audit record. */
  readonly time: string;
  readonly node: string;
  namespace: string | null;
  pod: string | null;
  container: string | null;
  readonly containerId: string | null;
  readonly podUid: string | null;
  attribution: AttributionKind;
  readonly pid: number;
  readonly comm: string | null;
  readonly exe: string | null;
  readonly uid: number | null;
  readonly gid: number | null;
  readonly auid: number | null;
  readonly ses: number | null;
  readonly arch: string | null;
  readonly auditArch: string;
  readonly syscall: string | null;
  readonly syscallNr: number;
  readonly action: string;
  /** As the kernel prints it, e.g. 0x7ffc0000. */
  readonly code: string;
  readonly errno: number | null;
  readonly sig: number | null;
  readonly compat: number | null;
  readonly ip: string | null;
  readonly auditId: string;
}

/** Per-syscall aggregate. */
export interface SyscallCount {
  readonly name: string;
  count: number;
  readonly actions: Set<string>;
  readonly arches: Set<string>;
  first: number;
  last: number;
}

/** Per-container aggregate. Unattributed events (host or unknown) share the containerId-null bucket. */
export interface ContainerAggregate {
  readonly containerId: string | null;
  namespace: string | null;
  pod: string | null;
  container: string | null;
  podUid: string | null;
  total: number;
  first: number;
  last: number;
  readonly syscalls: Map<string, SyscallCount>;
  /** Calls whose number the arch's table does not name: `arch:nr` → count, at most MAX_UNRESOLVED. */
  readonly unresolved: Map<string, number>;
  /** Calls with unnamed numbers beyond the first MAX_UNRESOLVED distinct ones. */
  unresolvedOther: number;
  readonly arches: Set<string>;
}

/** Filters shared by the query endpoints. */
export interface EventFilter {
  readonly namespace?: string | undefined;
  readonly pod?: string | undefined;
  readonly container?: string | undefined;
  /** Full id or a prefix of at least 12 characters. */
  readonly containerId?: string | undefined;
  readonly syscall?: string | undefined;
  /** Epoch ms, inclusive. */
  readonly since?: number | undefined;
  /** Only events with seq greater than this (resuming a stream). */
  readonly afterSeq?: number | undefined;
}

export interface EventStoreOptions {
  readonly ringSize?: number;
  readonly maxContainers?: number;
  /** Fills pod fields that were unknown when an event came in (the pod watch saw it later). */
  readonly lateResolve?: (containerId: string, podUid: string | null) => PodRef | Partial<PodRef> | undefined;
  /** Called when a container's aggregate is dropped to respect maxContainers. */
  readonly onEvict?: (agg: ContainerAggregate) => void;
}

export type Subscriber = (ev: SyscallEvent) => void;

/** Whether `v` passes an optional exact-match filter. */
const eq = (want: string | undefined, v: string | null): boolean => want === undefined || want === v;

export function matchesContainer(
  f: EventFilter,
  a: { namespace: string | null; pod: string | null; container: string | null; containerId: string | null },
): boolean {
  if (!eq(f.namespace, a.namespace) || !eq(f.pod, a.pod) || !eq(f.container, a.container)) return false;
  if (f.containerId !== undefined && (a.containerId === null || !a.containerId.startsWith(f.containerId))) return false;
  return true;
}

/** The event store. */
export class ReferenceStore {
  readonly ringSize: number;
  readonly maxContainers: number;
  private readonly ring: (SyscallEvent | undefined)[];
  /** Epoch ms per ring slot (the event's `time` as a number, for `since`). */
  private readonly times: Float64Array;
  private head = 0;
  private count = 0;
  private nextSeq = 1;
  private readonly aggs = new Map<string, ContainerAggregate>();
  private readonly subs = new Set<Subscriber>();
  private readonly o: EventStoreOptions;

  constructor(o: EventStoreOptions = {}) {
    this.o = o;
    this.ringSize = o.ringSize ?? 10_000;
    this.maxContainers = o.maxContainers ?? 1024;
    if (!Number.isInteger(this.ringSize) || this.ringSize < 1)
      throw new RangeError('ringSize must be a positive integer');
    this.ring = new Array<SyscallEvent | undefined>(this.ringSize);
    this.times = new Float64Array(this.ringSize);
  }

  /** The seq the next event will get. */
  get seq(): number {
    return this.nextSeq;
  }

  /** Events in the ring now. */
  get size(): number {
    return this.count;
  }

  /** Adds an event (its seq is assigned here, in place), updates aggregates, tells subscribers. */
  add(ev: Omit<SyscallEvent, 'seq'> & { seq?: number }, timeMs: number): SyscallEvent {
    ev.seq = this.nextSeq++;
    const full = ev as SyscallEvent;
    this.ring[this.head] = full;
    this.times[this.head] = timeMs;
    this.head = (this.head + 1) % this.ringSize;
    if (this.count < this.ringSize) this.count++;
    this.aggregate(full, timeMs);
    for (const s of this.subs) {
      try {
        s(full);
      } catch {
        // A subscriber's failure is its own (the stream closes itself); the store goes on.
      }
    }
    return full;
  }

  private aggregate(ev: SyscallEvent, timeMs: number): void {
    const key = ev.containerId ?? '';
    let a = this.aggs.get(key);
    if (a === undefined) {
      a = {
        containerId: ev.containerId,
        namespace: ev.namespace,
        pod: ev.pod,
        container: ev.container,
        podUid: ev.podUid,
        total: 0,
        first: timeMs,
        last: timeMs,
        syscalls: new Map(),
        unresolved: new Map(),
        unresolvedOther: 0,
        arches: new Set(),
      };
      while (this.aggs.size >= this.maxContainers) {
        const oldest = this.aggs.entries().next();
        if (oldest.done === true) break;
        this.aggs.delete(oldest.value[0]);
        this.o.onEvict?.(oldest.value[1]);
      }
    } else {
      this.aggs.delete(key); // re-inserted below: Map order is recency
      if (a.pod === null && ev.pod !== null) {
        a.namespace = ev.namespace;
        a.pod = ev.pod;
        a.container = ev.container;
      }
    }
    this.aggs.set(key, a);
    a.total++;
    if (timeMs < a.first) a.first = timeMs;
    if (timeMs > a.last) a.last = timeMs;
    if (ev.arch !== null) a.arches.add(ev.arch);
    if (ev.syscall === null) {
      const k = `${ev.arch ?? ev.auditArch}:${ev.syscallNr}`;
      const n = a.unresolved.get(k);
      if (n !== undefined) a.unresolved.set(k, n + 1);
      else if (a.unresolved.size < MAX_UNRESOLVED) a.unresolved.set(k, 1);
      else a.unresolvedOther++;
      return;
    }
    let s = a.syscalls.get(ev.syscall);
    if (s === undefined) {
      s = { name: ev.syscall, count: 0, actions: new Set(), arches: new Set(), first: timeMs, last: timeMs };
      a.syscalls.set(ev.syscall, s);
    }
    s.count++;
    s.actions.add(ev.action);
    if (ev.arch !== null) s.arches.add(ev.arch);
    if (timeMs < s.first) s.first = timeMs;
    if (timeMs > s.last) s.last = timeMs;
  }

  /** Fills pod fields the pod watch learned after the event came in. */
  private refresh(x: {
    namespace: string | null;
    pod: string | null;
    container: string | null;
    containerId: string | null;
    podUid: string | null;
  }): void {
    if (x.containerId === null || (x.pod !== null && x.container !== null) || this.o.lateResolve === undefined) return;
    const ref = this.o.lateResolve(x.containerId, x.podUid);
    if (ref === undefined) return;
    x.namespace = ref.namespace ?? x.namespace;
    x.pod = ref.pod ?? x.pod;
    x.container = ref.container ?? x.container;
  }

  /** Matching events from the ring, oldest first, at most `limit` (the newest ones). */
  events(f: EventFilter, limit: number): SyscallEvent[] {
    const out: SyscallEvent[] = [];
    for (let i = 0; i < this.count && out.length < limit; i++) {
      const idx = (this.head - 1 - i + this.ringSize) % this.ringSize;
      const ev = this.ring[idx];
      if (ev === undefined) continue;
      if (f.afterSeq !== undefined && ev.seq <= f.afterSeq) break;
      if (f.since !== undefined && (this.times[idx] ?? 0) < f.since) continue;
      if (this.matches(f, ev)) out.push(ev);
    }
    return out.reverse();
  }

  /** Whether an event passes a filter (the follow streams use it on new events). */
  matches(f: EventFilter, ev: SyscallEvent): boolean {
    if (f.syscall !== undefined && ev.syscall !== f.syscall) return false;
    if (f.afterSeq !== undefined && ev.seq <= f.afterSeq) return false;
    this.refresh(
      ev as {
        namespace: string | null;
        pod: string | null;
        container: string | null;
        containerId: string | null;
        podUid: string | null;
      },
    );
    return matchesContainer(f, ev);
  }

  /** Aggregates of matching containers, sorted by namespace, pod, container, container id. */
  aggregates(f: EventFilter): ContainerAggregate[] {
    const out: ContainerAggregate[] = [];
    for (const a of this.aggs.values()) {
      this.refresh(a);
      if (!matchesContainer(f, a)) continue;
      if (f.syscall !== undefined && !a.syscalls.has(f.syscall)) continue;
      if (f.since !== undefined && a.last < f.since) continue;
      out.push(a);
    }
    const k = (a: ContainerAggregate): string =>
      [a.namespace ?? '\uffff', a.pod ?? '\uffff', a.container ?? '\uffff', a.containerId ?? '\uffff'].join('\0');
    return out.sort((x, y) => (k(x) < k(y) ? -1 : k(x) > k(y) ? 1 : 0));
  }

  /** Number of container aggregates held. */
  get containers(): number {
    return this.aggs.size;
  }

  /** Registers a subscriber; returns the function that removes it. */
  subscribe(s: Subscriber): () => void {
    this.subs.add(s);
    return () => this.subs.delete(s);
  }

  get subscribers(): number {
    return this.subs.size;
  }
}
