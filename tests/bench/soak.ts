/**
 * Soak benchmark (not a test): a day of a node's life compressed into one run against one real
 * cluster-mode agent. Prints figures, asserts nothing.
 *
 *   npm run build && npx node dist/tests/bench/soak.js [--minutes 10] [--rate 200] [--clients 32]
 *       [--rotate-every 5] [--op-every 3] [--api-restarts 3] [--api-down 15] [--reconnect-every 20]
 *
 * A real etcd + kube-apiserver (the test bed) with the CRD, and one agent process (dist/, the real
 * CLI, as the cluster tests start it) tailing an audit.log this script owns. For the whole run:
 * - real-format `type=SECCOMP` records (the raw corpus lines, each with a fresh time, a unique
 *   serial and a pid of its own; now and then a SYSCALL + PROCTITLE pair the agent must ignore, and
 *   a record split over two writes as auditd's block writes do) appended at a steady rate;
 * - the file rotated as auditd does (`.3` → `.4` … `audit.log` → `.1`, a new `audit.log`);
 * - SeccompProfiles created, edited and deleted through the API, each followed by a check that the
 *   node's files converge to what the API holds (rendered by the same engine);
 * - the API server stopped and started again a few times (no profile op while it is down, and no
 *   file may change meanwhile);
 * - many `/v1/events?follow=true` NDJSON clients (some filtered by syscall), a few reconnected now
 *   and then, and periodic `/v1/syscalls` and `/v1/events` reads;
 * - the agent's VmRSS sampled every 2 s, and its V8 heap from its own /metrics every 10 s.
 *
 * Reading the memory figures: RSS follows V8's sawtooth (heap total grows until a major GC gives it
 * back; a period of about 7 minutes at 200 records/s), so a least-squares slope over half a run
 * depends on where the teeth fall. Flat means: the maxima of the two halves agree, and the slope of
 * V8 heap used is about 0.
 *
 * What is counted, from what the agent promises (docs/events.md): the per-container counts of
 * `/v1/syscalls` are exact for every record ever read, so their sum per syscall name must equal what
 * was written; the ring keeps only the last N events, so it is checked against the last N serials;
 * a follow stream sends every event ingested while it is subscribed, so each connection's window,
 * from the first record appended after its headers arrived to the last record appended before it
 * was closed (closed only once it had received that record, or after a 60 s wait), must hold every
 * record (that its filter matches) exactly once.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { get as httpGet, type ClientRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeClient } from '../../agent/src/kube/client.js';
import { resolveAuditSyscall } from '../../shared/syscalls/index.js';
import { createNodes, readMaybe, renderYaml, startAgent, startBed, waitFor } from '../cluster/sync-helpers.js';
import type { TestLike } from '../testbed/cluster.js';
import { sharedDir } from '../helpers/shared.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '200' },
    clients: { type: 'string', default: '32' },
    'rotate-every': { type: 'string', default: '5' },
    'op-every': { type: 'string', default: '3' },
    'api-restarts': { type: 'string', default: '3' },
    'api-down': { type: 'string', default: '15' },
    'reconnect-every': { type: 'string', default: '20' },
  },
});
const num = (k: keyof typeof values, min: number): number => {
  const v = Number(values[k]);
  if (!Number.isFinite(v) || v < min) throw new Error(`--${k}: "${String(values[k])}" is not a number >= ${min}`);
  return v;
};
const MINUTES = num('minutes', 0.5);
const RATE = num('rate', 1);
const N_CLIENTS = Math.floor(num('clients', 1));
const ROTATE_MS = num('rotate-every', 0.5) * 1000;
const OP_MS = num('op-every', 0.2) * 1000;
const API_RESTARTS = Math.floor(num('api-restarts', 0));
const API_DOWN_MS = num('api-down', 1) * 1000;
const RECONNECT_MS = num('reconnect-every', 1) * 1000;
const DURATION_MS = MINUTES * 60_000;
/** Clients 0 … STAYING-1 are never reconnected on purpose: their windows span the whole run. */
const STAYING = Math.min(N_CLIENTS, 8);
const RECONNECT_BATCH = 4;
/** Kept rotated files (auditd's num_logs = 5: audit.log plus .1 … .4). */
const NUM_LOGS = 5;
const NS = 'soak';
const MAX_PROFILES = 24;
const RING_SIZE = 10_000; // the agent's default --event-ring-size
/** Serials of SECCOMP records are SERIAL_BASE + index; other lines use their own range. */
const SERIAL_BASE = 1_000_000;
const OTHER_SERIAL_BASE = 900_000_000;
const FINAL_WAIT_MS = 60_000;
const CONVERGE_TIMEOUT_MS = 30_000;

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const teardowns: (() => unknown)[] = [];
const bed: TestLike = { teardown: (fn) => teardowns.push(fn), comment: (...a) => say(`# ${a.map(String).join(' ')}`) };
const cleanup = async (): Promise<void> => {
  for (const fn of teardowns.reverse()) await fn();
  teardowns.length = 0;
};
const pct = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

