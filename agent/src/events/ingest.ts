/**
 * The synchronous core of the event path: lines → parse → attribute → store. Sources (file tailer,
 * kmsg reader) feed it; the benchmark drives it directly.
 */
import { messageOf } from '../../../shared/errors.js';
import type { Attributor } from './attribute.js';
import { formatCode, parseLine, type ParseOptions, type SeccompRecord, type SyscallResolver } from './parse.js';
import type { ContainerAggregate, EventStore, SyscallEvent } from './store.js';

/** Where the pipeline reports what it counts (prom-client in http/metrics.ts; no-op by default). */
export interface EventMetricsSink {
  linesRead(n: number): void;
  malformed(n: number): void;
  /** Records we know were lost: `suppressed` by the kernel's printk limit, or overwritten in kmsg. */
  lost(n: number, reason: 'suppressed' | 'overrun'): void;
  event(ev: SyscallEvent): void;
  rotation(kind: 'rotated' | 'truncated'): void;
  /** A container's aggregate was dropped (too many containers): forget its per-syscall series. */
  containerEvicted?(agg: ContainerAggregate): void;
}

export const NOOP_METRICS: EventMetricsSink = Object.freeze({
  linesRead: () => {},
  malformed: () => {},
  lost: () => {},
  event: () => {},
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
  /** Records come in bursts within one millisecond: format each time once. */
  private isoFor = NaN;
  private iso = '';

  constructor(o: IngestOptions) {
    this.o = o;
    this.parseOpts = { resolve: o.resolve, strict: o.strict };
    this.metrics = o.metrics ?? NOOP_METRICS;
    this.now = o.now ?? Date.now;
  }

  /** One batch of lines read together. */
  lines(lines: readonly string[]): void {
    this.o.attributor.newBatch();
    this.stats.lines += lines.length;
    this.metrics.linesRead(lines.length);
    let malformed = 0;
    for (const line of lines) {
      // Total per line: whatever one line makes go wrong (parse, name, attribute, store, a metric)
      // costs that line only, never the lines after it in the batch.
      try {
        const p = parseLine(line, this.parseOpts);
        switch (p.kind) {
          case 'seccomp':
            this.record(p.record);
            break;
          case 'lost':
            this.lost(p.count, 'suppressed');
            break;
          case 'malformed':
            malformed++;
            this.reportMalformed(line, p.reason);
            break;
          default:
            break;
        }
      } catch (e: unknown) {
        malformed++;
        this.reportMalformed(line, `could not be ingested: ${messageOf(e)}`);
      }
    }
    if (malformed > 0) {
      this.stats.malformed += malformed;
      this.metrics.malformed(malformed);
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
    if (r.time !== this.isoFor) {
      this.isoFor = r.time;
      this.iso = new Date(r.time).toISOString();
    }
    const ev = this.o.store.add(
      {
        seq: 0,
        time: this.iso,
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
        code: formatCode(r.code),
        errno: r.errno,
        sig: r.sig,
        compat: r.compat,
        ip: r.ip,
        auditId: r.auditId,
      },
      r.time,
    );
    this.stats.records++;
    if (r.time > this.stats.lastRecordMs) {
      this.stats.lastRecordMs = r.time;
      this.stats.lastIngestMs = this.now();
    }
    this.metrics.event(ev);
  }
}
