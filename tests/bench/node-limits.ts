/**
 * The node agent near its limits (issue 12): every row of the issue's table in one run, each as a
 * ratio against a floor measured in the same run on the same machine. A benchmark, not a test: it
 * prints figures and asserts nothing.
 *
 *   npm run build && npm run bench:limits [-- --lines N --tail-seconds S --profiles P --cluster-profiles P
 *     --node-args --flag,--flag|none --main FILE --json FILE]
 *
 * The agent runs with the image's node flags and environment (scripts/agent-runtime.json) unless
 * --node-args says otherwise.
 *
 * Floors: `grep -c type=SECCOMP` on the same file; a bare fastify process answering the same bytes
 * from memory; a bare `node -e` process for RSS and start time.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import autocannon from 'autocannon';
import { resolveAuditSyscall } from '../../shared/syscalls/index.js';
import { Attributor } from '../../agent/src/events/attribute.js';
import { Ingest } from '../../agent/src/events/ingest.js';
import { LineSplitter } from '../../agent/src/events/lines.js';
import { EMPTY_POD_INDEX } from '../../agent/src/events/pod-index.js';
import { EventStore } from '../../agent/src/events/store.js';
import { KubeClient } from '../../agent/src/kube/client.js';
import { createAll, createNodes, startAgent, startBed, waitFor } from '../cluster/sync-helpers.js';
import type { TestLike } from '../testbed/cluster.js';
import { agentRuntime, repoRoot, sharedDir } from '../helpers/shared.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}
const N = Number(arg('lines', '1000000'));
const TAIL_SECONDS = Number(arg('tail-seconds', '60'));
const TAIL_RATE = Number(arg('tail-rate', '200000'));
const PROFILES = Number(arg('profiles', '2000'));
/** Profiles in the cluster row (0: skip it; it starts a kube-apiserver and etcd from the test bed). */
const CLUSTER_PROFILES = Number(arg('cluster-profiles', '5000'));
/**
 * The measured agent's node flags and environment: by default the image's (scripts/agent-runtime.json,
 * the same as Dockerfile.agent's ENTRYPOINT and ENV), so the agent measured is the agent shipped;
 * `--node-args --flag,--flag` for others, `--node-args none` for none (and no environment).
 */
const NODE_ARGS_ARG = arg('node-args', '');
const RUNTIME = agentRuntime();
const NODE_ARGS: string[] =
  NODE_ARGS_ARG === '' ? [...RUNTIME.nodeFlags] : NODE_ARGS_ARG.split(',').filter((a) => a !== '' && a !== 'none');
const NODE_ENV: Record<string, string> = NODE_ARGS_ARG === '' ? { ...RUNTIME.env } : {};
/** The agent to measure (`--main` another build's main.js to measure it, e.g. the previous commit's). */
const MAIN = resolve(arg('main', join(repoRoot, 'dist', 'agent', 'src', 'main.js')));

const corpus = readFileSync(join(sharedDir(), 'node-facts', 'corpus', 'audit-enriched.log'), 'latin1')
  .split('\n')
  .filter((l) => l !== '');
const SECCOMP = corpus.filter((l) => l.startsWith('type=SECCOMP '));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const MiB = (b: number): number => +(b / 1024 / 1024).toFixed(1);
const gc = (): void => (globalThis as { gc?: () => void }).gc?.();
const rows: { measure: string; now: string; floor: string; ratio: string; goal: string }[] = [];
const figures: Record<string, unknown> = {
  node: process.version,
  agentNodeArgs: NODE_ARGS,
  agentNodeEnv: NODE_ENV,
  lines: N,
  loadBefore: loadavg().map((x) => +x.toFixed(2)),
};
const row = (measure: string, now: string, floor: string, ratio: string, goal: string): void => {
  rows.push({ measure, now, floor, ratio, goal });
};

