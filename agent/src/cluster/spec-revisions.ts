/**
 * The revision at which each profile's current spec (uid, generation, deletion) was first seen.
 * Every agent keeps it from its own profile watch, so an agent that becomes the aggregator knows
 * it for every change it saw. For a profile it first saw in a list, it takes the status's
 * specRevision when that status is for the current generation, else the object's resourceVersion:
 * an upper bound, which the nodes answer (node-report.ts).
 */
import { revision } from '../../../shared/profile/status.js';
import type { ProfileObj } from './profile-obj.js';

export class SpecRevisions {
  readonly #byKey = new Map<string, { fingerprint: string; rev: number }>();

  /** A profile event: `rv` is the event's resourceVersion; `listed` when it came from a list. */
  seen(cur: ProfileObj, rv: number, listed: boolean): void {
    const held = this.#byKey.get(cur.key);
    if (held?.fingerprint === cur.fingerprint) return;
    let rev = rv;
    if (held === undefined && listed) {
      const s = cur.status;
      const fromStatus = revision(s?.specRevision);
      if (s?.observedGeneration === cur.generation && Number.isFinite(fromStatus)) rev = fromStatus;
    }
    this.#byKey.set(cur.key, { fingerprint: cur.fingerprint, rev });
  }

  forget(key: string): void {
    this.#byKey.delete(key);
  }

  get(key: string): number {
    return this.#byKey.get(key)?.rev ?? NaN;
  }
}
