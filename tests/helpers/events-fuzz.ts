/**
 * Property-based fuzzing of the event path's input parsers (reliability R4): the audit line parser
 * (through Ingest, store and metrics, so the whole per-line path), the line splitter, and the HTTP
 * query parsing of /v1/events, /v1/syscalls and /v1/suggest. The unit test runs 10^4 inputs of
 * each (tests/unit/events/fuzz.test.ts), the bench 10^6 (tests/bench/fuzz-events.ts).
 *
 * Each check returns a problem (a string) or null, and never throws, so that a run counts crashes
 * instead of stopping at the first; the test asserts the counts are 0.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import fc from 'fast-check';
import { resolveAuditSyscall } from '../../shared/syscalls/index.js';
import { Attributor } from '../../agent/src/events/attribute.js';
import { Ingest } from '../../agent/src/events/ingest.js';
import { LineSplitter } from '../../agent/src/events/lines.js';
import { parseLine, type ParseOptions } from '../../agent/src/events/parse.js';
import { EMPTY_POD_INDEX } from '../../agent/src/events/pod-index.js';
import { EventStore } from '../../agent/src/events/store.js';
import { aggregateJson, aggregatesTable, eventsRoutes } from '../../agent/src/http/events-routes.js';
import { createMetrics } from '../../agent/src/http/metrics.js';
import { sharedDir } from './shared.js';

/** Every line of the captured corpus (auditd enriched and raw, dmesg and /dev/kmsg forms). */
export function corpusLines(): string[] {
  const dir = join(sharedDir(), 'node-facts', 'corpus');
  return ['audit-enriched.log', 'audit-raw.log', 'kmsg.log', 'kmsg-raw.log'].flatMap((f) =>
    readFileSync(join(dir, f), 'latin1')
      .split('\n')
      .filter((l) => l !== ''),
  );
}

/** Decimal-looking strings, including the ones that broke things: huge, signed, empty. */
const digits = fc.oneof(
  fc.stringMatching(/^-?\d{0,22}$/),
  fc.constantFrom('0', '-1', '99999999999999999', '9000000000000', '8640000000000', '18446744073709551615', ''),
);
const junk = fc.string({ unit: 'binary', maxLength: 24 });
const hexish = fc.oneof(
  fc.stringMatching(/^(0x)?[0-9a-fA-F]{0,12}$/),
  fc.constantFrom('c000003e', '40000003', 'c00000b7'),
);

/** Audit-line-like text: corpus lines mutated, records built from random fields, random text. */
export function auditLineArb(corpus: readonly string[]): fc.Arbitrary<string> {
  const line = fc.constantFrom(...corpus);
  const field = fc
    .tuple(
      fc.constantFrom(
        'pid',
        'uid',
        'gid',
        'auid',
        'ses',
        'sig',
        'arch',
        'syscall',
        'compat',
        'ip',
        'code',
        'comm',
        'exe',
      ),
      fc.oneof(digits, hexish, junk, fc.constantFrom('"quoted"', '(null)', '?', '2F62696E')),
    )
    .map(([k, v]) => `${k}=${v}`);
  const built = fc
    .tuple(
      fc.constantFrom(
        'type=SECCOMP msg=',
        'type=1326 ',
        'type=UNKNOWN[1326] msg=',
        'audit: type=1326 ',
        '6,1,2,-;audit: type=1326 ',
        '0,1,2,-;audit: type=1326 ',
        'Nov 28 12:00:00 n kernel: [  1.2] audit: type=1326 ',
      ),
      digits,
      digits,
      digits,
      fc.array(field, { maxLength: 14 }),
      fc.boolean(),
    )
    .map(
      ([pre, s, ms, serial, fields, gs]) =>
        `${pre}audit(${s}.${ms}:${serial}): ${fields.join(' ')}${gs ? '\x1dAUID="unset" ARCH=x86_64' : ''}`,
    );
  const edited = fc.tuple(line, fc.array(fc.tuple(fc.nat(), fc.nat(16), junk), { maxLength: 4 })).map(([l, edits]) =>
    edits.reduce((s, [at, del, ins]) => {
      const i = at % (s.length + 1);
      return s.slice(0, i) + ins + s.slice(i + del);
    }, l),
  );
  const renumbered = fc.tuple(line, fc.nat(), digits).map(([l, k, d]) => {
    const nums = [...l.matchAll(/\d+/g)];
    const m = nums[k % Math.max(1, nums.length)];
    return m?.index === undefined ? l : l.slice(0, m.index) + d + l.slice(m.index + m[0].length);
  });
  const suppressed = digits.map((d) => `audit: kauditd_printk_skb: ${d} callbacks suppressed`);
  return fc.oneof(edited, built, renumbered, suppressed, line, fc.string({ unit: 'binary', maxLength: 400 }));
}

