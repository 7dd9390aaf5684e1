/**
 * Follows a log file the way auditd and logrotate treat it, without losing or repeating a line:
 *
 * - Wakes on inotify (fs.watch on the directory, which reports both appends and renames) and on a
 *   modest fallback poll, for file systems where inotify says nothing.
 * - Reads through its own open descriptor and compares that descriptor's (dev, inode) with the path's.
 *   Holding the descriptor keeps the inode allocated, so a reused inode number (auditd's new
 *   audit.log can get a deleted .N's inode) can never look like "the same file".
 * - Rotation by rename: drain the old descriptor, open the new file from its start, read any files
 *   rotated in between (found by inode in PATH.1, PATH.2, ...), and keep reading the old descriptor for
 *   a grace period in case a writer still appends to it (logrotate + a late HUP).
 * - Copy-truncate: the file shrinks, or the bytes just before our offset change. Read what we had not
 *   read yet from the copy (PATH.1) when it provably is the copy, then start over at 0.
 * - An incomplete last line is held back until its newline arrives.
 *
 * Why not a library: see docs/events.md ("Tailing").
 */
import { constants } from 'node:fs';
import { basename, dirname } from 'node:path';
import { LineSplitter, MAX_LINE_BYTES } from './lines.js';
import { realFs, type EventsFs, type FileHandle, type FSWatcher } from './fs.js';
import { isErrnoException } from '../../../shared/errors.js';
import { openLog } from './open-log.js';

/** Where to start in the file that exists when tailing starts. */
export type TailFrom = 'start' | 'end';

/** Things worth a log line or a metric. */
export type TailEvent =
  | {
      readonly type: 'opened';
      readonly path: string;
      readonly ino: number;
      readonly offset: number;
      /** The target, when the path is a symlink (followed only within its own directory). */
      readonly via?: string;
    }
  /** The path exists but is not read: not a regular file, or a symlink leading elsewhere. */
  | { readonly type: 'refused'; readonly path: string; readonly reason: string }
  | { readonly type: 'waiting'; readonly path: string }
  | { readonly type: 'rotated'; readonly path: string; readonly intermediates: number }
  /** The rotated-away file was not found among PATH.N: files rotated in between may be missed. */
  | { readonly type: 'rotation-chain-unknown'; readonly path: string }
  | {
      readonly type: 'truncated';
      readonly path: string;
      readonly recoveredBytes: number;
      readonly possibleLoss: boolean;
    }
  /** A line longer than MAX_LINE_BYTES was skipped (up to its newline). */
  | { readonly type: 'overlong'; readonly path: string; readonly maxBytes: number }
  | { readonly type: 'error'; readonly path: string; readonly error: unknown };

export interface FileTailerOptions {
  readonly path: string;
  readonly from: TailFrom;
  /** Complete lines, in file order, without newlines. Called synchronously; must not throw. */
  readonly onLines: (lines: string[]) => void;
  /**
   * Instead of onLines: complete lines as bytes, each with its newline (LineSplitter.pushBytes), so
   * that the consumer decodes only the lines it keeps. The buffer is reused after the call returns.
   */
  readonly onBytes?: (bytes: Buffer) => void;
  readonly onEvent?: (e: TailEvent) => void;
  /** Fallback poll; inotify normally wakes us first. Default 250 ms. */
  readonly pollIntervalMs?: number;
  /** How long to keep reading a rotated-away file. Default 2000 ms. */
  readonly drainGraceMs?: number;
  /** How many rotated names (PATH.1 .. PATH.N) to search for the old file. Default 99. */
  readonly maxRotated?: number;
  readonly fs?: EventsFs;
  readonly now?: () => number;
}

interface OpenFile {
  readonly fh: FileHandle;
  readonly dev: number;
  readonly ino: number;
  offset: number;
  readonly splitter: LineSplitter;
  /** The last bytes read, ending at `offset`: if they change, the file was truncated and rewritten. */
  tail: Buffer;
  /** When a rotated-away file is closed. */
  until: number;
  /** Size seen at the last stat of the path, for lag. */
  size: number;
}

const READ_SIZE = 256 * 1024;
const TAIL_BYTES = 64;

