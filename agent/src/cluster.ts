/**
 * The cluster agent: SeccompProfiles from the API server → this node's operator directory, and
 * this node's view back into each profile's status. The sibling of `startStandalone`; the profile
 * path (validate → computeDesired → Reconciler → ProfileWriter → DriftGuard) is the same.
 *
 * Informers (agent/src/kube/reflector.ts): SeccompProfiles in all namespaces; the pods bound to this
 * node only; Node names (metadata only); the agents' Leases. Changes are coalesced, then the plan
 * is computed from the whole cache (the writer skips unchanged bytes). Status is written with
 * server-side apply, one entry per node (agent/src/kube/status.ts). See docs/cluster.md.
 */
import type { Logger } from 'pino';
import { join } from 'node:path';
import { isErrnoException, messageOf } from '../../shared/errors.js';
import { API_GROUP, API_VERSION, KIND, PLURAL } from '../../shared/profile/enums.js';
import { computeDesired, type Desired, type KnownProfile } from '../../shared/profile/desired.js';
import type { NodeStatus, SeccompProfileStatus } from '../../shared/profile/schema.js';
import { validateProfile, type SyscallCatalog } from '../../shared/profile/validate.js';
import { isKubeApiError, type KubeClient } from './kube/client.js';
import { EventRecorder } from './kube/events.js';
import { LEASE_LABEL, LeaseKeeper, leaseView, type LeaseView } from './kube/lease.js';
import { PodIndex, podUse, type PodUse } from './kube/pods.js';
import { DEFAULT_TIMING, Reflector, type ReflectorStats, type ReflectorTiming } from './kube/reflector.js';
import {
  aggregate,
  correctionRank,
  nodeEntry,
  Reasons,
  sameAggregate,
  sameEntry,
  type Aggregate,
} from './kube/status.js';
import { DriftGuard } from './profiles/drift.js';
import type { WriterFs } from './profiles/fs.js';
import { Reconciler, type ProfileReport, type ReconcileObserver } from './profiles/reconciler.js';
import { DIR_MODE, ProfileWriter, type WriteOutcome } from './profiles/writer.js';
import { PROFILE_GID, PROFILE_UID } from './standalone.js';

/** The finalizer that holds a profile while some live node has pods using it. */
export const IN_USE_FINALIZER = 'seccomp-agent.security-profiles-operator.x-k8s.io/in-use';

/** Field manager of this node's server-side applies. */
export const fieldManager = (node: string): string => `seccomp-agent/${node}`;

export interface ClusterTiming extends ReflectorTiming {
  /** Changes are gathered for this long before the plan is recomputed. */
  coalesceMs: number;
  leaseDurationSeconds: number;
  /**
   * A stale aggregate is corrected by the first node in the profile's rank order after `base`;
   * the others are a fallback (the first one died, or is slow) and wait
   * `base + backup + (rank - 1) × step`. Each gets a jitter of up to step/2.
   */
  correctionBaseMs: number;
  correctionBackupMs: number;
  correctionStepMs: number;
  /** Status writes in flight at once. */
  statusConcurrency: number;
  /** Retry delay after a failed write or apply. */
  retryMs: number;
  eventsPerSecond: number;
  eventBurst: number;
}

export const DEFAULT_CLUSTER_TIMING: ClusterTiming = {
  ...DEFAULT_TIMING,
  coalesceMs: 50,
  leaseDurationSeconds: 40,
  correctionBaseMs: 150,
  correctionBackupMs: 3000,
  correctionStepMs: 400,
  statusConcurrency: 4,
  retryMs: 1000,
  eventsPerSecond: 5,
  eventBurst: 50,
};

export interface ClusterDeps {
  /** Told of every file operation (metrics). */
  observer?: ReconcileObserver;
  client: KubeClient;
  nodeName: string;
  /** The agent's own namespace (its Leases live there). */
  namespace: string;
  kubeletRoot: string;
  catalog: SyscallCatalog;
  fs: WriterFs;
  log: Logger;
  chownAllowed: boolean;
  timing?: Partial<ClusterTiming>;
  random?: () => number;
}