// ---------------------------------------------------------------------------------------------
// The audit log writer

interface Template {
  /** The record after `msg=audit(...): `, with `pid=` as a placeholder. */
  rest: string;
  /** The syscall name the agent will give it (undefined when its table has none). */
  name: string | undefined;
}

function loadTemplates(): { seccomp: Template[]; other: string[] } {
  const lines = readFileSync(join(sharedDir(), 'node-facts', 'corpus', 'audit-raw.log'), 'latin1').split('\n');
  const seccomp: Template[] = [];
  const other: string[] = [];
  for (const line of lines) {
    const m = /^type=(\w+) msg=audit\(\d+\.\d+:\d+\): (.*)$/.exec(line);
    if (m?.[1] === undefined || m[2] === undefined) continue;
    if (m[1] === 'SECCOMP') {
      const arch = /\barch=([0-9a-f]+)/.exec(m[2])?.[1] ?? '';
      const nr = Number(/\bsyscall=(\d+)/.exec(m[2])?.[1] ?? NaN);
      seccomp.push({ rest: m[2].replace(/\bpid=\d+/, 'pid=@PID@'), name: resolveAuditSyscall(arch, nr)?.name });
    } else if (m[1] === 'SYSCALL' || m[1] === 'PROCTITLE') {
      other.push(`type=${m[1]} msg=audit(@ID@): ${m[2]}`);
    }
  }
  if (seccomp.length === 0) throw new Error('no type=SECCOMP line in the corpus');
  return { seccomp, other };
}

/** A growable byte array indexed by record number. */
class Bytes {
  a: Uint8Array;
  constructor(n: number) {
    this.a = new Uint8Array(n);
  }
  get(i: number): number {
    return this.a[i] ?? 0;
  }
  inc(i: number): number {
    if (i >= this.a.length) {
      const b = new Uint8Array(Math.max(i + 1, this.a.length * 2));
      b.set(this.a);
      this.a = b;
    }
    const v = Math.min(255, (this.a[i] ?? 0) + 1);
    this.a[i] = v;
    return v;
  }
  set(i: number, v: number): void {
    if (i >= this.a.length) this.inc(i);
    this.a[i] = v;
  }
}

