/**
 * The plan loop: the whole profile cache (and this node's pods) → this node's operator directory.
 * Changes are coalesced, then the plan is computed from the cache with the standalone mode's code
 * (validateProfile memoised per spec, computeDesired, Reconciler.apply, which skips unchanged
 * bytes). It keeps the revision of the profile cache its files reflect (the node report's
 * watermark) and records this node's Events. It writes nothing to the API server but Events.
 */
import type { Logger } from 'pino';
import { join } from 'node:path';
import { isErrnoException, messageOf } from '../../../shared/errors.js';
import { computeDesired, type Desired, type KnownProfile } from '../../../shared/profile/desired.js';
import { profileKey, type Layout } from '../../../shared/profile/layout.js';
import { Reasons } from '../../../shared/profile/status.js';
import { validateProfile, type SyscallCatalog } from '../../../shared/profile/validate.js';
import type { EventRecorder } from '../kube/events.js';
import type { PodIndex } from '../kube/pods.js';
import { DriftGuard } from '../profiles/drift.js';
import type { WriterFs } from '../profiles/fs.js';
import type { ProfileReport } from '../profiles/reconciler.js';
import { DIR_MODE } from '../profiles/writer.js';
import { PROFILE_GID, PROFILE_UID } from '../standalone.js';
import type { Clock, TimerHandle } from './clock.js';
import type { ProfileObj } from './profile-obj.js';
import type { ClusterReconciler, RememberingWriter } from './remembering-writer.js';

/** The read side of the profile informer the loop plans from. */
export interface ProfileSource {
  readonly synced: boolean;
  get(key: string): ProfileObj | undefined;
  values(): IterableIterator<ProfileObj>;
  keys(): IterableIterator<string>;
  /** The informer's resourceVersion: every event up to it is in the cache. */
  readonly resourceVersion: string;
}

export interface PlanLoopDeps {
  profiles: ProfileSource;
  podsSynced: () => boolean;
  podIndex: PodIndex;
  writer: RememberingWriter;
  reconciler: ClusterReconciler;
  events: Pick<EventRecorder, 'record'>;
  catalog: SyscallCatalog;
  /** The discovered layout: a Cluster one validates every profile as cluster-scoped. */
  layout: Layout;
  fs: WriterFs;
  kubeletRoot: string;
  chownAllowed: boolean;
  /** Watch the directory and restore edited files (off for the hollow agents of the scale simulation). */
  driftGuard: boolean;
  clock: Clock;
  coalesceMs: number;
  retryMs: number;
  log: Logger;
  /** After each applied plan: the keys whose outcome or spec changed, and whether any spec did. */
  onApplied: (changed: ReadonlySet<string>, specChanged: boolean) => void;
}

/** What this node's plan made of a profile's current spec. */
export interface Verdict {
  fingerprint: string;
  generation: number;
  /** Set when validation refused it. */
  invalid: string | undefined;
}

export class PlanLoop {
  readonly #d: PlanLoopDeps;
  readonly #validated = new Map<string, { fingerprint: string; known: KnownProfile }>();
  #applied = new Map<string, Verdict>();
  #reports = new Map<string, ProfileReport>();
  #timer: TimerHandle | undefined;
  #running: Promise<void> = Promise.resolve();
  #busy = false;
  #again = false;
  #stopped = false;
  #drift: DriftGuard | undefined;
  #revision = NaN;
  firstPlanDone = false;
  /** Set when the last plan could not write some file (the agent is then not ready). */
  ioProblem: string | undefined;
  readonly counters = { plans: 0, filesWritten: 0, filesRemoved: 0 };

  constructor(d: PlanLoopDeps) {
    this.#d = d;
  }

  /** The profile revision this node's files reflect (NaN before the first plan). */
  get appliedRevision(): number {
    return this.#revision;
  }

  /** Whether a plan is asked for or running (the files may be behind the cache). */
  get dirty(): boolean {
    return this.#timer !== undefined || this.#busy;
  }

  reports(): ProfileReport[] {
    return [...this.#reports.values()].sort((a, b) =>
      profileKey(a.namespace, a.name).localeCompare(profileKey(b.namespace, b.name)),
    );
  }

  reportMap(): ReadonlyMap<string, ProfileReport> {
    return this.#reports;
  }

  verdict(key: string): Verdict | undefined {
    return this.#applied.get(key);
  }

