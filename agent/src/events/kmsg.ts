/**
 * Reads the kernel log from /dev/kmsg, where SECCOMP records go when no auditd is registered.
 *
 * Each read() of /dev/kmsg returns exactly one record (`prio,seq,usec,flags;text`, then optional
 * ` KEY=value` continuation lines). The device is opened non-blocking and read until EAGAIN, then
 * polled: a blocking read would pin one of libuv's four threadpool threads for good, and the device
 * cannot be watched with inotify. EPIPE means the ring buffer overwrote records before we read them;
 * the sequence numbers say how many.
 */
import { constants } from 'node:fs';
import { realFs, type EventsFs, type FileHandle } from './fs.js';
import { isErrnoException } from '../../../shared/errors.js';
import type { TailFrom } from './tail-file.js';

export type KmsgEvent =
  | { readonly type: 'opened'; readonly path: string; readonly skipped: number }
  /** Records the kernel overwrote before we read them (any facility, not only audit). */
  | { readonly type: 'overrun'; readonly missed: number }
  | { readonly type: 'error'; readonly path: string; readonly error: unknown };

export interface KmsgReaderOptions {
  readonly path?: string;
  readonly from: TailFrom;
  /** Record lines (`prio,seq,usec,flags;text`), continuation lines dropped. Must not throw. */
  readonly onLines: (lines: string[]) => void;
  readonly onEvent?: (e: KmsgEvent) => void;
  /** How often to look again once the device has nothing to read. Default 100 ms. */
  readonly pollIntervalMs?: number;
  readonly fs?: EventsFs;
}

const RECORD_MAX = 16 * 1024;

/** Follows /dev/kmsg. */
export class KmsgReader {
  private readonly path: string;
  private readonly pollMs: number;
  private readonly fs: EventsFs;
  private readonly buf = Buffer.allocUnsafe(RECORD_MAX);
  private fh: FileHandle | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private lastSeq = -1;
  private readonly o: KmsgReaderOptions;

  constructor(o: KmsgReaderOptions) {
    this.o = o;
    this.path = o.path ?? '/dev/kmsg';
    this.pollMs = o.pollIntervalMs ?? 100;
    this.fs = o.fs ?? realFs;
  }

  /** Opens the device; with `from: 'end'` skips what the ring buffer already holds. */
  async start(): Promise<void> {
    this.fh = await this.fs.open(this.path, constants.O_RDONLY | constants.O_NONBLOCK);
    let skipped = 0;
    if (this.o.from === 'end') {
      skipped = await this.drain(false);
    }
    this.o.onEvent?.({ type: 'opened', path: this.path, skipped });
    await this.drain(true);
    this.timer = setInterval(() => this.kick(), this.pollMs);
    this.timer.unref();
  }

  /** Reads what is there now. */
  kick(): void {
    if (this.stopped || this.running !== null) return;
    this.running = this.drain(true)
      .then(() => undefined)
      .catch((e: unknown) => this.o.onEvent?.({ type: 'error', path: this.path, error: e }))
      .finally(() => {
        this.running = null;
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    if (this.running !== null) await this.running;
    await this.fh?.close().catch(() => {});
    this.fh = null;
  }

  /** Reads records until EAGAIN; returns how many. */
  private async drain(deliver: boolean): Promise<number> {
    const fh = this.fh;
    if (fh === null) return 0;
    let n = 0;
    const batch: string[] = [];
    for (;;) {
      if (this.stopped) break;
      let bytesRead: number;
      try {
        // position null: a character device has no offset; each read is one record.
        ({ bytesRead } = await fh.read(this.buf, 0, RECORD_MAX, null));
      } catch (e: unknown) {
        if (isErrnoException(e) && e.code === 'EAGAIN') break;
        // The ring overwrote records: the next read returns the oldest one still held, and the gap
        // in sequence numbers (trackSeq) says how many we missed.
        if (isErrnoException(e) && e.code === 'EPIPE') continue;
        throw e;
      }
      if (bytesRead === 0) break;
      n++;
      const text = this.buf.toString('latin1', 0, bytesRead);
      const nl = text.indexOf('\n');
      const line = nl < 0 ? text : text.slice(0, nl);
      this.trackSeq(line);
      if (deliver) batch.push(line);
      if (batch.length >= 512) this.o.onLines(batch.splice(0));
    }
    if (batch.length > 0) this.o.onLines(batch);
    return n;
  }

  private trackSeq(line: string): void {
    const c1 = line.indexOf(',');
    const c2 = c1 < 0 ? -1 : line.indexOf(',', c1 + 1);
    if (c2 < 0) return;
    const seq = Number(line.slice(c1 + 1, c2));
    if (!Number.isFinite(seq)) return;
    if (this.lastSeq >= 0 && seq > this.lastSeq + 1) {
      this.o.onEvent?.({ type: 'overrun', missed: seq - this.lastSeq - 1 });
    }
    this.lastSeq = seq;
  }
}
