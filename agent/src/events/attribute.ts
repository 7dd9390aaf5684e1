/**
 * Attribution: host pid → /proc/<pid>/cgroup → container id (and pod uid) → pod and container.
 *
 * The cgroup file is read as soon as the record arrives (short-lived processes vanish), and results
 * are cached by pid and start time (field 22 of /proc/<pid>/stat), so a reused pid never inherits
 * another process's container. A process that started after the record was written is not the one
 * that made the call (its pid was reused): such records stay unattributed.
 *
 * Short-lived processes (a shell's `uname` child lives about a millisecond) are usually gone by the
 * time their records are read. When the parent is logged too (complain mode logs every call), its
 * clone/fork record comes first, and the child's first records still carry the parent's comm (they
 * precede the child's execve). So a vanished pid whose first record has the comm of exactly one
 * container that forked within the last seconds is taken as that container's child. Two candidate
 * containers (or a container and the host) with that comm: the record stays unattributed.
 */
import type { PodIndex } from './pod-index.js';
import { startTimeFromStat, type ProcReader } from './proc.js';

/** What a cgroup path says about the container. */
export interface CgroupContainer {
  readonly containerId: string;
  readonly podUid: string | null;
}

const RUNTIME_SCOPE = /^(?:cri-containerd|crio|docker|libpod|runc|containerd)-([0-9a-f]{64})\.scope$/;
const HEX64 = /^[0-9a-f]{64}$/;
const POD_CGROUPFS = /^pod([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
const POD_SYSTEMD = /^kubepods(?:-[a-z]+)?-pod([0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12})\.slice$/;
const SYSTEMD_UNIT = /\.(?:slice|service|scope|mount|socket|swap|target)$/;

function podUidOf(segments: readonly string[]): string | null {
  for (const s of segments) {
    const a = POD_CGROUPFS.exec(s);
    if (a?.[1] !== undefined) return a[1];
    const b = POD_SYSTEMD.exec(s);
    if (b?.[1] !== undefined) return b[1].replaceAll('_', '-');
  }
  return null;
}

/** A runtime's own layout: `<runtime>-<id>.scope`, `.../pod<uid>/<id>`, `/docker/<id>`. */
function strongMatch(path: string): CgroupContainer | null {
  const segments = path.split('/').filter((s) => s.length > 0);
  for (let i = segments.length - 1; i >= 0; i--) {
    const s = segments[i] ?? '';
    const scope = RUNTIME_SCOPE.exec(s);
    const id = scope?.[1] ?? (HEX64.test(s) ? s : undefined);
    if (id !== undefined) return { containerId: id, podUid: podUidOf(segments.slice(0, i)) };
  }
  return null;
}

/**
 * Plain runc: the last component of its cgroupsPath (`/probe/corpus-a` → `corpus-a`; no cgroupsPath
 * gives `/<id>`). Not for the root, nor for systemd units, which are host services and sessions.
 */
function plainMatch(path: string): CgroupContainer | null {
  const segments = path.split('/').filter((s) => s.length > 0 && s !== '..' && s !== '.');
  const last = segments.at(-1);
  if (last === undefined || SYSTEMD_UNIT.test(last)) return null;
  if (segments[0] === 'user.slice' || segments[0] === 'system.slice' || segments[0] === 'init.scope') return null;
  return { containerId: last, podUid: podUidOf(segments) };
}

/**
 * The container a /proc/<pid>/cgroup file names, or null for a host process. cgroup v2 (`0::/path`)
 * and v1 (`N:controllers:/path`) lines; the unified line wins, then the path most v1 hierarchies
 * agree on (runc's memory path can differ: `/process_api/<runc's cgroup>/<id>`).
 */
export function containerFromCgroup(text: string): CgroupContainer | null {
  let unified: string | undefined;
  const v1 = new Map<string, number>();
  for (const line of text.split('\n')) {
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    if (b < 0) continue;
    const path = line.slice(b + 1);
    if (line.startsWith('0::')) unified = path;
    else if (line.slice(a + 1, b) !== 'memory') v1.set(path, (v1.get(path) ?? 0) + 1);
  }
  const paths = [...v1.entries()].sort((x, y) => y[1] - x[1]).map(([p]) => p);
  const ordered = unified === undefined ? paths : [unified, ...paths];
  for (const p of ordered) {
    const m = strongMatch(p);
    if (m !== null) return m;
  }
  // The memory hierarchy is left out above: runc's own process there is /process_api/<hash> on this
  // kind of host, which is no container.
  const reference = unified !== undefined && unified !== '/' ? unified : (paths[0] ?? unified);
  return reference === undefined ? null : plainMatch(reference);
}

/** How an event was attributed. */
export type AttributionKind =
  /** Container id and pod known. */
  | 'pod'
  /** Container id known, pod not (no cluster, or the pod watch has not seen it yet). */
  | 'container'
  /** Not in a container (host process). */
  | 'host'
  /** The process was gone before we could read /proc, or its pid had been reused. */
  | 'unknown';

export interface Attribution {
  readonly kind: AttributionKind;
  readonly containerId: string | null;
  readonly podUid: string | null;
  readonly namespace: string | null;
  readonly pod: string | null;
  readonly container: string | null;
}

export interface AttributorOptions {
  readonly proc: ProcReader;
  readonly podIndex: PodIndex;
  /** USER_HZ, the unit of /proc/<pid>/stat start times (100 on Linux). */
  readonly clockTicksPerSecond?: number;
  /** How far a process start may lie after the record (clock granularity). Default 1000 ms. */
  readonly startToleranceMs?: number;
  /** Cached (pid, start) entries. Default 8192. */
  readonly cacheSize?: number;
  /** How long after a clone/fork record a vanished child is matched to it. Default 2000 ms. */
  readonly forkWindowMs?: number;
  /** The wall clock (epoch ms), the one the kernel stamps records with. */
  readonly now?: () => number;
}

/** What the record says besides the pid, for matching vanished children to their parent's fork. */
export interface RecordHint {
  readonly comm: string | null;
  readonly syscall: string | null;
}

/** How long a vanished child matched to a fork keeps its attribution. */
const CHILD_TTL_MS = 60_000;

const FORK_CALLS: ReadonlySet<string> = new Set(['clone', 'clone3', 'fork', 'vfork']);

interface Fork {
  readonly found: CgroupContainer | null;
  readonly comm: string;
  readonly time: number;
}

interface CacheEntry {
  readonly startMs: number;
  readonly found: CgroupContainer | null;
}

const UNKNOWN: Attribution = Object.freeze({
  kind: 'unknown',
  containerId: null,
  podUid: null,
  namespace: null,
  pod: null,
  container: null,
});
const HOST: Attribution = Object.freeze({ ...UNKNOWN, kind: 'host' });

/** Attributes records to containers; one per pipeline. */
export class Attributor {
  private readonly proc: ProcReader;
  private readonly podIndex: PodIndex;
  private readonly hz: number;
  private readonly tolerance: number;
  private readonly cacheSize: number;
  /** (pid:startTicks) → container; insertion order is recency. */
  private readonly cache = new Map<string, CacheEntry>();
  /** pid → its last two known processes, for records that arrive after the process exited. */
  private readonly lastByPid = new Map<number, CacheEntry[]>();
  /** Within one batch of lines the same pid is read once. */
  private batch = new Map<number, CacheEntry | undefined>();
  /** Recent clone/fork calls by attributed processes, oldest first. */
  private forks: Fork[] = [];
  /** Vanished pids matched to a fork: pid → container. */
  private readonly children = new Map<number, CacheEntry>();
  private readonly forkWindow: number;
  /**
   * pid → when /proc last said it was gone. A record made at least `tolerance` before that cannot
   * belong to a process /proc shows later (that one started after the look), so /proc is not
   * asked again for it: the answer would be the same.
   */
  private readonly gone = new Map<number, number>();
  private readonly now: () => number;
  /** Pod fields per container found, within one batch (the pod index is asked once per batch). */
  private resolved = new Map<CgroupContainer, Attribution>();

  constructor(o: AttributorOptions) {
    this.proc = o.proc;
    this.podIndex = o.podIndex;
    this.hz = o.clockTicksPerSecond ?? 100;
    this.tolerance = o.startToleranceMs ?? 1000;
    this.cacheSize = o.cacheSize ?? 8192;
    this.forkWindow = o.forkWindowMs ?? 2000;
    this.now = o.now ?? Date.now;
  }

  /** Starts a new batch of lines read together: /proc is read at most once per pid per batch. */
  newBatch(): void {
    if (this.batch.size > 0) this.batch = new Map();
    if (this.resolved.size > 0) this.resolved = new Map();
  }

  /** The container and pod of the process that made a call at `timeMs`. */
  attribute(pid: number, timeMs: number, hint?: RecordHint): Attribution {
    const entry = this.entryFor(pid, timeMs, hint);
    if (entry === undefined) return UNKNOWN;
    if (hint?.comm != null && hint.syscall !== null && FORK_CALLS.has(hint.syscall)) {
      this.forks.push({ found: entry.found, comm: hint.comm, time: timeMs });
      if (this.forks.length > 1024) this.forks = this.forks.slice(-512);
    }
    if (entry.found === null) return HOST;
    let a = this.resolved.get(entry.found);
    if (a === undefined) {
      a = this.resolve(entry.found);
      this.resolved.set(entry.found, a);
    }
    return a;
  }

  private entryFor(pid: number, timeMs: number, hint: RecordHint | undefined): CacheEntry | undefined {
    let entry: CacheEntry | undefined;
    if (this.batch.has(pid)) entry = this.batch.get(pid);
    else {
      const goneAt = this.gone.get(pid);
      if (goneAt !== undefined && timeMs <= goneAt - this.tolerance) entry = undefined;
      else {
        if (goneAt !== undefined) this.gone.delete(pid);
        entry = this.lookup(pid);
        this.batch.set(pid, entry);
      }
    }
    if (entry !== undefined && entry.startMs <= timeMs + this.tolerance) return entry;
    // Gone, or the pid now belongs to a later process: the last process we knew under this pid
    // made the call if it had started by then.
    const known = this.lastByPid.get(pid) ?? [];
    const last = known.findLast((e) => e.startMs <= timeMs + this.tolerance);
    if (last !== undefined) return last;
    // A matched child's later records (its pid may be reused after a while: then no more).
    const child = this.children.get(pid);
    if (child !== undefined && timeMs >= child.startMs - this.tolerance && timeMs <= child.startMs + CHILD_TTL_MS)
      return child;
    return hint?.comm == null ? undefined : this.matchFork(pid, timeMs, hint.comm);
  }

  /** A vanished pid → the one container that forked with this comm just before. */
  private matchFork(pid: number, timeMs: number, comm: string): CacheEntry | undefined {
    const from = timeMs - this.forkWindow;
    while (this.forks.length > 0 && (this.forks[0]?.time ?? 0) < from - this.forkWindow) this.forks.shift();
    let match: Fork | undefined;
    for (const f of this.forks) {
      if (f.comm !== comm || f.time < from || f.time > timeMs + this.tolerance) continue;
      if (match !== undefined && match.found?.containerId !== f.found?.containerId) return undefined; // ambiguous
      match = f;
    }
    if (match === undefined) return undefined;
    const entry: CacheEntry = { startMs: match.time, found: match.found };
    this.children.set(pid, entry);
    trim(this.children, this.cacheSize);
    return entry;
  }

  /** Pod fields for a container id (used again at query time for events the pod watch saw late). */
  resolve(found: CgroupContainer | null): Attribution {
    if (found === null) return HOST;
    const ref = this.podIndex.byContainerId(found.containerId);
    if (ref !== undefined) {
      return { kind: 'pod', containerId: found.containerId, podUid: found.podUid, ...ref };
    }
    const pod = found.podUid === null ? undefined : this.podIndex.byPodUid?.(found.podUid);
    return {
      kind: 'container',
      containerId: found.containerId,
      podUid: found.podUid,
      namespace: pod?.namespace ?? null,
      pod: pod?.pod ?? null,
      container: null,
    };
  }

  private lookup(pid: number): CacheEntry | undefined {
    const stat = this.proc.stat(pid);
    if (stat === undefined) {
      this.gone.set(pid, this.now());
      trim(this.gone, this.cacheSize);
    }
    const ticks = stat === undefined ? undefined : startTimeFromStat(stat);
    if (ticks === undefined) return undefined;
    const key = `${pid}:${ticks}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const cg = this.proc.cgroup(pid);
    if (cg === undefined) return undefined;
    const entry: CacheEntry = {
      startMs: this.proc.bootTimeMs() + (ticks * 1000) / this.hz,
      found: containerFromCgroup(cg),
    };
    this.cache.set(key, entry);
    const known = this.lastByPid.get(pid) ?? [];
    this.lastByPid.delete(pid);
    this.lastByPid.set(pid, [...known.slice(-1), entry]);
    trim(this.cache, this.cacheSize);
    trim(this.lastByPid, this.cacheSize);
    return entry;
  }
}

function trim<K, V>(m: Map<K, V>, max: number): void {
  while (m.size > max) {
    const first = m.keys().next();
    if (first.done === true) return;
    m.delete(first.value);
  }
}
