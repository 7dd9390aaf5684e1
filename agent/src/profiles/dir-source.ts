/**
 * The standalone source: every SeccompProfile in the .yaml/.yml/.json files under a directory,
 * watched with chokidar so adds, edits and removals are applied. A file that cannot be read as YAML
 * keeps contributing the profiles it had before (so a half-saved edit never uninstalls anything),
 * and is reported by file and document.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
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

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path)));
    else if (entry.isFile() && PROFILE_FILE.test(entry.name)) out.push(path);
  }
  return out.sort();
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
    const files = await walk(this.#dir);
    const problems: SourceProblem[] = [];
    const profiles: KnownProfile[] = [];
    const origin = new Map<string, string>();
    let unreadable = 0;
    for (const path of files) {
      const name = relative(process.cwd(), path) || path;
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
      ignored: (path: string) => /(^|\/)\./.test(relative(this.#dir, path)),
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
