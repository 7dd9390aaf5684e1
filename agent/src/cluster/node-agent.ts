/**
 * The wiring of cluster mode on one node: informers → plan loop → files; the plan's outcome → this
 * node's report; the node Lease; the election, and what the elected agent runs (leadership.ts).
 */
import type { Logger } from 'pino';
import type { ProfileApi } from '../../../shared/profile/layout.js';
import { revision } from '../../../shared/profile/status.js';
import { EventRecorder } from '../kube/events.js';
import { LeaseKeeper } from '../kube/lease.js';
import { PodIndex } from '../kube/pods.js';
import { PROFILE_GID, PROFILE_UID } from '../standalone.js';
import { MAX_LOGGED_NAMES } from '../../../shared/profile/schema.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { newAggregatorCounters } from './aggregator.js';
import { Election } from './election.js';
import { WatchHeartbeat } from './heartbeat.js';
import { nodeInformers, type NodeInformers } from './informers.js';
import { Leadership } from './leadership.js';
import { buildReport, NodeReportWriter } from './node-report.js';
import { PlanLoop } from './plan-loop.js';
import type { ProfileObj } from './profile-obj.js';
import { ClusterReconciler, RememberingWriter } from './remembering-writer.js';
import { SpecRevisions } from './spec-revisions.js';
import { DEFAULT_CLUSTER_TIMING, type ClusterDeps, type ClusterTiming } from './types.js';

export class NodeAgent {
  readonly t: ClusterTiming;
  readonly clock: Clock;
  readonly log: Logger;
  readonly podIndex = new PodIndex();
  readonly specRevs = new SpecRevisions();
  readonly aggregated = newAggregatorCounters();
  readonly events: EventRecorder;
  readonly lease: LeaseKeeper;
  readonly informers: NodeInformers;
  readonly plan: PlanLoop;
  readonly report: NodeReportWriter;
  readonly election: Election;
  readonly heartbeat: WatchHeartbeat;
  leadership: Leadership | undefined;
  #unleading: Promise<void> = Promise.resolve();
  #loggedTimer: TimerHandle | undefined;
  #stopped = false;
  terms = 0;

  constructor(
    readonly d: ClusterDeps,
    readonly profileApi: ProfileApi,
  ) {
    const t = (this.t = { ...DEFAULT_CLUSTER_TIMING, ...d.timing });
    this.clock = d.clock ?? systemClock;
    this.log = d.log;
    const child = (component: string): Logger => this.log.child({ component });
    const random = d.random ?? Math.random;
    const { client, nodeName: node } = d;
    const owner = { kubeletRoot: d.kubeletRoot, uid: PROFILE_UID, gid: PROFILE_GID, chownAllowed: d.chownAllowed };
    const writer = new RememberingWriter(d.fs, owner, child('writer'));
    const reconciler = new ClusterReconciler(writer, d.kubeletRoot, child('reconciler'), d.observer);
    this.events = new EventRecorder(client, node, child('events'), t.eventsPerSecond, t.eventBurst);
    this.lease = new LeaseKeeper(client, d.namespace, node, t.leaseDurationSeconds, child('lease'));
    this.informers = nodeInformers({
      client,
      node,
      namespace: d.namespace,
      profileApi,
      timing: { ...t },
      random,
      log: child('informer'),
      onProfile: (_type, key, cur, old) => this.#profileChanged(key, cur, old),
      // The plan reads profiles ∪ in use here; a change of either asks for one (coalesced).
      onPod: (_type, _key, cur, old) => {
        if (this.podIndex.update(old, cur).length > 0) this.plan.schedule();
      },
      onElectionLease: (lease) => this.election.observe(lease),
      onSynced: () => this.plan.schedule(),
    });
    const { profiles, pods } = this.informers;
    this.plan = new PlanLoop({
      ...{ profiles, podIndex: this.podIndex, writer, reconciler, events: this.events, catalog: d.catalog, fs: d.fs },
      layout: profileApi.layout,
      ...{ kubeletRoot: d.kubeletRoot, chownAllowed: d.chownAllowed, driftGuard: d.driftGuard ?? true },
      ...{ clock: this.clock, coalesceMs: t.coalesceMs, retryMs: t.retryMs, log: child('plan') },
      podsSynced: () => pods.synced,
      onApplied: (changed, specChanged) => {
        this.report.update(specChanged);
        for (const key of changed) this.leadership?.aggregator.touch(key);
      },
    });
    this.report = new NodeReportWriter({
      ...{ api: client, clock: this.clock, node, minGapMs: t.reportMinGapMs, retryMs: t.retryMs, log: child('report') },
      build: () =>
        buildReport({
          node,
          appliedRevision: this.plan.appliedRevision,
          reports: this.plan.reportMap(),
          verdict: (key) => this.plan.verdict(key),
          inUse: this.podIndex.profilesInUse().map((profile) => this.#use(profile)),
        }),
    });
    this.election = new Election({
      ...{ api: client, clock: this.clock, random, log: child('election'), namespace: d.namespace, identity: node },
      ...{ leaseDurationMs: t.electionLeaseSeconds * 1000, renewMs: t.electionRenewMs, jitterMs: t.electionJitterMs },
      onStart: () => this.#lead(random),
      onStop: () => {
        this.#unleading = this.#unlead();
      },
    });
    this.heartbeat = new WatchHeartbeat(
      this.clock,
      () => this.informers.electionLease.watchActivityAt,
      t.heartbeatSilenceMs,
      () => {
        this.log.warn(
          { silentMs: t.heartbeatSilenceMs },
          'the aggregator Lease watch went silent: the connections look cut; reopening them and every watch',
        );
        this.d.client.resetConnections();
        this.restartWatches(true);
      },
    );
  }

  /** A profile in use here: its pods, and what it logged of their calls (for WouldBlock). */
  #use(profile: string): { profile: string; pods: string[]; logged?: string[]; loggedPods?: string[] } {
    const pods = this.podIndex.users(profile);
    const logged = this.d.logged?.(this.podIndex.containersUsing(profile));
    if (logged === undefined || logged.names.length === 0) return { profile, pods };
    return { profile, pods, logged: logged.names.slice(0, MAX_LOGGED_NAMES), loggedPods: logged.pods };
  }

