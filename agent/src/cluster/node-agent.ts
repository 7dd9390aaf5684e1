/**
 * The node's side of cluster mode, put together: the profile and pod informers, the plan loop,
 * the node Lease, this node's report, and the election that may make it the aggregator.
 */
import type { Logger } from 'pino';
import type { NodeReportBody } from '../../../shared/profile/schema.js';
import { Reasons, revision } from '../../../shared/profile/status.js';
import { EventRecorder } from '../kube/events.js';
import { LeaseKeeper } from '../kube/lease.js';
import { PodIndex, podUse, type PodUse } from '../kube/pods.js';
import { Reflector, type ReflectorTiming } from '../kube/reflector.js';
import { PROFILE_GID, PROFILE_UID } from '../standalone.js';
import { systemClock, type Clock } from './clock.js';
import { AGGREGATOR_LEASE, Election, type RawLease } from './election.js';
import { Leadership } from './leadership.js';
import { NodeReportWriter } from './node-report.js';
import { PlanLoop } from './plan-loop.js';
import { PROFILES_PATH, profileObj, type ProfileObj } from './profile-obj.js';
import { ClusterReconciler, RememberingWriter } from './remembering-writer.js';
import { SpecRevisions } from './spec-revisions.js';
import { DEFAULT_CLUSTER_TIMING, type ClusterDeps, type ClusterTiming } from './types.js';

/** Failure messages in a report are cut here: the report is for kubectl, the Events carry the rest. */
const MAX_MESSAGE = 1024;

export class NodeAgent {
  readonly t: ClusterTiming;
  readonly clock: Clock;
  readonly log: Logger;
  readonly podIndex = new PodIndex();
  readonly specRevs = new SpecRevisions();
  readonly events: EventRecorder;
  readonly lease: LeaseKeeper;
  readonly profiles: Reflector<ProfileObj>;
  readonly pods: Reflector<PodUse>;
  readonly electionWatch: Reflector<RawLease>;
  readonly plan: PlanLoop;
  readonly report: NodeReportWriter;
  readonly election: Election;
  leadership: Leadership | undefined;
  #unleading: Promise<void> = Promise.resolve();
  terms = 0;

  constructor(readonly d: ClusterDeps) {
    const t = (this.t = { ...DEFAULT_CLUSTER_TIMING, ...d.timing });
    const clock = (this.clock = d.clock ?? systemClock);
    const log = (this.log = d.log);
    const random = d.random ?? Math.random;
    const timing: Partial<ReflectorTiming> = { ...t };
    const informerLog = log.child({ component: 'informer' });
    const writer = new RememberingWriter(
      d.fs,
      { kubeletRoot: d.kubeletRoot, uid: PROFILE_UID, gid: PROFILE_GID, chownAllowed: d.chownAllowed },
      log.child({ component: 'writer' }),
    );
    const reconciler = new ClusterReconciler(writer, d.kubeletRoot, log.child({ component: 'reconciler' }), d.observer);
    this.events = new EventRecorder(d.client, d.nodeName, log.child({ component: 'events' }), t.eventsPerSecond, t.eventBurst);
    this.lease = new LeaseKeeper(d.client, d.namespace, d.nodeName, t.leaseDurationSeconds, log.child({ component: 'lease' }));
    this.profiles = new Reflector<ProfileObj>({
      name: 'seccompprofiles',
      client: d.client,
      path: PROFILES_PATH,
      transform: profileObj,
      keyOf: (p) => p.key,
      onChange: (_type, key, cur, old) => this.#profileChanged(key, cur, old),
      onSynced: () => this.plan.schedule(),
      timing,
      log: informerLog,
      random,
    });
    this.pods = new Reflector<PodUse>({
      name: 'pods',
      client: d.client,
      path: '/api/v1/pods',
      fieldSelector: `spec.nodeName=${d.nodeName}`,
      transform: podUse,
      keyOf: (p) => p.key,
      // The plan reads profiles ∪ in use here; a change of either asks for one (coalesced).
      onChange: (_type, _key, cur, old) => {
        if (this.podIndex.update(old, cur).length > 0) this.plan.schedule();
      },
      onSynced: () => this.plan.schedule(),
      timing,
      log: informerLog,
      random,
    });
    this.plan = new PlanLoop({
      profiles: this.profiles,
      podsSynced: () => this.pods.synced,
      podIndex: this.podIndex,
      writer,
      reconciler,
      events: this.events,
      catalog: d.catalog,
      fs: d.fs,
      kubeletRoot: d.kubeletRoot,
      chownAllowed: d.chownAllowed,
      driftGuard: d.driftGuard ?? true,
      clock,
      coalesceMs: t.coalesceMs,
      retryMs: t.retryMs,
      log: log.child({ component: 'plan' }),
      onApplied: (changed, specChanged) => {
        this.report.update(specChanged);
        for (const key of changed) this.leadership?.aggregator.touch(key);
      },
    });
    this.report = new NodeReportWriter({
      api: d.client,
      clock,
      node: d.nodeName,
      minGapMs: t.reportMinGapMs,
      retryMs: t.retryMs,
      log: log.child({ component: 'report' }),
      build: () => this.#reportBody(),
    });
    this.election = new Election({
      api: d.client,
      clock,
      random,
      log: log.child({ component: 'election' }),
      namespace: d.namespace,
      identity: d.nodeName,
      leaseDurationMs: t.electionLeaseSeconds * 1000,
      renewMs: t.electionRenewMs,
      jitterMs: t.electionJitterMs,
      onStart: () => this.#lead(),
      onStop: () => {
        this.#unleading = this.#unlead();
      },
    });
    this.electionWatch = new Reflector<RawLease>({
      name: 'aggregator-lease',
      client: d.client,
      path: `/apis/coordination.k8s.io/v1/namespaces/${d.namespace}/leases`,
      fieldSelector: `metadata.name=${AGGREGATOR_LEASE}`,
      transform: (raw) => raw as RawLease,
      keyOf: () => AGGREGATOR_LEASE,
      onChange: (_t, _k, cur) => this.election.observe(cur),
      onSynced: () => this.election.observe(this.electionWatch.get(AGGREGATOR_LEASE)),
      timing,
      log: informerLog,
      random,
    });
  }