/** Counters the tests, /v1/cluster and the benchmarks read. */
export interface ClusterStats {
  node: string;
  ready: boolean;
  profiles: number;
  podsOnNode: number;
  liveNodes: string[];
  /** Status applies by this agent, in all and per profile key. */
  statusWrites: number;
  statusWritesByProfile: Record<string, number>;
  statusCorrections: number;
  /** GETs by a fallback corrector before it writes (usually the first in line already did). */
  correctionReads: number;
  finalizerPatches: number;
  plans: number;
  filesWritten: number;
  filesRemoved: number;
  events: { sent: number; dropped: number; failed: number };
  informers: Record<string, ReflectorStats>;
  requests: { requests: number; failures: number; watchesOpened: number };
  lease: { renewals: number; failures: number };
  memory: { rssMiB: number; heapUsedMiB: number };
}

export interface Cluster {
  reports: () => ProfileReport[];
  ready: () => boolean;
  readiness: () => { ready: boolean; reason: string };
  podIndex: PodIndex;
  stats: () => ClusterStats;
  /** Aborts every watch as a silent cut would (for tests: the watchdog path without waiting). */
  restartWatches: () => void;
  stop: () => Promise<void>;
}

/** What the agent keeps of a SeccompProfile (managedFields dropped: they grow with the nodes). */
interface ProfileObj {
  key: string;
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  resourceVersion: string;
  deleting: boolean;
  finalizers: string[];
  /** spec + deletion: a change here needs a new plan; a status-only change does not. */
  fingerprint: string;
  raw: Record<string, unknown>;
  status: SeccompProfileStatus | undefined;
}

interface NodeName {
  key: string;
}

/**
 * The writer, remembering the bytes it last found or put on disk for each profile, so a plan that
 * asks for the same bytes again does not touch the disk: the plan is recomputed from the whole
 * cache on every change, and at hundreds of profiles re-reading every file each time was most of an
 * agent's CPU during a sync. What changes on disk behind our back is the drift guard's business:
 * every repair (an inotify event, or the guard's periodic re-check) forgets the key first, so it
 * always looks at the disk. A forget during an install keeps that install from being remembered.
 */
class RememberingWriter extends ProfileWriter {
  readonly #known = new Map<string, string>();
  #forgets = 0;