  /** The calls logged change without any object changing: the report looks again every so often. */
  #refreshLogged(): void {
    if (this.d.logged === undefined || this.#stopped) return;
    this.#loggedTimer = this.clock.after(this.t.loggedRefreshMs, () => {
      this.report.update(false);
      this.#refreshLogged();
    });
  }

  /** Every watch restarted at once (the heartbeat found the connections silent). */
  restartWatches(silent: boolean): void {
    for (const r of Object.values(this.informers)) r.restartWatch(silent);
    this.leadership?.restartWatches(silent);
  }

  #profileChanged(key: string, cur: ProfileObj | undefined, old: ProfileObj | undefined): void {
    const { profiles } = this.informers;
    if (cur === undefined) this.specRevs.forget(key);
    else this.specRevs.seen(cur, profiles.versionOf(key), !profiles.synced);
    if (cur?.fingerprint !== old?.fingerprint) this.plan.schedule();
    else this.plan.quietEvent(profiles.versionOf(key));
    // An aggregator asks for a revision above our last report (or the one being written: an
    // aggregator's Pending status often lands while the report of the same change is in flight),
    // and our files have reached it.
    const asked = revision(cur?.status?.specRevision);
    if (asked > this.report.coveredRevision && this.plan.appliedRevision >= asked) this.report.update(true);
    this.leadership?.aggregator.touch(key);
  }

  #lead(random: () => number): void {
    const { profiles } = this.informers;
    const t = this.t;
    this.terms++;
    this.leadership = new Leadership({
      ...{ client: this.d.client, node: this.d.nodeName, namespace: this.d.namespace, timing: { ...t } },
      ...{ random, log: this.log },
      aggregator: {
        counters: this.aggregated,
        clock: this.clock,
        profile: (key) => profiles.get(key),
        profileKeys: () => profiles.keys(),
        offer: (raw) => profiles.offer(raw),
        verdict: (key) => this.plan.verdict(key),
        specRevision: (key) => this.specRevs.get(key),
        kubeletRoot: this.d.kubeletRoot,
        ...{ coalesceMs: t.statusCoalesceMs, minGapMs: t.statusMinGapMs, pendingGraceMs: t.statusPendingGraceMs },
        ...{ concurrency: t.statusConcurrency, retryMs: t.retryMs },
      },
    });
  }

  async #unlead(): Promise<void> {
    const l = this.leadership;
    this.leadership = undefined;
    await l?.stop();
  }

  start(): void {
    this.lease.start();
    this.heartbeat.start();
    for (const r of Object.values(this.informers)) r.start();
    this.#refreshLogged();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#loggedTimer?.cancel();
    this.heartbeat.stop();
    await this.election.stop();
    await this.#unleading;
    await this.#unlead();
    await Promise.all([...Object.values(this.informers).map((r) => r.stop()), this.lease.stop()]);
    await this.plan.stop();
    await this.report.stop();
    this.d.client.close();
  }
}
