/**
 * The synchronous core of the event path: lines → parse → attribute → store. Sources (file tailer,
 * kmsg reader) feed it; the benchmark drives it directly.
 */
import { messageOf } from '../../../shared/errors.js';
import type { Attributor } from './attribute.js';
import {
  decodeCode,
  formatCode,
  parseLine,
  resolveCached,
  type ParseOptions,
  type SeccompRecord,
  type SyscallResolver,
} from './parse.js';
import { RecordScanner } from './scan.js';
import {
  unknownOrigin,
  type ContainerAggregate,
  type EventCall,
  type EventOrigin,
  type EventParts,
  type EventProcess,
  type EventStore,
} from './store.js';

/** The same fields, writable: the byte path fills one of each per record. */
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Where the pipeline reports what it counts (prom-client in http/metrics.ts; no-op by default). */
export interface EventMetricsSink {
  linesRead(n: number): void;
  malformed(n: number): void;
  /** Records we know were lost: `suppressed` by the kernel's printk limit, or overwritten in kmsg. */
  lost(n: number, reason: 'suppressed' | 'overrun'): void;
  /**
   * One event, by where it ran and its syscall name. `where` is the store's interned value (the
   * same object for every event of that origin while the ring holds one), so a sink may key on it.
   */
  call(where: EventOrigin, syscall: string | null): void;
  rotation(kind: 'rotated' | 'truncated'): void;
  /** A container's aggregate was dropped (too many containers): forget its per-syscall series. */
  containerEvicted?(agg: ContainerAggregate): void;
}

export const NOOP_METRICS: EventMetricsSink = Object.freeze({
  linesRead: () => {},
  malformed: () => {},
  lost: () => {},
  call: () => {},
  rotation: () => {},
});

/** Counters since start. */
export interface IngestStats {
  lines: number;
  records: number;
  malformed: number;
  lost: number;
  unattributed: number;
  /** Epoch ms of the newest record time seen, 0 before the first. */
  lastRecordMs: number;
  /** Epoch ms at which that record was ingested. */
  lastIngestMs: number;
}

export interface IngestOptions {
  readonly node: string;
  readonly resolve: SyscallResolver;
  /** auditd's log: every line must be an audit record. */
  readonly strict: boolean;
  readonly attributor: Attributor;
  readonly store: EventStore;
  readonly metrics?: EventMetricsSink;
  readonly now?: () => number;
  /** Told about malformed lines (rate-limit it; a broken file could be all malformed). */
  readonly onMalformed?: (line: string, reason: string) => void;
}

const NL = 0x0a;
const TYPE = Buffer.from('type=', 'latin1');
const SUPPRESSED = Buffer.from('kauditd_printk_skb: ', 'latin1');
const MSG_AUDIT = Buffer.from(' msg=audit(', 'latin1');
const AUDIT = Buffer.from(' audit(', 'latin1');
/** Type names parseLine takes for a seccomp record. */
const SECCOMP_TYPES = ['SECCOMP', '1326', 'UNKNOWN[1326]'].map((t) => Buffer.from(`type=${t} `, 'latin1'));

/** Whether buf[s..e) equals `w` at `at`. */
function bytesAt(buf: Buffer, at: number, e: number, w: Buffer): boolean {
  if (at + w.length > e) return false;
  for (let i = 0; i < w.length; i++) if (buf[at + i] !== w[i]) return false;
  return true;
}

/**
 * auditd's log: a line `type=<T> msg=audit(` (or `type=<T> audit(`) whose T is not a seccomp type
 * is another record, which parseLine would answer with `other` too. Anything else is parsed.
 */
function skippableStrict(buf: Buffer, s: number, e: number): boolean {
  if (!bytesAt(buf, s, e, TYPE)) return false;
  const sp = buf.indexOf(0x20, s);
  if (sp < 0 || sp >= e) return false;
  for (const t of SECCOMP_TYPES) if (sp + 1 - s === t.length && bytesAt(buf, s, e, t)) return false;
  return bytesAt(buf, sp, e, MSG_AUDIT) || bytesAt(buf, sp, e, AUDIT);
}

/** Calls remembered by the byte path, by a hash of their numbers (direct-mapped). */
const CALL_CACHE = 256;

interface CachedCall {
  readonly arch: number;
  readonly code: number;
  readonly call: EventCall;
}

