/**
 * The writer, remembering the bytes it last found or put on disk for each profile, so a plan that
 * asks for the same bytes again does not touch the disk: the plan is recomputed from the whole
 * cache on every change, and at hundreds of profiles re-reading every file each time was most of an
 * agent's CPU during a sync. What changes on disk behind our back is the drift guard's business:
 * every repair (an inotify event, or the guard's periodic re-check) forgets the key first, so it
 * always looks at the disk. A forget during an install keeps that install from being remembered.
 */
import type { Logger } from 'pino';
import { profileKey } from '../../../shared/profile/layout.js';
import { Reconciler, type ReconcileObserver } from '../profiles/reconciler.js';
import { ProfileWriter, type WriteOutcome } from '../profiles/writer.js';

export class RememberingWriter extends ProfileWriter {
  readonly #known = new Map<string, string>();
  #forgets = 0;

  override async install(namespace: string, name: string, content: string): Promise<WriteOutcome> {
    const key = profileKey(namespace, name);
    if (this.#known.get(key) === content) return 'unchanged';
    this.#known.delete(key);
    const epoch = this.#forgets;
    const outcome = await super.install(namespace, name, content);
    if (this.#forgets === epoch) this.#known.set(key, content);
    return outcome;
  }

  override async remove(namespace: string, name: string): Promise<boolean> {
    this.forget(profileKey(namespace, name));
    return super.remove(namespace, name);
  }

  forget(key: string): void {
    this.#forgets++;
    this.#known.delete(key);
  }
}

/** Drift repairs through this reconciler always look at the disk (see RememberingWriter). */
export class ClusterReconciler extends Reconciler {
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
