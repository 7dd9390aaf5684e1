/**
 * An in-memory WriterFs (agent/src/profiles/fs.ts): the profile writer, reconciler and plan loop run
 * unchanged on it, with no disk and no file descriptors. The scale simulation runs hundreds of
 * hollow agents in one process, each on its own tree. Errors carry Node's codes and message shape
 * (`ENOENT: no such file or directory, lstat '/x'`), so describeFsError and the writer's ENOENT /
 * EEXIST / ENOTEMPTY branches see what they would on a real file system. A write replaces the file
 * in one synchronous step, as the rename of write-file-atomic does: a reader sees old or new bytes.
 */
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { WriterFs } from '../../agent/src/profiles/fs.js';

interface FileEntry {
  kind: 'file';
  data: Buffer;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
}
interface DirEntry {
  kind: 'dir';
  children: Set<string>;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
}
type Entry = FileEntry | DirEntry;

const MESSAGES: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EEXIST: 'file already exists',
  ENOTDIR: 'not a directory',
  EISDIR: 'illegal operation on a directory',
  ENOTEMPTY: 'directory not empty',
  EINVAL: 'invalid argument',
};

function fsError(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(`${code}: ${MESSAGES[code] ?? code}, ${syscall} '${path}'`);
  e.code = code;
  e.syscall = syscall;
  e.path = path;
  return e;
}

const pathOf = (p: unknown): string => resolve(String(p));
const modeOf = (m: unknown, fallback: number): number =>
  typeof m === 'number' ? m : typeof m === 'string' ? parseInt(m, 8) : fallback;

/** The part of fs.Stats the writer reads (and the rest of the common fields, for a reader's sake). */
function statsOf(e: Entry): Stats {
  const isFile = e.kind === 'file';
  const st = {
    dev: 1,
    ino: 0,
    mode: (isFile ? 0o100000 : 0o040000) | e.mode,
    nlink: 1,
    uid: e.uid,
    gid: e.gid,
    rdev: 0,
    size: isFile ? e.data.length : 4096,
    blksize: 4096,
    blocks: 0,
    atimeMs: e.mtimeMs,
    mtimeMs: e.mtimeMs,
    ctimeMs: e.mtimeMs,
    birthtimeMs: e.mtimeMs,
    atime: new Date(e.mtimeMs),
    mtime: new Date(e.mtimeMs),
    ctime: new Date(e.mtimeMs),
    birthtime: new Date(e.mtimeMs),
    isFile: () => isFile,
    isDirectory: () => !isFile,
    isSymbolicLink: () => false,
    isBlockDevice: () => false,
    isCharacterDevice: () => false,
    isFIFO: () => false,
    isSocket: () => false,
  };
  return st as Stats;
}

/** A WriterFs over a private tree in memory, plus what a benchmark or test reads of that tree. */
export interface MemoryFs extends WriterFs {
  /** Every regular file, path → content (utf8). */
  files(): Map<string, string>;
  /** File operations that changed the tree (writes, unlinks, mkdirs, chmods, chowns, rmdirs). */
  readonly mutations: number;
}