/** Turns lines into stored events. */
export class Ingest {
  readonly stats: IngestStats = {
    lines: 0,
    records: 0,
    malformed: 0,
    lost: 0,
    unattributed: 0,
    lastRecordMs: 0,
    lastIngestMs: 0,
  };
  private readonly o: IngestOptions;
  private readonly parseOpts: ParseOptions;
  private readonly metrics: EventMetricsSink;
  private readonly now: () => number;
  /** `code` as printed, by value: a node sees a handful of distinct ones. */
  private readonly codes = new Map<number, string>();
  private readonly scanner = new RecordScanner();
  private readonly calls: (CachedCall | undefined)[] = new Array<CachedCall | undefined>(CALL_CACHE).fill(undefined);
  /** What the byte path hands the store and the attributor, reused for every record. */
  private readonly parts: EventParts;
  private readonly hint: { comm: string | null; syscall: string | null } = { comm: null, syscall: null };
  private readonly proc: Mutable<EventProcess> = { comm: null, exe: null, uid: null, gid: null, auid: null, ses: null };
  private readonly origin: Mutable<EventOrigin>;
  /** A record newer than any before was ingested in this batch: lastIngestMs is set at its end. */
  private newer = false;

  constructor(o: IngestOptions) {
    this.o = o;
    this.parseOpts = { resolve: o.resolve, strict: o.strict };
    this.metrics = o.metrics ?? NOOP_METRICS;
    this.now = o.now ?? Date.now;
    this.origin = unknownOrigin(o.node);
    this.parts = {
      timeMs: 0,
      serial: 0,
      pid: 0,
      ipNull: true,
      ipHi: 0,
      ipLo: 0,
      origin: this.origin,
      proc: this.proc,
      call: {
        arch: null,
        auditArch: '',
        syscall: null,
        syscallNr: 0,
        action: '',
        code: '',
        errno: null,
        sig: null,
        compat: null,
      },
    };
  }

  /** One batch of lines read together. */
  lines(lines: readonly string[]): void {
    this.o.attributor.newBatch();
    this.stats.lines += lines.length;
    this.metrics.linesRead(lines.length);
    let malformed = 0;
    for (const line of lines) if (!this.line(line)) malformed++;
    this.counted(malformed);
  }

  /**
   * The byte path (scan.ts): a SECCOMP record read from the bytes, named, attributed and written
   * into the store's columns without a record or event object. False when the line is not one the
   * scanner answers exactly (parseLine takes it then); a failure after the scan (/proc, the store)
   * counts the line as malformed, as on the line path.
   */
  private scanned(buf: Buffer, s: number, e: number): 'no' | 'ok' | 'failed' {
    const sc = this.scanner;
    if (!sc.scan(buf, s, e)) return 'no';
    try {
      const call = this.callOf(sc);
      const hint = this.hint;
      hint.comm = sc.comm;
      hint.syscall = call.syscall;
      const at = this.o.attributor.attribute(sc.pid, sc.time, hint);
      if (at.kind === 'unknown') this.stats.unattributed++;
      const o = this.origin;
      o.namespace = at.namespace;
      o.pod = at.pod;
      o.container = at.container;
      o.containerId = at.containerId;
      o.podUid = at.podUid;
      o.attribution = at.kind;
      const pr = this.proc;
      pr.comm = sc.comm;
      pr.exe = sc.exe;
      pr.uid = sc.uid;
      pr.gid = sc.gid;
      pr.auid = sc.auid;
      pr.ses = sc.ses;
      const p = this.parts;
      p.timeMs = sc.time;
      p.serial = sc.serial;
      p.pid = sc.pid;
      p.ipNull = sc.ipNull;
      p.ipHi = sc.ipHi;
      p.ipLo = sc.ipLo;
      p.call = call;
      const store = this.o.store;
      store.addParts(p);
      this.stats.records++;
      this.seen(sc.time);
      this.metrics.call(store.lastOrigin, store.lastSyscall);
      return 'ok';
    } catch (err: unknown) {
      this.reportMalformed(buf.toString('latin1', s, e), `could not be ingested: ${messageOf(err)}`);
      return 'failed';
    }
  }

  /** The call a scanned record made: named with the arch's table, its code decoded. */
  private callOf(sc: RecordScanner): EventCall {
    const h = (sc.syscallNr * 31 + sc.code + sc.arch * 7 + (sc.sig ?? 1) * 3 + (sc.compat ?? 5)) & (CALL_CACHE - 1);
    const c = this.calls[h];
    if (
      c !== undefined &&
      c.call.syscallNr === sc.syscallNr &&
      c.code === sc.code &&
      c.arch === sc.arch &&
      c.call.sig === sc.sig &&
      c.call.compat === sc.compat
    )
      return c.call;
    const auditArch = sc.archText;
    const resolved = resolveCached(this.o.resolve, auditArch, sc.syscallNr);
    const decoded = decodeCode(sc.code);
    const call: EventCall = {
      arch: resolved?.arch ?? null,
      auditArch,
      syscall: resolved?.name ?? null,
      syscallNr: sc.syscallNr,
      action: decoded.action,
      code: this.codeText(sc.code),
      errno: decoded.errno,
      sig: sc.sig,
      compat: sc.compat,
    };
    this.calls[h] = { arch: sc.arch, code: sc.code, call };
    return call;
  }

  private codeText(value: number): string {
    let code = this.codes.get(value);
    if (code === undefined) {
      code = formatCode(value);
      if (this.codes.size < 256) this.codes.set(value, code);
    }
    return code;
  }

