/**
 * The agent's Prometheus metrics, on a registry of its own (never prom-client's global one, so tests
 * and several agents in one process do not share counters). The reference operator's names for
 * compatibility with its dashboards, plus ours for the audit tail.
 *
 * `createMetrics` is called once by main; the event path gets `events`, the profile path `profiles`,
 * and buildServer registers `metricsRoutes` with the registry.
 */
import type { FastifyPluginAsync } from 'fastify';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { EventMetricsSink } from '../events/ingest.js';
import type { EventPipeline } from '../events/pipeline.js';
import type { AttributionKind } from '../events/attribute.js';
import type { ContainerAggregate, EventOrigin } from '../events/store.js';

/** Syscall names with a series of their own, per container; further names count as `other`. */
export const MAX_SYSCALL_SERIES_PER_CONTAINER = 128;
/** The `syscall` label of calls beyond the per-container cap. */
export const OTHER_SYSCALL_LABEL = 'other';
/** The `syscall` label of numbers no table names (any number of them: one series). */
export const UNKNOWN_SYSCALL_LABEL = 'unknown';

const ATTRIBUTIONS: readonly AttributionKind[] = ['pod', 'container', 'host', 'unknown'];

/** The series one origin's calls went to, by syscall name; valid while `epoch` is current. */
interface OriginSeries {
  readonly epoch: number;
  readonly held: Held;
  readonly bySyscall: Map<string | null, Series>;
}

interface AuditLabels {
  node: string;
  namespace: string;
  pod: string;
  container: string;
  syscall: string;
}

/** One series of the audit counter, and what it counted since the last read. */
interface Series {
  readonly labels: AuditLabels;
  pending: number;
}

/** A container's series. */
interface Held {
  readonly names: Set<string>;
  readonly series: Map<string, Series>;
}

/** What the profile path reports. */
export interface ProfileMetricsSink {
  /** A profile operation: `update` (written) or `delete` (removed), as the reference operator counts. */
  operation(op: 'update' | 'delete'): void;
  /** A failure, by CamelCase reason. */
  error(reason: string): void;
}

/** Live figures read at scrape time. */
export interface PipelineGauges {
  lagBytes(): number;
  /** Seconds between the newest record's time and when we ingested it; 0 before the first. */
  lagSeconds(): number;
  events(): number;
  containers(): number;
  subscribers(): number;
}

export interface AgentMetrics {
  readonly registry: Registry;
  readonly events: EventMetricsSink;
  readonly profiles: ProfileMetricsSink;
  /** Called by main once the pipeline runs, so gauges can read it at scrape time. */
  setPipelineGauges(g: PipelineGauges): void;
}

export interface MetricsOptions {
  readonly node: string;
  /** Process metrics (CPU, memory, event loop); default true. */
  readonly processMetrics?: boolean;
}