class AuditWriter {
  /** Index of the next SECCOMP record (its serial is SERIAL_BASE + index). */
  next = 0;
  rotations = 0;
  otherLines = 0;
  splitWrites = 0;
  /** Per record: template index + 1 (so the name of any record is known). */
  readonly kind: Bytes;
  readonly writtenByName = new Map<string, number>();
  private fd: number;
  private pending = '';
  private otherSerial = OTHER_SERIAL_BASE;
  private readonly started = Date.now();
  constructor(
    readonly path: string,
    readonly templates: { seccomp: Template[]; other: string[] },
    capacity: number,
  ) {
    this.kind = new Bytes(capacity);
    this.fd = openSync(path, 'a');
  }
  /** Name of record i. */
  nameOf(i: number): string | undefined {
    return this.templates.seccomp[this.kind.get(i) - 1]?.name;
  }
  /** Appends the records due by now at RATE per second. */
  tick(now: number): void {
    const due = Math.floor(((now - this.started) / 1000) * RATE);
    const parts: string[] = [this.pending];
    this.pending = '';
    while (this.next < due) {
      const i = this.next++;
      const ti = i % this.templates.seccomp.length;
      const t = this.templates.seccomp[ti];
      if (t === undefined) continue;
      this.kind.set(i, ti + 1);
      if (t.name !== undefined) this.writtenByName.set(t.name, (this.writtenByName.get(t.name) ?? 0) + 1);
      // Many pids over the day (the attribution cache must stay bounded): a new one every 50 records.
      const pid = 20_000 + (Math.floor(i / 50) % 12_000);
      const ms = Date.now();
      const stamp = `${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, '0')}`;
      parts.push(`type=SECCOMP msg=audit(${stamp}:${SERIAL_BASE + i}): ${t.rest.replace('@PID@', String(pid))}\n`);
      if (i % 10 === 9 && this.templates.other.length > 0) {
        for (let k = 0; k < 2; k++) {
          const o = this.templates.other[(i + k) % this.templates.other.length] ?? '';
          parts.push(`${o.replace('@ID@', `${stamp}:${this.otherSerial++}`)}\n`);
          this.otherLines++;
        }
      }
    }
    let text = parts.join('');
    // Now and then the last record is cut in two, its end written by the next tick (auditd writes
    // in blocks, so a reader sees half lines).
    if (text.length > 40 && Math.random() < 0.2) {
      const cut = text.length - 1 - Math.floor(Math.random() * Math.min(120, text.length - 2));
      this.pending = text.slice(cut);
      text = text.slice(0, cut);
      this.splitWrites++;
    }
    if (text !== '') writeSync(this.fd, text);
  }
  /** Finishes a cut record (before a rotation or the end). */
  flush(): void {
    if (this.pending !== '') writeSync(this.fd, this.pending);
    this.pending = '';
  }
  /** As auditd's ROTATE: shift .N-2 … .1 up (the oldest is overwritten), audit.log → .1, a new audit.log. */
  rotate(): void {
    this.flush();
    closeSync(this.fd);
    for (let k = NUM_LOGS - 2; k >= 1; k--) {
      if (existsSync(`${this.path}.${k}`)) renameSync(`${this.path}.${k}`, `${this.path}.${k + 1}`);
    }
    renameSync(this.path, `${this.path}.1`);
    this.fd = openSync(this.path, 'a', 0o600);
    this.rotations++;
  }
  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Follow clients

interface Session {
  client: number;
  /** First record index of the window (the next one to be written when the headers arrived). */
  lo: number;
  counts: Bytes;
  received: number;
  maxIndex: number;
  outOfOrder: number;
  dupAnywhere: number;
  ended: boolean;
  /** Ended by the agent or the network rather than by us. */
  unexpected: boolean;
  /** closeSession has been called (by the reconnector, the watcher or the end). */
  claimed: boolean;
  req: ClientRequest;
}

interface WindowResult {
  client: number;
  expected: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  fullRun: boolean;
}

const SYSCALL_FILTERS = ['mkdir', 'getpid', 'openat', 'uname'];
const filterOf = (client: number): string | undefined =>
  client % 8 === 3 ? SYSCALL_FILTERS[Math.floor(client / 8) % SYSCALL_FILTERS.length] : undefined;

function openSession(url: string, client: number, writer: AuditWriter, capacity: number): Promise<Session> {
  const filter = filterOf(client);
  const path = `/v1/events?follow=true${filter === undefined ? '' : `&syscall=${filter}`}`;
  return new Promise((resolve, reject) => {
    const req = httpGet(`${url}${path}`, { agent: false }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`GET ${path}: ${String(res.statusCode)}`));
        res.resume();
        return;
      }
      const s: Session = {
        client,
        lo: writer.next,
        counts: new Bytes(capacity),
        received: 0,
        maxIndex: -1,
        outOfOrder: 0,
        dupAnywhere: 0,
        ended: false,
        unexpected: false,
        claimed: false,
        req,
      };
      let held = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const text = held + chunk;
        let start = 0;
        for (;;) {
          const nl = text.indexOf('\n', start);
          if (nl < 0) break;
          const line = text.slice(start, nl);
          start = nl + 1;
          const m = /"auditId":"[^"]*:(\d+)"/.exec(line);
          if (m?.[1] === undefined) continue;
          const i = Number(m[1]) - SERIAL_BASE;
          s.received++;
          if (i < s.maxIndex) s.outOfOrder++;
          else s.maxIndex = i;
          if (s.counts.inc(i) > 1) s.dupAnywhere++;
        }
        held = text.slice(start);
      });
      const end = (): void => {
        if (s.ended) return;
        s.ended = true;
        s.unexpected = true;
      };
      res.on('end', end);
      res.on('close', end);
      res.on('error', end);
      resolve(s);
    });
    req.on('error', reject);
  });
}

/**
 * Waits until the session has the last record of its window (`hi`, the last written that its
 * filter matches), closes it, and counts the window.
 */
async function closeSession(s: Session, hi: number, writer: AuditWriter, fullRun: boolean): Promise<WindowResult> {
  s.claimed = true;
  const filter = filterOf(s.client);
  const matches = (i: number): boolean => filter === undefined || writer.nameOf(i) === filter;
  let last = hi;
  while (last >= s.lo && !matches(last)) last--;
  const deadline = Date.now() + FINAL_WAIT_MS;
  while (!s.ended && s.counts.get(last) === 0 && last >= s.lo && Date.now() < deadline) await sleep(20);
  const unexpected = s.ended;
  s.ended = true;
  s.req.destroy();
  let expected = 0;
  let lost = 0;
  for (let i = s.lo; i <= hi; i++) {
    if (!matches(i)) continue;
    expected++;
    if (s.counts.get(i) === 0) lost++;
  }
  return {
    client: s.client,
    expected: unexpected ? 0 : expected,
    lost: unexpected ? 0 : lost,
    duplicated: s.dupAnywhere,
    outOfOrder: s.outOfOrder,
    fullRun: fullRun && !unexpected,
  };
}

