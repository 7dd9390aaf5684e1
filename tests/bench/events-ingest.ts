/**
 * Benchmark of the event path (not a test: it prints figures, it asserts nothing).
 *
 *   npm run build && npx node --expose-gc dist/tests/bench/events-ingest.js [--lines N] [--json FILE]
 *
 * 1. Ingest: a 1,000,000-line file in auditd's ENRICHED format, made from the real corpus lines
 *    (serials renumbered), read by the real pipeline from its start (tailer, parser, /proc
 *    attribution, store). Timed against `grep -c type=SECCOMP` and `ausearch -m SECCOMP -if` on the
 *    same file in the same run, as ratios.
 * 2. Append → HTTP latency: one record appended to a tailed file, received by a follow client of
 *    /v1/events over loopback; p50 and p99 of 1000 samples.
 * 3. RSS with 100,000 events held (ring of 100,000), measured first in a fresh process.
 * 4. /v1/syscalls over loopback: requests/s and p99 with 16 concurrent keep-alive clients.
 */
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  createWriteStream,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { pino } from 'pino';
import { resolveAuditSyscall } from '../../shared/syscalls/index.js';
import { Attributor } from '../../agent/src/events/attribute.js';
import { Ingest } from '../../agent/src/events/ingest.js';
import { EMPTY_POD_INDEX } from '../../agent/src/events/pod-index.js';
import { startEventPipeline } from '../../agent/src/events/pipeline.js';
import { procReader } from '../../agent/src/events/proc.js';
import { EventStore } from '../../agent/src/events/store.js';
import { eventsRoutes } from '../../agent/src/http/events-routes.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}
const N = Number(arg('lines', '1000000'));

function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (
    !existsSync(join(d, 'package.json')) ||
    !readFileSync(join(d, 'package.json'), 'utf8').includes('"seccomp-agent"')
  ) {
    const up = dirname(d);
    if (up === d) throw new Error('repo root not found');
    d = up;
  }
  return d;
}
const corpus = readFileSync(resolve(repoRoot(), '..', 'shared', 'node-facts', 'corpus', 'audit-enriched.log'), 'latin1')
  .split('\n')
  .filter((l) => l !== '');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const mb = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const gc = (): void => (globalThis as { gc?: () => void }).gc?.();
const figures: Record<string, unknown> = { lines: N, node: process.version, corpusLines: corpus.length };

/**
 * corpus lines cycled, each with a fresh serial and a time that moves forward (one record per ms), as
 * in a real busy log: ausearch, which groups records into events by time, needs increasing times.
 */
function writeBigLog(path: string, n: number): Promise<number> {
  return new Promise((res, rej) => {
    const out = createWriteStream(path);
    let seccomp = 0;
    let i = 0;
    const CHUNK = 10_000;
    const more = (): void => {
      while (i < n) {
        const parts: string[] = [];
        for (let k = 0; k < CHUNK && i < n; k++, i++) {
          const src = corpus[i % corpus.length] ?? '';
          if (src.startsWith('type=SECCOMP ')) seccomp++;
          const ms = 1_795_867_209_000 + i;
          parts.push(
            src.replace(
              /audit\(\d+\.\d+:\d+\)/,
              `audit(${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, '0')}:${100_000 + i})`,
            ),
          );
        }
        if (!out.write(parts.join('\n') + '\n')) {
          out.once('drain', more);
          return;
        }
      }
      out.end(() => res(seccomp));
    };
    out.on('error', rej);
    more();
  });
}

function timeCmd(cmd: string, args: string[]): { ms: number; out: string; ok: boolean } {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024 });
  return { ms: performance.now() - t0, out: (r.stdout ?? '').slice(0, 200), ok: r.status === 0 || r.status === 1 };
}

async function ingestBench(dir: string): Promise<void> {
  const file = join(dir, 'audit.log');
  const seccomp = await writeBigLog(file, N);
  figures['fileBytes'] = statSync(file).size;
  figures['seccompRecords'] = seccomp;
  // Warm the page cache so every reader starts equal.
  readFileSync(file);

  const grep = timeCmd('grep', ['-c', 'type=SECCOMP', file]);
  figures['grepMs'] = Math.round(grep.ms);
  figures['grepCount'] = Number(grep.out.trim());
  const ausearch =
    existsSync('/usr/sbin/ausearch') || existsSync('/sbin/ausearch')
      ? timeCmd('ausearch', ['-m', 'SECCOMP', '-if', file])
      : undefined;
  figures['ausearchMs'] =
    ausearch === undefined ? 'ausearch not installed (Debian package auditd)' : Math.round(ausearch.ms);

  gc();
  const t0 = performance.now();
  const p = await startEventPipeline({
    node: 'bench',
    logger: pino({ level: 'silent' }),
    source: 'auditd',
    auditLog: file,
    from: 'start',
  });
  while (p.stats().lines < N) await sleep(1);
  const ms = performance.now() - t0;
  const st = p.stats();
  await p.stop();
  figures['agentIngestMs'] = Math.round(ms);
  figures['agentLinesPerSec'] = Math.round(N / (ms / 1000));
  figures['agentRecords'] = st.records;
  figures['agentMalformed'] = st.malformed;
  figures['ratioAgentToGrep'] = +(ms / grep.ms).toFixed(2);
  if (ausearch !== undefined) figures['ratioAgentToAusearch'] = +(ms / ausearch.ms).toFixed(3);
}

