/**
 * Puts rendered profiles on the node: `<kubelet root>/seccomp/operator/<namespace>/<name>.json`
 * (namespaced profiles) or `operator/<name>.json` (cluster-scoped ones, namespace ''),
 * directories 0744 and files 0644, owned by 65535:65535 (as the reference operator does).
 *
 * Writes are atomic and durable: write-file-atomic writes a temp file in the same directory, fsyncs
 * it, sets owner and mode and renames it over the target; we then fsync the directory so the rename
 * itself survives a crash. A write is skipped when the bytes on disk are already the same.
 * A crash leaves the old file or the new one; the temp file it may leave is swept on the next start.
 */
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { agentError, isErrnoException, messageOf } from '../../../shared/errors.js';
import { localhostProfile, profileKey } from '../../../shared/profile/layout.js';
import type { WriterFs } from './fs.js';

export const FILE_MODE = 0o644;
export const DIR_MODE = 0o744;

/** Where profiles go and who owns them. */
export interface WriterOptions {
  kubeletRoot: string;
  uid: number;
  gid: number;
  /** False when the process cannot chown (not root): files keep the process's owner. */
  chownAllowed: boolean;
}

export interface InstalledFile {
  namespace: string;
  name: string;
  path: string;
}

export type WriteOutcome = 'written' | 'unchanged' | 'repaired-metadata';

/** What a sweep removed, what it could not (with the cause), and the profile keys of the files it kept. */
export interface SweepResult {
  removed: string[];
  kept: string[];
  failed: { path: string; message: string }[];
}

