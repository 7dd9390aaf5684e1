/**
 * Makes the node's operator directory match a plan. One apply (or drift repair) runs at a time;
 * plans are applied in the order they arrive.
 *
 * Nothing is lost on bad input: a profile that becomes invalid keeps its last good file on disk (pods
 * that use it can still start) and is reported as Error; only a profile that is gone, or disabled,
 * has its file removed. A file of a profile that is gone stays while pods on the node name it (the
 * cluster mode says who, `apply`'s `users`): it is reported as Retained and removed by the first
 * apply after the last of them left. Disabled removes the file whoever uses it.
 */
import type { Logger } from 'pino';
import type { Desired } from '../../../shared/profile/desired.js';
import { describeFindings, type Finding } from '../../../shared/profile/findings.js';
import { messageOf } from '../../../shared/errors.js';
import { splitProfileKey } from '../../../shared/profile/layout.js';
import { nameList } from '../../../shared/profile/status.js';
import { localhostProfile, profilePath, sha256, type ProfileWriter, type SweepResult } from './writer.js';

/**
 * `Retained`: no profile names the file any more (its object is gone: deleted past its finalizer, its
 * CRD deleted, the cluster moved to the other layout), and it stays because pods on this node use it.
 */
export type NodeProfileState = 'Installed' | 'Error' | 'Disabled' | 'Retained';

/** The pods on this node that name a profile key (none: the standalone mode has no pods). */
export type UsersOf = (key: string) => readonly string[];

const NO_USERS: UsersOf = () => [];

/** What this node knows about one profile, for /v1/profiles, status and --once. */
export interface ProfileReport {
  namespace: string;
  name: string;
  state: NodeProfileState;
  path: string;
  localhostProfile: string;
  /** sha256 of the bytes on disk, when a file is there. */
  sha256?: string;
  message?: string;
  warnings: Finding[];
  bases: string[];
}

/** Told of every file operation (metrics count them). */
export interface ReconcileObserver {
  operation(op: 'update' | 'delete'): void;
  error(reason: string): void;
}

const NO_OBSERVER: ReconcileObserver = { operation: () => {}, error: () => {} };

export interface ApplyResult {
  written: string[];
  removed: string[];
  failed: string[];
}

export class Reconciler {
  readonly #writer: ProfileWriter;
  readonly #log: Logger;
  readonly #kubeletRoot: string;
  #plan = new Map<string, Desired>();
  readonly #reports = new Map<string, ProfileReport>();
  /**
   * Path and digest of each key's last installed bytes: a plan names every profile each time, and
   * hashing and joining paths for all of them again was a large part of a plan at hundreds.
   */
  readonly #installed = new Map<string, { path: string; content: string; sha256: string }>();
  /**
   * Every key a plan has named whose file may still be on disk: it leaves only when a remove
   * succeeds. A removal that failed is tried again by every later apply, not only by the one whose
   * previous plan still listed the key.
   */
  readonly #mayBeOnDisk = new Map<string, { namespace: string; name: string }>();
  #running: Promise<void> = Promise.resolve();
  readonly #observer: ReconcileObserver;

  constructor(writer: ProfileWriter, kubeletRoot: string, log: Logger, observer: ReconcileObserver = NO_OBSERVER) {
    this.#writer = writer;
    this.#kubeletRoot = kubeletRoot;
    this.#log = log;
    this.#observer = observer;
  }

  /** The reports, sorted by key. */
  reports(): ProfileReport[] {
    return [...this.#reports.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, r]) => r);
  }

  /** The reports by key, unsorted (a live view: copy it to keep a snapshot). */
  reportMap(): ReadonlyMap<string, ProfileReport> {
    return this.#reports;
  }

  #pathOf(key: string, namespace: string, name: string): string {
    return this.#installed.get(key)?.path ?? profilePath(this.#kubeletRoot, namespace, name);
  }