  #profileChanged(key: string, cur: ProfileObj | undefined, old: ProfileObj | undefined): void {
    if (cur === undefined) this.specRevs.forget(key);
    else this.specRevs.seen(cur, this.profiles.versionOf(key), !this.profiles.synced);
    if (cur?.fingerprint !== old?.fingerprint) this.plan.schedule();
    else this.plan.quietEvent(this.profiles.versionOf(key));
    // An aggregator asks for a revision above our last report (or the one being written: an
    // aggregator's Pending status often lands while the report of the same change is in flight),
    // and our files have reached it.
    const asked = revision(cur?.status?.specRevision);
    if (asked > this.report.coveredRevision && this.plan.appliedRevision >= asked) this.report.update(true);
    this.leadership?.aggregator.touch(key);
  }

  #reportBody(): NodeReportBody {
    const failed: NodeReportBody['failed'] = [];
    let installed = 0;
    for (const [key, r] of this.plan.reportMap()) {
      if (r.state === 'Installed') installed++;
      if (r.state !== 'Error') continue;
      const v = this.plan.verdict(key);
      failed.push({
        profile: key,
        generation: v?.generation ?? this.profiles.get(key)?.generation ?? 0,
        reason: v?.invalid !== undefined ? Reasons.ProfileInvalid : Reasons.InstallFailed,
        message: (r.message ?? 'failed').slice(0, MAX_MESSAGE),
      });
    }
    const inUse = this.podIndex.profilesInUse().map((profile) => ({ profile, pods: this.podIndex.users(profile) }));
    const rev = this.plan.appliedRevision;
    return {
      nodeName: this.d.nodeName,
      appliedRevision: Number.isFinite(rev) ? String(rev) : '0',
      installed,
      failedCount: failed.length,
      inUseCount: inUse.length,
      failed: failed.sort((a, b) => a.profile.localeCompare(b.profile)),
      inUse,
    };
  }

  #lead(): void {
    this.terms++;
    this.leadership = new Leadership({
      client: this.d.client,
      node: this.d.nodeName,
      namespace: this.d.namespace,
      timing: { ...this.t },
      random: this.d.random ?? Math.random,
      log: this.log,
      aggregator: {
        clock: this.clock,
        profile: (key) => this.profiles.get(key),
        profileKeys: () => this.profiles.keys(),
        offer: (raw) => this.profiles.offer(raw),
        verdict: (key) => this.plan.verdict(key),
        specRevision: (key) => this.specRevs.get(key),
        coalesceMs: this.t.statusCoalesceMs,
        minGapMs: this.t.statusMinGapMs,
        concurrency: this.t.statusConcurrency,
        retryMs: this.t.retryMs,
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
    for (const r of [this.profiles, this.pods, this.electionWatch]) r.start();
  }

  async stop(): Promise<void> {
    await this.election.stop();
    await this.#unleading;
    await this.#unlead();
    await Promise.all([this.profiles.stop(), this.pods.stop(), this.electionWatch.stop(), this.lease.stop()]);
    await this.plan.stop();
    await this.report.stop();
    this.d.client.close();
  }
}
