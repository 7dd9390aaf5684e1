/**
 * Splits a byte stream into lines and holds back an incomplete last line until its newline comes:
 * auditd writes in 4 KiB blocks, so a read can end mid-record.
 */

const NL = 0x0a;

/** Bytes in, complete lines out. Lines are decoded as latin1: audit records are ASCII (the
 * kernel hex-encodes anything else), and latin1 never fails or merges bytes. */
export class LineSplitter {
  private partial: Buffer | null = null;

  /** The complete lines in `chunk` (joined to any held-back start), without their newlines. */
  push(chunk: Buffer): string[] {
    const last = chunk.lastIndexOf(NL);
    if (last < 0) {
      if (chunk.length > 0)
        this.partial = this.partial === null ? Buffer.from(chunk) : Buffer.concat([this.partial, chunk]);
      return [];
    }
    const head = chunk.subarray(0, last);
    const text =
      this.partial === null ? head.toString('latin1') : Buffer.concat([this.partial, head]).toString('latin1');
    this.partial = last + 1 < chunk.length ? Buffer.from(chunk.subarray(last + 1)) : null;
    return text.split('\n');
  }

  /** Bytes held back waiting for a newline. */
  get pendingBytes(): number {
    return this.partial?.length ?? 0;
  }

  /** Gives up the held-back bytes as a final line (a file that will not grow any more). */
  flush(): string | undefined {
    const p = this.partial;
    this.partial = null;
    return p === null ? undefined : p.toString('latin1');
  }

  /** Drops the held-back bytes. */
  reset(): void {
    this.partial = null;
  }
}