export const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * A file-system error as a person reads it: `EROFS: read-only file system at /var/lib/kubelet/seccomp
 * (mkdir)`, the cause first and the path it concerns (Node's own text puts the syscall in the middle).
 */
export function describeFsError(e: unknown): string {
  if (!isErrnoException(e) || e.code === undefined) return messageOf(e);
  const m = /^[A-Z0-9]+: (.*?), \w+(?: '[^']*')?(?: -> '[^']*')?$/.exec(e.message);
  const what = m?.[1] ?? e.message;
  return e.path === undefined
    ? `${e.code}: ${what}`
    : `${e.code}: ${what} at ${e.path}${e.syscall === undefined ? '' : ` (${e.syscall})`}`;
}

/** The operator directory under a kubelet root. */
export const operatorDir = (kubeletRoot: string): string => join(kubeletRoot, 'seccomp', 'operator');

/** The file of a profile. Names are validated object names, so the path cannot leave the directory. */
export const profilePath = (kubeletRoot: string, namespace: string, name: string): string =>
  join(kubeletRoot, 'seccomp', localhostProfile(namespace, name));

/** The localhostProfile value pods use for a profile. */
export { localhostProfile } from '../../../shared/profile/layout.js';

/** Writes, skips, removes and sweeps profile files. All disk access goes through `fs`. */
export class ProfileWriter {
  readonly #fs: WriterFs;
  readonly #opts: WriterOptions;
  readonly #log: Logger;

  constructor(fs: WriterFs, opts: WriterOptions, log: Logger) {
    this.#fs = fs;
    this.#opts = opts;
    this.#log = log;
  }

  get operatorDir(): string {
    return operatorDir(this.#opts.kubeletRoot);
  }

  /** Creates a directory owned by 65535 with mode 0744, refusing a symlink in its place. */
  async #ensureDir(dir: string, owned: boolean): Promise<void> {
    try {
      const st = await this.#fs.lstat(dir);
      if (!st.isDirectory()) {
        throw agentError('SECCOMP_AGENT_ERR_WRITE', {
          path: dir,
          detail: 'exists and is not a directory (a symlink is refused)',
        });
      }
    } catch (e: unknown) {
      if (!isErrnoException(e) || e.code !== 'ENOENT') throw e;
      if (owned) await this.#fs.mkdir(dir, { mode: DIR_MODE });
      else await this.#mkdirs(dir);
    }
    if (!owned) return;
    const st = await this.#fs.lstat(dir);
    if ((st.mode & 0o7777) !== DIR_MODE) await this.#fs.chmod(dir, DIR_MODE);
    if (this.#opts.chownAllowed && (st.uid !== this.#opts.uid || st.gid !== this.#opts.gid)) {
      await this.#fs.chown(dir, this.#opts.uid, this.#opts.gid);
    }
  }

  /**
   * `mkdir -p`, one level at a time: a recursive mkdir on a read-only file system reports ENOENT for
   * the missing parent instead of EROFS for the directory it could not make.
   */
  async #mkdirs(dir: string): Promise<void> {
    try {
      await this.#fs.mkdir(dir, { mode: 0o755 });
    } catch (e: unknown) {
      if (isErrnoException(e) && e.code === 'EEXIST') return;
      if (!isErrnoException(e) || e.code !== 'ENOENT' || dirname(dir) === dir) throw e;
      await this.#mkdirs(dirname(dir));
      await this.#fs.mkdir(dir, { mode: 0o755 });
    }
  }

  async #fsyncDir(dir: string): Promise<void> {
    const handle = await this.#fs.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Makes the file hold exactly `content`; returns what it had to do. */
  async install(namespace: string, name: string, content: string): Promise<WriteOutcome> {
    const path = profilePath(this.#opts.kubeletRoot, namespace, name);
    try {
      const seccompDir = join(this.#opts.kubeletRoot, 'seccomp');
      await this.#ensureDir(seccompDir, false);
      await this.#ensureDir(this.operatorDir, true);
      const nsDir = join(this.operatorDir, namespace);
      await this.#ensureDir(nsDir, true);
      const current = await this.#readIfRegular(path);
      if (current !== undefined && current.data.equals(Buffer.from(content))) {
        const wrongMode = (current.mode & 0o7777) !== FILE_MODE;
        const wrongOwner =
          this.#opts.chownAllowed && (current.uid !== this.#opts.uid || current.gid !== this.#opts.gid);
        if (!wrongMode && !wrongOwner) return 'unchanged';
        if (wrongMode) await this.#fs.chmod(path, FILE_MODE);
        if (wrongOwner) await this.#fs.chown(path, this.#opts.uid, this.#opts.gid);
        return 'repaired-metadata';
      }
      await this.#fs.writeFileAtomic(path, content, {
        mode: FILE_MODE,
        fsync: true,
        ...(this.#opts.chownAllowed ? { chown: { uid: this.#opts.uid, gid: this.#opts.gid } } : {}),
      });
      await this.#fsyncDir(nsDir);
      return 'written';
    } catch (e: unknown) {
      throw agentError('SECCOMP_AGENT_ERR_WRITE', { path, detail: describeFsError(e) }, e);
    }
  }

  /** The file's bytes and metadata; a symlink or other non-file in its place is removed first. */
  async #readIfRegular(path: string): Promise<{ data: Buffer; mode: number; uid: number; gid: number } | undefined> {
    let st;
    try {
      st = await this.#fs.lstat(path);
    } catch (e: unknown) {
      if (isErrnoException(e) && e.code === 'ENOENT') return undefined;
      throw e;
    }
    if (!st.isFile()) {
      this.#log.warn({ path }, 'replacing a non-regular file where a profile belongs');
      await this.#fs.unlink(path);
      return undefined;
    }
    return { data: await this.#fs.readFile(path), mode: st.mode, uid: st.uid, gid: st.gid };
  }

  /** The sha256 of the file on disk, or undefined when there is none. */
  async digest(namespace: string, name: string): Promise<string | undefined> {
    try {
      return sha256(await this.#fs.readFile(profilePath(this.#opts.kubeletRoot, namespace, name)));
    } catch (e: unknown) {
      if (isErrnoException(e) && e.code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** Removes a profile's file (and its namespace directory when that is left empty). */
  async remove(namespace: string, name: string): Promise<boolean> {
    const path = profilePath(this.#opts.kubeletRoot, namespace, name);
    try {
      await this.#fs.unlink(path);
    } catch (e: unknown) {
      if (isErrnoException(e) && e.code === 'ENOENT') return false;
      throw agentError('SECCOMP_AGENT_ERR_REMOVE', { path, detail: describeFsError(e) }, e);
    }
    await this.#fsyncDir(join(this.operatorDir, namespace));
    // operator/ itself stays (the drift guard watches it); only a namespace directory goes.
    if (namespace !== '') await this.#removeDirIfEmpty(join(this.operatorDir, namespace));
    return true;
  }

  /**
   * Removes a directory only when it is empty: rmdir on a full directory of a read-only file system
   * fails with EROFS, not ENOTEMPTY, and nothing needed removing.
   */
  async #removeDirIfEmpty(dir: string): Promise<void> {
    try {
      if ((await this.#fs.readdir(dir)).length > 0) return;
      await this.#fs.rmdir(dir);
    } catch (e: unknown) {
      if (isErrnoException(e) && (e.code === 'ENOTEMPTY' || e.code === 'EEXIST' || e.code === 'ENOENT')) return;
      if (isErrnoException(e) && e.code === 'ENOTDIR') return;
      throw e;
    }
  }

  /** Every entry under operator/ and operator/<ns>/, profiles and anything else (namespace '' at the top). */
  async list(): Promise<{ namespace: string; file: string; path: string }[]> {
    const out: { namespace: string; file: string; path: string }[] = [];
    let namespaces: string[];
    try {
      namespaces = await this.#fs.readdir(this.operatorDir);
    } catch (e: unknown) {
      if (isErrnoException(e) && e.code === 'ENOENT') return out;
      throw e;
    }
    for (const ns of namespaces.sort()) {
      const dir = join(this.operatorDir, ns);
      const st = await this.#fs.lstat(dir);
      if (!st.isDirectory()) {
        out.push({ namespace: '', file: ns, path: dir });
        continue;
      }
      for (const file of (await this.#fs.readdir(dir)).sort()) out.push({ namespace: ns, file, path: join(dir, file) });
    }
    return out;
  }

  /**
   * Removes everything under operator/ that no profile accounts for: files of profiles that are gone,
   * temp files a crash left behind, strays. `keep` holds profile keys (`<namespace>/<name>` for
   * operator/<ns>/<name>.json, `<name>` for operator/<name>.json), or is
   * 'all-profiles' to keep every `<name>.json` and remove only the rest. Nothing outside operator/ is
   * touched. An entry that cannot be removed (a read-only file system) is reported and the rest go on.
   */
  async sweep(keep: ReadonlySet<string> | 'all-profiles'): Promise<SweepResult> {
    const result: SweepResult = { removed: [], kept: [], failed: [] };
    const attempt = async (path: string, step: () => Promise<void>): Promise<void> => {
      try {
        await step();
      } catch (e: unknown) {
        result.failed.push({ path, message: `could not remove ${path}: ${describeFsError(e)}` });
      }
    };
    let entries: { namespace: string; file: string; path: string }[];
    try {
      entries = await this.list();
    } catch (e: unknown) {
      result.failed.push({
        path: this.operatorDir,
        message: `could not list ${this.operatorDir}: ${describeFsError(e)}`,
      });
      return result;
    }
    for (const entry of entries) {
      const name = entry.file.endsWith('.json') ? entry.file.slice(0, -'.json'.length) : undefined;
      if (name !== undefined && (keep === 'all-profiles' || keep.has(profileKey(entry.namespace, name)))) {
        result.kept.push(profileKey(entry.namespace, name));
        continue;
      }
      await attempt(entry.path, async () => {
        const st = await this.#fs.lstat(entry.path);
        if (st.isDirectory()) return; // a stray directory is left for a person to look at
        await this.#fs.unlink(entry.path);
        result.removed.push(entry.path);
      });
    }
    // Namespace directories left empty (or empty from the start: list() shows nothing of them).
    let namespaces: string[] = [];
    await attempt(this.operatorDir, async () => {
      try {
        namespaces = await this.#fs.readdir(this.operatorDir);
      } catch (e: unknown) {
        if (!isErrnoException(e) || e.code !== 'ENOENT') throw e;
      }
    });
    for (const ns of namespaces) {
      const dir = join(this.operatorDir, ns);
      await attempt(dir, () => this.#removeDirIfEmpty(dir));
    }
    return result;
  }
}
