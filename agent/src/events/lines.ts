/**
 * Splits a byte stream into lines and holds back an incomplete last line until its newline comes:
 * auditd writes in 4 KiB blocks, so a read can end mid-record.
 *
 * A line is at most {@link MAX_LINE_BYTES}: audit records are under 8 KiB (the kernel's
 * MAX_AUDIT_MESSAGE_LENGTH), so anything longer is not one. A longer line is dropped and reported
 * once (`onOverlong`), and the bytes up to its newline are skipped without being held, so a writer
 * that never writes a newline costs bounded memory and linear time.
 */

const NL = 0x0a;
const EMPTY = Buffer.alloc(0);

/** The longest line delivered, in bytes (without its newline). */
export const MAX_LINE_BYTES = 16 * 1024;

export interface LineSplitterOptions {
  /** Called once per line longer than the cap (the line is not delivered). */
  readonly onOverlong?: () => void;
  /** Default {@link MAX_LINE_BYTES}. */
  readonly maxLineBytes?: number;
}

/** Bytes in, complete lines out. Lines are decoded as latin1: audit records are ASCII (the
 * kernel hex-encodes anything else), and latin1 never fails or merges bytes. */
export class LineSplitter {
  private partial: Buffer | null = null;
  /** Inside a line already reported as too long: drop bytes until its newline. */
  private skipping = false;
  private readonly max: number;
  private readonly onOverlong: () => void;

  constructor(o: LineSplitterOptions = {}) {
    this.max = o.maxLineBytes ?? MAX_LINE_BYTES;
    this.onOverlong = o.onOverlong ?? (() => {});
  }

  /** The complete lines in `chunk` (joined to any held-back start), without their newlines. */
  push(chunk: Buffer): string[] {
    const bytes = this.pushBytes(chunk);
    if (bytes.length === 0) return [];
    // latin1: one character per byte, so a line's length is its size in bytes.
    const lines = bytes.toString('latin1', 0, bytes.length - 1).split('\n');
    return lines;
  }

  /**
   * The complete lines in `chunk` (joined to any held-back start) as bytes, each with its newline,
   * lines over the cap left out (and reported). Empty when no line is complete yet. The result may
   * share memory with `chunk`: use it before the next read into that buffer.
   */
  pushBytes(chunk: Buffer): Buffer {
    let from = 0;
    if (this.skipping) {
      const nl = chunk.indexOf(NL);
      if (nl < 0) return EMPTY;
      this.skipping = false;
      from = nl + 1;
    }
    const last = chunk.lastIndexOf(NL);
    if (last < from) {
      this.hold(chunk, from);
      return EMPTY;
    }
    let bytes: Buffer;
    if (this.partial === null) bytes = chunk.subarray(from, last + 1);
    else {
      bytes = Buffer.concat([this.partial, chunk.subarray(from, last + 1)]);
      this.partial = null;
    }
    this.hold(chunk, last + 1);
    if (bytes.length <= this.max + 1) return bytes;
    // Any line over the cap? (one native search per line; most chunks have none)
    let over = false;
    for (let s = 0; s < bytes.length;) {
      const nl = bytes.indexOf(NL, s);
      if (nl - s > this.max) {
        over = true;
        break;
      }
      s = nl + 1;
    }
    if (!over) return bytes;
    const kept: Buffer[] = [];
    for (let s = 0; s < bytes.length;) {
      const nl = bytes.indexOf(NL, s);
      if (nl - s > this.max) this.onOverlong();
      else kept.push(bytes.subarray(s, nl + 1));
      s = nl + 1;
    }
    return Buffer.concat(kept);
  }

  /** Holds chunk[from..] as the start of the next line, unless that makes the line too long. */
  private hold(chunk: Buffer, from: number): void {
    const rest = chunk.length - from;
    if (rest <= 0) return;
    const held = this.partial?.length ?? 0;
    if (held + rest > this.max) {
      this.partial = null;
      this.skipping = true;
      this.onOverlong();
      return;
    }
    const piece = chunk.subarray(from);
    this.partial = this.partial === null ? Buffer.from(piece) : Buffer.concat([this.partial, piece]);
  }

  /** Bytes held back waiting for a newline. */
  get pendingBytes(): number {
    return this.partial?.length ?? 0;
  }

  /** Gives up the held-back bytes as a final line (a file that will not grow any more). */
  flush(): string | undefined {
    const p = this.partial;
    this.partial = null;
    this.skipping = false;
    return p === null ? undefined : p.toString('latin1');
  }

  /** Drops the held-back bytes. */
  reset(): void {
    this.partial = null;
    this.skipping = false;
  }
}
