/**
 * Scale simulation of cluster mode on a real kube-apiserver + etcd (benchmark, not a test: prints
 * figures, asserts nothing). Issue 11 "what it must show".
 *
 *   npm run build && nice -n 10 npx node --max-old-space-size=16384 dist/tests/bench/cluster-scale-sim.js \
 *     [--nodes 10,100,500,1000] [--profiles 200] [--edits 10] [--gap 2000] [--out docs/cluster-scale-sim.txt] \
 *     [--events-per-second 5] [--event-burst 50]
 *
 * (`npx node` is the project's Node 24; the real agent runs on the same binary, process.execPath.)
 *
 * For each N, on a fresh control plane: N Node objects; ONE real agent process (the CLI, started
 * first, so it wins the aggregator election; its CPU is read from /proc) and N-1 hollow agents in
 * this process: the real startCluster() each, with its own node name, its own KubeClient (its own
 * TLS connections and watches), an in-memory file system (tests/helpers/memory-fs.ts), no drift
 * guard and production timing. Then: create the profiles (initial sync until every one is Installed
 * N/N), let it settle, and edit `--edits` profiles `--gap` ms apart, timing each edit to Installed
 * N/N at the new generation. Writes and watch events come from the API server's /metrics
 * (apiserver_request_total, apiserver_watch_events_total) and from the agents' informer counters.
 *
 * Open files: every agent holds 3 watches (profiles, its pods, the aggregator Lease) on their own
 * HTTP/1.1 connections plus 1-2 kept-alive request sockets, in this process and again in the API
 * server. `ulimit -n` must be well above 5 × N; the figure of both processes is printed.
 * All agents authenticate as the admin (system:masters): API Priority and Fairness exempts them, so
 * no request is throttled or queued here as a ServiceAccount's would be in a real cluster.
 *
 * `--events-per-second` / `--event-burst` set every agent's Event recorder (hollow and real; default
 * the production 5/s, burst 50), so the curve can be measured with Events limited. The bench's own
 * requests (profile creates, edits, status reads) retry with a small backoff instead of ending the
 * run when the saturated API server does not answer; the retries are counted and printed.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { parseArgs } from 'node:util';
import { pino, type Logger } from 'pino';
import { DEFAULT_CLUSTER_TIMING, startCluster, type Cluster } from '../../agent/src/cluster/index.js';
import { KubeApiError, KubeClient } from '../../agent/src/kube/client.js';
import { loadKubeconfig } from '../../agent/src/kube/kubeconfig.js';
import { SYSCALL_CATALOG } from '../../shared/syscalls/index.js';
import { AGENT_NS, createNodes, startAgent, startBed, waitFor, type AgentProc } from '../cluster/sync-helpers.js';
import { memoryFs } from '../helpers/memory-fs.js';
import type { ControlPlane, TestLike } from '../testbed/cluster.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '10,100,500,1000' },
    profiles: { type: 'string', default: '200' },
    edits: { type: 'string', default: '10' },
    gap: { type: 'string', default: '2000' },
    'events-per-second': { type: 'string', default: String(DEFAULT_CLUSTER_TIMING.eventsPerSecond) },
    'event-burst': { type: 'string', default: String(DEFAULT_CLUSTER_TIMING.eventBurst) },
    'sync-limit': { type: 'string', default: '1800' },
    out: { type: 'string' },
  },
});
const SIZES = values.nodes.split(',').map(Number);
const N_PROFILES = Number(values.profiles);
const N_EDITS = Number(values.edits);
const GAP_MS = Number(values.gap);
/** How long the initial sync may take before the run at that N counts as not converged, in s. */
const SYNC_LIMIT_MS = Number(values['sync-limit']) * 1000;
const NS = 'sim';
const PROFILES = `/apis/security-profiles-operator.x-k8s.io/v1beta1/namespaces/${NS}/seccompprofiles`;
const REPORTS = '/apis/seccomp-agent.security-profiles-operator.x-k8s.io/v1alpha1/seccompnodereports';
/**
 * Production timing for every agent (the test timing's short leases would multiply the background
 * writes), but for the Event recorder's rate, which the flags set.
 */