  /**
   * A profile event that needs no plan (its status changed): when no plan is pending, the files
   * already reflect the cache up to this event, so the watermark moves up to it.
   */
  quietEvent(rv: number): void {
    if (!this.dirty && this.firstPlanDone && Number.isFinite(rv) && !(rv <= this.#revision)) this.#revision = rv;
  }

  schedule(delay = this.#d.coalesceMs): void {
    if (this.#stopped || this.#timer !== undefined) return;
    this.#timer = this.#d.clock.after(delay, () => {
      this.#timer = undefined;
      if (this.#busy) {
        this.#again = true;
        return;
      }
      this.#busy = true;
      this.#running = this.#run()
        .catch((e: unknown) => {
          this.#d.log.error({ err: messageOf(e) }, 'applying the plan failed; retrying');
          this.schedule(this.#d.retryMs);
        })
        .finally(() => {
          this.#busy = false;
          if (this.#again) {
            this.#again = false;
            this.schedule();
          }
        });
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    await this.#running;
    await this.#drift?.close();
  }

  #known(p: ProfileObj): KnownProfile {
    const memo = this.#validated.get(p.key);
    if (memo !== undefined && memo.fingerprint === p.fingerprint) return memo.known;
    const check = validateProfile(p.raw, this.#d.catalog, { layout: this.#d.layout, defaultNamespace: p.namespace });
    const k: KnownProfile = check.ok
      ? { ok: true, profile: check.profile, warnings: check.warnings }
      : { ok: false, namespace: p.namespace, name: p.name, errors: check.errors, warnings: check.warnings };
    this.#validated.set(p.key, { fingerprint: p.fingerprint, known: k });
    return k;
  }

  async #run(): Promise<void> {
    const { profiles, podIndex, reconciler, log } = this.#d;
    if (!profiles.synced || !this.#d.podsSynced()) return;
    this.counters.plans++;
    const revision = Number(profiles.resourceVersion);
    const list: KnownProfile[] = [];
    const fingerprints = new Map<string, ProfileObj>();
    for (const p of profiles.values()) {
      fingerprints.set(p.key, p);
      // A profile being deleted stays on this node only while pods here use it.
      if (p.deleting && podIndex.users(p.key).length === 0) continue;
      list.push(this.#known(p));
    }
    for (const key of this.#validated.keys()) if (profiles.get(key) === undefined) this.#validated.delete(key);
    const plan = computeDesired(list);
    if (!this.firstPlanDone) {
      // Only after a list that succeeded: files no profile accounts for (and crash leftovers) go,
      // except those pods here still name (a file of the other layout after a move: docs/cluster.md).
      await reconciler.sweep(plan, false, podIndex.profilesInUse());
    }
    const before = this.#reports;
    const appliedBefore = this.#applied;
    // A file no profile names any more stays while pods here name it, in every plan; disabled goes.
    const result = await reconciler.apply(plan, (key) => podIndex.users(key));
    this.#reports = new Map(reconciler.reportMap());
    const applied = new Map<string, Verdict>();
    for (const [key, p] of fingerprints) {
      const d = plan.get(key);
      applied.set(key, {
        fingerprint: p.fingerprint,
        generation: p.generation,
        // The reconciler's message also says whether the last good file stays.
        invalid: d?.kind === 'error' ? (this.#reports.get(key)?.message ?? d.message) : undefined,
      });
    }
    this.#applied = applied;
    this.counters.filesWritten += result.written.length;
    this.counters.filesRemoved += result.removed.length;
    this.#recordEvents(plan, before, result);

    const changed = new Set<string>([...result.written, ...result.removed, ...result.failed]);
    let specChanged = false;
    for (const [key, v] of applied) {
      if (appliedBefore.get(key)?.fingerprint !== v.fingerprint) {
        changed.add(key);
        specChanged = true;
      }
    }
    for (const key of appliedBefore.keys()) {
      if (!applied.has(key)) {
        changed.add(key);
        specChanged = true;
      }
    }
    if (!this.firstPlanDone) {
      this.firstPlanDone = true;
      specChanged = true;
      await this.#startDrift();
    }
    const ioFailures = result.failed.filter((k) => plan.get(k)?.kind !== 'error');
    this.ioProblem =
      ioFailures.length === 0
        ? undefined
        : `could not write ${ioFailures.length} profile(s): ${ioFailures.slice(0, 5).join(', ')}`;
    if (ioFailures.length > 0) this.schedule(this.#d.retryMs);
    if (Number.isFinite(revision)) this.#revision = revision;
    log.debug({ profiles: plan.size, written: result.written.length, revision }, 'plan applied');
    this.#d.onApplied(changed, specChanged);
  }

  #recordEvents(
    plan: ReadonlyMap<string, Desired>,
    before: ReadonlyMap<string, ProfileReport>,
    result: { written: string[]; removed: string[]; failed: string[] },
  ): void {
    const { profiles, events } = this.#d;
    for (const key of result.written) {
      const p = profiles.get(key);
      if (p !== undefined)
        events.record(p, 'Normal', Reasons.Installed, 'Install', `installed ${this.#reports.get(key)?.path ?? key}`);
    }
    for (const key of result.removed) {
      const r = before.get(key);
      if (r !== undefined) {
        events.record(
          { namespace: r.namespace, name: r.name, uid: profiles.get(key)?.uid ?? '' },
          'Normal',
          Reasons.ProfileRemoved,
          'Remove',
          r.state === 'Retained' ? 'removed from this node: no pod here uses it any more' : 'removed from this node',
        );
      }
    }
    for (const [key, r] of this.#reports) {
      if (r.state !== 'Retained' || before.get(key)?.state === 'Retained') continue;
      events.record(
        { namespace: r.namespace, name: r.name, uid: '' },
        'Normal',
        Reasons.ProfileInUse,
        'Keep',
        `kept on this node: ${r.message ?? ''}`,
      );
    }
    for (const key of result.failed) {
      const r = this.#reports.get(key);
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
  }

  async #startDrift(): Promise<void> {
    const { fs, writer, reconciler, kubeletRoot, chownAllowed, log } = this.#d;
    if (!this.#d.driftGuard) return;
    // The guard needs the directory to exist to watch it, even with no profile yet.
    await fs.mkdir(join(kubeletRoot, 'seccomp'), { recursive: true, mode: 0o755 });
    try {
      await fs.mkdir(writer.operatorDir, { mode: DIR_MODE });
      if (chownAllowed) await fs.chown(writer.operatorDir, PROFILE_UID, PROFILE_GID);
    } catch (e: unknown) {
      if (!isErrnoException(e) || e.code !== 'EEXIST') throw e;
    }
    this.#drift = new DriftGuard(
      writer.operatorDir,
      reconciler,
      () => reconciler.reports().map((r) => profileKey(r.namespace, r.name)),
      log.child({ component: 'drift' }),
    );
    await this.#drift.ready();
  }
}
