/**
 * Cluster mode: SeccompProfiles from the API server → this node's operator directory; this node's
 * outcome into its SeccompNodeReport; and, on the one agent elected by the aggregator Lease, every
 * profile's status from the live nodes' reports. See docs/cluster.md. This file only wires the
 * parts together: node-agent.ts (informers, plan loop, report, election), leadership.ts (what the
 * elected agent runs), aggregator.ts, deletion-guard.ts, status-queue.ts.
 */
import { systemClock } from './clock.js';
import { awaitProfileApi } from './discovery.js';
import { NodeAgent } from './node-agent.js';
import type { Cluster, ClusterDeps, ClusterStats } from './types.js';

export { IN_USE_FINALIZER } from './profile-obj.js';
export { AGGREGATOR_FIELD_MANAGER } from './aggregator.js';
export { AGGREGATOR_LEASE } from './election.js';
export { REPORT_FIELD_MANAGER, REPORTS_PATH } from './node-report.js';
export { DEFAULT_CLUSTER_TIMING } from './types.js';
export type { Cluster, ClusterDeps, ClusterStats, ClusterTiming } from './types.js';

/** Why the agent is not ready, or undefined when it is. */
function notReady(a: NodeAgent): string | undefined {
  if (!a.plan.firstPlanDone) return 'waiting for the first list of SeccompProfiles and pods';
  if (a.plan.ioProblem !== undefined) return a.plan.ioProblem;
  if (a.lease.problem !== undefined) return a.lease.problem;
  if (a.report.problem !== undefined) return a.report.problem;
  return undefined;
}

function stats(a: NodeAgent): ClusterStats {
  const why = notReady(a);
  const agg = a.leadership?.aggregator;
  return {
    node: a.d.nodeName,
    profileApi: { layout: a.profileApi.layout, version: a.profileApi.version },
    ready: why === undefined,
    readyReason: why ?? 'first sync done: every valid profile is on disk, the Lease and the report are written',
    profiles: a.informers.profiles.size,
    podsOnNode: a.informers.pods.size,
    plans: a.plan.counters.plans,
    filesWritten: a.plan.counters.filesWritten,
    filesRemoved: a.plan.counters.filesRemoved,
    reportWrites: a.report.writes,
    appliedRevision: String(a.plan.appliedRevision),
    aggregator: {
      leading: a.election.leading,
      terms: a.terms,
      statusWrites: a.aggregated.statusWrites,
      statusWritesByProfile: Object.fromEntries(a.aggregated.writesByProfile),
      finalizerPatches: a.aggregated.finalizerPatches,
      reports: agg?.reportCount ?? 0,
      liveNodes: [...(agg?.liveNodes ?? [])],
    },
    events: { ...a.events.stats },
    informers: {
      seccompprofiles: { ...a.informers.profiles.stats },
      pods: { ...a.informers.pods.stats },
      'aggregator-lease': { ...a.informers.electionLease.stats },
      ...a.leadership?.stats(),
    },
    requests: { ...a.d.client.stats },
    lease: { renewals: a.lease.renewals, failures: a.lease.failures },
    election: { ...a.election.stats, holder: a.election.holder },
    heartbeatAlarms: a.heartbeat.alarms,
    memory: {
      rssMiB: Math.round(process.memoryUsage().rss / 1048576),
      heapUsedMiB: Math.round(process.memoryUsage().heapUsed / 1048576),
    },
  };
}

/** Discovers the SeccompProfile API (waiting for its CRD), then starts; the lists run behind it. */
export async function startCluster(deps: ClusterDeps): Promise<Cluster> {
  const profileApi = await awaitProfileApi(deps.client, {
    ...{ clock: deps.clock ?? systemClock, log: deps.log.child({ component: 'discovery' }) },
    ...{ retryMs: deps.timing?.retryMs ?? 1000, maxRetryMs: 10_000 },
  });
  const a = new NodeAgent(deps, profileApi);
  if (!deps.chownAllowed && process.getuid?.() !== 65535) {
    deps.log.warn('not running as root: profile files keep this user as owner instead of 65535:65535');
  }
  a.start();
  return {
    reports: () => a.plan.reports(),
    ready: () => notReady(a) === undefined,
    readiness: () => {
      const why = notReady(a);
      return { ready: why === undefined, reason: why ?? 'first sync done' };
    },
    podIndex: a.podIndex,
    stats: () => stats(a),
    restartWatches: () => a.restartWatches(false),
    stop: () => a.stop(),
  };
}