  override async install(namespace: string, name: string, content: string): Promise<WriteOutcome> {
    const key = `${namespace}/${name}`;
    if (this.#known.get(key) === content) return 'unchanged';
    this.#known.delete(key);
    const epoch = this.#forgets;
    const outcome = await super.install(namespace, name, content);
    if (this.#forgets === epoch) this.#known.set(key, content);
    return outcome;
  }

  override async remove(namespace: string, name: string): Promise<boolean> {
    this.forget(`${namespace}/${name}`);
    return super.remove(namespace, name);
  }

  forget(key: string): void {
    this.#forgets++;
    this.#known.delete(key);
  }
}

/** Drift repairs through this reconciler always look at the disk (see RememberingWriter). */
class ClusterReconciler extends Reconciler {
  readonly #writer: RememberingWriter;

  constructor(writer: RememberingWriter, kubeletRoot: string, log: Logger, observer?: ReconcileObserver) {
    super(writer, kubeletRoot, log, observer);
    this.#writer = writer;
  }

  override repair(key: string): ReturnType<Reconciler['repair']> {
    this.#writer.forget(key);
    return super.repair(key);
  }
}

/** Whether two reports give the same status entry (what nodeEntry reads of them). */
const sameReport = (a: ProfileReport | undefined, b: ProfileReport | undefined): boolean =>
  a === b ||
  (a !== undefined &&
    b !== undefined &&
    a.state === b.state &&
    a.message === b.message &&
    a.sha256 === b.sha256 &&
    a.path === b.path);

const PROFILES_PATH = `/apis/${API_GROUP}/${API_VERSION}/${PLURAL}`;
const profilePath = (ns: string, name: string): string =>
  `/apis/${API_GROUP}/${API_VERSION}/namespaces/${ns}/${PLURAL}/${name}`;

function profileObj(raw: Record<string, unknown>): ProfileObj | undefined {
  const meta = raw['metadata'] as
    | {
        name?: string;
        namespace?: string;
        uid?: string;
        generation?: number;
        resourceVersion?: string;
        deletionTimestamp?: string;
        finalizers?: string[];
        managedFields?: unknown;
      }
    | undefined;
  if (meta?.name === undefined || meta.namespace === undefined) return undefined;
  const { managedFields: _dropped, ...metadata } = meta;
  const kept: Record<string, unknown> = { ...raw, apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, metadata };
  const deleting = meta.deletionTimestamp !== undefined && meta.deletionTimestamp !== null;
  return {
    key: `${meta.namespace}/${meta.name}`,
    namespace: meta.namespace,
    name: meta.name,
    uid: meta.uid ?? '',
    generation: meta.generation ?? 0,
    resourceVersion: meta.resourceVersion ?? '',
    deleting,
    finalizers: meta.finalizers ?? [],
    fingerprint: JSON.stringify([meta.uid, meta.generation, deleting, raw['spec']]),
    raw: kept,
    status: raw['status'] as SeccompProfileStatus | undefined,
  };
}

export async function startCluster(deps: ClusterDeps): Promise<Cluster> {
  const t: ClusterTiming = { ...DEFAULT_CLUSTER_TIMING, ...deps.timing };
  const log = deps.log;
  const node = deps.nodeName;
  const random = deps.random ?? Math.random;
  const client = deps.client;
  const writer = new RememberingWriter(
    deps.fs,
    { kubeletRoot: deps.kubeletRoot, uid: PROFILE_UID, gid: PROFILE_GID, chownAllowed: deps.chownAllowed },
    log.child({ component: 'writer' }),
  );
  if (!deps.chownAllowed && process.getuid?.() !== PROFILE_UID) {
    log.warn('not running as root: profile files keep this user as owner instead of 65535:65535');
  }
  const reconciler = new ClusterReconciler(
    writer,
    deps.kubeletRoot,
    log.child({ component: 'reconciler' }),
    deps.observer,
  );
  const events = new EventRecorder(client, node, log.child({ component: 'events' }), t.eventsPerSecond, t.eventBurst);
  const lease = new LeaseKeeper(
    client,
    deps.namespace,
    node,
    t.leaseDurationSeconds,
    log.child({ component: 'lease' }),
  );
  const podIndex = new PodIndex();

  let stopped = false;
  let ready = false;
  let readyReason = 'waiting for the first list of SeccompProfiles and pods';
  const counters = {
    statusWrites: 0,
    statusCorrections: 0,
    correctionReads: 0,
    finalizerPatches: 0,
    plans: 0,
    filesWritten: 0,
    filesRemoved: 0,
  };
  const writesByProfile = new Map<string, number>();

  // ---- the plan: the whole cache → files ---------------------------------------------------------
  const validated = new Map<string, { fingerprint: string; known: KnownProfile }>();
  /** generation and deletion state each key had in the last plan that was applied */
  let applied = new Map<string, { generation: number; uid: string; fingerprint: string }>();
  let reportsByKey = new Map<string, ProfileReport>();
  let lastPlan = new Map<string, Desired>();
  let firstPlanDone = false;
  let planTimer: NodeJS.Timeout | undefined;
  let planRunning: Promise<void> = Promise.resolve();
  let planAgain = false;
  let planBusy = false;

  const schedulePlan = (delay = t.coalesceMs): void => {
    if (stopped || planTimer !== undefined) return;
    planTimer = setTimeout(() => {
      planTimer = undefined;
      if (planBusy) {
        planAgain = true;
        return;
      }
      planBusy = true;
      planRunning = runPlan()
        .catch((e: unknown) => {
          log.error({ err: messageOf(e) }, 'applying the plan failed; retrying');
          schedulePlan(t.retryMs);
        })
        .finally(() => {
          planBusy = false;
          if (planAgain) {
            planAgain = false;
            schedulePlan();
          }
        });
    }, delay);
  };

  const known = (p: ProfileObj): KnownProfile => {
    const memo = validated.get(p.key);
    if (memo !== undefined && memo.fingerprint === p.fingerprint) return memo.known;
    const check = validateProfile(p.raw, deps.catalog, p.namespace);
    const k: KnownProfile = check.ok
      ? { ok: true, profile: check.profile, warnings: check.warnings }
      : { ok: false, namespace: p.namespace, name: p.name, errors: check.errors, warnings: check.warnings };
    validated.set(p.key, { fingerprint: p.fingerprint, known: k });
    return k;
  };

  const runPlan = async (): Promise<void> => {
    if (!profiles.synced || !pods.synced) return;
    counters.plans++;
    const list: KnownProfile[] = [];
    const gens = new Map<string, { generation: number; uid: string; fingerprint: string }>();
    for (const p of profiles.values()) {
      gens.set(p.key, { generation: p.generation, uid: p.uid, fingerprint: p.fingerprint });
      // A profile being deleted stays on this node only while pods here use it.
      if (p.deleting && podIndex.users(p.key).length === 0) continue;
      list.push(known(p));
    }
    for (const key of validated.keys()) if (profiles.get(key) === undefined) validated.delete(key);
    const plan = computeDesired(list);
    if (!firstPlanDone) {
      // Only after a list that succeeded: files no profile accounts for (and crash leftovers) go.
      await reconciler.sweep(plan);
    }
    const before = reportsByKey;
    const appliedBefore = applied;
    const result = await reconciler.apply(plan);
    applied = gens;
    lastPlan = plan;
    reportsByKey = new Map(reconciler.reportMap());
    counters.filesWritten += result.written.length;
    counters.filesRemoved += result.removed.length;
    const ioFailures = result.failed.filter((k) => plan.get(k)?.kind !== 'error');
    for (const key of result.written) {
      const p = profiles.get(key);
      if (p !== undefined)
        events.record(p, 'Normal', Reasons.Installed, 'Install', `installed ${reportsByKey.get(key)?.path ?? key}`);
    }
    for (const key of result.removed) {
      const r = before.get(key);
      if (r !== undefined) {
        events.record(
          { namespace: r.namespace, name: r.name, uid: profiles.get(key)?.uid ?? '' },
          'Normal',
          Reasons.ProfileRemoved,
          'Remove',
          'removed from this node',
        );
      }
    }
    for (const key of result.failed) {
      const r = reportsByKey.get(key);
      const prev = before.get(key);
      const p = profiles.get(key);
      if (p === undefined || r === undefined || (prev?.state === 'Error' && prev.message === r.message)) continue;
      events.record(
        p,
        'Warning',
        plan.get(key)?.kind === 'error' ? Reasons.ProfileInvalid : Reasons.InstallFailed,
        'Install',
        r.message ?? 'failed',
      );
    }
    if (!firstPlanDone) {
      firstPlanDone = true;
      await startDrift();
      for (const key of profiles.keys()) enqueueStatus(key, 0);
    } else {
      for (const key of new Set([...before.keys(), ...reportsByKey.keys(), ...result.written, ...result.removed])) {
        if (!sameReport(before.get(key), reportsByKey.get(key))) enqueueStatus(key, 0);
      }
      for (const [key, g] of gens) if (appliedBefore.get(key)?.fingerprint !== g.fingerprint) enqueueStatus(key, 0);
    }
    if (ioFailures.length > 0) {
      readyReason = `could not write ${ioFailures.length} profile(s): ${ioFailures.slice(0, 5).join(', ')}`;
      schedulePlan(t.retryMs);
    } else if (!ready) {
      ready = true;
      readyReason = 'first sync done: every valid profile is on disk';
      log.info(
        { profiles: plan.size, written: result.written.length, failed: result.failed.length },
        'first sync done',
      );
    }
  };

  // ---- liveness -----------------------------------------------------------------------------------
  let liveKey = '';
  let liveTimer: NodeJS.Timeout | undefined;
  const liveNodes = (): string[] => {
    const now = Date.now();
    const out = new Set<string>([node]);
    for (const l of leases.values()) {
      if (l.expiresAt > now && nodes.get(l.node) !== undefined) out.add(l.node);
    }
    return [...out].sort();
  };
  const checkLiveness = (): void => {
    if (liveTimer !== undefined) clearTimeout(liveTimer);
    liveTimer = undefined;
    if (stopped) return;
    const live = liveNodes();
    const k = live.join(',');
    if (k !== liveKey) {
      const first = liveKey === '';
      liveKey = k;
      if (!first) log.info({ liveNodes: live.length }, 'the set of live agents changed');
      for (const key of profiles.keys()) enqueueStatus(key, t.coalesceMs);
    }
    const now = Date.now();
    let next = Infinity;
    for (const l of leases.values()) if (l.expiresAt > now) next = Math.min(next, l.expiresAt);
    if (next !== Infinity) liveTimer = setTimeout(checkLiveness, next - now + 50);
  };

  // ---- status: this node's entry + the aggregate ---------------------------------------------------
  const queue = new Map<string, { due: number; correction: boolean }>();
  const inFlight = new Set<string>();
  let queueTimer: NodeJS.Timeout | undefined;
  let queueTimerDue = Infinity;

  function enqueueStatus(key: string, delay: number, correction = false): void {
    if (stopped) return;
    const due = Date.now() + delay;
    const cur = queue.get(key);
    if (cur !== undefined && cur.due <= due && (!correction || cur.correction)) return;
    const next = cur === undefined ? due : Math.min(cur.due, due);
    queue.set(key, { due: next, correction: correction && (cur?.correction ?? true) });
    if (!inFlight.has(key)) armAt(next);
  }

  /**
   * Arms the queue's one timer for `due`, unless it is armed sooner or every slot is busy: a busy
   * queue is drained again when a write in flight ends. (Arming it while every slot was busy made
   * a timer fire every millisecond for as long as the API server took to answer: at 20 agents
   * this spinning was most of the agents' CPU and slowed the API server it waited for.)
   */
  function armAt(due: number): void {
    if (stopped || due === Infinity || due >= queueTimerDue || inFlight.size >= t.statusConcurrency) return;
    if (queueTimer !== undefined) clearTimeout(queueTimer);
    queueTimerDue = due;
    queueTimer = setTimeout(drainQueue, Math.max(0, due - Date.now()));
  }

  /** Arms the timer for the earliest key waiting (after a drain, or when a write ends). */
  function armQueue(): void {
    if (stopped || inFlight.size >= t.statusConcurrency) return;
    let next = Infinity;
    for (const [key, q] of queue) if (q.due < next && !inFlight.has(key)) next = q.due;
    armAt(next);
  }

  function drainQueue(): void {
    queueTimer = undefined;
    queueTimerDue = Infinity;
    if (stopped) return;
    if (!firstPlanDone || !nodes.synced || !leases.synced) {
      queueTimerDue = Date.now() + 200;
      queueTimer = setTimeout(drainQueue, 200);
      return;
    }
    // The earliest due keys, as many as there are free slots: one pass, no sort of the whole
    // queue (it holds every profile after the first plan or a change of the live nodes).
    const now = Date.now();
    const free = t.statusConcurrency - inFlight.size;
    if (free <= 0) return; // a write that ends re-arms the queue
    const picked: [string, { due: number; correction: boolean }][] = [];
    for (const entry of queue) {
      const [key, q] = entry;
      if (q.due > now || inFlight.has(key)) continue;
      if (picked.length === free && (picked[free - 1]?.[1].due ?? -Infinity) <= q.due) continue;
      let i = Math.min(picked.length, free - 1);
      while (i > 0 && (picked[i - 1]?.[1].due ?? -Infinity) > q.due) i--;
      picked.splice(i, 0, entry);
      if (picked.length > free) picked.pop();
    }
    for (const [key, q] of picked) {
      queue.delete(key);
      inFlight.add(key);
      void processStatus(key, q.correction)
        .catch((e: unknown) => {
          if (isKubeApiError(e) && e.status === 404) return;
          log.warn({ profile: key, err: messageOf(e) }, 'status update failed; retrying');
          enqueueStatus(key, t.retryMs);
        })
        .finally(() => {
          inFlight.delete(key);
          armQueue();
        });
    }
    armQueue();
  }

  // Only the first in line corrects soon: with the others close behind, a loaded API server (whose
  // watch events then arrive late) made several agents correct the same profile, each write an
  // event every agent has to read.
  // The fallbacks also wait out twice the time our own writes take now: under load the first
  // one's correction takes seconds to be written and seen, and fixed delays let several land.
  const rankDelay = (key: string, live: readonly string[]): number => {
    const rank = correctionRank(key, node, live);
    return (
      t.correctionBaseMs +
      (rank === 0 ? 0 : t.correctionBackupMs + 2 * writeLatencyMs + (rank - 1) * t.correctionStepMs) +
      Math.round((random() * t.correctionStepMs) / 2)
    );
  };
  /** Moving average of how long a status apply takes (ms). */
  let writeLatencyMs = 0;

  async function processStatus(key: string, correction: boolean): Promise<void> {
    const cached = profiles.get(key);
    if (cached === undefined) return;
    if (correction && correctionRank(key, node, liveNodes()) > 0) {
      // A fallback corrector reads the object first: a read costs the API server far less than
      // a write that every agent's watch then delivers, and usually shows the first in line
      // already corrected it while its watch event was still on the way. A list selected to the
      // one name, because the agent's role grants list, not get.
      counters.correctionReads++;
      const found = await client.request<{ items?: Record<string, unknown>[] }>({
        method: 'GET',
        path: `/apis/${API_GROUP}/${API_VERSION}/namespaces/${cached.namespace}/${PLURAL}`,
        query: { fieldSelector: `metadata.name=${cached.name}` },
      });
      const fresh = found.items?.[0];
      // Gone: its DELETED event is on the way and ends this key's work.
      if (fresh === undefined) return;
      profiles.offer(fresh);
    }
    const p = profiles.get(key);
    if (p === undefined) return;
    const a = applied.get(key);
    // The plan has not caught up with this generation yet: it will enqueue the key when it has.
    if (a === undefined || a.generation !== p.generation || a.uid !== p.uid) return;
    const users = podIndex.users(key);
    const mine = nodeEntry({
      node,
      generation: p.generation,
      report: reportsByKey.get(key),
      deleting: p.deleting,
      users,
    });
    const onObject = p.status?.nodes?.find((n) => n.nodeName === node);
    const live = liveNodes();
    const liveSet = new Set(live);
    const entries: NodeStatus[] = [
      mine,
      ...(p.status?.nodes ?? []).filter((n) => n.nodeName !== node && liveSet.has(n.nodeName)),
    ];
    const agg = aggregate({
      namespace: p.namespace,
      name: p.name,
      generation: p.generation,
      deleting: p.deleting,
      disabled: (p.raw['spec'] as { disabled?: boolean } | undefined)?.disabled === true,
      invalid: lastPlan.get(key)?.kind === 'error',
      entries,
      liveNodes: live,
      previous: p.status,
      now: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    });
    const anyUsers = entries.some((e) => (e.activeWorkloads?.length ?? 0) > 0);
    const hasFinalizer = p.finalizers.includes(IN_USE_FINALIZER);
    const entryChanged = !sameEntry(mine, onObject);

    // Released: nobody alive uses it. Whoever sees it first (in rank order) takes the finalizer off.
    if (hasFinalizer && !anyUsers) {
      if (entryChanged || correction || (onObject?.activeWorkloads?.length ?? 0) > 0) {
        await removeFinalizer(p);
        if (p.deleting) return;
      } else {
        enqueueStatus(key, rankDelay(key, live), true);
      }
    }
    if (entryChanged) {
      await applyStatus(p, mine, agg);
    } else if (!sameAggregate(agg, p.status)) {
      if (correction) {
        counters.statusCorrections++;
        await applyStatus(p, mine, agg);
      } else {
        enqueueStatus(key, rankDelay(key, live), true);
      }
    }
    // Held while pods here use it; added after our entry names them, so no agent that sees the
    // finalizer can miss why it is there.
    const fresh = profiles.get(key) ?? p;
    if (!fresh.finalizers.includes(IN_USE_FINALIZER) && users.length > 0 && !fresh.deleting) await addFinalizer(fresh);
  }

  async function applyStatus(p: ProfileObj, mine: NodeStatus, agg: Aggregate): Promise<void> {
    const body = {
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: KIND,
      metadata: { name: p.name, namespace: p.namespace },
      status: { ...agg, nodes: [{ ...mine, lastUpdateTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }] },
    };
    const sent = Date.now();
    const res = await client.request<Record<string, unknown>>({
      method: 'PATCH',
      path: `${profilePath(p.namespace, p.name)}/status`,
      query: { fieldManager: fieldManager(node), force: true },
      body,
      contentType: 'application/apply-patch+yaml',
    });
    writeLatencyMs = 0.8 * writeLatencyMs + 0.2 * (Date.now() - sent);
    counters.statusWrites++;
    writesByProfile.set(p.key, (writesByProfile.get(p.key) ?? 0) + 1);
    profiles.offer(res);
  }

  async function addFinalizer(p: ProfileObj): Promise<void> {
    const ops =
      p.finalizers.length === 0
        ? [
            { op: 'test', path: '/metadata/resourceVersion', value: p.resourceVersion },
            { op: 'add', path: '/metadata/finalizers', value: [IN_USE_FINALIZER] },
          ]
        : [
            { op: 'test', path: '/metadata/finalizers', value: p.finalizers },
            { op: 'add', path: '/metadata/finalizers/-', value: IN_USE_FINALIZER },
          ];
    await patchFinalizers(p, ops);
  }

  async function removeFinalizer(p: ProfileObj): Promise<void> {
    const i = p.finalizers.indexOf(IN_USE_FINALIZER);
    await patchFinalizers(p, [
      { op: 'test', path: `/metadata/finalizers/${i}`, value: IN_USE_FINALIZER },
      { op: 'remove', path: `/metadata/finalizers/${i}` },
    ]);
    log.info({ profile: p.key, deleting: p.deleting }, 'no live node uses the profile: released it');
  }

  async function patchFinalizers(p: ProfileObj, ops: unknown[]): Promise<void> {
    try {
      const res = await client.request<Record<string, unknown>>({
        method: 'PATCH',
        path: profilePath(p.namespace, p.name),
        body: ops,
        contentType: 'application/json-patch+json',
      });
      counters.finalizerPatches++;
      profiles.offer(res);
    } catch (e: unknown) {
      // 422: a test op failed, our copy was stale; the watch brings the new one and we look again.
      if (isKubeApiError(e) && (e.status === 422 || e.status === 409)) {
        enqueueStatus(p.key, t.retryMs / 2);
        return;
      }
      throw e;
    }
  }

  // ---- informers ----------------------------------------------------------------------------------
  const timing: Partial<ReflectorTiming> = {
    watchTimeoutSeconds: t.watchTimeoutSeconds,
    watchdogMs: t.watchdogMs,
    backoffInitialMs: t.backoffInitialMs,
    backoffMaxMs: t.backoffMaxMs,
    shortBackoffMaxMs: t.shortBackoffMaxMs,
    pageSize: t.pageSize,
  };
  const informerLog = log.child({ component: 'informer' });
  const profiles: Reflector<ProfileObj> = new Reflector<ProfileObj>({
    name: 'seccompprofiles',
    client,
    path: PROFILES_PATH,
    transform: profileObj,
    keyOf: (p) => p.key,
    onChange: (_type, key, cur, old) => {
      if (cur?.fingerprint !== old?.fingerprint) schedulePlan();
      else enqueueStatus(key, t.coalesceMs);
    },
    onSynced: () => schedulePlan(),
    timing,
    log: informerLog,
    random,
  });
  const pods: Reflector<PodUse> = new Reflector<PodUse>({
    name: 'pods',
    client,
    path: '/api/v1/pods',
    fieldSelector: `spec.nodeName=${node}`,
    transform: podUse,
    keyOf: (p) => p.key,
    onChange: (_type, _key, cur, old) => {
      const changed = podIndex.update(old, cur);
      if (changed.length === 0) return;
      // The plan reads profiles ∪ in use here, so a change of either asks for one, whatever this
      // copy of the profile says yet (coalesced; a plan that changes nothing touches no file).
      schedulePlan();
      for (const k of changed) enqueueStatus(k, t.coalesceMs);
    },
    onSynced: () => schedulePlan(),
    timing,
    log: informerLog,
    random,
  });
  const nodes: Reflector<NodeName> = new Reflector<NodeName>({
    name: 'nodes',
    client,
    path: '/api/v1/nodes',
    metadataOnly: true,
    transform: (raw) => {
      const name = (raw['metadata'] as { name?: string } | undefined)?.name;
      return name === undefined ? undefined : { key: name };
    },
    keyOf: (n) => n.key,
    onChange: () => checkLiveness(),
    onSynced: () => checkLiveness(),
    timing,
    log: informerLog,
    random,
  });
  const leases: Reflector<LeaseView> = new Reflector<LeaseView>({
    name: 'leases',
    client,
    path: `/apis/coordination.k8s.io/v1/namespaces/${deps.namespace}/leases`,
    labelSelector: LEASE_LABEL,
    transform: leaseView,
    keyOf: (l) => l.key,
    onChange: () => checkLiveness(),
    onSynced: () => checkLiveness(),
    timing,
    log: informerLog,
    random,
  });

  let drift: DriftGuard | undefined;
  async function startDrift(): Promise<void> {
    // The guard needs the directory to exist to watch it, even with no profile yet.
    await deps.fs.mkdir(join(deps.kubeletRoot, 'seccomp'), { recursive: true, mode: 0o755 });
    try {
      await deps.fs.mkdir(writer.operatorDir, { mode: DIR_MODE });
      if (deps.chownAllowed) await deps.fs.chown(writer.operatorDir, PROFILE_UID, PROFILE_GID);
    } catch (e: unknown) {
      if (!isErrnoException(e) || e.code !== 'EEXIST') throw e;
    }
    drift = new DriftGuard(
      writer.operatorDir,
      reconciler,
      () => reconciler.reports().map((r) => `${r.namespace}/${r.name}`),
      log.child({ component: 'drift' }),
    );
    await drift.ready();
  }

  lease.start();
  for (const r of [profiles, pods, nodes, leases]) r.start();

  return {
    reports: () => reconciler.reports(),
    ready: () => ready,
    readiness: () => ({ ready, reason: readyReason }),
    podIndex,
    restartWatches: () => {
      for (const r of [profiles, pods, nodes, leases]) r.restartWatch();
    },
    stats: () => ({
      node,
      ready,
      profiles: profiles.size,
      podsOnNode: pods.size,
      liveNodes: liveNodes(),
      statusWrites: counters.statusWrites,
      statusWritesByProfile: Object.fromEntries(writesByProfile),
      statusCorrections: counters.statusCorrections,
      correctionReads: counters.correctionReads,
      finalizerPatches: counters.finalizerPatches,
      plans: counters.plans,
      filesWritten: counters.filesWritten,
      filesRemoved: counters.filesRemoved,
      events: { ...events.stats },
      informers: {
        seccompprofiles: { ...profiles.stats },
        pods: { ...pods.stats },
        nodes: { ...nodes.stats },
        leases: { ...leases.stats },
      },
      requests: { ...client.stats },
      lease: { renewals: lease.renewals, failures: lease.failures },
      memory: {
        rssMiB: Math.round(process.memoryUsage().rss / 1048576),
        heapUsedMiB: Math.round(process.memoryUsage().heapUsed / 1048576),
      },
    }),
    stop: async () => {
      stopped = true;
      if (planTimer !== undefined) clearTimeout(planTimer);
      if (queueTimer !== undefined) clearTimeout(queueTimer);
      if (liveTimer !== undefined) clearTimeout(liveTimer);
      await Promise.all([profiles.stop(), pods.stop(), nodes.stop(), leases.stop(), lease.stop()]);
      await planRunning;
      await drift?.close();
      client.close();
    },
  };
}
