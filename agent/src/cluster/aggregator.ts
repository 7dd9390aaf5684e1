/**
 * The aggregator: run by the one agent that holds the aggregator Lease. From the live nodes'
 * reports it computes each profile's top-level status (shared/profile/status.ts) and writes it
 * with server-side apply under one constant field manager, only when it differs; it holds the
 * in-use finalizer through the deletion guard. Writes per profile change do not depend on the
 * number of nodes: a profile's status is coalesced and written at most once per `minGapMs`.
 */
import type { Logger } from 'pino';
import { messageOf } from '../../../shared/errors.js';
import { KIND } from '../../../shared/profile/enums.js';
import type { NodeReportBody } from '../../../shared/profile/schema.js';
import { sameStatus } from '../../../shared/profile/schema-equal.js';
import { inUseOnLiveNodes, nodeView, profileStatus, type NodeView } from '../../../shared/profile/status.js';
import { isKubeApiError } from '../kube/client.js';
import { secondsTime, type Clock } from './clock.js';
import { DeletionGuard } from './deletion-guard.js';
import { APPLY_PATCH, type KubeApi } from './kube-api.js';
import type { Verdict } from './plan-loop.js';
import type { ProfileObj } from './profile-obj.js';
import { KeyedQueue } from './status-queue.js';

export const AGGREGATOR_FIELD_MANAGER = 'seccomp-agent-aggregator';

/** What the aggregators of this agent wrote, over all its terms. */
export interface AggregatorCounters {
  statusWrites: number;
  writesByProfile: Map<string, number>;
  finalizerPatches: number;
}

export const newAggregatorCounters = (): AggregatorCounters => ({
  statusWrites: 0,
  writesByProfile: new Map(),
  finalizerPatches: 0,
});

export interface AggregatorDeps {
  counters: AggregatorCounters;
  api: KubeApi;
  clock: Clock;
  log: Logger;
  profile: (key: string) => ProfileObj | undefined;
  profileKeys: () => Iterable<string>;
  /** Puts the answer to a write into the shared profile cache. */
  offer: (raw: Record<string, unknown>) => void;
  /** This agent's own plan's verdict on a profile (validation is the same everywhere). */
  verdict: (key: string) => Verdict | undefined;
  specRevision: (key: string) => number;
  /** The nodes' kubelet root (the same on every node of the DaemonSet), for status.path. */
  kubeletRoot: string;
  coalesceMs: number;
  minGapMs: number;
  /**
   * A new spec waits up to this long for every node before a Pending is written: usually they all
   * report within it, and the one write says Installed.
   */
  pendingGraceMs: number;
  concurrency: number;
  retryMs: number;
}

export class Aggregator {
  readonly #d: AggregatorDeps;
  readonly #queue: KeyedQueue;
  readonly #guard: DeletionGuard;
  readonly #reports = new Map<string, NodeView>();
  #live: readonly string[] = [];
  /** Keys whose last computed status waits on some node (pending, failed, or in use). */
  readonly #unsettled = new Set<string>();
  /** When this aggregator first saw each profile's current spec. */
  readonly #firstSeen = new Map<string, { fingerprint: string; at: number }>();
  #started = false;