// ---------------------------------------------------------------------------------------------
// Profiles

const POOL = [
  'ptrace',
  'mount',
  'umount2',
  'reboot',
  'kexec_load',
  'swapon',
  'swapoff',
  'init_module',
  'delete_module',
  'unshare',
  'setns',
  'bpf',
  'perf_event_open',
  'keyctl',
  'add_key',
  'request_key',
  'userfaultfd',
  'open_by_handle_at',
  'pivot_root',
  'chroot',
];
const ACTIONS = ['SCMP_ACT_ERRNO', 'SCMP_ACT_LOG', 'SCMP_ACT_ALLOW'];
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;
function randomSpec(): Record<string, unknown> {
  const names = [...POOL].sort(() => Math.random() - 0.5);
  const rules = Array.from({ length: 1 + Math.floor(Math.random() * 3) }, (_v, r) => ({
    names: names.slice(r * 5, r * 5 + 1 + Math.floor(Math.random() * 5)),
    action: pick(ACTIONS),
  }));
  return { defaultAction: pick(ACTIONS), syscalls: rules };
}
const PROFILES_PATH = `/apis/security-profiles-operator.x-k8s.io/v1beta1/namespaces/${NS}/seccompprofiles`;

interface SpItem {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; deletionTimestamp?: string };
  spec: Record<string, unknown>;
}

/** The files the API's current profiles render to: name.json → bytes. */
async function apiState(admin: KubeClient): Promise<Map<string, string>> {
  const l = await admin.request<{ items: SpItem[] }>({ method: 'GET', path: PROFILES_PATH });
  const texts = l.items
    .filter((p) => p.metadata.deletionTimestamp === undefined)
    .map((p) =>
      JSON.stringify({
        apiVersion: p.apiVersion,
        kind: p.kind,
        metadata: { name: p.metadata.name, namespace: p.metadata.namespace },
        spec: p.spec,
      }),
    );
  const out = new Map<string, string>();
  for (const [key, content] of renderYaml(texts)) out.set(`${key.split('/')[1] ?? key}.json`, content);
  return out;
}

async function diskState(root: string): Promise<Map<string, string>> {
  const dir = join(root, 'seccomp', 'operator', NS);
  const out = new Map<string, string>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    const c = await readMaybe(join(dir, n));
    if (c !== undefined) out.set(n, c);
  }
  return out;
}

const sameMap = (a: Map<string, string>, b: Map<string, string>): boolean =>
  a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
const diffMap = (want: Map<string, string>, got: Map<string, string>): string => {
  const missing = [...want.keys()].filter((k) => !got.has(k));
  const extra = [...got.keys()].filter((k) => !want.has(k));
  const wrong = [...want.keys()].filter((k) => got.has(k) && got.get(k) !== want.get(k));
  return `missing ${JSON.stringify(missing)} extra ${JSON.stringify(extra)} different ${JSON.stringify(wrong)}`;
};

// ---------------------------------------------------------------------------------------------
// The run

