/**
 * What the agent remembers about syscall events, in bounded memory:
 * - a ring of the most recent events (default 10,000), kept in columns: typed arrays for the numbers
 *   and interned ids (intern.ts) for the strings, about 40 bytes an event. A slot becomes a
 *   SyscallEvent object only when a query returns it;
 * - per-container aggregates (aggregates.ts) that outlive the ring;
 * - subscribers that see every new event (the HTTP follow streams);
 * - a version that changes with every write, so that answers can be cached (events-routes.ts).
 * Pure data structure: no I/O, no timers.
 */
import type { AttributionKind } from './attribute.js';
import { ContainerAggregates, refreshPodFields, type ContainerAggregate, type LateResolve } from './aggregates.js';
import { Interner, keyPart, numPart } from './intern.js';

export { MAX_UNRESOLVED, type ContainerAggregate, type SyscallCount } from './aggregates.js';

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
  readonly lateResolve?: LateResolve;
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

/** Where an event ran: one interned value per container (and attribution). */
export interface EventOrigin {
  readonly node: string;
  namespace: string | null;
  pod: string | null;
  container: string | null;
  readonly containerId: string | null;
  readonly podUid: string | null;
  readonly attribution: AttributionKind;
}

/** A new origin on `node` that names no container (attribution `unknown`); each call makes its own. */
export function unknownOrigin(node: string): EventOrigin {
  return { node, namespace: null, pod: null, container: null, containerId: null, podUid: null, attribution: 'unknown' };
}

/** Who made the call. */
export interface EventProcess {
  readonly comm: string | null;
  readonly exe: string | null;
  readonly uid: number | null;
  readonly gid: number | null;
  readonly auid: number | null;
  readonly ses: number | null;
}
/** What the call was and what the filter did. */
export interface EventCall {
  readonly arch: string | null;
  readonly auditArch: string;
  readonly syscall: string | null;
  readonly syscallNr: number;
  readonly action: string;
  readonly code: string;
  readonly errno: number | null;
  readonly sig: number | null;
  readonly compat: number | null;
}

type Origin = EventOrigin;
type Proc = EventProcess;
type Call = EventCall;

/** An event given as its parts (Ingest's byte path), in the form the columns hold exactly. */
export interface EventParts {
  /** Epoch ms, a whole number from 0 to 8.64e15. */
  timeMs: number;
  /** The audit serial (32 bits); the audit id is `<sec>.<ms>:<serial>` of timeMs. */
  serial: number;
  /** 32 bits. */
  pid: number;
  /** No `ip` (null); otherwise ipHi:ipLo is its value and its text is `0x<hex>`. */
  ipNull: boolean;
  ipHi: number;
  ipLo: number;
  origin: EventOrigin;
  proc: EventProcess;
  call: EventCall;
}

/** Hashes for the interners' recent-id caches: equal values, equal hashes. */
const strHash = (s: string | null): number =>
  s === null || s.length === 0 ? 0 : s.length * 961 + s.charCodeAt(0) * 31 + s.charCodeAt(s.length - 1);
const originHash = (o: Origin): number => strHash(o.containerId) * 7 + strHash(o.pod) + o.attribution.length;
const procHash = (p: Proc): number =>
  strHash(p.comm) * 31 + strHash(p.exe) * 7 + (p.uid ?? 1) * 3 + (p.auid ?? 5) + (p.ses ?? 9) * 11;
const callHash = (c: Call): number => c.syscallNr * 31 + strHash(c.code) * 7 + c.auditArch.charCodeAt(7) + (c.sig ?? 3);

const originKey = (o: Origin): string =>
  `${keyPart(o.node)}${keyPart(o.namespace)}${keyPart(o.pod)}${keyPart(o.container)}${keyPart(o.containerId)}${keyPart(o.podUid)}${o.attribution}`;
const sameOrigin = (a: Origin, b: Origin): boolean =>
  a.containerId === b.containerId &&
  a.pod === b.pod &&
  a.container === b.container &&
  a.namespace === b.namespace &&
  a.attribution === b.attribution &&
  a.podUid === b.podUid &&
  a.node === b.node;
const procKey = (p: Proc): string =>
  `${keyPart(p.comm)}${keyPart(p.exe)}${numPart(p.uid)},${numPart(p.gid)},${numPart(p.auid)},${numPart(p.ses)}`;