const TIMING = {
  ...DEFAULT_CLUSTER_TIMING,
  eventsPerSecond: Number(values['events-per-second']),
  eventBurst: Number(values['event-burst']),
};
const CLK_TCK = 100;

const output: string[] = [];
const say = (line: string): void => {
  output.push(line);
  process.stdout.write(`${line}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number): string => (ms / 1000).toFixed(1);

// ---- the bench's own requests: retried, not fatal ----

/** Retries of the bench's own requests, by what was asked (reset per N). */
const retries = new Map<string, number>();
const retryCount = (): number => [...retries.values()].reduce((s, v) => s + v, 0);
const RETRY_ATTEMPTS = 30;

/**
 * `fn` until it answers: a failure (no answer within the client's deadline, a reset socket, a 5xx or
 * 429) is counted under `what` and retried after 250 ms doubling to 5 s, at most RETRY_ATTEMPTS times.
 * `done409` treats 409 Conflict as success (a create whose first attempt landed but whose answer was lost).
 */
async function retrying<T>(what: string, fn: () => Promise<T>, done409 = false): Promise<T | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e: unknown) {
      if (done409 && e instanceof KubeApiError && e.status === 409) return undefined;
      const permanent = e instanceof KubeApiError && e.status >= 400 && e.status < 500 && e.status !== 429;
      if (permanent || attempt >= RETRY_ATTEMPTS) throw e;
      retries.set(what, (retries.get(what) ?? 0) + 1);
      await sleep(Math.min(5000, 250 * 2 ** (attempt - 1)));
    }
  }
}

// ---- what /proc and the control plane's endpoints tell ----

/** utime + stime of a process, in ms. */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}
async function rssMiB(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN) / 1024;
}
const openFds = async (pid: number | 'self'): Promise<number> => (await readdir(`/proc/${pid}/fd`)).length;

/** The pid of the control plane process whose command line holds `marker` (its data directory). */
async function pidWith(marker: string): Promise<number> {
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const cmd = await readFile(`/proc/${d}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(marker) && !cmd.startsWith('/bin/sh')) return Number(d);
  }
  throw new Error(`no process with ${marker}`);
}

async function httpsText(cp: ControlPlane, path: string): Promise<string> {
  const ca = await readFile(cp.caFile);
  return new Promise((res, rej) => {
    const r = httpsRequest(`${cp.server}${path}`, { ca, headers: { authorization: `Bearer ${cp.token}` } }, (m) => {
      const chunks: Buffer[] = [];
      m.on('data', (c: Buffer) => chunks.push(c));
      m.on('end', () => res(Buffer.concat(chunks).toString('utf8')));
      m.on('error', rej);
    });
    r.on('error', rej);
    r.end();
  });
}

/** Counter samples of one metric family, by their label text. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    out.set(line.slice(name.length + 1, close), Number(line.slice(close + 2)));
  }
  return out;
}
const label = (labels: string, key: string): string => new RegExp(`(?:^|,)${key}="([^"]*)"`).exec(labels)?.[1] ?? '';

interface ApiCounts {
  /** `VERB resource[/subresource]` → requests. */
  writes: Map<string, number>;
  /** Watch events sent, by kind, summed over watchers. */
  watchEvents: Map<string, number>;
}
const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'APPLY', 'DELETE']);