/** Creates the registry and every metric. */
export function createMetrics(o: MetricsOptions): AgentMetrics {
  const registry = new Registry();
  /** Series counted since the last read. */
  const dirty: Series[] = [];
  if (o.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'seccomp_agent_' });

  // Counted here per event and added to prom-client's counters when they are read (collect): a
  // counter's inc() hashes its labels, too dear for every record of a busy log.
  const flushAudit = (): void => {
    for (const sr of dirty) {
      audit.inc(sr.labels, sr.pending);
      sr.pending = 0;
    }
    dirty.length = 0;
  };
  const audit = new Counter({
    name: 'security_profiles_operator_seccomp_profile_audit_total',
    help: 'Syscalls seen in seccomp audit records, by container and syscall.',
    labelNames: ['node', 'namespace', 'pod', 'container', 'syscall'] as const,
    registers: [registry],
    collect: flushAudit,
  });
  const operations = new Counter({
    name: 'security_profiles_operator_seccomp_profile_total',
    help: 'Seccomp profile operations on this node.',
    labelNames: ['operation'] as const,
    registers: [registry],
  });
  const errors = new Counter({
    name: 'security_profiles_operator_seccomp_profile_error_total',
    help: 'Seccomp profile errors on this node, by reason.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const lines = new Counter({
    name: 'seccomp_agent_audit_lines_total',
    help: 'Lines read from the audit source.',
    registers: [registry],
  });
  const malformed = new Counter({
    name: 'seccomp_agent_audit_malformed_lines_total',
    help: 'Audit lines that could not be parsed and were skipped.',
    registers: [registry],
  });
  const lost = new Counter({
    name: 'seccomp_agent_audit_lost_records_total',
    help: 'Records known to be lost: suppressed by the kernel printk rate limit, or overwritten in the kernel log.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const pendingRecords: Record<AttributionKind, number> = { pod: 0, container: 0, host: 0, unknown: 0 };
  new Counter({
    name: 'seccomp_agent_audit_events_total',
    help: 'Seccomp records ingested, by attribution (pod, container, host, unknown).',
    labelNames: ['attribution'] as const,
    registers: [registry],
    collect() {
      for (const attribution of ATTRIBUTIONS) {
        const n = pendingRecords[attribution];
        if (n > 0) this.inc({ attribution }, n);
        pendingRecords[attribution] = 0;
      }
    },
  });
  const rotations = new Counter({
    name: 'seccomp_agent_audit_log_rotations_total',
    help: 'Rotations (rotated) and truncations (truncated) of the audit log followed.',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  let gauges: PipelineGauges | undefined;
  new Gauge({
    name: 'seccomp_agent_audit_tail_lag_bytes',
    help: 'Bytes of the audit log written but not read yet (file size minus read offset, updated while reading).',
    registers: [registry],
    collect() {
      this.set(gauges?.lagBytes() ?? 0);
    },
  });
  new Gauge({
    name: 'seccomp_agent_audit_tail_lag_seconds',
    help: 'Time between the newest record being written by the kernel and the agent ingesting it.',
    registers: [registry],
    collect() {
      this.set(gauges?.lagSeconds() ?? 0);
    },
  });
  new Gauge({
    name: 'seccomp_agent_events_in_ring',
    help: 'Events held in the ring of recent events.',
    registers: [registry],
    collect() {
      this.set(gauges?.events() ?? 0);
    },
  });
  new Gauge({
    name: 'seccomp_agent_containers_tracked',
    help: 'Containers with a syscall aggregate.',
    registers: [registry],
    collect() {
      this.set(gauges?.containers() ?? 0);
    },
  });
  new Gauge({
    name: 'seccomp_agent_event_subscribers',
    help: 'Open follow streams of /v1/events.',
    registers: [registry],
    collect() {
      this.set(gauges?.subscribers() ?? 0);
    },
  });

  // The audit counter's series, per container id ('' for host and unknown processes), so that a
  // container's series are bounded (MAX_SYSCALL_SERIES_PER_CONTAINER names, plus `other` and
  // `unknown`) and all removed when the store drops the container.
  const held = new Map<string, Held>();
  // Per origin (the store's interned value: one object per origin while the ring holds an event of
  // it), the series of each syscall name, so that a call costs one lookup, not a key string. An
  // eviction removes series: every origin's map is then rebuilt on its next call (`epoch`).
  const byOrigin = new WeakMap<EventOrigin, OriginSeries>();
  let epoch = 0;
  let lastOrigin: EventOrigin | undefined;
  let lastSeries: OriginSeries | undefined;
  const seriesOf = (where: EventOrigin): OriginSeries => {
    let os = byOrigin.get(where);
    if (os === undefined || os.epoch !== epoch) {
      const id = where.containerId ?? '';
      let h = held.get(id);
      if (h === undefined) {
        h = { names: new Set(), series: new Map() };
        held.set(id, h);
      }
      os = { epoch, held: h, bySyscall: new Map() };
      byOrigin.set(where, os);
    }
    return os;
  };
  const newSeries = (h: Held, where: EventOrigin, name: string | null): Series => {
    let syscall: string;
    if (name === null) syscall = UNKNOWN_SYSCALL_LABEL;
    else if (h.names.has(name)) syscall = name;
    else if (h.names.size < MAX_SYSCALL_SERIES_PER_CONTAINER) {
      h.names.add(name);
      syscall = name;
    } else syscall = OTHER_SYSCALL_LABEL;
    const key = `${where.namespace ?? ''}\0${where.pod ?? ''}\0${where.container ?? ''}\0${syscall}`;
    let sr = h.series.get(key);
    if (sr === undefined) {
      sr = {
        labels: {
          node: where.node,
          namespace: where.namespace ?? '',
          pod: where.pod ?? '',
          container: where.container ?? '',
          syscall,
        },
        pending: 0,
      };
      h.series.set(key, sr);
    }
    return sr;
  };
  const events: EventMetricsSink = {
    linesRead: (n) => lines.inc(n),
    malformed: (n) => malformed.inc(n),
    lost: (n, reason) => lost.inc({ reason }, n),
    rotation: (kind) => rotations.inc({ kind }),
    call: (where: EventOrigin, syscall: string | null) => {
      pendingRecords[where.attribution]++;
      let os = lastSeries;
      if (where !== lastOrigin || os === undefined || os.epoch !== epoch) {
        os = seriesOf(where);
        lastOrigin = where;
        lastSeries = os;
      }
      let sr = os.bySyscall.get(syscall);
      if (sr === undefined) {
        sr = newSeries(os.held, where, syscall);
        os.bySyscall.set(syscall, sr);
      }
      if (sr.pending++ === 0) dirty.push(sr);
    },
  };
  events.containerEvicted = (agg: ContainerAggregate) => {
    const id = agg.containerId ?? '';
    const h = held.get(id);
    if (h === undefined) return;
    flushAudit();
    for (const sr of h.series.values()) audit.remove(sr.labels);
    held.delete(id);
    epoch++;
  };
  const profiles: ProfileMetricsSink = {
    operation: (op) => operations.inc({ operation: op }),
    error: (reason) => errors.inc({ reason }),
  };
  return {
    registry,
    events,
    profiles,
    setPipelineGauges: (g) => {
      gauges = g;
    },
  };
}

/** The gauges of a running pipeline: `metrics.setPipelineGauges(pipelineGauges(pipeline))`. */
export function pipelineGauges(p: EventPipeline): PipelineGauges {
  return {
    lagBytes: () => p.stats().lagBytes,
    lagSeconds: () => {
      const s = p.stats();
      return s.lastRecordMs === 0 ? 0 : Math.max(0, (s.lastIngestMs - s.lastRecordMs) / 1000);
    },
    events: () => p.store.size,
    containers: () => p.store.containers,
    subscribers: () => p.store.subscribers,
  };
}

/** Options of {@link metricsRoutes}. */
export interface MetricsRoutesOptions {
  readonly registry: Registry;
  /**
   * How long one rendering is served (default 1000 ms): rendering every series costs far more than
   * sending it, and scrapers come every 15 s or so. 0 renders every request.
   */
  readonly maxAgeMs?: number;
  readonly now?: () => number;
}

/** `GET /metrics` in the Prometheus text format. */
export const metricsRoutes: FastifyPluginAsync<MetricsRoutesOptions> = async (app, opts) => {
  const maxAge = opts.maxAgeMs ?? 1000;
  const now = opts.now ?? Date.now;
  let cached: { at: number; body: Promise<Buffer> } | undefined;
  app.get('/metrics', async (_req, reply) => {
    const t = now();
    if (cached === undefined || t - cached.at >= maxAge || t < cached.at) {
      // Concurrent scrapes share one rendering (the promise), a failed one is not kept.
      const body = opts.registry.metrics().then((text) => Buffer.from(text));
      const entry = { at: t, body };
      cached = entry;
      body.catch(() => {
        if (cached === entry) cached = undefined;
      });
    }
    return reply.type(opts.registry.contentType).send(await cached.body);
  });
};