const rssKiB = async (pid: number): Promise<number> => {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
};
const mib = (kib: number): string => (kib / 1024).toFixed(1);
/** Least-squares slope of y over x. */
function slope(points: readonly { t: number; v: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((s, p) => s + p.t, 0) / n;
  const my = points.reduce((s, p) => s + p.v, 0) / n;
  let num2 = 0;
  let den = 0;
  for (const p of points) {
    num2 += (p.t - mx) * (p.v - my);
    den += (p.t - mx) ** 2;
  }
  return den === 0 ? NaN : num2 / den;
}
/** Sum of a metric over its label sets. */
function metric(text: string, name: string, labels = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    if (labels !== '' && !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

process.once('SIGINT', () => {
  void cleanup().finally(() => process.exit(130));
});

const dir = mkdtempSync(join(tmpdir(), 'seccomp-agent-soak-'));
teardowns.push(() => rmSync(dir, { recursive: true, force: true }));
try {
  const templates = loadTemplates();
  const capacity = Math.ceil((RATE * DURATION_MS) / 1000) + RATE * 60;
  const auditLog = join(dir, 'audit.log');
  closeSync(openSync(auditLog, 'a', 0o600));

  const cp = await startBed(bed);
  // From here on the run is bounded by its own length (build.sh, above, bounds the build wait).
  const hardStop = setTimeout(
    () => {
      say('soak: hard deadline passed; stopping');
      void cleanup().finally(() => process.exit(3));
    },
    DURATION_MS + 10 * 60_000,
  );
  hardStop.unref();
  const admin = KubeClient.load(cp.kubeconfig);
  teardowns.push(() => admin.close());
  await createNodes(cp, ['soak-node']);
  await cp.apply(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"${NS}"}}`);
  const agent = await startAgent(bed, {
    node: 'soak-node',
    kubeconfig: cp.kubeconfig,
    auditLog,
    logLevel: 'warn',
  });
  const pid = agent.proc.pid ?? 0;
  await waitFor('agent ready', async () => ((await agent.ready()) ? true : undefined), 120_000);
  const baselineKiB = await rssKiB(pid);

  say(
    `soak: ${MINUTES} min, ${RATE} records/s, ${N_CLIENTS} follow clients (${STAYING} for the whole run, ${RECONNECT_BATCH} reconnected every ${RECONNECT_MS / 1000} s), rotation every ${ROTATE_MS / 1000} s, a profile op every ${OP_MS / 1000} s, ${API_RESTARTS} API server restarts (${API_DOWN_MS / 1000} s down)`,
  );
  say(
    `agent pid ${pid}, RSS right after /readyz (the floor): ${mib(baselineKiB)} MiB; the ring (${RING_SIZE}) is full after ${(RING_SIZE / RATE).toFixed(0)} s`,
  );

  const writer = new AuditWriter(auditLog, templates, capacity);
  const sessions = new Map<number, Session>();
  for (let c = 0; c < N_CLIENTS; c++) sessions.set(c, await openSession(agent.url, c, writer, capacity));
  await sleep(1000);
  const withClientsKiB = await rssKiB(pid);
  say(`RSS with ${N_CLIENTS} follow clients connected, before any record: ${mib(withClientsKiB)} MiB`);

  const t0 = Date.now();
  const endAt = t0 + DURATION_MS;
  const running = (): boolean => Date.now() < endAt;
  const results: WindowResult[] = [];
  let unexpectedCloses = 0;
  const notes: string[] = [];
  const note = (s: string): void => {
    if (notes.length < 20) notes.push(s);
  };

  // Writer and rotations.
  const writeTimer = setInterval(() => writer.tick(Date.now()), 50);
  const rotateTimer = setInterval(() => writer.rotate(), ROTATE_MS);

  // RSS and heap samples.
  const rss: { t: number; v: number }[] = [];
  /** V8 heap used, heap total and external memory (KiB), from the agent's own process metrics. */
  const heapUsed: { t: number; v: number }[] = [];
  const heapTotal: { t: number; v: number }[] = [];
  const external: { t: number; v: number }[] = [];
  const sampler = (async () => {
    let n = 0;
    while (running()) {
      rss.push({ t: Date.now() - t0, v: await rssKiB(pid) });
      if (n++ % 5 === 0) {
        try {
          const m = await (await fetch(`${agent.url}/metrics`)).text();
          const t = Date.now() - t0;
          heapUsed.push({ t, v: metric(m, 'seccomp_agent_nodejs_heap_size_used_bytes') / 1024 });
          heapTotal.push({ t, v: metric(m, 'seccomp_agent_nodejs_heap_size_total_bytes') / 1024 });
          external.push({ t, v: metric(m, 'seccomp_agent_nodejs_external_memory_bytes') / 1024 });
        } catch {
          // best effort
        }
      }
      await sleep(2000);
    }
  })();

  // Unexpected closes are counted and the client reconnected.
  const watcher = (async () => {
    while (running()) {
      for (const [c, s] of sessions) {
        if (!s.ended || !s.unexpected || s.claimed) continue;
        unexpectedCloses++;
        note(`follow client ${c} closed by the other side after ${s.received} events`);
        results.push(await closeSession(s, writer.next - 1, writer, false));
        try {
          sessions.set(c, await openSession(agent.url, c, writer, capacity));
        } catch (e: unknown) {
          note(`reconnecting client ${c}: ${String(e)}`);
        }
      }
      await sleep(500);
    }
  })();

  // Planned reconnections.
  let planned = 0;
  const reconnector = (async () => {
    let nextClient = STAYING;
    await sleep(RECONNECT_MS);
    while (running() && N_CLIENTS > STAYING) {
      const batch: number[] = [];
      for (let k = 0; k < RECONNECT_BATCH && k < N_CLIENTS - STAYING; k++) {
        batch.push(nextClient);
        nextClient = nextClient + 1 >= N_CLIENTS ? STAYING : nextClient + 1;
      }
      const hi = writer.next - 1;
      await Promise.all(
        batch.map(async (c) => {
          const s = sessions.get(c);
          if (s === undefined || s.ended || s.claimed) return;
          results.push(await closeSession(s, hi, writer, false));
          planned++;
          sessions.set(c, await openSession(agent.url, c, writer, capacity));
        }),
      );
      await sleep(RECONNECT_MS);
    }
  })();

  // Readers.
  const reads = { syscalls: 0, events: 0, errors: 0, decreasing: 0, aboveWritten: 0, ringDisorder: 0 };
  const reader = (async () => {
    let lastTotal = 0;
    while (running()) {
      try {
        const r = await fetch(`${agent.url}/v1/syscalls`);
        const body = (await r.json()) as { items: { total: number }[] };
        const total = body.items.reduce((s, a) => s + a.total, 0);
        reads.syscalls++;
        if (total < lastTotal) reads.decreasing++;
        if (total > writer.next) reads.aboveWritten++;
        lastTotal = total;
        const e = await fetch(`${agent.url}/v1/events?limit=200`);
        const items = ((await e.json()) as { items: { seq: number }[] }).items;
        reads.events++;
        for (let k = 1; k < items.length; k++)
          if ((items[k]?.seq ?? 0) <= (items[k - 1]?.seq ?? 0)) reads.ringDisorder++;
      } catch (e: unknown) {
        reads.errors++;
        note(`reader: ${String(e)}`);
      }
      await sleep(1000);
    }
  })();

  // Profile ops and API server restarts, one at a time (no op while the API server is down).
  const converge: number[] = [];
  const ops = { create: 0, edit: 0, delete: 0, failed: 0, converged: 0, notConverged: 0 };
  const restarts = { done: 0, survived: 0, filesChangedWhileDown: 0, readyzDownSeen: 0, readyBackMs: [] as number[] };
  const restartAt = Array.from(
    { length: API_RESTARTS },
    (_v, k) => t0 + Math.round(((k + 1) / (API_RESTARTS + 1)) * 0.8 * DURATION_MS),
  );
  let profileSeq = 0;
  const live = new Set<string>();
  const profileOp = async (): Promise<boolean> => {
    const r = Math.random();
    try {
      if (live.size < 4 || (r < 0.25 && live.size < MAX_PROFILES)) {
        const name = `p-${profileSeq++}`;
        await admin.request({
          method: 'POST',
          path: PROFILES_PATH,
          body: {
            apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
            kind: 'SeccompProfile',
            metadata: { name, namespace: NS },
            spec: randomSpec(),
          },
        });
        live.add(name);
        ops.create++;
      } else if (r < 0.5) {
        const name = pick([...live]);
        await admin.request({ method: 'DELETE', path: `${PROFILES_PATH}/${name}` });
        live.delete(name);
        ops.delete++;
      } else {
        const name = pick([...live]);
        await admin.request({
          method: 'PATCH',
          path: `${PROFILES_PATH}/${name}`,
          body: { spec: randomSpec() },
          contentType: 'application/merge-patch+json',
        });
        ops.edit++;
      }
    } catch (e: unknown) {
      ops.failed++;
      note(`profile op: ${String(e)}`);
    }
    const c0 = Date.now();
    let want = new Map<string, string>();
    let got = new Map<string, string>();
    while (Date.now() - c0 < CONVERGE_TIMEOUT_MS) {
      try {
        want = await apiState(admin);
        got = await diskState(agent.root);
        if (sameMap(want, got)) {
          converge.push(Date.now() - c0);
          ops.converged++;
          return true;
        }
      } catch (e: unknown) {
        note(`convergence check: ${String(e)}`);
      }
      await sleep(50);
    }
    ops.notConverged++;
    note(`files not converged after ${CONVERGE_TIMEOUT_MS} ms: ${diffMap(want, got)}`);
    return false;
  };
  const control = (async () => {
    while (running()) {
      const due = restartAt[0];
      if (due !== undefined && Date.now() >= due) {
        restartAt.shift();
        const before = await diskState(agent.root);
        await cp.stopApiServer();
        const downUntil = Date.now() + API_DOWN_MS;
        while (Date.now() < downUntil) {
          if (!sameMap(before, await diskState(agent.root))) restarts.filesChangedWhileDown++;
          if (!(await agent.ready().catch(() => false))) restarts.readyzDownSeen++;
          await sleep(500);
        }
        await cp.startApiServer();
        const up = Date.now();
        restarts.done++;
        await waitFor(
          'agent /readyz after the API server restart',
          async () => ((await agent.ready()) ? true : undefined),
          120_000,
        ).then(
          () => restarts.readyBackMs.push(Date.now() - up),
          (e: unknown) => note(String(e)),
        );
        if ((await profileOp()) && agent.proc.exitCode === null) restarts.survived++;
      } else {
        await profileOp();
      }
      await sleep(OP_MS);
    }
  })();

  await Promise.all([control, reconnector, reader, sampler, watcher]);
  clearInterval(writeTimer);
  clearInterval(rotateTimer);
  writer.tick(Date.now());
  writer.close();
  const elapsedS = (Date.now() - t0) / 1000;
  const written = writer.next;

  // Every open session: its window runs to the last record.
  const hi = written - 1;
  for (const [c, s] of sessions) {
    if (s.claimed) continue;
    if (s.ended && s.unexpected) {
      unexpectedCloses++;
      note(`follow client ${c} closed by the other side after ${s.received} events`);
    }
    results.push(await closeSession(s, hi, writer, c < STAYING && s.lo === 0));
  }

  // The counts: every record, per name, once.
  type Agg = { total: number; syscalls: { name: string; count: number }[]; unresolved: { count: number }[] };
  let aggs: Agg[] = [];
  const sumTotal = (): number => aggs.reduce((s, a) => s + a.total, 0);
  const f0 = Date.now();
  while (Date.now() - f0 < FINAL_WAIT_MS) {
    aggs = ((await (await fetch(`${agent.url}/v1/syscalls`)).json()) as { items: Agg[] }).items;
    if (sumTotal() >= written) break;
    await sleep(200);
  }
  await sleep(3000); // late duplicates, if any, would arrive now
  aggs = ((await (await fetch(`${agent.url}/v1/syscalls`)).json()) as { items: Agg[] }).items;
  const counted = new Map<string, number>();
  for (const a of aggs) for (const s of a.syscalls) counted.set(s.name, (counted.get(s.name) ?? 0) + s.count);
  let countLost = 0;
  let countDup = 0;
  for (const name of new Set([...counted.keys(), ...writer.writtenByName.keys()])) {
    const d = (counted.get(name) ?? 0) - (writer.writtenByName.get(name) ?? 0);
    if (d < 0) countLost -= d;
    else countDup += d;
  }
  const unresolvedWritten = written - [...writer.writtenByName.values()].reduce((s, n) => s + n, 0);
  const unresolvedCounted = aggs.reduce((s, a) => s + a.unresolved.reduce((u, x) => u + x.count, 0), 0);

  // The ring: the last RING_SIZE records, in order, once each.
  const ring = (
    (await (await fetch(`${agent.url}/v1/events?limit=${RING_SIZE}`)).json()) as { items: { auditId: string }[] }
  ).items.map((e) => Number(e.auditId.slice(e.auditId.lastIndexOf(':') + 1)) - SERIAL_BASE);
  const ringWant = Math.min(RING_SIZE, written);
  let ringOk = ring.length === ringWant;
  for (let k = 0; ringOk && k < ring.length; k++) if (ring[k] !== written - ringWant + k) ringOk = false;

  const metrics = await (await fetch(`${agent.url}/metrics`)).text();
  const finalKiB = await rssKiB(pid);
  const alive = agent.proc.exitCode === null && agent.proc.signalCode === null;

  // ---- figures ----
  say('');
  say(
    `records written: ${written} SECCOMP (+${writer.otherLines} SYSCALL/PROCTITLE lines, ${writer.splitWrites} records split over two writes) in ${elapsedS.toFixed(0)} s = ${(written / elapsedS).toFixed(1)} records/s; ${writer.rotations} rotations (agent counted ${metric(metrics, 'seccomp_agent_audit_log_rotations_total')}: ${metric(metrics, 'seccomp_agent_audit_log_rotations_total', 'kind="rotated"')} rotated, ${metric(metrics, 'seccomp_agent_audit_log_rotations_total', 'kind="truncated"')} truncated)`,
  );
  say(
    `agent read ${metric(metrics, 'seccomp_agent_audit_lines_total')} lines (${written + writer.otherLines} written), ${metric(metrics, 'seccomp_agent_audit_malformed_lines_total')} malformed, ${metric(metrics, 'seccomp_agent_audit_events_total')} events`,
  );
  say(
    `/v1/syscalls counts: ${sumTotal()} for ${written} written: lost ${countLost}, duplicated ${countDup} (per syscall name; unresolved ${unresolvedCounted} counted for ${unresolvedWritten} written)`,
  );
  say(
    `ring (/v1/events?limit=${RING_SIZE}): ${ring.length} events, ${ringOk ? 'exactly' : 'NOT'} the last ${ringWant} records in order`,
  );
  const windows = results.filter((r) => r.expected > 0);
  const sum = (xs: readonly WindowResult[], k: 'expected' | 'lost' | 'duplicated' | 'outOfOrder'): number =>
    xs.reduce((s, r) => s + r[k], 0);
  const full = windows.filter((r) => r.fullRun);
  say(
    `follow windows: ${windows.length} (${full.length} spanning the whole run, ${planned} planned reconnections, ${unexpectedCloses} closed by the agent): ${sum(windows, 'expected')} records expected, lost ${sum(windows, 'lost')}, duplicated ${sum(results, 'duplicated')}, out of order ${sum(results, 'outOfOrder')}`,
  );
  say(
    `  whole-run clients: ${full.map((r) => `#${r.client}${filterOf(r.client) === undefined ? '' : `(${filterOf(r.client) ?? ''})`} ${r.expected - r.lost}/${r.expected}`).join(', ')}`,
  );
  say(
    `profiles: ${ops.create} created, ${ops.edit} edited, ${ops.delete} deleted (${ops.failed} API calls failed); files converged to the API state ${ops.converged}/${ops.converged + ops.notConverged} times, p50 ${pct(converge, 50)} ms, p99 ${pct(converge, 99)} ms, max ${Math.max(...converge, 0)} ms`,
  );
  say(
    `API server restarts: ${restarts.survived}/${restarts.done} survived (agent alive, next op converged); files changed while it was down: ${restarts.filesChangedWhileDown}; agent /readyz not 200 in ${restarts.readyzDownSeen} of the down-time probes; /readyz 200 again ${restarts.readyBackMs.map((m) => `${m} ms`).join(', ')} after each start`,
  );
  say(
    `readers: ${reads.syscalls} /v1/syscalls and ${reads.events} /v1/events reads, ${reads.errors} errors, total decreasing ${reads.decreasing} times, above written ${reads.aboveWritten} times, ring out of order ${reads.ringDisorder}`,
  );
  say('RSS per minute (min–max MiB):');
  const minutes = Math.ceil(DURATION_MS / 60_000);
  const perMinute: string[] = [];
  for (let m = 0; m < minutes; m++) {
    const vs = rss.filter((p) => p.t >= m * 60_000 && p.t < (m + 1) * 60_000).map((p) => p.v);
    if (vs.length > 0) perMinute.push(`${m + 1}: ${mib(Math.min(...vs))}–${mib(Math.max(...vs))}`);
  }
  for (let k = 0; k < perMinute.length; k += 5) say(`  ${perMinute.slice(k, k + 5).join('   ')}`);
  const half = DURATION_MS / 2;
  const first = rss.filter((p) => p.t < half);
  const second = rss.filter((p) => p.t >= half);
  const perMin = (pts: { t: number; v: number }[]): number => (slope(pts) * 60_000) / 1024;
  const maxOf = (pts: { t: number; v: number }[]): number => Math.max(...pts.map((p) => p.v));
  say(
    `RSS slope: first half ${perMin(first).toFixed(2)} MiB/min, second half ${perMin(second).toFixed(2)} MiB/min; max first half ${mib(maxOf(first))} MiB, second half ${mib(maxOf(second))} MiB (ratio ${(maxOf(second) / maxOf(first)).toFixed(3)}); floor ${mib(baselineKiB)} MiB`,
  );
  const lastRun = rss[rss.length - 1]?.v ?? NaN;
  say(
    `RSS at the last sample of the run ${mib(lastRun)} MiB (${(lastRun / baselineKiB).toFixed(2)} × floor); after the final checks (a ${RING_SIZE}-event /v1/events answer) ${mib(finalKiB)} MiB`,
  );
  // The per-minute minimum (after a GC) shows growth under the sawtooth.
  const troughs: { t: number; v: number }[] = [];
  for (let m = 0; m < minutes; m++) {
    const vs = rss.filter((p) => p.t >= m * 60_000 && p.t < (m + 1) * 60_000).map((p) => p.v);
    if (vs.length > 0) troughs.push({ t: m * 60_000, v: Math.min(...vs) });
  }
  say(
    `RSS per-minute minimum: slope first half ${perMin(troughs.filter((p) => p.t < half)).toFixed(2)} MiB/min, second half ${perMin(troughs.filter((p) => p.t >= half)).toFixed(2)} MiB/min`,
  );
  for (const [label, pts] of [
    ['V8 heap used', heapUsed],
    ['V8 heap total', heapTotal],
    ['external (Buffers)', external],
  ] as const) {
    if (pts.length < 2) continue;
    say(
      `${label}: ${mib(pts[0]?.v ?? NaN)} MiB at the start, ${mib(pts[pts.length - 1]?.v ?? NaN)} MiB at the end; slope first half ${perMin(pts.filter((p) => p.t < half)).toFixed(2)} MiB/min, second half ${perMin(pts.filter((p) => p.t >= half)).toFixed(2)} MiB/min`,
    );
  }
  say(`agent ${alive ? 'still running' : 'EXITED'} at the end`);
  const logLines = agent
    .log()
    .split('\n')
    .filter((l) => l !== '');
  const byMsg = new Map<string, number>();
  for (const l of logLines) {
    const m = /"msg":"([^"]*)"/.exec(l);
    const k = m?.[1] ?? l.slice(0, 80);
    byMsg.set(k, (byMsg.get(k) ?? 0) + 1);
  }
  say(
    `agent log (warn and above): ${logLines.length} lines${[...byMsg]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([k, n]) => `; ${n}× ${k}`)
      .join('')}`,
  );
  for (const n of notes) say(`note: ${n}`);
} finally {
  await cleanup();
}