  #digest(key: string, path: string, content: string): string {
    const memo = this.#installed.get(key);
    if (memo?.content === content) return memo.sha256;
    const digest = sha256(content);
    this.#installed.set(key, { path, content, sha256: digest });
    return digest;
  }

  /** The current plan entry for a key (drift repair uses it). */
  planned(key: string): Desired | undefined {
    return this.#plan.get(key);
  }

  /**
   * Applies a new plan after whatever apply is running; resolves when it is done. A file the plan
   * no longer names stays while `users` names pods for its key (Retained); disabled ones go.
   */
  apply(plan: Map<string, Desired>, users: UsersOf = NO_USERS): Promise<ApplyResult> {
    const run = this.#running.then(() => this.#applyNow(plan, users));
    this.#running = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * At start: removes what no profile accounts for (including temp files a crash left). With
   * `keepProfileFiles` (some source could not be read, so its profiles are unknown) only files that
   * cannot be profiles, such as temp files, are removed. Files of the `inUse` keys stay whatever the
   * plan says (pods on the node name them); those the plan does not name are followed from then on,
   * so that an apply removes them once no pod uses them (a file of the other layout after a move).
   */
  async sweep(
    plan: Map<string, Desired>,
    keepProfileFiles = false,
    inUse: Iterable<string> = [],
  ): Promise<SweepResult> {
    const used = new Set<string>(inUse);
    const keep = new Set<string>(used);
    for (const [key, d] of plan) if (d.kind !== 'disabled') keep.add(key);
    const result = await this.#writer.sweep(keepProfileFiles ? 'all-profiles' : keep);
    // Only keys of files the sweep found under operator/ (a pod's localhostProfile names any path).
    for (const key of result.kept) {
      if (used.has(key) && !plan.has(key)) this.#mayBeOnDisk.set(key, splitProfileKey(key));
    }
    for (const path of result.removed) this.#log.info({ path }, 'removed a file no profile accounts for');
    for (const f of result.failed) this.#log.error({ path: f.path }, f.message);
    return result;
  }

  /**
   * Re-applies one planned profile, e.g. after someone edited or deleted its file. Queued behind any
   * apply (and applies behind it): a repair half-way through a write when its profile is removed would
   * otherwise put the file back after the removal, and nothing would take it away again.
   */
  repair(key: string): Promise<'restored' | 'unchanged' | 'not-managed'> {
    const run = this.#running.then(() => this.#repairNow(key));
    this.#running = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #repairNow(key: string): Promise<'restored' | 'unchanged' | 'not-managed'> {
    const d = this.#plan.get(key);
    if (d === undefined || d.kind !== 'install') return 'not-managed';
    const report = this.#reports.get(key);
    let outcome;
    try {
      outcome = await this.#writer.install(d.namespace, d.name, d.content);
    } catch (e: unknown) {
      // The report says what is on disk: a repair that fails makes the profile Error, with the cause.
      this.#observer.error('WriteFailed');
      if (report !== undefined) {
        const onDisk = await this.#writer.digest(d.namespace, d.name).catch(() => undefined);
        const { sha256: _old, ...rest } = report;
        this.#reports.set(key, {
          ...rest,
          state: 'Error',
          message: `the file differs from the profile and could not be restored: ${messageOf(e)}`,
          ...(onDisk === undefined ? {} : { sha256: onDisk }),
        });
      }
      throw e;
    }
    if (report !== undefined && report.state !== 'Installed') {
      const { message: _message, ...rest } = report;
      this.#reports.set(key, { ...rest, state: 'Installed', sha256: this.#digest(key, report.path, d.content) });
      this.#log.info({ profile: key }, 'profile file restored after a failed repair');
    }
    if (outcome === 'unchanged') return 'unchanged';
    this.#observer.operation('update');
    this.#log.warn({ profile: key, outcome }, 'profile file was changed on disk; restored it');
    return 'restored';
  }

  async #applyNow(plan: Map<string, Desired>, users: UsersOf): Promise<ApplyResult> {
    this.#plan = plan;
    const result: ApplyResult = { written: [], removed: [], failed: [] };
    for (const [key, d] of plan) {
      this.#mayBeOnDisk.set(key, { namespace: d.namespace, name: d.name });
      const base = {
        namespace: d.namespace,
        name: d.name,
        path: this.#pathOf(key, d.namespace, d.name),
        localhostProfile: localhostProfile(d.namespace, d.name),
        warnings: d.kind === 'error' ? [] : d.warnings,
        bases: d.kind === 'disabled' ? [] : d.bases,
      };
      try {
        if (d.kind === 'install') {
          const outcome = await this.#writer.install(d.namespace, d.name, d.content);
          if (outcome !== 'unchanged') {
            result.written.push(key);
            this.#observer.operation('update');
            this.#log.info({ profile: key, outcome, bytes: Buffer.byteLength(d.content) }, 'profile installed');
          }
          if (d.warnings.length > 0) {
            this.#log.warn({ profile: key }, `profile installed with warnings: ${describeFindings(key, d.warnings)}`);
          }
          this.#reports.set(key, { ...base, state: 'Installed', sha256: this.#digest(key, base.path, d.content) });
        } else if (d.kind === 'disabled') {
          if (await this.#writer.remove(d.namespace, d.name)) {
            result.removed.push(key);
            this.#observer.operation('delete');
          }
          this.#mayBeOnDisk.delete(key);
          this.#reports.set(key, {
            ...base,
            state: 'Disabled',
            message: 'disabled (spec.state: Disabled or spec.disabled: true): not installed',
          });
        } else {
          result.failed.push(key);
          this.#observer.error(d.findings[0]?.reason ?? 'ProfileInvalid');
          const onDisk = await this.#writer.digest(d.namespace, d.name);
          const kept = onDisk === undefined ? '' : ' (the last good version stays installed)';
          this.#log.error({ profile: key }, `${d.message}${kept}`);
          this.#reports.set(key, {
            ...base,
            state: 'Error',
            message: `${d.message}${kept}`,
            ...(onDisk === undefined ? {} : { sha256: onDisk }),
          });
        }
      } catch (e: unknown) {
        result.failed.push(key);
        this.#observer.error('WriteFailed');
        this.#log.error({ profile: key, err: messageOf(e) }, 'could not install profile');
        const onDisk = await this.#writer.digest(d.namespace, d.name).catch(() => undefined);
        this.#reports.set(key, {
          ...base,
          state: 'Error',
          message: messageOf(e),
          ...(onDisk === undefined ? {} : { sha256: onDisk }),
        });
      }
    }
    for (const [key, d] of [...this.#mayBeOnDisk]) {
      if (plan.has(key)) continue;
      const pods = users(key);
      if (pods.length > 0 && (await this.#retain(key, d.namespace, d.name, pods))) continue;
      this.#reports.delete(key);
      this.#installed.delete(key);
      try {
        if (await this.#writer.remove(d.namespace, d.name)) {
          result.removed.push(key);
          this.#observer.operation('delete');
          this.#log.info({ profile: key }, 'profile removed');
        }
        this.#mayBeOnDisk.delete(key);
      } catch (e: unknown) {
        result.failed.push(key);
        this.#observer.error('RemoveFailed');
        this.#log.error({ profile: key, err: messageOf(e) }, 'could not remove profile');
      }
    }
    return result;
  }

  /**
   * Keeps the file of a key no plan names, for the pods that use it: reported as Retained with what
   * is on disk. False when there is no file (nothing to keep: the key is forgotten).
   */
  async #retain(key: string, namespace: string, name: string, pods: readonly string[]): Promise<boolean> {
    let onDisk: string | undefined;
    let unreadable = '';
    try {
      onDisk = await this.#writer.digest(namespace, name);
      if (onDisk === undefined) return false;
    } catch (e: unknown) {
      // It stays (a removal would likely fail the same way), and says why.
      unreadable = ` (it cannot be read: ${messageOf(e)})`;
    }
    const before = this.#reports.get(key);
    if (before?.state !== 'Retained') {
      this.#log.info({ profile: key, pods }, 'no profile names this file any more; it stays while pods here use it');
    }
    this.#reports.set(key, {
      namespace,
      name,
      state: 'Retained',
      path: this.#pathOf(key, namespace, name),
      localhostProfile: localhostProfile(namespace, name),
      ...(onDisk === undefined ? {} : { sha256: onDisk }),
      message: `no SeccompProfile names this file any more; it stays while pods on this node use it: ${nameList(pods)}${unreadable}`,
      warnings: [],
      bases: [],
    });
    return true;
  }
}
