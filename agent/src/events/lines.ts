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
    let from = 0;
    if (this.skipping) {
      const nl = chunk.indexOf(NL);
      if (nl < 0) return [];
      this.skipping = false;
      from = nl + 1;
    }
    const last = chunk.lastIndexOf(NL);
    if (last < from) {
      this.hold(chunk, from);
      return [];
    }
    let text: string;
    if (this.partial === null) text = chunk.toString('latin1', from, last);
    else {
      text = Buffer.concat([this.partial, chunk.subarray(from, last)]).toString('latin1');
      this.partial = null;
    }
    this.hold(chunk, last + 1);
    const lines = text.split('\n');
    // latin1: one character per byte, so length is the line's size in bytes.
    if (text.length <= this.max) return lines;
    const kept: string[] = [];
    for (const l of lines) {
      if (l.length <= this.max) kept.push(l);
      else this.onOverlong();
    }
    return kept;
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