async function latencyBench(dir: string): Promise<void> {
  const file = join(dir, 'latency.log');
  writeFileSync(file, '');
  const p = await startEventPipeline({
    node: 'bench',
    logger: pino({ level: 'silent' }),
    source: 'auditd',
    auditLog: file,
    from: 'end',
  });
  const app = Fastify();
  await app.register(eventsRoutes, { store: p.store, node: 'bench' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const template = corpus.find((l) => l.startsWith('type=SECCOMP ')) ?? '';
  const sent = new Map<string, number>();
  const lat: number[] = [];
  let buf = '';
  const req = request({ host: '127.0.0.1', port, path: '/v1/events?follow=true' }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      const now = performance.now();
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const id = (JSON.parse(line) as { auditId: string }).auditId;
        const t = sent.get(id);
        if (t !== undefined) lat.push(now - t);
      }
    });
  });
  req.end();
  await sleep(200);
  for (let i = 0; i < 1000; i++) {
    const id = `1795867209.801:${900_000 + i}`;
    sent.set(id, performance.now());
    appendFileSync(file, template.replace(/audit\([^)]*\)/, `audit(${id})`) + '\n');
    await sleep(2);
  }
  const end = Date.now() + 5000;
  while (lat.length < 1000 && Date.now() < end) await sleep(10);
  req.destroy();
  await app.close();
  await p.stop();
  figures['appendToHttpSamples'] = lat.length;
  figures['appendToHttpP50Ms'] = +pct(lat, 50).toFixed(2);
  figures['appendToHttpP99Ms'] = +pct(lat, 99).toFixed(2);
}

function fillStore(store: EventStore, n: number, containers: number): void {
  // Every corpus pid is made to look like one of `containers` containers via a /proc tree of our own.
  const root = mkdtempSync(join(tmpdir(), 'bench-proc-'));
  writeFileSync(join(root, 'stat'), 'btime 1795860000\n');
  const pids = new Set(corpus.map((l) => Number(/ pid=(\d+)/.exec(l)?.[1])).filter((x) => x > 0));
  let k = 0;
  for (const pid of pids) {
    const d = join(root, String(pid));
    spawnSync('mkdir', ['-p', d]);
    writeFileSync(join(d, 'stat'), `${pid} (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0`);
    writeFileSync(
      join(d, 'cgroup'),
      `0::/kubepods/besteffort/pod00000000-0000-0000-0000-${String(k % containers).padStart(12, '0')}/${(k % containers).toString(16).padStart(64, '0')}\n`,
    );
    k++;
  }
  const ingest = new Ingest({
    node: 'bench',
    resolve: resolveAuditSyscall,
    strict: true,
    attributor: new Attributor({ proc: procReader(root), podIndex: EMPTY_POD_INDEX }),
    store,
  });
  const seccomp = corpus.filter((l) => l.startsWith('type=SECCOMP '));
  let done = 0;
  while (done < n) {
    const batch: string[] = [];
    for (let i = 0; i < 1000 && done < n; i++, done++)
      batch.push((seccomp[done % seccomp.length] ?? '').replace(/:(\d+)\)/, `:${done})`));
    ingest.lines(batch);
  }
  rmSync(root, { recursive: true, force: true });
}

async function rssBench(): Promise<void> {
  gc();
  const before = process.memoryUsage();
  const store = new EventStore({ ringSize: 100_000 });
  fillStore(store, 100_000, 50);
  gc();
  const after = process.memoryUsage();
  figures['eventsHeld'] = store.size;
  figures['rssBefore'] = mb(before.rss);
  figures['rssWith100kEvents'] = mb(after.rss);
  figures['heapUsedDelta'] = mb(after.heapUsed - before.heapUsed);
  figures['bytesPerEvent'] = Math.round((after.heapUsed - before.heapUsed) / store.size);
  // Measured above while `store` is still referenced; dropped here for the phases that follow.
  store.subscribe(() => {})();
}

async function syscallsBench(): Promise<void> {
  const store = new EventStore();
  fillStore(store, 50_000, 50);
  const app = Fastify();
  await app.register(eventsRoutes, { store, node: 'bench' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const lat: number[] = [];
  let bytes = 0;
  const one = (): Promise<void> =>
    new Promise((res, rej) => {
      const t0 = performance.now();
      request({ host: '127.0.0.1', port, path: '/v1/syscalls', agent }, (r) => {
        r.on('data', (d: Buffer) => (bytes += d.length));
        r.on('end', () => {
          lat.push(performance.now() - t0);
          res();
        });
      })
        .on('error', rej)
        .end();
    });
  const durationMs = 5000;
  const end = performance.now() + durationMs;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (performance.now() < end) await one();
    }),
  );
  const elapsed = performance.now() - t0;
  agent.destroy();
  await app.close();
  figures['syscallsContainers'] = store.containers;
  figures['syscallsResponseBytes'] = Math.round(bytes / lat.length);
  figures['syscallsRequestsPerSec'] = Math.round(lat.length / (elapsed / 1000));
  figures['syscallsP50Ms'] = +pct(lat, 50).toFixed(2);
  figures['syscallsP99Ms'] = +pct(lat, 99).toFixed(2);
}

const dir = mkdtempSync(join(tmpdir(), 'events-bench-'));
try {
  await rssBench(); // first, in a fresh heap
  await ingestBench(dir);
  await latencyBench(dir);
  await syscallsBench();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const jsonOut = arg('json', '');
if (jsonOut !== '') writeFileSync(jsonOut, JSON.stringify(figures, null, 2) + '\n');
for (const [k, v] of Object.entries(figures)) process.stdout.write(`${k.padEnd(26)} ${String(v)}\n`);
