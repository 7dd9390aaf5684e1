/**
 * The standalone source: every SeccompProfile in the .yaml/.yml/.json files under a directory,
 * watched with chokidar so adds, edits and removals are applied. A file that cannot be read as YAML
 * keeps contributing the profiles it had before (so a half-saved edit never uninstalls anything),
 * and is reported by file and document.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import type { Logger } from 'pino';
import { messageOf } from '../../../shared/errors.js';
import { profileKey, type KnownProfile } from '../../../shared/profile/desired.js';
import type { SyscallCatalog } from '../../../shared/profile/validate.js';
import { parseSourceText, type ParsedFile, type SourceProblem } from './source-parse.js';

const PROFILE_FILE = /\.(ya?ml|json)$/i;

export interface SourceSnapshot {
  profiles: KnownProfile[];
  problems: SourceProblem[];
  files: number;
  /** Files that could not be read as YAML and had no earlier good content: their profiles are unknown. */
  unreadable: number;
}

/** Whether `path` is `dir` or under it (both real paths). */
const inside = (dir: string, path: string): boolean =>
  path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);

/** A name for messages: relative to the working directory when that is shorter. */
const shown = (path: string): string => relative(process.cwd(), path) || path;

/**
 * The profile files under `root`. Symlinks are followed as long as they stay inside `root`: a mounted
 * ConfigMap is `x.yaml -> ..data/x.yaml` with `..data -> ..2026_12_01_...`. Entries whose names start
 * with a dot (the kubelet's `..data` and timestamped directories among them) are not read themselves,
 * so nothing is counted twice. A link that leaves `root` is refused with a problem naming it.
 */
async function walk(root: string): Promise<{ files: string[]; problems: SourceProblem[] }> {
  const rootReal = await realpath(root);
  const files: string[] = [];
  const problems: SourceProblem[] = [];
  const seen = new Set<string>();
  const refuse = (path: string, detail: string): void => {
    const name = shown(path);
    problems.push({ file: name, doc: 0, message: `${name}: ${detail}` });
  };
  const visit = async (dir: string, real: string): Promise<void> => {
    if (seen.has(real)) return; // a link back up the tree
    seen.add(real);
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        await visit(path, join(real, entry.name));
        continue;
      }
      if (entry.isFile()) {
        if (PROFILE_FILE.test(entry.name)) files.push(path);
        continue;
      }
      if (!entry.isSymbolicLink()) continue;
      let target: string;
      let st;
      try {
        target = await realpath(path);
        st = await stat(target);
      } catch (e: unknown) {
        if (PROFILE_FILE.test(entry.name)) refuse(path, `a symlink whose target cannot be read: ${messageOf(e)}`);
        continue;
      }
      if (!st.isDirectory() && !(st.isFile() && PROFILE_FILE.test(entry.name))) continue;
      if (!inside(rootReal, target)) {
        refuse(
          path,
          `a symlink to ${target}, outside ${root}: refused (only links that stay inside the profiles directory are followed)`,
        );
        continue;
      }
      if (st.isDirectory()) await visit(path, target);
      else files.push(path);
    }
  };
  await visit(root, rootReal);
  return { files: files.sort(), problems };
}

/** Reads a profiles directory, remembering each file's last readable content. */
export class DirSource {
  readonly #dir: string;
  readonly #catalog: SyscallCatalog;
  readonly #log: Logger;
  readonly #lastGood = new Map<string, ParsedFile>();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(dir: string, catalog: SyscallCatalog, log: Logger) {
    this.#dir = dir;
    this.#catalog = catalog;
    this.#log = log;
  }

  /** Reads every file now. */
  async load(): Promise<SourceSnapshot> {
    const { files, problems } = await walk(this.#dir);
    const profiles: KnownProfile[] = [];
    const origin = new Map<string, string>();
    let unreadable = 0;
    for (const path of files) {
      const name = shown(path);
      let parsed: ParsedFile;
      try {
        parsed = parseSourceText(name, await readFile(path, 'utf8'), this.#catalog);
      } catch (e: unknown) {
        parsed = {
          profiles: [],
          readable: false,
          problems: [{ file: name, doc: 0, message: `${name}: could not read: ${messageOf(e)}` }],
        };
      }
      problems.push(...parsed.problems);
      let use = parsed;
      if (!parsed.readable) {
        const before = this.#lastGood.get(path);
        if (before === undefined) unreadable++;
        if (before !== undefined) {
          use = before;
          problems.push({
            file: name,
            doc: 0,
            message: `${name}: keeping the ${before.profiles.length} profile(s) it defined before until it reads cleanly again`,
          });
        }
      } else {
        this.#lastGood.set(path, parsed);
      }
      for (const { doc, profile } of use.profiles) {
        const key = profile.ok
          ? profileKey(profile.profile.metadata.namespace, profile.profile.metadata.name)
          : profileKey(profile.namespace, profile.name);
        const first = origin.get(key);
        if (first !== undefined) {
          problems.push({
            file: name,
            doc,
            message: `${name} document ${doc}: SeccompProfile ${key} is already defined in ${first}; this one is ignored`,
          });
          continue;
        }
        origin.set(key, `${name} document ${doc}`);
        profiles.push(profile);
      }
    }
    for (const path of this.#lastGood.keys()) if (!files.includes(path)) this.#lastGood.delete(path);
    return { profiles, problems, files: files.length, unreadable };
  }

  /** Calls `onChange` (debounced) whenever a file under the directory is added, changed or removed. */
  watch(onChange: () => void): void {
    this.#watcher = chokidar.watch(this.#dir, {
      ignoreInitial: true,
      // Dot entries are not profiles, but the kubelet updates a mounted ConfigMap by swapping the
      // `..data` link atomically: its events are what says the files behind the links changed.
      ignored: (path: string) => {
        const rel = relative(this.#dir, path);
        return rel !== '..data' && !rel.startsWith(`..data${sep}`) && /(^|\/)\./.test(rel);
      },
      awaitWriteFinish: { stabilityThreshold: 50, pollInterval: 10 },
    });
    const fire = (): void => {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = setTimeout(onChange, 50);
    };
    this.#watcher.on('all', fire);
    this.#watcher.on('error', (e: unknown) =>
      this.#log.error({ err: messageOf(e) }, 'watching the profiles directory failed'),
    );
  }

  async close(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#watcher?.close();
  }
}