async function apiCounts(cp: ControlPlane): Promise<ApiCounts> {
  const text = await httpsText(cp, '/metrics');
  const writes = new Map<string, number>();
  for (const [l, v] of samples(text, 'apiserver_request_total')) {
    const verb = label(l, 'verb');
    if (!WRITE_VERBS.has(verb)) continue;
    const sub = label(l, 'subresource');
    const key = `${verb} ${label(l, 'resource')}${sub === '' ? '' : `/${sub}`}`;
    writes.set(key, (writes.get(key) ?? 0) + v);
  }
  const watchEvents = new Map<string, number>();
  for (const [l, v] of samples(text, 'apiserver_watch_events_total')) {
    const kind = label(l, 'kind') || label(l, 'resource');
    watchEvents.set(kind, (watchEvents.get(kind) ?? 0) + v);
  }
  return { writes, watchEvents };
}
const delta = (a: Map<string, number>, b: Map<string, number>): Map<string, number> => {
  const out = new Map<string, number>();
  for (const [k, v] of b) if (v - (a.get(k) ?? 0) > 0) out.set(k, v - (a.get(k) ?? 0));
  return out;
};
const sumWhere = (m: Map<string, number>, f: (k: string) => boolean): number =>
  [...m].reduce((s, [k, v]) => (f(k) ? s + v : s), 0);

async function etcdBytes(cp: ControlPlane): Promise<number> {
  const text = await (await fetch(`${cp.etcdUrl}/metrics`)).text();
  const m = /^etcd_mvcc_db_total_size_in_use_in_bytes (\S+)$/m.exec(text);
  return Number(m?.[1] ?? NaN);
}

// ---- the agents ----

/** Warnings and errors of the hollow agents, counted by component and message (a silent run proves nothing). */
function countingLogger(): { log: Logger; count: () => number; kinds: Map<string, number> } {
  let n = 0;
  const kinds = new Map<string, number>();
  const field = (line: string, k: string): string => new RegExp(`"${k}":"([^"]{0,120})`).exec(line)?.[1] ?? '';
  const log = pino(
    { level: 'warn' },
    {
      write: (line: string) => {
        if (line.includes('not running as root')) return;
        n++;
        const kind = `${field(line, 'component')}: ${field(line, 'msg')} (${field(line, 'err').replace(/\d+/g, '#')})`;
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      },
    },
  );
  return { log, count: () => n, kinds };
}

interface Hollow {
  node: string;
  cluster: Cluster;
}

interface Row {
  n: number;
  startS: number;
  syncS: number;
  syncWrites: number;
  p50: number;
  max: number;
  writesPerChange: number;
  reportsPerChange: number;
  statusPerChange: number;
  eventsPerChange: number;
  leaseWritesPerS: number;
  profileEventsPerWatcher: number;
  agentEventsPerWatcher: number;
  reportEventsPerChange: number;
  profileBytes: number;
  reportBytes: number;
  etcdMiB: number;
  aggCpuMsPerChange: number;
  aggCpuSync: number;
  aggRss: number;
  apiCpuPct: number;
  benchRss: number;
  fdsBench: number;
  fdsApi: number;
  warnings: number;
  retries: number;
}

const sp = (name: string, action: string): Record<string, unknown> => ({
  apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
  kind: 'SeccompProfile',
  metadata: { name, namespace: NS },
  spec: { defaultAction: action, syscalls: [{ names: ['ptrace', 'mount', 'kexec_load'], action: 'SCMP_ACT_ERRNO' }] },
});

interface SpStatus {
  metadata: { generation: number };
  status?: { status?: string; observedGeneration?: number; installedNodes?: string };
}
const installedAt = (p: SpStatus, n: number, generation?: number): boolean =>
  p.status?.status === 'Installed' &&
  p.status.installedNodes === `${n}/${n}` &&
  p.status.observedGeneration === (generation ?? p.metadata.generation);