export function memoryFs(owner: { uid: number; gid: number } = { uid: 0, gid: 0 }): MemoryFs {
  const entries = new Map<string, Entry>();
  entries.set('/', { kind: 'dir', children: new Set(), mode: 0o755, ...owner, mtimeMs: Date.now() });
  let mutations = 0;

  /** The entry at `path`; ENOTDIR when a parent is a file, ENOENT when missing. */
  const lookup = (path: string, syscall: string): Entry => {
    const e = entries.get(path);
    if (e !== undefined) return e;
    for (let up = dirname(path); ; up = dirname(up)) {
      const parent = entries.get(up);
      if (parent !== undefined) throw fsError(parent.kind === 'file' ? 'ENOTDIR' : 'ENOENT', syscall, path);
      if (dirname(up) === up) break;
    }
    throw fsError('ENOENT', syscall, path);
  };
  const parentDir = (path: string, syscall: string): DirEntry => {
    const parent = lookup(dirname(path), syscall);
    if (parent.kind !== 'dir') throw fsError('ENOTDIR', syscall, path);
    return parent;
  };
  const link = (path: string, e: Entry, syscall: string): void => {
    const parent = parentDir(path, syscall);
    parent.children.add(path.slice(path.lastIndexOf('/') + 1));
    parent.mtimeMs = Date.now();
    entries.set(path, e);
    mutations++;
  };
  const unlinkEntry = (path: string): void => {
    entries.delete(path);
    const parent = entries.get(dirname(path));
    if (parent?.kind === 'dir') {
      parent.children.delete(path.slice(path.lastIndexOf('/') + 1));
      parent.mtimeMs = Date.now();
    }
    mutations++;
  };
  const mkdirOne = (path: string, mode: number): void => {
    if (entries.has(path)) throw fsError('EEXIST', 'mkdir', path);
    link(path, { kind: 'dir', children: new Set(), mode, ...owner, mtimeMs: Date.now() }, 'mkdir');
  };

  const fs = {
    chmod: async (p: unknown, mode: unknown): Promise<void> => {
      const e = lookup(pathOf(p), 'chmod');
      e.mode = modeOf(mode, e.mode) & 0o7777;
      mutations++;
    },
    chown: async (p: unknown, uid: number, gid: number): Promise<void> => {
      const e = lookup(pathOf(p), 'chown');
      e.uid = uid;
      e.gid = gid;
      mutations++;
    },
    lstat: async (p: unknown): Promise<Stats> => statsOf(lookup(pathOf(p), 'lstat')),
    mkdir: async (p: unknown, options?: unknown): Promise<string | undefined> => {
      const path = pathOf(p);
      const o =
        typeof options === 'object' && options !== null ? (options as { mode?: unknown; recursive?: boolean }) : {};
      const mode = modeOf(typeof options === 'object' ? o.mode : options, 0o777) & 0o7777;
      if (o.recursive !== true) {
        mkdirOne(path, mode);
        return undefined;
      }
      const missing: string[] = [];
      for (let d = path; ; d = dirname(d)) {
        const e = entries.get(d);
        if (e !== undefined) {
          if (e.kind !== 'dir') throw fsError(d === path ? 'EEXIST' : 'ENOTDIR', 'mkdir', path);
          break;
        }
        missing.push(d);
      }
      for (const d of missing.reverse()) mkdirOne(d, mode);
      return missing[0];
    },
    open: async (p: unknown): Promise<FileHandle> => {
      const path = pathOf(p);
      lookup(path, 'open');
      const handle = { sync: async (): Promise<void> => {}, close: async (): Promise<void> => {} };
      return handle as unknown as FileHandle;
    },
    readdir: async (p: unknown, options?: unknown): Promise<string[]> => {
      if (typeof options === 'object' && options !== null && (options as { withFileTypes?: boolean }).withFileTypes) {
        throw fsError('EINVAL', 'scandir', pathOf(p)); // not needed by the writer
      }
      const e = lookup(pathOf(p), 'scandir');
      if (e.kind !== 'dir') throw fsError('ENOTDIR', 'scandir', pathOf(p));
      return [...e.children];
    },
    readFile: async (p: unknown, options?: unknown): Promise<Buffer | string> => {
      const path = pathOf(p);
      const e = lookup(path, 'open');
      if (e.kind !== 'file') throw fsError('EISDIR', 'read', path);
      const encoding =
        typeof options === 'string' ? options : (options as { encoding?: string | null } | undefined)?.encoding;
      return typeof encoding === 'string' ? e.data.toString(encoding as BufferEncoding) : Buffer.from(e.data);
    },
    rmdir: async (p: unknown): Promise<void> => {
      const path = pathOf(p);
      const e = lookup(path, 'rmdir');
      if (e.kind !== 'dir') throw fsError('ENOTDIR', 'rmdir', path);
      if (e.children.size > 0) throw fsError('ENOTEMPTY', 'rmdir', path);
      unlinkEntry(path);
    },
    unlink: async (p: unknown): Promise<void> => {
      const path = pathOf(p);
      const e = lookup(path, 'unlink');
      if (e.kind === 'dir') throw fsError('EISDIR', 'unlink', path);
      unlinkEntry(path);
    },
    writeFileAtomic: async (
      p: string,
      data: string,
      options: { mode: number; chown?: { uid: number; gid: number }; fsync: true },
    ): Promise<void> => {
      const path = pathOf(p);
      parentDir(path, 'open');
      if (entries.get(path)?.kind === 'dir') throw fsError('EISDIR', 'rename', path);
      const file: FileEntry = {
        kind: 'file',
        data: Buffer.from(data),
        mode: options.mode & 0o7777,
        uid: options.chown?.uid ?? owner.uid,
        gid: options.chown?.gid ?? owner.gid,
        mtimeMs: Date.now(),
      };
      link(path, file, 'rename');
    },
  };
  return {
    // The overloads of node:fs/promises collapse to the forms the writer calls; the casts say so.
    chmod: fs.chmod as WriterFs['chmod'],
    chown: fs.chown as WriterFs['chown'],
    lstat: fs.lstat as WriterFs['lstat'],
    mkdir: fs.mkdir as WriterFs['mkdir'],
    open: fs.open as WriterFs['open'],
    readdir: fs.readdir as WriterFs['readdir'],
    readFile: fs.readFile as WriterFs['readFile'],
    rmdir: fs.rmdir as WriterFs['rmdir'],
    unlink: fs.unlink as WriterFs['unlink'],
    writeFileAtomic: fs.writeFileAtomic,
    files: () => {
      const out = new Map<string, string>();
      for (const [path, e] of entries) if (e.kind === 'file') out.set(path, e.data.toString('utf8'));
      return out;
    },
    get mutations() {
      return mutations;
    },
  };
}