/** Tails one path. `start()` opens it (or waits for it); `stop()` closes everything. */
/** A freshly opened file, read from its start. */
function openFileAt(
  fh: OpenFile['fh'],
  st: { dev: number; ino: number; size: number },
  onOverlong: () => void,
): OpenFile {
  return {
    fh,
    dev: st.dev,
    ino: st.ino,
    offset: 0,
    splitter: new LineSplitter({ onOverlong }),
    tail: Buffer.alloc(0),
    until: 0,
    size: st.size,
  };
}

export class FileTailer {
  private readonly o: Required<Omit<FileTailerOptions, 'onEvent' | 'onBytes'>> &
    Pick<FileTailerOptions, 'onEvent' | 'onBytes'>;
  private readonly buf = Buffer.allocUnsafe(READ_SIZE);
  private cur: OpenFile | null = null;
  private readonly draining: OpenFile[] = [];
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private first = true;
  /** The last 'waiting' or refusal reason reported, so that each is said once. */
  private reported: string | null = null;

  constructor(opts: FileTailerOptions) {
    this.o = {
      pollIntervalMs: 250,
      drainGraceMs: 2000,
      maxRotated: 99,
      fs: realFs,
      now: Date.now,
      ...opts,
    };
  }

  /** Opens the file (or starts waiting for it) and starts following. Resolves after the first read. */
  async start(): Promise<void> {
    this.watch();
    this.timer = setInterval(() => {
      if (this.watcher === null) this.watch();
      this.kick();
    }, this.o.pollIntervalMs);
    this.timer.unref();
    this.kick();
    await this.idle();
  }

  /**
   * Bytes written but not read yet: the current file's size (looked at before each read and
   * whenever the reader reaches it) minus the read offset, plus the same for rotated-away files
   * still being read.
   */
  get lagBytes(): number {
    let lag = 0;
    for (const f of this.cur === null ? this.draining : [...this.draining, this.cur])
      lag += Math.max(0, f.size - f.offset);
    return lag;
  }

