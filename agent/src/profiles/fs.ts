/**
 * The file-system calls the profile writer uses, in one place, so tests can swap them (for example
 * to inject an EACCES) without touching the real disk. Model: rimraf's src/fs.ts.
 */
import { chmod, chown, lstat, mkdir, open, readdir, readFile, rmdir, unlink } from 'node:fs/promises';
import writeFileAtomic from 'write-file-atomic';

export interface WriterFs {
  chmod: typeof chmod;
  chown: typeof chown;
  lstat: typeof lstat;
  mkdir: typeof mkdir;
  open: typeof open;
  readdir: typeof readdir;
  readFile: typeof readFile;
  rmdir: typeof rmdir;
  unlink: typeof unlink;
  /** Temp file in the same directory, write, fsync, chown, chmod, rename (npm's write-file-atomic). */
  writeFileAtomic: (
    path: string,
    data: string,
    options: { mode: number; chown?: { uid: number; gid: number }; fsync: true },
  ) => Promise<void>;
}

export const realFs: WriterFs = {
  chmod,
  chown,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  rmdir,
  unlink,
  writeFileAtomic: (path, data, options) => writeFileAtomic(path, data, options),
};