async function runOne(n: number): Promise<Row> {
  retries.clear();
  const teardowns: (() => unknown)[] = [];
  const bed: TestLike = { teardown: (fn) => teardowns.push(fn), comment: () => {} };
  const hollow: Hollow[] = [];
  const logs = countingLogger();
  let finished = false;
  try {
    const cp = await startBed(bed);
    const apiPid = await pidWith(`--cert-dir=${cp.dataDir}`);
    const admin = KubeClient.load(cp.kubeconfig);
    teardowns.push(() => admin.close());
    await cp.apply(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"${NS}"}}`);
    const names = Array.from({ length: n }, (_v, i) => `sim-${String(i).padStart(4, '0')}`);
    await createNodes(cp, names);

    // The real agent first: it takes the aggregator Lease before any hollow agent exists.
    const t0 = performance.now();
    const real: AgentProc = await startAgent(bed, {
      node: names[0] ?? 'sim-0000',
      kubeconfig: cp.kubeconfig,
      timing: TIMING,
      logLevel: 'warn',
    });
    const realPid = real.proc.pid ?? 0;
    await waitFor('the real agent leading', async () => ((await real.stats()).aggregator.leading ? true : undefined));

    const creds = loadKubeconfig(cp.kubeconfig);
    const BATCH = 50;
    for (let i = 1; i < n; i += BATCH) {
      const batch: Hollow[] = [];
      for (const node of names.slice(i, i + BATCH)) {
        const cluster = await startCluster({
          client: new KubeClient(creds),
          nodeName: node,
          namespace: AGENT_NS,
          kubeletRoot: '/var/lib/kubelet',
          catalog: SYSCALL_CATALOG,
          fs: memoryFs(),
          log: logs.log.child({ node }),
          chownAllowed: false,
          driftGuard: false,
          timing: TIMING,
        });
        batch.push({ node, cluster });
      }
      hollow.push(...batch);
      if (hollow.length % 250 < BATCH || hollow.length === n - 1)
        say(`# N=${n}: ${hollow.length} hollow agents started at ${secs(performance.now() - t0)} s`);
      await waitFor(
        'a batch of hollow agents ready',
        async () => (batch.every((h) => h.cluster.ready()) ? true : undefined),
        300_000,
      );
    }
    await waitFor(
      `the aggregator seeing ${n} live nodes`,
      async () => ((await real.stats()).aggregator.liveNodes.length === n ? true : undefined),
      300_000,
      async () => `the aggregator sees ${(await real.stats()).aggregator.liveNodes.length} live nodes`,
    );
    const startS = (performance.now() - t0) / 1000;
    say(`# N=${n}: ${n - 1} hollow agents + 1 real agent ready and ${n} nodes live in ${startS.toFixed(1)} s`);

    // ---- initial sync ----
    const s0api = await apiCounts(cp);
    const s0cpu = await cpuMs(realPid);
    const s0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < N_PROFILES) {
          const i = next++;
          await retrying(
            'POST seccompprofiles',
            () =>
              admin.request({
                method: 'POST',
                path: PROFILES,
                body: sp(`p-${i}`, i % 2 === 0 ? 'SCMP_ACT_ERRNO' : 'SCMP_ACT_LOG'),
              }),
            true,
          );
        }
      }),
    );
    let progress = 'no list answered yet';
    let shown = performance.now();
    await waitFor(
      `${N_PROFILES} profiles Installed ${n}/${n}`,
      async () => {
        const l = await admin.request<{ items: SpStatus[] }>({ method: 'GET', path: PROFILES, timeoutMs: 60_000 });
        const nodes = l.items.map((p) => Number(p.status?.installedNodes?.split('/')[0] ?? 0));
        progress = `${l.items.filter((p) => installedAt(p, n)).length}/${l.items.length} profiles Installed ${n}/${n}, fewest nodes ${Math.min(...nodes)}, at ${secs(performance.now() - s0)} s`;
        if (performance.now() - shown > 60_000) {
          shown = performance.now();
          say(`# N=${n}: sync: ${progress}`);
        }
        return l.items.length === N_PROFILES && l.items.every((p) => installedAt(p, n)) ? true : undefined;
      },
      SYNC_LIMIT_MS,
      async () => `last seen: ${progress}`,
    );
    const syncMs = performance.now() - s0;
    const aggCpuSync = (await cpuMs(realPid)) - s0cpu;
    const syncWrites = sumWhere(delta(s0api.writes, (await apiCounts(cp)).writes), () => true) - N_PROFILES;
    say(
      `# N=${n}: initial sync of ${N_PROFILES} profiles → all Installed ${n}/${n} in ${secs(syncMs)} s; ${syncWrites} writes by the agents; aggregator CPU ${secs(aggCpuSync)} s`,
    );

    // ---- settle, then the measured edits ----
    const activity = async (): Promise<number> =>
      hollow.reduce((s, h) => s + h.cluster.stats().reportWrites, 0) + (await real.stats()).aggregator.statusWrites;
    let last = await activity();
    for (let quiet = 0, i = 0; quiet < 3 && i < 60; i++) {
      await sleep(1000);
      const now = await activity();
      quiet = now === last ? quiet + 1 : 0;
      last = now;
    }
    const informerEvents = (): { profiles: number; lease: number } => {
      let profiles = 0;
      let lease = 0;
      for (const h of hollow) {
        const s = h.cluster.stats().informers;
        profiles += s['seccompprofiles']?.events ?? 0;
        lease += s['aggregator-lease']?.events ?? 0;
      }
      return { profiles, lease };
    };
    const b = {
      api: await apiCounts(cp),
      ev: informerEvents(),
      agg: await cpuMs(realPid),
      api_cpu: await cpuMs(apiPid),
      at: performance.now(),
    };
    const latencies: number[] = [];
    const pending = new Map<string, { t0: number; generation: number }>();
    let editing = true;
    const poller = (async () => {
      while (editing || pending.size > 0) {
        for (const [name, e] of pending) {
          const p = await retrying('GET seccompprofile', () =>
            admin.request<SpStatus>({ method: 'GET', path: `${PROFILES}/${name}` }),
          );
          if (p !== undefined && installedAt(p, n, e.generation)) {
            latencies.push(performance.now() - e.t0);
            pending.delete(name);
          }
        }
        await sleep(100);
      }
    })();
    for (let e = 0; e < N_EDITS; e++) {
      const name = `p-${e % N_PROFILES}`;
      const t = performance.now();
      // A merge patch is idempotent: a retry after a lost answer sets the same spec, same generation.
      const p = await retrying('PATCH seccompprofiles', () =>
        admin.request<SpStatus>({
          method: 'PATCH',
          path: `${PROFILES}/${name}`,
          body: { spec: { defaultAction: e % 2 === 0 ? 'SCMP_ACT_ALLOW' : 'SCMP_ACT_KILL' } },
          contentType: 'application/merge-patch+json',
        }),
      );
      if (p !== undefined) pending.set(name, { t0: t, generation: p.metadata.generation });
      if (e < N_EDITS - 1) await sleep(GAP_MS);
    }
    editing = false;
    let limit: NodeJS.Timeout | undefined;
    await Promise.race([
      poller,
      new Promise((_r, rej) => {
        limit = setTimeout(
          () => rej(new Error(`edits not Installed after 10 min: ${[...pending.keys()].join(', ')}`)),
          600_000,
        );
      }),
    ]).finally(() => clearTimeout(limit));
    last = await activity();
    for (let quiet = 0, i = 0; quiet < 3 && i < 60; i++) {
      await sleep(1000);
      const now = await activity();
      quiet = now === last ? quiet + 1 : 0;
      last = now;
    }
    const a = {
      api: await apiCounts(cp),
      ev: informerEvents(),
      agg: await cpuMs(realPid),
      api_cpu: await cpuMs(apiPid),
      at: performance.now(),
    };
    const windowS = (a.at - b.at) / 1000;
    const w = delta(b.api.writes, a.api.writes);
    const we = delta(b.api.watchEvents, a.api.watchEvents);
    const edits = w.get('PATCH seccompprofiles') ?? 0; // ours, the spec edits
    const reports = sumWhere(w, (k) => k.endsWith(' seccompnodereports'));
    const status = sumWhere(w, (k) => k.endsWith(' seccompprofiles/status'));
    const finalizers = edits - N_EDITS; // the deletion guard's JSON patches on the main resource
    const events = sumWhere(w, (k) => k.endsWith(' events'));
    const leases = sumWhere(w, (k) => k.endsWith(' leases'));
    const other = sumWhere(w, () => true) - edits - reports - status - events - leases;
    const byKind = [...w].map(([k, v]) => `${k}=${v}`).join(' ');
    say(`# N=${n}: writes in the ${windowS.toFixed(1)} s window: ${byKind}`);
    say(
      `# N=${n}: watch events in the window, by kind (summed over watchers): ${[...we].map(([k, v]) => `${k}=${v}`).join(' ')}`,
    );

    const one = JSON.stringify(
      await retrying('GET seccompprofile', () => admin.request({ method: 'GET', path: `${PROFILES}/p-0` })),
    );
    const rep = JSON.stringify(
      await retrying('GET seccompnodereport', () =>
        admin.request({ method: 'GET', path: `${REPORTS}/${names[1] ?? names[0] ?? ''}` }),
      ),
    );
    const sorted = [...latencies].sort((x, y) => x - y);
    const st = await real.stats();
    const row: Row = {
      n,
      startS,
      syncS: syncMs / 1000,
      syncWrites,
      p50: sorted[Math.floor(sorted.length / 2)] ?? NaN,
      max: sorted.at(-1) ?? NaN,
      writesPerChange: (reports + status + events + finalizers + other) / N_EDITS,
      reportsPerChange: reports / N_EDITS,
      statusPerChange: status / N_EDITS,
      eventsPerChange: events / N_EDITS,
      leaseWritesPerS: leases / windowS,
      profileEventsPerWatcher: (we.get('seccompprofiles') ?? we.get('SeccompProfile') ?? 0) / N_EDITS / n,
      agentEventsPerWatcher: (a.ev.profiles - b.ev.profiles) / N_EDITS / Math.max(1, n - 1),
      reportEventsPerChange: (we.get('seccompnodereports') ?? we.get('SeccompNodeReport') ?? 0) / N_EDITS,
      profileBytes: one.length,
      reportBytes: rep.length,
      etcdMiB: (await etcdBytes(cp)) / 1048576,
      aggCpuMsPerChange: (a.agg - b.agg) / N_EDITS,
      aggCpuSync: aggCpuSync / 1000,
      aggRss: await rssMiB(realPid),
      apiCpuPct: ((a.api_cpu - b.api_cpu) / (a.at - b.at)) * 100,
      benchRss: process.memoryUsage().rss / 1048576,
      fdsBench: await openFds('self'),
      fdsApi: await openFds(apiPid),
      warnings: logs.count(),
      retries: retryCount(),
    };
    say(
      `N=${n}: edit→Installed ${n}/${n} p50 ${row.p50.toFixed(0)} ms max ${row.max.toFixed(0)} ms; writes/change ${row.writesPerChange.toFixed(1)} (reports ${row.reportsPerChange.toFixed(1)}, status ${row.statusPerChange.toFixed(1)}, events ${row.eventsPerChange.toFixed(1)}), /N ${(row.writesPerChange / n).toFixed(2)}; node lease writes ${row.leaseWritesPerS.toFixed(1)}/s; SeccompProfile watch events/change/watcher ${row.profileEventsPerWatcher.toFixed(2)} (agents' informers: ${row.agentEventsPerWatcher.toFixed(2)}); report events/change ${row.reportEventsPerChange.toFixed(1)}; profile ${row.profileBytes} B, report ${row.reportBytes} B; etcd ${row.etcdMiB.toFixed(1)} MiB; aggregator CPU ${row.aggCpuMsPerChange.toFixed(0)} ms/change, ${row.aggCpuSync.toFixed(1)} s for the sync, RSS ${row.aggRss.toFixed(0)} MiB (${st.aggregator.statusWrites} status writes in all); apiserver CPU ${row.apiCpuPct.toFixed(0)}% of a core; bench RSS ${row.benchRss.toFixed(0)} MiB; fds bench ${row.fdsBench}, apiserver ${row.fdsApi}; hollow warnings ${row.warnings}`,
    );
    for (const [k, c] of logs.kinds) say(`#   hollow warnings ×${c}: ${k}`);
    finished = true;
    say(`# N=${n}: bench request retries ${row.retries}${[...retries].map(([k, c]) => `, ${k} ×${c}`).join('')}`);
    return row;
  } finally {
    if (!finished) for (const [k, c] of logs.kinds) say(`#   hollow warnings ×${c}: ${k}`);
    // Stop the hollow agents in parallel batches (each stop releases its Lease watches and sockets).
    for (let i = 0; i < hollow.length; i += 100)
      await Promise.all(hollow.slice(i, i + 100).map((h) => h.cluster.stop()));
    for (const fn of teardowns.reverse()) await fn();
  }
}