  /** Resolves when no read is in progress (tests and shutdown use it). */
  async idle(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  /** Reads now: what inotify and the poll call. */
  kick(): void {
    if (this.stopped) return;
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = this.loop().finally(() => {
      this.running = null;
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.watcher?.close();
    this.watcher = null;
    await this.idle();
    for (const f of [...this.draining, ...(this.cur === null ? [] : [this.cur])]) await f.fh.close().catch(() => {});
    this.draining.length = 0;
    this.cur = null;
  }

  private readonly overlong = (): void => {
    this.emit({ type: 'overlong', path: this.o.path, maxBytes: MAX_LINE_BYTES });
  };

  private emit(e: TailEvent): void {
    this.o.onEvent?.(e);
  }

  private watch(): void {
    const dir = dirname(this.o.path);
    const base = basename(this.o.path);
    try {
      const w = this.o.fs.watch(dir, (_event, filename) => {
        if (filename === null || filename === base || filename.startsWith(`${base}.`)) this.kick();
      });
      w.on('error', () => {
        w.close();
        if (this.watcher === w) this.watcher = null;
      });
      this.watcher = w;
    } catch {
      // The directory does not exist yet: the poll retries.
      this.watcher = null;
    }
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.step();
      } catch (e: unknown) {
        this.emit({ type: 'error', path: this.o.path, error: e });
      }
    } while (this.again && !this.stopped);
  }

  private deliver(lines: string[]): void {
    if (lines.length === 0 || this.stopped) return;
    try {
      this.o.onLines(lines);
    } catch (e: unknown) {
      // The consumer's fault, and these lines only: the read goes on with the next ones.
      this.emit({ type: 'error', path: this.o.path, error: e });
    }
  }

  /** The complete lines of a chunk just read, as the consumer takes them. */
  private deliverChunk(splitter: LineSplitter, chunk: Buffer): void {
    const onBytes = this.o.onBytes;
    if (onBytes === undefined) {
      this.deliver(splitter.push(chunk));
      return;
    }
    const bytes = splitter.pushBytes(chunk);
    if (bytes.length === 0 || this.stopped) return;
    try {
      onBytes(bytes);
    } catch (e: unknown) {
      this.emit({ type: 'error', path: this.o.path, error: e });
    }
  }

  /** The last line of a file that will not grow any more (it had no newline). */
  private deliverRest(rest: string | undefined): void {
    if (rest === undefined) return;
    const onBytes = this.o.onBytes;
    if (onBytes === undefined) this.deliver([rest]);
    else if (!this.stopped) {
      try {
        onBytes(Buffer.from(`${rest}\n`, 'latin1'));
      } catch (e: unknown) {
        this.emit({ type: 'error', path: this.o.path, error: e });
      }
    }
  }

  private async step(): Promise<void> {
    await this.serviceDraining();
    if (this.cur === null) {
      this.cur = await this.openPath(this.first ? this.o.from : 'start');
      // A file that appears after we started holds only new records: read it from its start.
      this.first = false;
      if (this.cur === null) return;
    }
    const cur = this.cur;
    if (!(await this.readAll(cur))) {
      await this.truncated(cur);
      this.again = true;
      return;
    }
    let st;
    try {
      st = await this.o.fs.stat(this.o.path);
    } catch (e: unknown) {
      // Renamed away and the new file not created yet: keep reading the old one until it is.
      if (isErrnoException(e) && e.code === 'ENOENT') return;
      throw e;
    }
    if (st.dev !== cur.dev || st.ino !== cur.ino) {
      await this.rotated(cur);
      this.again = true;
      return;
    }
    cur.size = st.size;
    if (st.size < cur.offset) {
      await this.truncated(cur);
      this.again = true;
    } else if (st.size > cur.offset) {
      this.again = true;
    }
  }

  /** Opens the path; null if it does not exist yet or is refused (openLog says why). */
  private async openPath(from: TailFrom): Promise<OpenFile | null> {
    const o = await openLog(this.o.fs, this.o.path);
    if (o.kind === 'missing') {
      if (this.reported !== 'waiting') this.emit({ type: 'waiting', path: this.o.path });
      this.reported = 'waiting';
      return null;
    }
    if (o.kind === 'refused') {
      // Said once per reason; the poll keeps looking and opens the path once it is acceptable.
      if (this.reported !== o.reason) this.emit({ type: 'refused', path: this.o.path, reason: o.reason });
      this.reported = o.reason;
      return null;
    }
    this.reported = null;
    const { fh, st } = o;
    const f = openFileAt(fh, st, this.overlong);
    if (from === 'end' && st.size > 0) {
      // Start after the last complete line, so a record being written right now is read whole.
      const back = Math.min(st.size, READ_SIZE);
      const { bytesRead } = await fh.read(this.buf, 0, back, st.size - back);
      const nl = this.buf.subarray(0, bytesRead).lastIndexOf(0x0a);
      f.offset = nl < 0 ? st.size : st.size - back + nl + 1;
      f.tail = Buffer.from(this.buf.subarray(Math.max(0, nl + 1 - TAIL_BYTES), nl + 1));
    }
    this.emit({
      type: 'opened',
      path: this.o.path,
      ino: st.ino,
      offset: f.offset,
      ...(o.via === undefined ? {} : { via: o.via }),
    });
    return f;
  }

  /**
   * Reads from `f.offset` to the end, delivering complete lines. False if the bytes before the
   * offset are not the ones we read (truncated and rewritten), in which case nothing was read.
   */
  private async readAll(f: OpenFile): Promise<boolean> {
    if (f.tail.length > 0) {
      const { bytesRead } = await f.fh.read(this.buf, 0, f.tail.length, f.offset - f.tail.length);
      if (bytesRead !== f.tail.length || !this.buf.subarray(0, bytesRead).equals(f.tail)) return false;
    }
    for (;;) {
      // The size as we go (fstat is cheap), so that lag shows how far behind a long read is.
      if (f.offset >= f.size) f.size = (await f.fh.stat()).size;
      const { bytesRead } = await f.fh.read(this.buf, 0, READ_SIZE, f.offset);
      if (bytesRead === 0) return true;
      f.offset += bytesRead;
      const chunk = this.buf.subarray(0, bytesRead);
      f.tail = Buffer.from(
        bytesRead >= TAIL_BYTES
          ? chunk.subarray(bytesRead - TAIL_BYTES)
          : Buffer.concat([f.tail, chunk]).subarray(-TAIL_BYTES),
      );
      this.deliverChunk(f.splitter, chunk);
      if (this.stopped) return true;
    }
  }

  /** The path now names another file: finish the old one, catch up on files rotated in between. */
  private async rotated(old: OpenFile): Promise<void> {
    await this.readAll(old);
    const next = await this.openPath('start');
    const intermediates = await this.readIntermediates(old, next);
    old.until = this.o.now() + this.o.drainGraceMs;
    this.draining.push(old);
    this.cur = next;
    this.emit({ type: 'rotated', path: this.o.path, intermediates });
  }

  /**
   * Files rotated after `old` and before `next`: PATH.k holds `old`, so PATH.k-1 .. PATH.1 (minus
   * `next` and anything newer, if `next` has itself been rotated already) were never read. Each is
   * checked by inode after opening, and the search starts over if names shifted meanwhile.
   */
  private async readIntermediates(old: OpenFile, next: OpenFile | null): Promise<number> {
    const done = new Set<string>();
    const held: FileHandle[] = [];
    const key = (dev: number, ino: number): string => `${dev}:${ino}`;
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        const chain: { name: string; key: string }[] = [];
        let found = false;
        for (let n = 1; n <= this.o.maxRotated; n++) {
          const name = `${this.o.path}.${n}`;
          let st;
          try {
            st = await this.o.fs.stat(name);
          } catch {
            break;
          }
          if (st.dev === old.dev && st.ino === old.ino) {
            found = true;
            break;
          }
          chain.push({ name, key: key(st.dev, st.ino) });
        }
        if (!found) {
          this.emit({ type: 'rotation-chain-unknown', path: this.o.path });
          return done.size;
        }
        // Newer than `next` (it was rotated too) is left for the next rotation step.
        const nextKey = next === null ? '' : key(next.dev, next.ino);
        const ni = chain.findIndex((c) => c.key === nextKey);
        const between = (ni < 0 ? chain : chain.slice(ni + 1)).reverse();
        let shifted = false;
        for (const c of between) {
          if (done.has(c.key)) continue;
          let fh: FileHandle;
          try {
            // Not following a link nor blocking on a FIFO here either (see open-log.ts).
            fh = await this.o.fs.open(c.name, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
          } catch {
            shifted = true;
            break;
          }
          held.push(fh);
          const st = await fh.stat();
          if (!st.isFile()) {
            done.add(c.key);
            continue;
          }
          if (key(st.dev, st.ino) !== c.key) {
            shifted = true;
            break;
          }
          const f = openFileAt(fh, st, this.overlong);
          await this.readAll(f);
          this.deliverRest(f.splitter.flush());
          done.add(c.key);
        }
        if (!shifted) return done.size;
      }
      return done.size;
    } finally {
      for (const fh of held) await fh.close().catch(() => {});
    }
  }