  /** Notes a record's time; lastIngestMs is taken once at the end of the batch. */
  private seen(time: number): void {
    if (time > this.stats.lastRecordMs) {
      this.stats.lastRecordMs = time;
      this.newer = true;
    }
  }

  /**
   * One batch of complete lines as bytes, each with its newline (LineSplitter.pushBytes). A line
   * that cannot be a seccomp record, a lost-records notice or (strict) malformed is skipped
   * without being decoded; every other line goes through parseLine as in lines().
   */
  bytes(buf: Buffer): void {
    this.o.attributor.newBatch();
    const strict = this.parseOpts.strict === true;
    this.typeAt = -2;
    this.suppressedAt = -2;
    let n = 0;
    let malformed = 0;
    for (let s = 0; s < buf.length;) {
      let e = buf.indexOf(NL, s);
      if (e < 0) e = buf.length;
      n++;
      const fast = this.scanned(buf, s, e);
      if (fast === 'failed') malformed++;
      else if (fast === 'no' && (strict ? !skippableStrict(buf, s, e) : !this.skippable(buf, s, e))) {
        if (!this.line(buf.toString('latin1', s, e))) malformed++;
      }
      s = e + 1;
    }
    this.stats.lines += n;
    this.metrics.linesRead(n);
    this.counted(malformed);
  }

  /** Where the next `type=` and suppression notice are in the batch (-1: none; each byte searched once). */
  private typeAt = -2;
  private suppressedAt = -2;

  /** Non-strict sources: a line with neither `type=` nor a suppression notice is nothing to us. */
  private skippable(buf: Buffer, s: number, e: number): boolean {
    if (this.typeAt !== -1 && this.typeAt < s) this.typeAt = buf.indexOf(TYPE, s);
    if (this.typeAt >= 0 && this.typeAt < e) return false;
    if (this.suppressedAt !== -1 && this.suppressedAt < s) this.suppressedAt = buf.indexOf(SUPPRESSED, s);
    return !(this.suppressedAt >= 0 && this.suppressedAt < e);
  }

  private counted(malformed: number): void {
    if (this.newer) {
      this.newer = false;
      this.stats.lastIngestMs = this.now();
    }
    if (malformed > 0) {
      this.stats.malformed += malformed;
      this.metrics.malformed(malformed);
    }
  }

  /** One line; false when it was malformed. */
  private line(line: string): boolean {
    // Total per line: whatever one line makes go wrong (parse, name, attribute, store, a metric)
    // costs that line only, never the lines after it in the batch.
    try {
      const p = parseLine(line, this.parseOpts);
      switch (p.kind) {
        case 'seccomp':
          this.record(p.record);
          return true;
        case 'lost':
          this.lost(p.count, 'suppressed');
          return true;
        case 'malformed':
          this.reportMalformed(line, p.reason);
          return false;
        default:
          return true;
      }
    } catch (e: unknown) {
      this.reportMalformed(line, `could not be ingested: ${messageOf(e)}`);
      return false;
    }
  }

  private reportMalformed(line: string, reason: string): void {
    try {
      this.o.onMalformed?.(line, reason);
    } catch {
      // Only a report: the line is counted either way.
    }
  }

  /** A line too long to be an audit record, skipped by the line splitter: one malformed line. */
  overlong(maxBytes: number): void {
    this.stats.lines++;
    this.metrics.linesRead(1);
    this.stats.malformed++;
    this.metrics.malformed(1);
    this.reportMalformed('', `line longer than ${maxBytes} bytes (no audit record is); skipped to its newline`);
  }

  /** Records known to be lost. */
  lost(n: number, reason: 'suppressed' | 'overrun'): void {
    this.stats.lost += n;
    this.metrics.lost(n, reason);
  }

  private record(r: SeccompRecord): void {
    const at = this.o.attributor.attribute(r.pid, r.time, r);
    if (at.kind === 'unknown') this.stats.unattributed++;
    const code = this.codeText(r.code);
    const store = this.o.store;
    store.add(
      {
        seq: 0,
        time: this.o.store.timeText.iso8601(r.time),
        node: this.o.node,
        namespace: at.namespace,
        pod: at.pod,
        container: at.container,
        containerId: at.containerId,
        podUid: at.podUid,
        attribution: at.kind,
        pid: r.pid,
        comm: r.comm,
        exe: r.exe,
        uid: r.uid,
        gid: r.gid,
        auid: r.auid,
        ses: r.ses,
        arch: r.arch,
        auditArch: r.auditArch,
        syscall: r.syscall,
        syscallNr: r.syscallNr,
        action: r.action,
        code,
        errno: r.errno,
        sig: r.sig,
        compat: r.compat,
        ip: r.ip,
        auditId: r.auditId,
      },
      r.time,
    );
    this.stats.records++;
    this.seen(r.time);
    this.metrics.call(store.lastOrigin, store.lastSyscall);
  }
}