  constructor(d: AggregatorDeps) {
    this.#d = d;
    this.#guard = new DeletionGuard(d.api, d.log, d.offer, () => d.counters.finalizerPatches++);
    this.#queue = new KeyedQueue({
      clock: d.clock,
      concurrency: d.concurrency,
      coalesceMs: d.coalesceMs,
      minGapMs: d.minGapMs,
      retryMs: d.retryMs,
      run: (key) => this.#process(key),
      onError: (key, e) => {
        if (isKubeApiError(e) && e.status === 404) return false;
        d.log.warn({ profile: key, err: messageOf(e) }, 'status update failed; retrying');
        return true;
      },
    });
  }

  get reportCount(): number {
    return this.#reports.size;
  }

  get liveNodes(): readonly string[] {
    return this.#live;
  }

  /** Starts writing, once the reports, leases and nodes are listed: every profile is looked at once. */
  start(live: readonly string[]): void {
    this.#live = live;
    this.#started = true;
    for (const key of this.#d.profileKeys()) this.#queue.enqueue(key);
  }

  stop(): void {
    this.#started = false;
    this.#queue.stop();
  }

  whenIdle(): Promise<void> {
    return this.#queue.whenIdle();
  }

  /** A profile changed (spec, status, finalizers) or this agent's plan has caught up with it. */
  touch(key: string): void {
    if (!this.#started) return;
    if (this.#d.profile(key) === undefined) {
      this.#unsettled.delete(key);
      this.#firstSeen.delete(key);
      this.#queue.forget(key);
      return;
    }
    this.#queue.enqueue(key);
  }

  setLive(live: readonly string[]): void {
    this.#live = live;
    if (this.#started) for (const key of this.#d.profileKeys()) this.#queue.enqueue(key);
  }

  setReport(node: string, body: NodeReportBody | undefined): void {
    const old = this.#reports.get(node);
    const cur = body === undefined ? undefined : nodeView(body);
    if (cur === undefined) this.#reports.delete(node);
    else this.#reports.set(node, cur);
    if (!this.#started) return;
    const keys = new Set<string>(this.#unsettled);
    for (const v of [old, cur]) {
      for (const k of v?.failed.keys() ?? []) keys.add(k);
      for (const k of v?.inUse.keys() ?? []) keys.add(k);
    }
    // A node that appears or goes away changes every profile's count.
    if (old === undefined || cur === undefined) for (const k of this.#d.profileKeys()) keys.add(k);
    for (const k of keys) this.touch(k);
  }

  /** One look at a profile; true when it wrote something. */
  async #process(key: string): Promise<boolean> {
    if (!this.#started) return false;
    const p = this.#d.profile(key);
    if (p === undefined) return false;
    const v = this.#d.verdict(key);
    // This agent's plan has not validated the current spec yet: it touches the key when it has.
    if (v === undefined || v.fingerprint !== p.fingerprint) return false;
    const live = this.#live;
    const allReported = live.every((n) => this.#reports.has(n));
    const outcome = await this.#guard.reconcile(p, inUseOnLiveNodes(key, live, this.#reports), allReported);
    if (outcome === 'conflict') {
      this.#queue.enqueue(key, this.#d.retryMs / 2);
      return true;
    }
    if (outcome === 'released' && p.deleting) return true;
    const fresh = this.#d.profile(key) ?? p;
    const status = profileStatus({
      namespace: fresh.namespace,
      name: fresh.name,
      generation: fresh.generation,
      specRevision: this.#d.specRevision(key),
      deleting: fresh.deleting,
      disabled: fresh.disabled,
      complain: fresh.complain,
      invalid: v.invalid === undefined ? undefined : { message: v.invalid },
      liveNodes: live,
      reports: this.#reports,
      previous: fresh.status,
      now: secondsTime(this.#d.clock.now()),
      kubeletRoot: this.#d.kubeletRoot,
    });
    const settled =
      (status.status === 'Installed' || status.status === 'Disabled') && status.activeWorkloads.length === 0;
    if (settled) this.#unsettled.delete(key);
    else this.#unsettled.add(key);
    if (sameStatus(status, fresh.status)) return outcome !== 'unchanged';
    const now = this.#d.clock.now();
    let seen = this.#firstSeen.get(key);
    if (seen?.fingerprint !== fresh.fingerprint) {
      seen = { fingerprint: fresh.fingerprint, at: now };
      this.#firstSeen.set(key, seen);
    }
    if (status.status === 'Pending' && now < seen.at + this.#d.pendingGraceMs) {
      this.#queue.enqueue(key, seen.at + this.#d.pendingGraceMs - now);
      return outcome !== 'unchanged';
    }
    const res = await this.#d.api.request<Record<string, unknown>>({
      method: 'PATCH',
      path: `${fresh.path}/status`,
      query: { fieldManager: AGGREGATOR_FIELD_MANAGER, force: true },
      body: {
        apiVersion: String(fresh.raw['apiVersion']),
        kind: KIND,
        metadata: { name: fresh.name, ...(fresh.namespace === '' ? {} : { namespace: fresh.namespace }) },
        status,
      },
      contentType: APPLY_PATCH,
    });
    const c = this.#d.counters;
    c.statusWrites++;
    c.writesByProfile.set(key, (c.writesByProfile.get(key) ?? 0) + 1);
    this.#d.offer(res);
    return true;
  }
}