say(
  `# cluster scale simulation: ${N_PROFILES} profiles, ${N_EDITS} edits ${GAP_MS} ms apart; Events ${TIMING.eventsPerSecond}/s burst ${TIMING.eventBurst} per agent; ulimit -n ${await readFile('/proc/self/limits', 'utf8').then((t) => /Max open files\s+(\d+)/.exec(t)?.[1] ?? '?')}; ${new Date().toISOString()}`,
);
const rows: Row[] = [];
for (const n of SIZES) {
  try {
    rows.push(await runOne(n));
  } catch (e: unknown) {
    say(`# N=${n}: failed: ${e instanceof Error ? e.message : String(e)}`);
    say(`# N=${n}: bench request retries ${retryCount()}${[...retries].map(([k, c]) => `, ${k} ×${c}`).join('')}`);
    break;
  }
}
const cols: [string, (r: Row) => string][] = [
  ['N', (r) => String(r.n)],
  ['sync s', (r) => r.syncS.toFixed(1)],
  ['edit p50 ms', (r) => r.p50.toFixed(0)],
  ['edit max ms', (r) => r.max.toFixed(0)],
  ['writes/chg', (r) => r.writesPerChange.toFixed(1)],
  ['writes/chg/N', (r) => (r.writesPerChange / r.n).toFixed(2)],
  ['status/chg', (r) => r.statusPerChange.toFixed(1)],
  ['lease w/s', (r) => r.leaseWritesPerS.toFixed(1)],
  ['SP ev/chg/watcher', (r) => r.profileEventsPerWatcher.toFixed(2)],
  ['report ev/chg/N', (r) => (r.reportEventsPerChange / r.n).toFixed(2)],
  ['profile B', (r) => String(r.profileBytes)],
  ['report B', (r) => String(r.reportBytes)],
  ['etcd MiB', (r) => r.etcdMiB.toFixed(1)],
  ['agg CPU ms/chg', (r) => r.aggCpuMsPerChange.toFixed(0)],
  ['agg CPU sync s', (r) => r.aggCpuSync.toFixed(1)],
  ['apiserver %', (r) => r.apiCpuPct.toFixed(0)],
  ['bench RSS MiB', (r) => r.benchRss.toFixed(0)],
  ['fds bench/api', (r) => `${r.fdsBench}/${r.fdsApi}`],
  ['retries', (r) => String(r.retries)],
];
const widths = cols.map(([h, f]) => Math.max(h.length, ...rows.map((r) => f(r).length)));
say('');
say(cols.map(([h], i) => h.padStart(widths[i] ?? 0)).join('  '));
for (const r of rows) say(cols.map(([, f], i) => f(r).padStart(widths[i] ?? 0)).join('  '));
if (values.out !== undefined) await writeFile(values.out, `${output.join('\n')}\n`);
