/**
 * The event path, wired: source (audit.log | syslog file | /dev/kmsg) → Ingest (parse, attribute)
 * → EventStore. `main` calls startEventPipeline once and hands `store` to the HTTP routes.
 */
import type { Logger } from 'pino';
import { resolveAuditSyscall } from '../../../shared/syscalls/index.js';
import { agentError, isErrnoException, messageOf } from '../../../shared/errors.js';
import { Attributor } from './attribute.js';
import { realFs, type EventsFs } from './fs.js';
import { Ingest, NOOP_METRICS, type EventMetricsSink, type IngestStats } from './ingest.js';
import { KmsgReader } from './kmsg.js';
import type { SyscallResolver } from './parse.js';
import { EMPTY_POD_INDEX, type PodIndex } from './pod-index.js';
import { procReader, type ProcReader } from './proc.js';
import { EventStore } from './store.js';
import { FileTailer, type TailFrom } from './tail-file.js';

/** `--audit-source`. */
export type AuditSourceSetting = 'auto' | 'auditd' | 'syslog' | 'kmsg';
export const AUDIT_SOURCES: readonly AuditSourceSetting[] = ['auto', 'auditd', 'syslog', 'kmsg'];

/** The source actually used, and why. */
export interface ChosenSource {
  readonly kind: 'auditd' | 'syslog' | 'kmsg';
  readonly path: string;
  readonly reason: string;
}

export const DEFAULT_AUDIT_LOG = '/var/log/audit/audit.log';
export const SYSLOG_CANDIDATES: readonly string[] = ['/var/log/syslog', '/var/log/kern.log', '/var/log/messages'];
export const DEFAULT_KMSG = '/dev/kmsg';