/** The per-line path as the agent runs it: parse, attribute (no such pids here), store, metrics. */
export function lineChecker(): { check: (line: string) => string | null; finish: () => string | null } {
  const opts: ParseOptions = { resolve: resolveAuditSyscall, strict: true };
  const metrics = createMetrics({ node: 'n', processMetrics: false });
  const store = new EventStore({ ringSize: 1000, maxContainers: 16 });
  const attributor = new Attributor({
    podIndex: EMPTY_POD_INDEX,
    proc: { stat: () => undefined, cgroup: () => undefined, bootTimeMs: () => 0 },
  });
  const ingest = new Ingest({
    node: 'n',
    resolve: resolveAuditSyscall,
    strict: true,
    attributor,
    store,
    metrics: metrics.events,
  });
  const check = (line: string): string | null => {
    try {
      const p = parseLine(line, opts);
      switch (p.kind) {
        case 'seccomp': {
          const r = p.record;
          if (!Number.isFinite(r.time) || r.time < 0) return `time ${r.time}`;
          new Date(r.time).toISOString();
          if (!Number.isFinite(r.pid) || r.pid < 0) return `pid ${r.pid}`;
          if (!Number.isFinite(r.syscallNr)) return `syscall ${r.syscallNr}`;
          if (!/^[0-9a-f]{8}$/.test(r.auditArch)) return `arch ${r.auditArch}`;
          break;
        }
        case 'lost':
          if (!Number.isFinite(p.count) || p.count < 0) return `lost ${p.count}`;
          break;
        case 'malformed':
          if (p.reason.length > 200) return `a ${p.reason.length}-character reason`;
          break;
        case 'other':
          break;
        default:
          return `kind ${JSON.stringify(p)}`;
      }
      const before = ingest.stats.lines;
      ingest.lines([line]);
      if (ingest.stats.lines !== before + 1) return 'the line was not counted';
      return null;
    } catch (e: unknown) {
      return `threw: ${e instanceof Error ? e.message : String(e)}`;
    }
  };
  const finish = (): string | null => {
    try {
      // What the HTTP API would render from whatever got stored.
      const aggs = store.aggregates({});
      aggs.forEach(aggregateJson);
      aggregatesTable(aggs);
      return null;
    } catch (e: unknown) {
      return `rendering threw: ${e instanceof Error ? e.message : String(e)}`;
    }
  };
  return { check, finish };
}

/** A byte stream (newline-rich) and a way to cut it into chunks. */
export const splitterInputArb = fc.record({
  bytes: fc.array(
    fc.oneof({ weight: 1, arbitrary: fc.constant(0x0a) }, { weight: 6, arbitrary: fc.integer({ min: 0, max: 255 }) }),
    {
      maxLength: 600,
    },
  ),
  cuts: fc.array(fc.nat(600), { maxLength: 12 }),
  max: fc.integer({ min: 1, max: 80 }),
});