const sameProc = (a: Proc, b: Proc): boolean =>
  a.comm === b.comm && a.exe === b.exe && a.uid === b.uid && a.gid === b.gid && a.auid === b.auid && a.ses === b.ses;
const callKey = (c: Call): string =>
  `${keyPart(c.arch)}${keyPart(c.auditArch)}${keyPart(c.syscall)}${c.syscallNr},${keyPart(c.action)}${keyPart(c.code)}${numPart(c.errno)},${numPart(c.sig)},${numPart(c.compat)}`;
const sameCall = (a: Call, b: Call): boolean =>
  a.syscallNr === b.syscallNr &&
  a.code === b.code &&
  a.auditArch === b.auditArch &&
  a.syscall === b.syscall &&
  a.arch === b.arch &&
  a.action === b.action &&
  a.errno === b.errno &&
  a.sig === b.sig &&
  a.compat === b.compat;

const copyOrigin = (o: Origin): Origin => ({
  node: o.node,
  namespace: o.namespace,
  pod: o.pod,
  container: o.container,
  containerId: o.containerId,
  podUid: o.podUid,
  attribution: o.attribution,
});
const copyProc = (p: Proc): Proc => ({ comm: p.comm, exe: p.exe, uid: p.uid, gid: p.gid, auid: p.auid, ses: p.ses });
const copyCall = (c: Call): Call => ({
  arch: c.arch,
  auditArch: c.auditArch,
  syscall: c.syscall,
  syscallNr: c.syscallNr,
  action: c.action,
  code: c.code,
  errno: c.errno,
  sig: c.sig,
  compat: c.compat,
});

/** Slot flags. */
const IP_NULL = 1;
/** The event did not fit the columns (a value no column holds exactly): kept whole in `odd`. */
const ODD = 2;

/** `0x<hex>` as the kernel prints it (lower case, no leading zeros, at most 64 bits) → [hi, lo]; undefined otherwise. */
function parseIp(s: string): [number, number] | undefined {
  const n = s.length;
  if (n < 3 || n > 18 || s.charCodeAt(0) !== 48 || s.charCodeAt(1) !== 120) return undefined;
  if (n > 3 && s.charCodeAt(2) === 48) return undefined;
  let hi = 0;
  let lo = 0;
  for (let i = 2; i < n; i++) {
    const c = s.charCodeAt(i);
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
    if (d < 0) return undefined;
    hi = ((hi << 4) | (lo >>> 28)) >>> 0;
    lo = ((lo << 4) | d) >>> 0;
  }
  return [hi, lo];
}

function formatIp(hi: number, lo: number): string {
  if (hi === 0) return `0x${lo.toString(16)}`;
  let low = lo.toString(16);
  while (low.length < 8) low = `0${low}`;
  return `0x${hi.toString(16)}${low}`;
}