  /**
   * The file shrank or was rewritten under us (copy-truncate). If PATH.1 holds our bytes at our
   * offset it is the copy: read the rest from it. Then start over at 0.
   */
  private async truncated(f: OpenFile): Promise<void> {
    let recovered = 0;
    let proven = false;
    try {
      const fh = await this.o.fs.open(`${this.o.path}.1`, 'r');
      try {
        const st = await fh.stat();
        if (f.tail.length > 0 && st.size >= f.offset && !(st.dev === f.dev && st.ino === f.ino)) {
          const { bytesRead } = await fh.read(this.buf, 0, f.tail.length, f.offset - f.tail.length);
          if (bytesRead === f.tail.length && this.buf.subarray(0, bytesRead).equals(f.tail)) {
            proven = true;
            const copy: OpenFile = { ...f, fh, dev: st.dev, ino: st.ino };
            const before = copy.offset;
            await this.readAll(copy);
            recovered = copy.offset - before;
          }
        }
      } finally {
        await fh.close().catch(() => {});
      }
    } catch {
      // No copy: whatever was between our offset and the truncation is gone.
    }
    this.deliverRest(f.splitter.flush());
    const possibleLoss = !proven && (f.size > f.offset || f.tail.length > 0);
    f.offset = 0;
    f.tail = Buffer.alloc(0);
    f.size = 0;
    this.emit({ type: 'truncated', path: this.o.path, recoveredBytes: recovered, possibleLoss });
  }

  /** Reads what writers still append to rotated-away files; closes them after the grace period. */
  private async serviceDraining(): Promise<void> {
    const now = this.o.now();
    for (let i = 0; i < this.draining.length;) {
      const d = this.draining[i];
      if (d === undefined) break;
      await this.readAll(d);
      if (now >= d.until) {
        this.deliverRest(d.splitter.flush());
        await d.fh.close().catch(() => {});
        this.draining.splice(i, 1);
      } else {
        i++;
      }
    }
  }
}
