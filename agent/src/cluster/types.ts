/** The cluster mode's dependencies, timing knobs, counters and handle. */
import type { Logger } from 'pino';
import type { SyscallCatalog } from '../../../shared/profile/validate.js';
import type { KubeClient } from '../kube/client.js';
import type { PodIndex } from '../kube/pods.js';
import { DEFAULT_TIMING, type ReflectorStats, type ReflectorTiming } from '../kube/reflector.js';
import type { WriterFs } from '../profiles/fs.js';
import type { ProfileReport, ReconcileObserver } from '../profiles/reconciler.js';
import type { Clock } from './clock.js';

export interface ClusterTiming extends ReflectorTiming {
  /** Changes are gathered for this long before the plan is recomputed. */
  coalesceMs: number;
  /** The node Lease (liveness). */
  leaseDurationSeconds: number;
  /** The aggregator Lease (election): its duration, and how often the leader renews it. */
  electionLeaseSeconds: number;
  electionRenewMs: number;
  /** A candidate waits up to this long (random) after the lease expired before it tries. */
  electionJitterMs: number;
  /**
   * Every watch is restarted when the aggregator Lease watch (renewed every electionRenewMs by the
   * leader) has been silent this long: connections cut without a word are found in seconds.
   */
  heartbeatSilenceMs: number;
  /** Two writes of this node's report are at least this far apart. */
  reportMinGapMs: number;
  /** Aggregator: a profile's status waits this long for more reports, and is written at most once per gap. */
  statusCoalesceMs: number;
  statusMinGapMs: number;
  /** A new spec waits this long for every node's report before a Pending is written. */
  statusPendingGraceMs: number;
  /** Status writes in flight at once. */
  statusConcurrency: number;
  /** Retry delay after a failed write or apply. */
  retryMs: number;
  eventsPerSecond: number;
  eventBurst: number;
  /** How often the report looks again at the calls logged under the profiles in use (WouldBlock). */
  loggedRefreshMs: number;
}

export const DEFAULT_CLUSTER_TIMING: ClusterTiming = {
  ...DEFAULT_TIMING,
  coalesceMs: 50,
  leaseDurationSeconds: 40,
  electionLeaseSeconds: 10,
  electionRenewMs: 3000,
  electionJitterMs: 1500,
  heartbeatSilenceMs: 4500,
  reportMinGapMs: 250,
  statusCoalesceMs: 100,
  statusMinGapMs: 1000,
  statusPendingGraceMs: 1000,
  statusConcurrency: 4,
  retryMs: 1000,
  eventsPerSecond: 5,
  eventBurst: 50,
  loggedRefreshMs: 30_000,
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
  clock?: Clock;
  /** Restore edited files (default true; the scale simulation's hollow agents have no real disk). */
  driftGuard?: boolean;
  /**
   * The syscall names these containers made that their profile logged, and the pods (`ns/pod`)
   * that made them (from the event store; none when the agent reads no audit source).
   */
  logged?: LoggedCalls;
}

/** See {@link ClusterDeps.logged}. */
export type LoggedCalls = (containers: readonly { namespace: string; pod: string; container: string }[]) => {
  names: string[];
  pods: string[];
};

export interface AggregatorStats {
  leading: boolean;
  /** Times this agent became the aggregator; the write counters add up over all its terms. */
  terms: number;
  statusWrites: number;
  statusWritesByProfile: Record<string, number>;
  finalizerPatches: number;
  reports: number;
  liveNodes: string[];
}

/** Counters the tests, /v1/cluster and the benchmarks read. */
export interface ClusterStats {
  node: string;
  /** The SeccompProfile API discovered at start. */
  profileApi: { layout: string; version: string };
  ready: boolean;
  readyReason: string;
  profiles: number;
  podsOnNode: number;
  plans: number;
  filesWritten: number;
  filesRemoved: number;
  reportWrites: number;
  appliedRevision: string;
  aggregator: AggregatorStats;
  events: { sent: number; dropped: number; failed: number };
  informers: Record<string, ReflectorStats>;
  requests: { requests: number; failures: number; watchesOpened: number };
  lease: { renewals: number; failures: number };
  election: { attempts: number; renewals: number; failures: number; holder: string };
  /** Times every watch was restarted because the aggregator Lease watch went silent. */
  heartbeatAlarms: number;
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
