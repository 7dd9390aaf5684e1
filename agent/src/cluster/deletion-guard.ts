/**
 * The in-use finalizer, held by the aggregator from the nodes' reports: on while some live node
 * reports pods using the profile (it can only be added before deletion starts, so it is added as
 * soon as a report names a pod), off when no live node does. A node that vanished (no Node, or its
 * Lease expired) is not live, so it never blocks a deletion. One finalizer for the whole cluster:
 * the writes to a profile for this do not depend on the number of nodes.
 */
import type { Logger } from 'pino';
import { isKubeApiError } from '../kube/client.js';
import { JSON_PATCH, type KubeApi } from './kube-api.js';
import { IN_USE_FINALIZER, type ProfileObj } from './profile-obj.js';

export type GuardOutcome = 'unchanged' | 'added' | 'released' | 'conflict';

export class DeletionGuard {
  readonly #api: KubeApi;
  readonly #log: Logger;
  readonly #offer: (raw: Record<string, unknown>) => void;
  readonly #counted: () => void;

  constructor(api: KubeApi, log: Logger, offer: (raw: Record<string, unknown>) => void, counted: () => void) {
    this.#api = api;
    this.#log = log;
    this.#offer = offer;
    this.#counted = counted;
  }

  /**
   * `inUse`: some live node reports pods using it. `allReported`: every live node has a report
   * (a live node that has not reported yet may have users: nothing is released until it has).
   */
  async reconcile(p: ProfileObj, inUse: boolean, allReported: boolean): Promise<GuardOutcome> {
    const has = p.finalizers.includes(IN_USE_FINALIZER);
    if (inUse && !has && !p.deleting) {
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
      return (await this.#patch(p, ops)) ? 'added' : 'conflict';
    }
    if (!inUse && has && allReported) {
      const i = p.finalizers.indexOf(IN_USE_FINALIZER);
      const ok = await this.#patch(p, [
        { op: 'test', path: `/metadata/finalizers/${i}`, value: IN_USE_FINALIZER },
        { op: 'remove', path: `/metadata/finalizers/${i}` },
      ]);
      if (ok) this.#log.info({ profile: p.key, deleting: p.deleting }, 'no live node uses the profile: released it');
      return ok ? 'released' : 'conflict';
    }
    return 'unchanged';
  }

  /** False when a test op failed (our copy was stale: the watch brings the new one). */
  async #patch(p: ProfileObj, ops: unknown[]): Promise<boolean> {
    try {
      const res = await this.#api.request<Record<string, unknown>>({
        method: 'PATCH',
        path: p.path,
        body: ops,
        contentType: JSON_PATCH,
      });
      this.#counted();
      this.#offer(res);
      return true;
    } catch (e: unknown) {
      if (isKubeApiError(e) && (e.status === 422 || e.status === 409)) return false;
      throw e;
    }
  }
}
