/**
 * The file-system calls the event path makes, in one place, so tests can wrap them (rimraf's
 * src/fs.ts does the same). Nothing else in events/ imports node:fs for the log sources.
 */
import { watch, type FSWatcher } from 'node:fs';
import { lstat, open, realpath, stat, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';

export interface EventsFs {
  open(path: string, flags: string | number): Promise<FileHandle>;
  stat(path: string): Promise<Stats>;
  /** Like stat, but a symlink is described, not followed. */
  lstat(path: string): Promise<Stats>;
  realpath(path: string): Promise<string>;
  watch(dir: string, listener: (event: string, filename: string | null) => void): FSWatcher;
}

/** The real file system. */
export const realFs: EventsFs = {
  open: (path, flags) => open(path, flags),
  stat: (path) => stat(path),
  lstat: (path) => lstat(path),
  realpath: (path) => realpath(path),
  watch: (dir, listener) =>
    watch(dir, { persistent: false, encoding: 'utf8' }, (event, filename) => listener(event, filename)),
};

export type { FileHandle, FSWatcher, Stats };