async function exists(fs: EventsFs, path: string): Promise<boolean> {
  try {
    await fs.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Picks the source. `auto`: the audit log if it exists (auditd writes SECCOMP records there when it
 * runs), else the first syslog file that exists, else /dev/kmsg. An explicit `path` is used as given.
 */
export async function chooseSource(
  setting: AuditSourceSetting,
  path: string | undefined,
  fs: EventsFs = realFs,
): Promise<ChosenSource> {
  switch (setting) {
    case 'auditd':
      return { kind: 'auditd', path: path ?? DEFAULT_AUDIT_LOG, reason: '--audit-source=auditd' };
    case 'kmsg':
      return { kind: 'kmsg', path: path ?? DEFAULT_KMSG, reason: '--audit-source=kmsg' };
    case 'syslog': {
      if (path !== undefined) return { kind: 'syslog', path, reason: '--audit-source=syslog' };
      for (const p of SYSLOG_CANDIDATES) {
        if (await exists(fs, p)) return { kind: 'syslog', path: p, reason: `--audit-source=syslog, ${p} exists` };
      }
      throw agentError('SECCOMP_AGENT_ERR_AUDIT_SOURCE', {
        source: 'syslog',
        detail: `none of ${SYSLOG_CANDIDATES.join(', ')} exists; give the file with --audit-log`,
      });
    }
    case 'auto': {
      if (path !== undefined) {
        const kind = path.startsWith('/dev/') ? 'kmsg' : path.includes('audit') ? 'auditd' : 'syslog';
        return { kind, path, reason: `--audit-log ${path}` };
      }
      if (await exists(fs, DEFAULT_AUDIT_LOG)) {
        return { kind: 'auditd', path: DEFAULT_AUDIT_LOG, reason: `${DEFAULT_AUDIT_LOG} exists` };
      }
      for (const p of SYSLOG_CANDIDATES) {
        if (await exists(fs, p)) return { kind: 'syslog', path: p, reason: `no ${DEFAULT_AUDIT_LOG}; ${p} exists` };
      }
      return { kind: 'kmsg', path: DEFAULT_KMSG, reason: `no ${DEFAULT_AUDIT_LOG} and no syslog file` };
    }
  }
}

/** Characters of a malformed line that are logged. */
export const LOGGED_PREFIX = 32;

const clip = (s: string, n: number): string => (s.length <= n ? s : `${s.slice(0, n)}…`);

/** The first `n` characters, printable ASCII kept, everything else as \xNN (JSON escapes the rest). */
export function escapedPrefix(line: string, n: number): string {
  let out = '';
  for (let i = 0; i < line.length && i < n; i++) {
    const c = line.charCodeAt(i);
    out += c >= 0x20 && c < 0x7f && c !== 0x5c ? line[i] : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return line.length > n ? `${out}…` : out;
}

/** Everything the event path needs from main. */
export interface EventPipelineDeps {
  readonly node: string;
  /** `--audit-source` (default auto). */
  readonly source?: AuditSourceSetting;
  /** `--audit-log` */
  readonly auditLog?: string | undefined;
  /** `--audit-from` (default end). */
  readonly from?: TailFrom;
  /** `--event-ring-size` (default 10,000). */
  readonly ringSize?: number;
  /** `--event-max-containers` (default 1024). */
  readonly maxContainers?: number;
  readonly podIndex?: PodIndex;
  readonly logger: Logger;
  readonly metrics?: EventMetricsSink;
  readonly resolve?: SyscallResolver;
  readonly proc?: ProcReader;
  readonly fs?: EventsFs;
  readonly now?: () => number;
  /** Fallback poll of the file source (inotify wakes us first). Default 250 ms. */
  readonly pollIntervalMs?: number;
}

/** Figures for /metrics and logs. */
export interface PipelineStats extends IngestStats {
  readonly source: ChosenSource;
  /** Bytes of the file not read yet at the last look (file sources). */
  readonly lagBytes: number;
  readonly events: number;
  readonly containers: number;
  readonly subscribers: number;
}

/** A running event path. */
export interface EventPipeline {
  readonly store: EventStore;
  readonly source: ChosenSource;
  stats(): PipelineStats;
  stop(): Promise<void>;
}

/** A pipeline whose store exists (routes can be registered on it) and whose source is not open yet. */
export interface PendingEventPipeline {
  readonly store: EventStore;
  /** Opens the source and starts tailing; resolves once it is open (or, for a file, being waited for). */
  start(): Promise<EventPipeline>;
}

/** Starts tailing. Resolves once the source is open (or, for a file, being waited for). */
export async function startEventPipeline(deps: EventPipelineDeps): Promise<EventPipeline> {
  return createEventPipeline(deps).start();
}

/**
 * The store and attribution now, the source at `start()`: main registers the HTTP routes and
 * listens before a long first read of the audit log.
 */
export function createEventPipeline(deps: EventPipelineDeps): PendingEventPipeline {
  const fs = deps.fs ?? realFs;
  const log = deps.logger.child({ component: 'events' });
  const metrics = deps.metrics ?? NOOP_METRICS;
  const podIndex = deps.podIndex ?? EMPTY_POD_INDEX;
  const attributor = new Attributor({
    proc: deps.proc ?? procReader(),
    podIndex,
    ...(deps.now === undefined ? {} : { now: deps.now }),
  });
  const store = new EventStore({
    ringSize: deps.ringSize ?? 10_000,
    maxContainers: deps.maxContainers ?? 1024,
    onEvict: (agg) => metrics.containerEvicted?.(agg),
    lateResolve: (containerId, podUid) => {
      const a = attributor.resolve({ containerId, podUid });
      return a.pod === null
        ? undefined
        : { namespace: a.namespace ?? '', pod: a.pod, ...(a.container === null ? {} : { container: a.container }) };
    },
  });
  return { store, start: () => openSource(deps, { fs, log, metrics, attributor, store }) };
}

async function openSource(
  deps: EventPipelineDeps,
  w: { fs: EventsFs; log: Logger; metrics: EventMetricsSink; attributor: Attributor; store: EventStore },
): Promise<EventPipeline> {
  const { fs, log, metrics, attributor, store } = w;
  const source = await chooseSource(deps.source ?? 'auto', deps.auditLog, fs);
  let malformedLogged = 0;
  const ingest = new Ingest({
    node: deps.node,
    resolve: deps.resolve ?? resolveAuditSyscall,
    strict: source.kind === 'auditd',
    attributor,
    store,
    metrics,
    ...(deps.now === undefined ? {} : { now: deps.now }),
    onMalformed: (line, reason) => {
      // The first few, then only counted (/metrics has the total). Never the line itself: the file
      // may not be what it should (a link to a secret, lines any user wrote); a short escaped
      // prefix says enough to find it.
      if (malformedLogged++ < 10)
        log.warn(
          { reason: clip(reason, 200), length: line.length, prefix: escapedPrefix(line, LOGGED_PREFIX) },
          'malformed audit line skipped',
        );
    },
  });
  log.info(
    { source: source.kind, path: source.path, reason: source.reason, from: deps.from ?? 'end' },
    'audit source chosen',
  );

  let stopSource: () => Promise<void>;
  let lagBytes = (): number => 0;
  if (source.kind === 'kmsg') {
    const reader = new KmsgReader({
      path: source.path,
      from: deps.from ?? 'end',
      fs,
      onLines: (lines) => ingest.lines(lines),
      onEvent: (e) => {
        if (e.type === 'overrun') {
          ingest.lost(e.missed, 'overrun');
          log.warn({ missed: e.missed }, 'kernel log records overwritten before they were read');
        } else if (e.type === 'error') log.error({ err: messageOf(e.error) }, 'reading the kernel log failed');
        else log.info({ path: e.path, skipped: e.skipped }, 'kernel log opened');
      },
    });
    try {
      await reader.start();
    } catch (e: unknown) {
      const detail = isErrnoException(e) ? `${e.code ?? ''} ${e.message}` : messageOf(e);
      throw agentError('SECCOMP_AGENT_ERR_AUDIT_SOURCE', { source: source.path, detail }, e);
    }
    stopSource = () => reader.stop();
  } else {
    let lastError = { err: '', at: 0, repeated: 0 };
    const tailer = new FileTailer({
      path: source.path,
      from: deps.from ?? 'end',
      fs,
      ...(deps.pollIntervalMs === undefined ? {} : { pollIntervalMs: deps.pollIntervalMs }),
      ...(deps.now === undefined ? {} : { now: deps.now }),
      onLines: (lines) => ingest.lines(lines),
      onBytes: (bytes) => ingest.bytes(bytes),
      onEvent: (e) => {
        switch (e.type) {
          case 'rotated':
            metrics.rotation('rotated');
            log.info({ path: e.path, intermediates: e.intermediates }, 'audit log rotated; switched to the new file');
            break;
          case 'truncated':
            metrics.rotation('truncated');
            log[e.possibleLoss ? 'warn' : 'info'](
              { path: e.path, recoveredBytes: e.recoveredBytes, possibleLoss: e.possibleLoss },
              'audit log truncated; reading it from its start',
            );
            break;
          case 'rotation-chain-unknown':
            log.warn(
              { path: e.path },
              'rotated file not found among PATH.N; records in files rotated meanwhile may be missed',
            );
            break;
          case 'waiting':
            log.warn({ path: e.path }, 'audit log does not exist yet; waiting for it');
            break;
          case 'opened':
            if (e.via === undefined) log.info({ path: e.path, offset: e.offset }, 'audit log opened');
            else
              log.warn({ path: e.path, target: e.via, offset: e.offset }, 'audit log is a symlink; reading its target');
            break;
          case 'refused':
            log.error({ path: e.path, reason: e.reason }, 'audit log refused; waiting for a regular file at the path');
            break;
          case 'overlong':
            ingest.overlong(e.maxBytes);
            break;
          case 'error': {
            // A persistent failure is retried on every poll: say it once a minute, with the count.
            const err = messageOf(e.error);
            const at = (deps.now ?? Date.now)();
            if (err === lastError.err && at - lastError.at < 60_000) {
              lastError.repeated++;
              break;
            }
            log.error(
              { path: e.path, err, ...(lastError.repeated > 0 ? { repeatedBefore: lastError.repeated } : {}) },
              'reading the audit log failed; retrying',
            );
            lastError = { err, at, repeated: 0 };
            break;
          }
        }
      },
    });
    await tailer.start();
    stopSource = () => tailer.stop();
    lagBytes = () => tailer.lagBytes;
  }

  return {
    store,
    source,
    stats: () => ({
      ...ingest.stats,
      source,
      lagBytes: lagBytes(),
      events: store.size,
      containers: store.containers,
      subscribers: store.subscribers,
    }),
    stop: async () => {
      await stopSource();
      log.info('event pipeline stopped');
    },
  };
}
