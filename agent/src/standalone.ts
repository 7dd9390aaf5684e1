/**
 * The standalone agent: a directory of SeccompProfile files → the node's operator directory.
 * `startStandalone` does the first full sync (sweep, then install every valid profile), then
 * follows the directory and guards the files against drift until `stop()`.
 */
import type { Logger } from 'pino';
import { computeDesired, profileKey } from '../../shared/profile/desired.js';
import { describeFindings } from '../../shared/profile/findings.js';
import type { SyscallCatalog } from '../../shared/profile/validate.js';
import { messageOf } from '../../shared/errors.js';
import { DirSource, type SourceSnapshot } from './profiles/dir-source.js';
import { DriftGuard } from './profiles/drift.js';
import type { WriterFs } from './profiles/fs.js';
import { Reconciler, type ApplyResult, type ProfileReport, type ReconcileObserver } from './profiles/reconciler.js';
import { ProfileWriter } from './profiles/writer.js';
import type { ProfileView, SourceProblemView } from './http/server.js';

export const PROFILE_UID = 65535;
export const PROFILE_GID = 65535;

export interface StandaloneDeps {
  /** Told of every file operation (metrics). */
  observer?: ReconcileObserver;
  profilesDir: string;
  kubeletRoot: string;
  catalog: SyscallCatalog;
  fs: WriterFs;
  log: Logger;
  /** Whether this process may chown files to 65535 (it must be root). */
  chownAllowed: boolean;
  /** Follow the directory and guard against drift after the first sync. */
  follow: boolean;
  /** How often every file is re-checked against drift (default 30 s). */
  recheckIntervalMs?: number;
}

export interface SyncSummary {
  snapshot: SourceSnapshot;
  result: ApplyResult;
  reports: ProfileReport[];
  /** Strays the start-up sweep could not remove, with the cause (empty after a later sync). */
  sweepFailures: { path: string; message: string }[];
}

export interface Standalone {
  first: SyncSummary;
  reports: () => ProfileReport[];
  /** The problems of the latest read of the directory, by file and document (for /v1/profiles). */
  problems: () => SourceProblemView[];
  /** Resolves after the next reload triggered by a change in the directory (for tests). */
  stop: () => Promise<void>;
}

export const toView = (r: ProfileReport): ProfileView => ({
  namespace: r.namespace,
  name: r.name,
  state: r.state,
  path: r.path,
  localhostProfile: r.localhostProfile,
  ...(r.sha256 === undefined ? {} : { sha256: r.sha256 }),
  ...(r.message === undefined ? {} : { message: r.message }),
  warnings: r.warnings.map((w) => `${w.path}: ${w.message}`),
});

export async function startStandalone(deps: StandaloneDeps): Promise<Standalone> {
  const log = deps.log;
  const writer = new ProfileWriter(
    deps.fs,
    { kubeletRoot: deps.kubeletRoot, uid: PROFILE_UID, gid: PROFILE_GID, chownAllowed: deps.chownAllowed },
    log.child({ component: 'writer' }),
  );
  if (!deps.chownAllowed && process.getuid?.() !== PROFILE_UID) {
    log.warn('not running as root: profile files keep this user as owner instead of 65535:65535');
  }
  const reconciler = new Reconciler(writer, deps.kubeletRoot, log.child({ component: 'reconciler' }), deps.observer);
  const source = new DirSource(deps.profilesDir, deps.catalog, log.child({ component: 'source' }));

  let latest: SourceSnapshot | undefined;
  const problems = (): SourceProblemView[] =>
    (latest?.problems ?? []).map((p) => ({ file: p.file, document: p.doc, message: p.message }));
  const sync = async (sweep: boolean): Promise<SyncSummary> => {
    let sweepFailures: SyncSummary['sweepFailures'] = [];
    const snapshot = await source.load();
    latest = snapshot;
    for (const p of snapshot.problems) log.error(p.message);
    for (const k of snapshot.profiles) {
      if (k.ok && k.warnings.length > 0) {
        log.warn(describeFindings(profileKey(k.profile.metadata.namespace, k.profile.metadata.name), k.warnings));
      }
    }
    const plan = computeDesired(snapshot.profiles);
    if (sweep) {
      if (snapshot.unreadable > 0) {
        log.warn(
          { unreadable: snapshot.unreadable },
          'some profile files cannot be read: keeping every installed profile file until they can',
        );
      }
      sweepFailures = (await reconciler.sweep(plan, snapshot.unreadable > 0)).failed;
    }
    const result = await reconciler.apply(plan);
    return { snapshot, result, reports: reconciler.reports(), sweepFailures };
  };

  const first = await sync(true);
  log.info(
    {
      files: first.snapshot.files,
      profiles: first.reports.length,
      written: first.result.written.length,
      failed: first.result.failed.length,
    },
    'first sync done',
  );
  if (!deps.follow) return { first, reports: () => reconciler.reports(), problems, stop: async () => {} };

  const drift = new DriftGuard(
    writer.operatorDir,
    reconciler,
    () => reconciler.reports().map((r) => profileKey(r.namespace, r.name)),
    log.child({ component: 'drift' }),
    deps.recheckIntervalMs ?? 30_000,
  );
  await drift.ready();
  let reloading = Promise.resolve();
  source.watch(() => {
    reloading = reloading
      .then(async () => {
        const s = await sync(false);
        log.info(
          { written: s.result.written.length, removed: s.result.removed.length, failed: s.result.failed.length },
          'profiles directory changed; synced',
        );
      })
      .catch((e: unknown) => log.error({ err: messageOf(e) }, 'sync after a change failed'));
  });
  return {
    first,
    reports: () => reconciler.reports(),
    problems,
    stop: async () => {
      await source.close();
      await drift.close();
      await reloading;
    },
  };
}
