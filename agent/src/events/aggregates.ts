/**
 * Per-container aggregates (syscall → count, actions, arches, first and last time) that outlive the
 * event ring, capped in number of containers (least recently active dropped first). Their size
 * grows with containers × syscall names, never with events. Pure data structure.
 */
import type { PodRef } from './pod-index.js';

/**
 * Distinct unnamed `arch:nr` pairs kept per container; calls with further ones are only counted
 * (`unresolvedOther`). Named syscalls are bounded by the syscall tables (500 names).
 */
export const MAX_UNRESOLVED = 64;

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

/** Where an aggregated call ran. */
export interface AggregatedOrigin {
  readonly containerId: string | null;
  readonly namespace: string | null;
  readonly pod: string | null;
  readonly container: string | null;
  readonly podUid: string | null;
}

/** What one event adds to an aggregate. */
export interface AggregatedCall {
  readonly arch: string | null;
  readonly auditArch: string;
  readonly syscall: string | null;
  readonly syscallNr: number;
  readonly action: string;
}

/** Where a container's pod fields are, when the pod watch learned them after its events came in. */
export type LateResolve = (containerId: string, podUid: string | null) => PodRef | Partial<PodRef> | undefined;

/** Pod fields of `x` filled from `lateResolve`; true when something changed. */
export function refreshPodFields(
  x: {
    namespace: string | null;
    pod: string | null;
    container: string | null;
    readonly containerId: string | null;
    readonly podUid: string | null;
  },
  lateResolve: LateResolve | undefined,
): boolean {
  if (x.containerId === null || (x.pod !== null && x.container !== null) || lateResolve === undefined) return false;
  const ref = lateResolve(x.containerId, x.podUid);
  if (ref === undefined) return false;
  const namespace = ref.namespace ?? x.namespace;
  const pod = ref.pod ?? x.pod;
  const container = ref.container ?? x.container;
  if (namespace === x.namespace && pod === x.pod && container === x.container) return false;
  x.namespace = namespace;
  x.pod = pod;
  x.container = container;
  return true;
}

/** The aggregates of every container seen, least recently active first. */
export class ContainerAggregates {
  private readonly aggs = new Map<string, ContainerAggregate>();
  private readonly max: number;
  private readonly onEvict: ((agg: ContainerAggregate) => void) | undefined;
  /** The most recently active aggregate: already last in `aggs`, no need to move it. */
  private newest: ContainerAggregate | undefined;

  constructor(maxContainers: number, onEvict?: (agg: ContainerAggregate) => void) {
    this.max = maxContainers;
    this.onEvict = onEvict;
  }

  /** Counts one call (`where` and `ev` may be one object). */
  add(where: AggregatedOrigin, ev: AggregatedCall, timeMs: number): void {
    const key = where.containerId ?? '';
    let a = this.newest !== undefined && (this.newest.containerId ?? '') === key ? this.newest : this.aggs.get(key);
    if (a === undefined) {
      a = {
        containerId: where.containerId,
        namespace: where.namespace,
        pod: where.pod,
        container: where.container,
        podUid: where.podUid,
        total: 0,
        first: timeMs,
        last: timeMs,
        syscalls: new Map(),
        unresolved: new Map(),
        unresolvedOther: 0,
        arches: new Set(),
      };
      while (this.aggs.size >= this.max) {
        const oldest = this.aggs.entries().next();
        if (oldest.done === true) break;
        this.aggs.delete(oldest.value[0]);
        this.onEvict?.(oldest.value[1]);
      }
      this.aggs.set(key, a);
    } else {
      if (a !== this.newest) {
        this.aggs.delete(key); // re-inserted: Map order is recency
        this.aggs.set(key, a);
      }
      if (a.pod === null && where.pod !== null) {
        a.namespace = where.namespace;
        a.pod = where.pod;
        a.container = where.container;
      }
    }
    this.newest = a;
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

  /** Fills pod fields the pod watch learned late; true when any aggregate changed. */
  refresh(lateResolve: LateResolve | undefined): boolean {
    if (lateResolve === undefined) return false;
    let changed = false;
    for (const a of this.aggs.values()) if (refreshPodFields(a, lateResolve)) changed = true;
    return changed;
  }

  values(): IterableIterator<ContainerAggregate> {
    return this.aggs.values();
  }

  get size(): number {
    return this.aggs.size;
  }
}