/** kB fields of /proc/<pid>/status (VmRSS, VmHWM). */
function procStatus(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

async function get(url: string): Promise<{ status: number; body: string } | undefined> {
  try {
    const r = await fetch(url);
    return { status: r.status, body: await r.text() };
  } catch {
    return undefined;
  }
}

/** The real agent, standalone, as a process of its own. */
function agent(args: string[]): ChildProcess {
  return spawn(process.execPath, [...NODE_ARGS, MAIN, '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, ...NODE_ENV },
  });
}
async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await done;
}

/** A line of the corpus with a fresh time and serial (one record per ms, as ausearch wants). */
function stamped(src: string, i: number): string {
  const ms = 1_795_867_209_000 + i;
  return src.replace(
    /audit\(\d+\.\d+:\d+\)/,
    `audit(${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, '0')}:${100_000 + i})`,
  );
}

function writeBigLog(path: string, n: number): Promise<number> {
  return new Promise((res, rej) => {
    const out = createWriteStream(path);
    let seccomp = 0;
    let i = 0;
    const more = (): void => {
      while (i < n) {
        const parts: string[] = [];
        for (let k = 0; k < 10_000 && i < n; k++, i++) {
          const src = corpus[i % corpus.length] ?? '';
          if (src.startsWith('type=SECCOMP ')) seccomp++;
          parts.push(stamped(src, i));
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

const totalOf = (body: string): number =>
  (JSON.parse(body) as { items: { total: number }[] }).items.reduce((n, a) => n + a.total, 0);

/** A bare `node -e` process: its RSS and the time until it answers HTTP. */
async function bareNode(): Promise<{ rss: number; startMs: number }> {
  const port = await freePort();
  const t0 = performance.now();
  const p = spawn(
    process.execPath,
    ['-e', `require('node:http').createServer((q,s)=>s.end('ok')).listen(${port},'127.0.0.1')`],
    { stdio: 'ignore' },
  );
  while ((await get(`http://127.0.0.1:${port}/`)) === undefined) await sleep(2);
  const startMs = performance.now() - t0;
  await sleep(500);
  const rss = procStatus(p.pid ?? 0).rss;
  await stop(p);
  return { rss, startMs };
}

/** A bare fastify process answering `bytes` on every path, as the floor for the HTTP rows. */
async function bareFastify(
  bodies: Record<string, { body: string; type: string }>,
  withAgentFlags = false,
): Promise<{ port: number; p: ChildProcess }> {
  const port = await freePort();
  const file = join(tmpdir(), `bare-bodies-${port}.json`);
  writeFileSync(file, JSON.stringify(bodies));
  const code = `
    const app = require('fastify')();
    const b = JSON.parse(require('node:fs').readFileSync(${JSON.stringify(file)}, 'utf8'));
    for (const [path, v] of Object.entries(b)) { const buf = Buffer.from(v.body); app.get(path, (q, r) => r.type(v.type).send(buf)); }
    app.listen({ host: '127.0.0.1', port: ${port} });`;
  const p = spawn(process.execPath, [...(withAgentFlags ? NODE_ARGS : []), '-e', code], {
    stdio: 'ignore',
    cwd: repoRoot,
    ...(withAgentFlags ? { env: { ...process.env, ...NODE_ENV } } : {}),
  });
  while ((await get(`http://127.0.0.1:${port}/v1/syscalls`)) === undefined) await sleep(5);
  return { port, p };
}

async function load(url: string, seconds = 5): Promise<{ rps: number; p99: number; bytes: number }> {
  const r = await autocannon({ url, connections: 16, duration: seconds, pipelining: 1 });
  return {
    rps: Math.round(r.requests.average),
    p99: r.latency.p99,
    bytes: Math.round(r.throughput.average / Math.max(1, r.requests.average)),
  };
}

/** Rows 1, 2 and 4: ingest a big log end to end, RSS after it, HTTP under load. */
async function ingestAndServe(dir: string, bare: { rss: number }): Promise<{ file: string; seccomp: number }> {
  const file = join(dir, 'audit.log');
  const seccomp = await writeBigLog(file, N);
  readFileSync(file); // the page cache, for every reader alike
  const g0 = performance.now();
  const grep = spawnSync('grep', ['-c', 'type=SECCOMP', file], { encoding: 'utf8' });
  const grepMs = performance.now() - g0;
  figures['fileBytes'] = statSync(file).size;
  figures['seccompRecords'] = seccomp;
  figures['grepMs'] = Math.round(grepMs);
  figures['grepCount'] = Number(grep.stdout.trim());

  const port = await freePort();
  const profiles = mkdtempSync(join(dir, 'profiles-'));
  const t0 = performance.now();
  const p = agent([
    '--profiles-dir',
    profiles,
    '--kubelet-root',
    join(dir, 'kubelet'),
    '--listen',
    `127.0.0.1:${port}`,
    '--audit-source',
    'auditd',
    '--audit-log',
    file,
    '--audit-from',
    'start',
    '--event-ring-size',
    '100000',
  ]);
  let counted = 0;
  let hwm = 0;
  while (counted < seccomp) {
    const r = await get(`http://127.0.0.1:${port}/v1/syscalls`);
    if (r?.status === 200) counted = totalOf(r.body);
    hwm = Math.max(hwm, procStatus(p.pid ?? 0).hwm);
    if (counted < seccomp) await sleep(20);
  }
  const ms = performance.now() - t0;
  hwm = Math.max(hwm, procStatus(p.pid ?? 0).hwm);
  figures['agentIngestMs'] = Math.round(ms);
  figures['agentRecordsPerSec'] = Math.round(seccomp / (ms / 1000));
  figures['agentPeakRss'] = MiB(hwm);
  row(
    `ingest end to end: start → ${seccomp} SECCOMP records (${N} lines) counted in /v1/syscalls`,
    `${(ms / 1000).toFixed(2)} s, ${(seccomp / ms / 1000).toFixed(2)} M rec/s, peak RSS ${MiB(hwm)} MiB`,
    `grep -c ${Math.round(grepMs)} ms`,
    `${(ms / grepMs).toFixed(1)}× grep`,
    '≤ 20× grep',
  );
  await sleep(1000);
  const held = procStatus(p.pid ?? 0).rss;
  figures['agentRssHolding100k'] = MiB(held);
  row(
    'RSS holding a 100k-event ring after that ingest',
    `${MiB(held)} MiB`,
    `bare node ${MiB(bare.rss)} MiB`,
    `+${MiB(held - bare.rss)} MiB over bare node`,
    '≤ 96 MiB',
  );

  // HTTP: the agent's answers against a bare fastify sending the same bytes.
  const paths = ['/v1/syscalls', '/v1/events?limit=1000', '/metrics'];
  const bodies: Record<string, { body: string; type: string }> = {};
  for (const path of paths) {
    const r = await fetch(`http://127.0.0.1:${port}${path}`);
    bodies[path.split('?')[0] ?? path] = { body: await r.text(), type: r.headers.get('content-type') ?? 'text/plain' };
  }
  const floor = await bareFastify(bodies);
  // A second floor under the agent's own node flags: what the flags cost, apart from our code.
  const flagged = NODE_ARGS.length > 0 ? await bareFastify(bodies, true) : undefined;
  const best = (x: Awaited<ReturnType<typeof load>>, y: Awaited<ReturnType<typeof load>>) => (x.rps >= y.rps ? x : y);
  /** Interleaved, best of two: the machine is shared, and a 5 s window can fall on a busy moment. */
  const measure = async (url: string) => best(await load(url), await load(url));
  for (const path of paths) {
    const bare = path.split('?')[0] ?? path;
    // Each process first serves 1 s of the same load, so none is measured while its JIT warms up.
    await load(`http://127.0.0.1:${port}${path}`, 1);
    await load(`http://127.0.0.1:${floor.port}${bare}`, 1);
    if (flagged !== undefined) await load(`http://127.0.0.1:${flagged.port}${bare}`, 1);
    const a = await measure(`http://127.0.0.1:${port}${path}`);
    const b = await measure(`http://127.0.0.1:${floor.port}${bare}`);
    const f = flagged === undefined ? undefined : await measure(`http://127.0.0.1:${flagged.port}${bare}`);
    figures[`http ${path}`] = { agent: a, bare: b, ...(f === undefined ? {} : { bareWithAgentFlags: f }) };
    row(
      `${path} (${(a.bytes / 1024).toFixed(1)} KB) under load, 16 connections`,
      `${a.rps} req/s, p99 ${a.p99} ms`,
      `bare fastify ${b.rps} req/s` + (f === undefined ? '' : `; with the agent's node flags ${f.rps} req/s`),
      `${(a.rps / b.rps).toFixed(2)}× bare` +
        (f === undefined ? '' : ` (${(a.rps / f.rps).toFixed(2)}× bare with the same flags)`),
      '≥ 0.8× bare',
    );
  }
  if (flagged !== undefined) await stop(flagged.p);
  await stop(floor.p);
  await stop(p);
  return { file, seccomp };
}

/**
 * Row 3: cluster mode against the test bed's kube-apiserver: CLUSTER_PROFILES SeccompProfiles, and
 * the ingest's log read from the start into a 100k-event ring; RSS once both are done.
 */
async function clusterRss(file: string, seccomp: number, bare: { rss: number }): Promise<void> {
  const teardowns: (() => unknown)[] = [];
  const bed: TestLike = { teardown: (fn) => teardowns.push(fn), comment: () => {} };
  try {
    const cp = await startBed(bed);
    const admin = KubeClient.load(cp.kubeconfig);
    await cp.apply('{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"many"}}');
    const c0 = performance.now();
    await createAll(
      admin,
      Array.from({ length: CLUSTER_PROFILES }, (_v, i) => ({
        apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
        kind: 'SeccompProfile',
        metadata: { name: `p-${i}`, namespace: 'many' },
        spec: {
          defaultAction: i % 2 === 0 ? 'SCMP_ACT_ERRNO' : 'SCMP_ACT_LOG',
          syscalls: [{ names: ['ptrace', 'mount'], action: 'SCMP_ACT_ERRNO' }],
        },
      })),
      () => '/apis/security-profiles-operator.x-k8s.io/v1beta1/namespaces/many/seccompprofiles',
    );
    figures['clusterCreateMs'] = Math.round(performance.now() - c0);
    await createNodes(cp, ['limits-node']);
    const a = await startAgent(bed, {
      node: 'limits-node',
      kubeconfig: cp.kubeconfig,
      logLevel: 'warn',
      auditLog: file,
      auditFrom: 'start',
      eventRingSize: 100_000,
      nodeArgs: NODE_ARGS,
      nodeEnv: NODE_ENV,
      timing: { leaseDurationSeconds: 30, watchTimeoutSeconds: 120, watchdogMs: 300_000 },
    });
    const t0 = performance.now();
    await waitFor('ready', async () => ((await a.ready()) ? true : undefined), 600_000);
    await waitFor(
      'every record counted',
      async () => {
        const r = await get(`${a.url}/v1/syscalls`);
        return r?.status === 200 && totalOf(r.body) >= seccomp ? true : undefined;
      },
      600_000,
    );
    const doneMs = performance.now() - t0;
    await sleep(1000);
    const pid = a.proc.pid ?? 0;
    const { rss, hwm } = procStatus(pid);
    const st = await a.stats();
    figures['clusterRss'] = MiB(rss);
    figures['clusterPeakRss'] = MiB(hwm);
    figures['clusterReadyAndIngestedMs'] = Math.round(doneMs);
    row(
      `RSS, cluster mode, ${st.profiles} profiles + 100k events (real kube-apiserver; ring filled from ${seccomp} records)`,
      `${MiB(rss)} MiB (peak ${MiB(hwm)} MiB; ready and ingested ${(doneMs / 1000).toFixed(1)} s after start)`,
      `bare node ${MiB(bare.rss)} MiB`,
      `+${MiB(rss - bare.rss)} MiB over bare node`,
      '≤ 96 MiB',
    );
    await a.stop();
    admin.close();
  } finally {
    for (const fn of teardowns.reverse()) await fn();
  }
}

/** Row 1b and 2b: the in-process path without I/O, and bytes per held event. */
function inProcess(): void {
  const M = 300_000;
  const text = Array.from({ length: M }, (_, i) => stamped(SECCOMP[i % SECCOMP.length] ?? '', i)).join('\n') + '\n';
  const buf = Buffer.from(text, 'latin1');
  const store = new EventStore({ ringSize: 100_000 });
  const ingest = new Ingest({
    node: 'bench',
    resolve: resolveAuditSyscall,
    strict: true,
    // /proc says nothing (the corpus's pids are gone): attribution runs, finds nothing.
    attributor: new Attributor({
      proc: { stat: () => undefined, cgroup: () => undefined, bootTimeMs: () => 0 },
      podIndex: EMPTY_POD_INDEX,
    }),
    store,
  });
  const split = new LineSplitter();
  const feed = (): void => {
    for (let o = 0; o < buf.length; o += 256 * 1024) ingest.bytes(split.pushBytes(buf.subarray(o, o + 256 * 1024)));
  };
  feed(); // warm
  gc();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  feed();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  const rate = M / (ms / 1000);
  const cpuRate = M / ((cpu.user + cpu.system) / 1e6);
  figures['inProcessRecordsPerSec'] = Math.round(rate);
  figures['inProcessRecordsPerCpuSec'] = Math.round(cpuRate);
  // The floor: one JS loop reading every byte of the same records once (what any parser written in
  // JS that looks at each byte pays), and Buffer.indexOf finding every newline.
  const touch = (b: Buffer): number => {
    let n = 0;
    for (let i = 0; i < b.length; i++) if (b[i] === 0x20) n++;
    return n;
  };
  touch(buf);
  const f0 = performance.now();
  touch(buf);
  const touchRate = M / ((performance.now() - f0) / 1000);
  const n0 = performance.now();
  for (let s = 0; s < buf.length;) s = buf.indexOf(0x0a, s) + 1;
  const nlRate = M / ((performance.now() - n0) / 1000);
  figures['inProcessFloorTouchEveryByte'] = Math.round(touchRate);
  figures['inProcessFloorIndexOfNewline'] = Math.round(nlRate);
  gc();
  const before = process.memoryUsage();
  const s2 = new EventStore({ ringSize: 100_000 });
  const i2 = new Ingest({
    node: 'bench',
    resolve: resolveAuditSyscall,
    strict: true,
    attributor: new Attributor({
      proc: { stat: () => undefined, cgroup: () => undefined, bootTimeMs: () => 0 },
      podIndex: EMPTY_POD_INDEX,
    }),
    store: s2,
  });
  const sp2 = new LineSplitter();
  for (let o = 0; o < buf.length; o += 256 * 1024) i2.bytes(sp2.pushBytes(buf.subarray(o, o + 256 * 1024)));
  gc();
  const after = process.memoryUsage();
  const perEvent = (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / s2.size;
  figures['bytesPerHeldEvent'] = Math.round(perEvent);
  figures['interned'] = s2.interned;
  row(
    'parse + name + attribute + store, in process (300k corpus records)',
    `${(rate / 1e6).toFixed(2)} M rec/s (${(cpuRate / 1e6).toFixed(2)} M per CPU-second)`,
    `a JS loop reading each byte once ${(touchRate / 1e6).toFixed(2)} M lines/s; indexOf of each newline ${(nlRate / 1e6).toFixed(1)} M lines/s`,
    `${(rate / touchRate).toFixed(2)}× the byte loop`,
    '≥ 3 M rec/s',
  );
  row('bytes per held event (heap + array buffers / 100k)', `${Math.round(perEvent)} B`, '-', '-', '≤ 64 B');
}

/** Row 5: process start → /healthz, with PROFILES profiles to sync. */
async function healthz(dir: string, bare: { startMs: number }): Promise<void> {
  const profiles = join(dir, 'many-profiles');
  mkdirSync(profiles, { recursive: true });
  for (let i = 0; i < PROFILES; i++) {
    writeFileSync(
      join(profiles, `p${i}.yaml`),
      `apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nmetadata:\n  name: p${i}\n  namespace: bench\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  syscalls:\n    - action: SCMP_ACT_ALLOW\n      names: [read, write, exit_group, futex, openat, close]\n`,
    );
  }
  const port = await freePort();
  const t0 = performance.now();
  const p = agent([
    '--profiles-dir',
    profiles,
    '--kubelet-root',
    join(dir, 'kubelet-many'),
    '--listen',
    `127.0.0.1:${port}`,
    '--audit-source',
    'none',
  ]);
  let healthMs = NaN;
  let readyMs = NaN;
  while (Number.isNaN(readyMs)) {
    const h = Number.isNaN(healthMs) ? await get(`http://127.0.0.1:${port}/healthz`) : undefined;
    if (h?.status === 200) healthMs = performance.now() - t0;
    const r = await get(`http://127.0.0.1:${port}/readyz`);
    if (r?.status === 200) readyMs = performance.now() - t0;
    await sleep(5);
  }
  await stop(p);
  figures['healthzMs'] = Math.round(healthMs);
  figures['readyzMs'] = Math.round(readyMs);
  row(
    `process start → /healthz (${PROFILES} profiles; /readyz after the sync: ${(readyMs / 1000).toFixed(2)} s)`,
    `${Math.round(healthMs)} ms`,
    `bare node http ${Math.round(bare.startMs)} ms`,
    `${(healthMs / bare.startMs).toFixed(1)}× bare`,
    '≤ 300 ms',
  );
}

/** Row 6: records appended at TAIL_RATE a second for TAIL_SECONDS, the log rotated as auditd does. */
async function liveTail(dir: string): Promise<void> {
  const file = join(dir, 'live.log');
  writeFileSync(file, '');
  const port = await freePort();
  const p = agent([
    '--profiles-dir',
    mkdtempSync(join(dir, 'profiles-')),
    '--kubelet-root',
    join(dir, 'kubelet-live'),
    '--listen',
    `127.0.0.1:${port}`,
    '--audit-source',
    'auditd',
    '--audit-log',
    file,
    '--audit-from',
    'end',
  ]);
  while ((await get(`http://127.0.0.1:${port}/readyz`))?.status !== 200) await sleep(20);
  await sleep(300);
  const BATCH = 2000;
  const block = Buffer.from(
    Array.from({ length: BATCH }, (_, i) => stamped(SECCOMP[i % SECCOMP.length] ?? '', i)).join('\n') + '\n',
    'latin1',
  );
  const ROTATE_BYTES = 256 * 1024 * 1024;
  let fd = openSync(file, 'a');
  let written = 0;
  let sinceRotate = 0;
  const rss: number[] = [];
  const t0 = performance.now();
  let nextSample = 1000;
  while (performance.now() - t0 < TAIL_SECONDS * 1000) {
    const due = Math.floor(((performance.now() - t0) / 1000) * TAIL_RATE);
    while (written + BATCH <= due) {
      writeSync(fd, block);
      written += BATCH;
      sinceRotate += block.length;
    }
    if (sinceRotate >= ROTATE_BYTES) {
      // auditd's rotation: rename to .1 (the older .1 goes), a new file at the path.
      closeSync(fd);
      if (existsSync(`${file}.1`)) rmSync(`${file}.1`);
      renameSync(file, `${file}.1`);
      fd = openSync(file, 'a');
      sinceRotate = 0;
    }
    if (performance.now() - t0 >= nextSample) {
      rss.push(procStatus(p.pid ?? 0).rss);
      nextSample += 1000;
    }
    await sleep(5);
  }
  closeSync(fd);
  const writerDone = performance.now();
  let counted = 0;
  let stable = 0;
  while (counted < written && stable < 200) {
    const r = await get(`http://127.0.0.1:${port}/v1/syscalls`);
    const c = r?.status === 200 ? totalOf(r.body) : counted;
    stable = c === counted ? stable + 1 : 0;
    counted = c;
    if (counted < written) await sleep(25);
  }
  const behind = performance.now() - writerDone;
  rss.push(procStatus(p.pid ?? 0).rss);
  await stop(p);
  const rate = written / TAIL_SECONDS;
  const first = rss[Math.min(4, rss.length - 1)] ?? NaN;
  const last = rss.at(-1) ?? NaN;
  figures['tail'] = { offered: written, counted, rate, behindMs: Math.round(behind), rssMiB: rss.map(MiB) };
  row(
    `live tail: ${Math.round(rate / 1000)}k records/s offered for ${TAIL_SECONDS} s (rotated every 256 MiB)`,
    `${counted === written ? 'kept up' : `${written - counted} lost or behind`}, done ${(behind / 1000).toFixed(2)} s after the writer; RSS ${MiB(first)} → ${MiB(Math.max(...rss))} max → ${MiB(last)} MiB`,
    `offered ${written}`,
    `${((counted / written) * 100).toFixed(2)} % counted`,
    '≥ 200k/s for 60 s, 0 lost, RSS flat',
  );
}

/** Row 7: the README's first command, twice (the second one warm). */
function readme(dir: string, bare: { startMs: number }): void {
  const run = (): number => {
    const t0 = performance.now();
    spawnSync(
      'npm',
      [
        'run',
        '-s',
        'agent',
        '--',
        '--profiles-dir',
        'profiles',
        '--kubelet-root',
        join(dir, 'kubelet-readme'),
        '--once',
      ],
      {
        cwd: repoRoot,
        stdio: 'ignore',
      },
    );
    return performance.now() - t0;
  };
  run();
  const warm = run();
  const t0 = performance.now();
  spawnSync('npm', ['run', '-s', 'env'], { cwd: repoRoot, stdio: 'ignore' });
  const npmFloor = performance.now() - t0;
  figures['readmeWarmMs'] = Math.round(warm);
  row(
    "README's first command, warm (dist/ current)",
    `${(warm / 1000).toFixed(2)} s, no compile`,
    `npm run (nothing) ${Math.round(npmFloor)} ms + bare node ${Math.round(bare.startMs)} ms`,
    `${(warm / (npmFloor + bare.startMs)).toFixed(1)}× floor`,
    'no compile when dist/ is current',
  );
}

const dir = mkdtempSync(join(tmpdir(), 'node-limits-'));
try {
  const bare = await bareNode();
  figures['bareNodeRss'] = MiB(bare.rss);
  figures['bareNodeStartMs'] = Math.round(bare.startMs);
  inProcess();
  const ingested = await ingestAndServe(dir, bare);
  if (CLUSTER_PROFILES > 0) {
    await clusterRss(ingested.file, ingested.seccomp, bare).catch((e: unknown) =>
      row('RSS, cluster mode', `not measured: ${e instanceof Error ? e.message : String(e)}`, '-', '-', '≤ 96 MiB'),
    );
  }
  await healthz(dir, bare);
  if (TAIL_SECONDS > 0) await liveTail(dir);
  readme(dir, bare);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
figures['loadAfter'] = loadavg().map((x) => +x.toFixed(2));
const jsonOut = arg('json', '');
if (jsonOut !== '') writeFileSync(jsonOut, JSON.stringify({ figures, rows }, null, 2) + '\n');
process.stdout.write(
  `load average before ${String(figures['loadBefore'])}, after ${String(figures['loadAfter'])}; ${process.version}; agent node flags: ${NODE_ARGS.join(' ') || 'none'}${Object.entries(
    NODE_ENV,
  )
    .map(([k, v]) => ` ${k}=${v}`)
    .join('')}\n\n`,
);
process.stdout.write('| measure | now | floor (same run) | ratio | goal |\n|---|---|---|---|---|\n');
for (const r of rows) process.stdout.write(`| ${r.measure} | ${r.now} | ${r.floor} | ${r.ratio} | ${r.goal} |\n`);