/** The audit serial of `<sec>.<ms>:<serial>` when the id is exactly `<prefix>:<serial>` (canonical digits, 32 bits); -1 otherwise. */
function serialOf(auditId: string, prefix: string): number {
  const p = prefix.length;
  if (auditId.length <= p + 1 || auditId.length > p + 11 || !auditId.startsWith(prefix) || auditId.charCodeAt(p) !== 58)
    return -1;
  if (auditId.charCodeAt(p + 1) === 48 && auditId.length > p + 2) return -1;
  let n = 0;
  for (let i = p + 1; i < auditId.length; i++) {
    const d = auditId.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n <= 0xffffffff ? n : -1;
}

const DAY_MS = 86_400_000;
const pad2 = (n: number): string => (n < 10 ? `0${n}` : `${n}`);

/**
 * Formats event times. The day's `YYYY-MM-DDT` comes from toISOString once a day; the time of day is
 * arithmetic (the same characters toISOString writes, at a fraction of its cost).
 */
export class TimeText {
  private ms = NaN;
  private iso = '';
  private day = NaN;
  private dayPrefix = '';
  private idMs = NaN;
  private id = '';

  /** RFC 3339 with milliseconds, exactly as Date#toISOString. */
  iso8601(ms: number): string {
    if (ms !== this.ms) {
      this.ms = ms;
      this.iso = this.format(ms);
    }
    return this.iso;
  }

  private format(ms: number): string {
    if (!Number.isInteger(ms)) return new Date(ms).toISOString();
    const inDay = ((ms % DAY_MS) + DAY_MS) % DAY_MS;
    const day = ms - inDay;
    if (day !== this.day) {
      const full = new Date(day).toISOString();
      this.day = day;
      this.dayPrefix = full.slice(0, full.length - 13);
    }
    const msPart = inDay % 1000;
    const sec = (inDay - msPart) / 1000;
    const s = sec % 60;
    const m = ((sec - s) / 60) % 60;
    const h = (sec - s - m * 60) / 3600;
    return `${this.dayPrefix}${pad2(h)}:${pad2(m)}:${pad2(s)}.${msPart < 10 ? '00' : msPart < 100 ? '0' : ''}${msPart}Z`;
  }

  /** `<sec>.<ms>` as an audit id starts, for a time with whole milliseconds. */
  auditPrefix(ms: number): string {
    if (ms !== this.idMs) {
      this.idMs = ms;
      const r = ms % 1000;
      this.id = `${(ms - r) / 1000}.${r < 10 ? '00' : r < 100 ? '0' : ''}${r}`;
    }
    return this.id;
  }
}

/** The event store. */
export class EventStore {
  readonly ringSize: number;
  readonly maxContainers: number;
  /** Formats times; Ingest uses the same one, so a time is formatted once. */
  readonly timeText = new TimeText();
  private readonly times: Float64Array;
  private readonly serials: Uint32Array;
  private readonly pids: Uint32Array;
  private readonly origins: Uint32Array;
  private readonly procs: Uint32Array;
  private readonly calls: Uint32Array;
  private readonly ipHi: Uint32Array;
  private readonly ipLo: Uint32Array;
  private readonly flags: Uint8Array;
  /** Events that do not fit the columns, by slot (hand-made events in tests, odd lines). */
  private readonly odd = new Map<number, SyscallEvent>();
  private readonly originIds = new Interner<Origin>(originKey, sameOrigin, copyOrigin);
  private readonly procIds = new Interner<Proc>(procKey, sameProc, copyProc);
  private readonly callIds = new Interner<Call>(callKey, sameCall, copyCall);
  private head = 0;
  private count = 0;
  private nextSeq = 1;
  private changes = 0;
  private readonly aggs: ContainerAggregates;
  private readonly subs = new Set<Subscriber>();
  private readonly o: EventStoreOptions;

  constructor(o: EventStoreOptions = {}) {
    this.o = o;
    this.ringSize = o.ringSize ?? 10_000;
    this.maxContainers = o.maxContainers ?? 1024;
    if (!Number.isInteger(this.ringSize) || this.ringSize < 1)
      throw new RangeError('ringSize must be a positive integer');
    const n = this.ringSize;
    this.times = new Float64Array(n);
    this.serials = new Uint32Array(n);
    this.pids = new Uint32Array(n);
    this.origins = new Uint32Array(n);
    this.procs = new Uint32Array(n);
    this.calls = new Uint32Array(n);
    this.ipHi = new Uint32Array(n);
    this.ipLo = new Uint32Array(n);
    this.flags = new Uint8Array(n);
    this.aggs = new ContainerAggregates(this.maxContainers, o.onEvict);
  }

  /** The seq the next event will get. */
  get seq(): number {
    return this.nextSeq;
  }

  /** Events in the ring now. */
  get size(): number {
    return this.count;
  }

  /** Changes with every write (an event, a container evicted, pod fields learned late): a cache key. */
  get version(): number {
    return this.changes;
  }

  /** Interned values held (origins, processes, calls), for the benchmark and tests. */
  get interned(): { origins: number; procs: number; calls: number } {
    return { origins: this.originIds.size, procs: this.procIds.size, calls: this.callIds.size };
  }

  /** Where the last event added ran (an interned value, or the event itself): for the metrics. */
  get lastOrigin(): EventOrigin {
    return this.last.origin;
  }

  /** The last event's syscall name. */
  get lastSyscall(): string | null {
    return this.last.syscall;
  }

  private last: { origin: EventOrigin; syscall: string | null } = {
    origin: unknownOrigin(''),
    syscall: null,
  };

  /** The slot the next event goes to (the oldest is released when the ring is full). */
  private nextSlot(): number {
    const slot = this.head;
    if (this.count === this.ringSize) this.clear(slot);
    else this.count++;
    this.head = slot + 1 === this.ringSize ? 0 : slot + 1;
    return slot;
  }

  /** Adds an event (its seq is assigned here, in place), updates aggregates, tells subscribers. */
  add(ev: Omit<SyscallEvent, 'seq'> & { seq?: number }, timeMs: number): SyscallEvent {
    ev.seq = this.nextSeq++;
    const full = ev as SyscallEvent;
    const slot = this.nextSlot();
    this.times[slot] = timeMs;
    this.put(slot, full, timeMs);
    this.changes++;
    this.aggs.add(full, full, timeMs);
    const odd = ((this.flags[slot] ?? 0) & ODD) !== 0;
    this.last = {
      origin: odd ? full : this.originIds.get(this.origins[slot] ?? 0),
      syscall: full.syscall,
    };
    this.notify(full);
    return full;
  }

  /**
   * Adds an event given as its parts, straight into the columns: no event object is made unless a
   * subscriber wants one. The parts are copied (the caller reuses them).
   */
  addParts(p: EventParts): void {
    const seq = this.nextSeq++;
    const slot = this.nextSlot();
    this.times[slot] = p.timeMs;
    this.flags[slot] = p.ipNull ? IP_NULL : 0;
    this.ipHi[slot] = p.ipNull ? 0 : p.ipHi;
    this.ipLo[slot] = p.ipNull ? 0 : p.ipLo;
    this.serials[slot] = p.serial;
    this.pids[slot] = p.pid;
    const oid = this.originIds.acquire(p.origin, originHash(p.origin));
    this.origins[slot] = oid;
    this.procs[slot] = this.procIds.acquire(p.proc, procHash(p.proc));
    const cid = this.callIds.acquire(p.call, callHash(p.call));
    this.calls[slot] = cid;
    this.changes++;
    const origin = this.originIds.get(oid);
    const call = this.callIds.get(cid);
    this.aggs.add(origin, call, p.timeMs);
    if (this.last.origin !== origin || this.last.syscall !== call.syscall)
      this.last = { origin, syscall: call.syscall };
    if (this.subs.size > 0) this.notify(this.materialize(slot, seq));
  }

  private notify(ev: SyscallEvent): void {
    for (const s of this.subs) {
      try {
        s(ev);
      } catch {
        // A subscriber's failure is its own (the stream closes itself); the store goes on.
      }
    }
  }

  /** Writes an event's fields into the columns of `slot`, or keeps it whole when they cannot hold it. */
  private put(slot: number, ev: SyscallEvent, timeMs: number): void {
    const ip = ev.ip === null ? undefined : parseIp(ev.ip);
    const serial =
      Number.isInteger(timeMs) && timeMs >= 0 ? serialOf(ev.auditId, this.timeText.auditPrefix(timeMs)) : -1;
    if (
      serial < 0 ||
      (ev.ip !== null && ip === undefined) ||
      ev.pid >>> 0 !== ev.pid ||
      ev.time !== this.timeText.iso8601(timeMs)
    ) {
      this.flags[slot] = ODD;
      this.odd.set(slot, ev);
      return;
    }
    this.flags[slot] = ip === undefined ? IP_NULL : 0;
    this.ipHi[slot] = ip?.[0] ?? 0;
    this.ipLo[slot] = ip?.[1] ?? 0;
    this.serials[slot] = serial;
    this.pids[slot] = ev.pid;
    this.origins[slot] = this.originIds.acquire(ev, originHash(ev));
    this.procs[slot] = this.procIds.acquire(ev, procHash(ev));
    this.calls[slot] = this.callIds.acquire(ev, callHash(ev));
  }

  /** Releases what an overwritten slot held. */
  private clear(slot: number): void {
    if ((this.flags[slot] ?? 0) & ODD) {
      this.odd.delete(slot);
      return;
    }
    this.originIds.release(this.origins[slot] ?? 0);
    this.procIds.release(this.procs[slot] ?? 0);
    this.callIds.release(this.calls[slot] ?? 0);
  }

  /** The event in `slot`, as an object of its own (the caller may keep it). */
  private materialize(slot: number, seq: number): SyscallEvent {
    const oddEv = (this.flags[slot] ?? 0) & ODD ? this.odd.get(slot) : undefined;
    if (oddEv !== undefined) return oddEv;
    const o = this.originIds.get(this.origins[slot] ?? 0);
    const p = this.procIds.get(this.procs[slot] ?? 0);
    const c = this.callIds.get(this.calls[slot] ?? 0);
    const t = this.times[slot] ?? 0;
    // Keys in the order Ingest builds them: the JSON reads the same as before the columns.
    return {
      seq,
      time: this.timeText.iso8601(t),
      node: o.node,
      namespace: o.namespace,
      pod: o.pod,
      container: o.container,
      containerId: o.containerId,
      podUid: o.podUid,
      attribution: o.attribution,
      pid: this.pids[slot] ?? 0,
      comm: p.comm,
      exe: p.exe,
      uid: p.uid,
      gid: p.gid,
      auid: p.auid,
      ses: p.ses,
      arch: c.arch,
      auditArch: c.auditArch,
      syscall: c.syscall,
      syscallNr: c.syscallNr,
      action: c.action,
      code: c.code,
      errno: c.errno,
      sig: c.sig,
      compat: c.compat,
      ip: (this.flags[slot] ?? 0) & IP_NULL ? null : formatIp(this.ipHi[slot] ?? 0, this.ipLo[slot] ?? 0),
      auditId: `${this.timeText.auditPrefix(t)}:${this.serials[slot] ?? 0}`,
    };
  }

  /**
   * The slot's origin after pod fields learned late are filled in: a changed origin is interned
   * anew for the slot (the old id is released), so later queries see it without asking again.
   */
  private settledOrigin(slot: number, memo: Map<number, Origin | null>): Origin {
    const id = this.origins[slot] ?? 0;
    let next = memo.get(id);
    if (next === undefined) {
      const n: Origin = { ...this.originIds.get(id) };
      next = refreshPodFields(n, this.o.lateResolve) ? n : null;
      if (next !== null) this.changes++;
      memo.set(id, next);
    }
    if (next === null) return this.originIds.get(id);
    const to = this.originIds.acquire(next);
    this.originIds.release(id);
    this.origins[slot] = to;
    return next;
  }

  /** Matching events from the ring, oldest first, at most `limit` (the newest ones). */
  events(f: EventFilter, limit: number): SyscallEvent[] {
    const out: SyscallEvent[] = [];
    const memo = new Map<number, Origin | null>();
    const newestSeq = this.nextSeq - 1;
    for (let i = 0; i < this.count && out.length < limit; i++) {
      const idx = (this.head - 1 - i + this.ringSize) % this.ringSize;
      const seq = newestSeq - i;
      if (f.afterSeq !== undefined && seq <= f.afterSeq) break;
      if (f.since !== undefined && (this.times[idx] ?? 0) < f.since) continue;
      if ((this.flags[idx] ?? 0) & ODD) {
        const ev = this.odd.get(idx);
        if (ev !== undefined && this.matches(f, ev)) out.push(ev);
        continue;
      }
      if (f.syscall !== undefined && this.callIds.get(this.calls[idx] ?? 0).syscall !== f.syscall) continue;
      if (!matchesContainer(f, this.settledOrigin(idx, memo))) continue;
      out.push(this.materialize(idx, seq));
    }
    return out.reverse();
  }

  /** Whether an event passes a filter (the follow streams use it on new events). */
  matches(f: EventFilter, ev: SyscallEvent): boolean {
    if (f.syscall !== undefined && ev.syscall !== f.syscall) return false;
    if (f.afterSeq !== undefined && ev.seq <= f.afterSeq) return false;
    if (refreshPodFields(ev, this.o.lateResolve)) this.changes++;
    return matchesContainer(f, ev);
  }

  /**
   * Fills pod fields learned late in every aggregate and pending origin, so that a cached answer
   * can be trusted: call before comparing `version` with a cached one.
   */
  settle(): void {
    const late = this.o.lateResolve;
    if (late === undefined) return;
    let changed = this.aggs.refresh(late);
    if (!changed) {
      // Held events whose pod is not known yet: would a query now see them differently?
      this.originIds.forEach((o) => {
        if (!changed && o.containerId !== null && (o.pod === null || o.container === null))
          changed = refreshPodFields({ ...o }, late);
      });
    }
    if (changed) this.changes++;
  }

  /** Aggregates of matching containers, sorted by namespace, pod, container, container id. */
  aggregates(f: EventFilter): ContainerAggregate[] {
    this.settle();
    const out: ContainerAggregate[] = [];
    for (const a of this.aggs.values()) {
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