/** LineSplitter against the obvious split of the whole stream, with a small cap to hit it often. */
export function checkSplitter(input: { bytes: number[]; cuts: number[]; max: number }): string | null {
  try {
    const all = Buffer.from(input.bytes);
    const segments = all.toString('latin1').split('\n');
    const last = segments.pop() ?? '';
    const wantLines = segments.filter((l) => l.length <= input.max);
    const wantOverlong = segments.length - wantLines.length + (last.length > input.max ? 1 : 0);
    let overlong = 0;
    const s = new LineSplitter({ maxLineBytes: input.max, onOverlong: () => overlong++ });
    const cuts = [...new Set(input.cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
    const got: string[] = [];
    let from = 0;
    for (const c of [...cuts, all.length]) {
      got.push(...s.push(all.subarray(from, c)));
      if (s.pendingBytes > input.max) return `held ${s.pendingBytes} bytes over a cap of ${input.max}`;
      from = c;
    }
    if (JSON.stringify(got) !== JSON.stringify(wantLines))
      return `lines ${JSON.stringify(got)} != ${JSON.stringify(wantLines)}`;
    if (overlong !== wantOverlong) return `${overlong} overlong, expected ${wantOverlong}`;
    const rest = s.flush();
    const wantRest = last.length === 0 || last.length > input.max ? undefined : last;
    if (rest !== wantRest) return `flush gave ${JSON.stringify(rest)}, expected ${JSON.stringify(wantRest)}`;
    return null;
  } catch (e: unknown) {
    return `threw: ${e instanceof Error ? e.message : String(e)}`;
  }
}

const PARAMS = [
  'namespace',
  'pod',
  'container',
  'containerId',
  'syscall',
  'since',
  'limit',
  'follow',
  'after',
  'format',
  'name',
  'runtime',
] as const;
const VALUES = [
  '',
  'web',
  'shop',
  'app',
  'corpus-a',
  'my_prof',
  'true',
  'false',
  '1',
  '0',
  '10',
  '10001',
  '99999999999999999999',
  'json',
  'table',
  'yaml',
  'none',
  'runc',
  '90s',
  '5m',
  '1h30m',
  '999999999999h',
  '2026-11-28T12:00:00Z',
  '+275760-09-13T00:00:00Z',
  '9999-99-99T99:99:99Z',
  '-1',
  'mkdir',
  'openat',
];

/** One GET request: path, query (encoded pairs, sometimes raw text) and headers. */
export const requestArb = fc.record({
  path: fc.constantFrom('/v1/events', '/v1/syscalls', '/v1/suggest'),
  pairs: fc.array(
    fc.tuple(
      fc.oneof(
        { weight: 5, arbitrary: fc.constantFrom(...PARAMS) },
        { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
      ),
      fc.oneof(fc.constantFrom(...VALUES), digits, fc.string({ unit: 'binary', maxLength: 40 })),
    ),
    { maxLength: 6 },
  ),
  raw: fc.oneof(
    { weight: 4, arbitrary: fc.constant('') },
    { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 40 }) },
  ),
  accept: fc.constantFrom(undefined, 'application/json', 'text/event-stream', '*/*', 'text/html'),
  lastEventId: fc.option(digits, { nil: undefined }),
});

export type FuzzRequest = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

/** The URL of a generated request; undefined when its text cannot be encoded (a lone surrogate). */
export function requestUrl(r: FuzzRequest): string | undefined {
  try {
    const q = r.pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
    if (r.raw !== '') q.push(r.raw.replace(/[#\s]/g, ''));
    return q.length === 0 ? r.path : `${r.path}?${q.join('&')}`;
  } catch {
    return undefined;
  }
}

/** A fastify app with the event routes over a store filled from the corpus. */
export async function fuzzApp(corpus: readonly string[]): Promise<{ app: FastifyInstance; store: EventStore }> {
  const store = new EventStore({ ringSize: 1000 });
  const attributor = new Attributor({
    podIndex: EMPTY_POD_INDEX,
    proc: { stat: () => undefined, cgroup: () => undefined, bootTimeMs: () => 0 },
  });
  new Ingest({ node: 'n', resolve: resolveAuditSyscall, strict: false, attributor, store }).lines(corpus);
  const app = Fastify({ logger: false });
  await app.register(eventsRoutes, { store, node: 'n', heartbeatMs: 3_600_000 });
  await app.ready();
  return { app, store };
}

/** Sends one request; a problem when the answer is not 2xx or 4xx. Streams are cut after the head. */
export async function checkRequest(app: FastifyInstance, r: FuzzRequest): Promise<string | null> {
  const url = requestUrl(r);
  if (url === undefined) return null;
  const ac = new AbortController();
  try {
    const headers: Record<string, string> = {};
    if (r.accept !== undefined) headers['accept'] = r.accept;
    if (r.lastEventId !== undefined) headers['last-event-id'] = r.lastEventId;
    const res = await app.inject({ method: 'GET', url, headers, payloadAsStream: true, signal: ac.signal });
    const status = res.statusCode;
    ac.abort();
    res.stream().on('error', () => {});
    return (status >= 200 && status < 300) || (status >= 400 && status < 500) ? null : `${status} for ${url}`;
  } catch (e: unknown) {
    return `threw for ${url}: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/** Counts of one fuzz run. */
export interface FuzzCounts {
  inputs: number;
  problems: number;
  /** Inputs that took longer than the per-input bound (counted, not asserted: a hang shows here). */
  slow: number;
  /** Of those (the first 1000), how many were over the bound again when re-run alone: not a pause. */
  slowAgain: number;
  firstProblem?: string;
}

/** Runs `n` inputs of `arb` through `check`, counting problems and inputs over `boundMs`. */
export async function runFuzz<T>(
  arb: fc.Arbitrary<T>,
  check: (v: T) => string | null | Promise<string | null>,
  n: number,
  opts: { seed?: number; boundMs?: number; onProgress?: (c: FuzzCounts) => void } = {},
): Promise<FuzzCounts> {
  const counts: FuzzCounts = { inputs: 0, problems: 0, slow: 0, slowAgain: 0 };
  const bound = opts.boundMs ?? 100;
  const slow: T[] = [];
  await fc.assert(
    fc.asyncProperty(arb, async (v) => {
      const start = performance.now();
      const problem = await check(v);
      if (performance.now() - start > bound) {
        counts.slow++;
        if (slow.length < 1000) slow.push(v);
      }
      counts.inputs++;
      // Let timers and immediates run now and then: inject and its streams clean up there, and a
      // run that only ever awaits promises would hold every request it made (a harness leak).
      if (counts.inputs % 100 === 0) await new Promise((r) => setImmediate(r));
      if (counts.inputs % 100_000 === 0) opts.onProgress?.(counts);
      if (problem !== null) {
        counts.problems++;
        counts.firstProblem ??= problem;
      }
      return true;
    }),
    { numRuns: n, ...(opts.seed === undefined ? {} : { seed: opts.seed }) },
  );
  // A garbage-collection pause or a busy machine makes any input slow once; a slow input is one
  // that is slow again.
  for (const v of slow) {
    const start = performance.now();
    await check(v);
    if (performance.now() - start > bound) counts.slowAgain++;
  }
  return counts;
}
