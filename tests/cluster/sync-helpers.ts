/**
 * Helpers of the cluster sync tests: a control plane with the CRD, Node objects, and cluster agents
 * as separate processes (the real CLI, dist/agent/src/main.js), each with its own node name and
 * kubelet root. Not a test file (tap runs *.test.ts only).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CRDS } from '../../shared/profile/crd.js';
import { computeDesired, type KnownProfile } from '../../shared/profile/desired.js';
import type { Layout } from '../../shared/profile/layout.js';
import { validateProfile } from '../../shared/profile/validate.js';
import { SYSCALL_CATALOG } from '../../shared/syscalls/index.js';
import type { ClusterStats, ClusterTiming } from '../../agent/src/cluster/index.js';
import type { KubeClient } from '../../agent/src/kube/client.js';
import { repoPath, startControlPlane, type ControlPlane, type TestLike } from '../testbed/cluster.js';

export const NS = 'seccomp-test';
export const AGENT_NS = 'seccomp-agent';
export const WORKSHOP_FILES = [
  'complainer.yaml',
  'multiple.yaml',
  'confine-nginx-explicit-deny.yaml',
  'confine-nginx-explicit-allow.yaml',
];

/** Short timings so tests do not wait out production leases and watch timeouts. */
export const TEST_TIMING: Partial<ClusterTiming> = {
  leaseDurationSeconds: 6,
  watchTimeoutSeconds: 20,
  watchdogMs: 45_000,
  backoffInitialMs: 200,
  backoffMaxMs: 3000,
  electionLeaseSeconds: 6,
  electionRenewMs: 2000,
  electionJitterMs: 500,
  heartbeatSilenceMs: 3000,
};

/** A control plane with the SeccompProfile CRD of a layout established and the agent and workshop namespaces. */
export async function startBed(t: TestLike, layout: Layout = 'Namespaced'): Promise<ControlPlane> {
  const cp = await startControlPlane(t);
  // The report CRD and the one SeccompProfile CRD of the layout (a cluster has one layout at a time).
  const crds = CRDS.filter((c) => c.layout === undefined || c.layout === layout).map((c) => c.files[0] ?? '');
  for (const f of crds) {
    const r = await cp.kubectl(['apply', '-f', repoPath(f)]);
    if (r.code !== 0) throw new Error(`applying ${f}: ${r.stderr}`);
  }
  const est = await cp.kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd/seccompprofiles.security-profiles-operator.x-k8s.io',
  ]);
  if (est.code !== 0) throw new Error(`CRD not established: ${est.stderr}`);
  await cp.apply(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"${AGENT_NS}"}}`);
  await cp.kubectl(['apply', '-f', repoPath('profiles', 'ns.yaml')]);
  return cp;
}

/** POSTs every object to `path(obj)`, 8 at a time (kubectl apply's GET before each create doubles the work). */
export async function createAll(
  client: KubeClient,
  objects: readonly Record<string, unknown>[],
  path: (o: Record<string, unknown>) => string,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < objects.length) {
        const body = objects[next++];
        if (body !== undefined) await client.request({ method: 'POST', path: path(body), body, timeoutMs: 120_000 });
      }
    }),
  );
}

export async function createNodes(cp: ControlPlane, names: readonly string[]): Promise<void> {
  const items = names.map((n) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n, labels: { 'kubernetes.io/hostname': n } },
  }));
  await cp.apply(JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
}

/** One agent process. */
export interface AgentProc {
  node: string;
  root: string;
  url: string;
  proc: ChildProcess;
  stats(): Promise<ClusterStats>;
  ready(): Promise<boolean>;
  /** SIGTERM, waits for exit. */
  stop(): Promise<void>;
  /** SIGKILL (a crash), waits for exit. */
  kill(): Promise<void>;
  log(): string;
}

export const AGENT_MAIN = repoPath('dist', 'agent', 'src', 'main.js');

// `sh -c AGENT_WATCHDOG name <dir> <cmd...>`: runs cmd (exec, so the pid is the agent's) as the
// leader of its own process group, beside a reader of fd 3 that kills the group and removes <dir>
// when the pipe closes.
const AGENT_WATCHDOG =
  'd=$1; shift; (cat <&3 >/dev/null; [ -n "$d" ] && rm -rf -- "$d"; kill -KILL 0) & unset NODE_OPTIONS; exec "$@" 3<&-';

/**
 * This process's environment without what tap adds for its own children (NODE_OPTIONS importing
 * @tapjs/processinfo, which puts module-loader hooks into every agent: slower to start, and not
 * what runs on a node).
 */
function agentEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS_') && !k.startsWith('TAP')) env[k] = v;
  }
  return env;
}

export interface AgentOptions {
  node: string;
  kubeconfig: string;
  root?: string;
  timing?: Partial<ClusterTiming>;
  logLevel?: string;
  /** HOST:PORT for --listen; default 127.0.0.1:0. */
  listen?: string;
  /** Tail this auditd log (from its end, unless `auditFrom`) for syscall events; default no event source. */
  auditLog?: string;
  /** Where to start reading `auditLog`; default `end`. */
  auditFrom?: 'start' | 'end';
  /** --event-ring-size; default the agent's. */
  eventRingSize?: number;
  /** --namespace (where the Leases live); default AGENT_NS. */
  namespace?: string;
  /** Flags for node itself, e.g. `['--cpu-prof', '--cpu-prof-dir=/tmp/prof']` (benchmarks). */
  nodeArgs?: readonly string[];
  /** Environment for the agent on top of this process's (e.g. the image's MALLOC_ARENA_MAX). */
  nodeEnv?: Readonly<Record<string, string>>;
}

export async function startAgent(t: TestLike, o: AgentOptions): Promise<AgentProc> {
  await access(AGENT_MAIN).catch(() => {
    throw new Error(`${AGENT_MAIN} is missing: run 'npm run build' first (npm test does)`);
  });
  const root = o.root ?? (await mkdtemp(join(tmpdir(), `seccomp-agent-${o.node}-`)));
  if (o.root === undefined) t.teardown(() => rm(root, { recursive: true, force: true }));
  // The agent runs under a watchdog (as the test bed's etcd and kube-apiserver do): when this test
  // process dies without its teardown (a tap timeout ends in SIGKILL), fd 3 closes and the watchdog
  // kills the agent and removes its kubelet root, so no agent outlives its test.
  const proc = spawn(
    '/bin/sh',
    [
      '-c',
      AGENT_WATCHDOG,
      'agent-watchdog',
      o.root === undefined ? root : '',
      process.execPath,
      ...(o.nodeArgs ?? []),
      AGENT_MAIN,
      '--kubeconfig',
      o.kubeconfig,
      '--node-name',
      o.node,
      '--kubelet-root',
      root,
      '--listen',
      o.listen ?? '127.0.0.1:0',
      '--namespace',
      o.namespace ?? AGENT_NS,
      '--log-level',
      o.logLevel ?? 'info',
      ...(o.auditLog === undefined
        ? ['--audit-source', 'none']
        : ['--audit-source', 'auditd', '--audit-log', o.auditLog, '--audit-from', o.auditFrom ?? 'end']),
      ...(o.eventRingSize === undefined ? [] : ['--event-ring-size', String(o.eventRingSize)]),
    ],
    {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      env: { ...agentEnv(), ...o.nodeEnv, SECCOMP_AGENT_TEST_TIMING: JSON.stringify({ ...TEST_TIMING, ...o.timing }) },
    },
  );
  proc.stdio[3]?.on('error', () => {});
  let out = '';
  let errLog = '';
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (d: string) => {
    errLog += d;
    if (errLog.length > 2_000_000) errLog = errLog.slice(-1_000_000);
  });
  const exited = new Promise<void>((res) => proc.once('exit', () => res()));
  const url = await new Promise<string>((res, rej) => {
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (d: string) => {
      out += d;
      const m = /listening (\S+)/.exec(out);
      if (m?.[1] !== undefined) res(m[1]);
    });
    proc.once('exit', (code) =>
      rej(new Error(`agent ${o.node} exited (${String(code)}) before listening:\n${errLog.slice(-3000)}`)),
    );
  });
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(sig);
    await exited;
  };
  t.teardown(async () => {
    await signal('SIGKILL');
    proc.stdio[3]?.destroy();
  });
  const get = async <T>(path: string): Promise<T> => {
    const r = await fetch(`${url}${path}`);
    return (await r.json()) as T;
  };
  return {
    node: o.node,
    root,
    url,
    proc,
    stats: () => get<ClusterStats>('/v1/cluster'),
    ready: async () => (await fetch(`${url}/readyz`)).status === 200,
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    log: () => errLog,
  };
}

/** Polls until `check` returns a value other than undefined; throws with the last state after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  describe?: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr = '';
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e: unknown) {
      lastErr = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() > deadline) {
      const state = describe === undefined ? '' : await describe().catch(() => '');
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastErr === '' ? '' : ` (last error: ${lastErr})`}${state === '' ? '' : `\n${state}`}`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A SeccompProfile as kubectl returns it (the parts tests read). */
export interface SpObject {
  metadata: { name: string; namespace: string; generation: number; finalizers?: string[]; deletionTimestamp?: string };
  spec: Record<string, unknown>;
  status?: {
    status?: string;
    localhostProfile?: string;
    observedGeneration?: number;
    activeWorkloads?: string[];
    conditions?: { type: string; status: string; reason?: string; message?: string; observedGeneration?: number }[];
    installedNodes?: string;
    specRevision?: string;
    wouldBlock?: { calls: number; pods: number; syscalls: string[] };
  };
}

export async function getProfiles(cp: ControlPlane, ns?: string): Promise<SpObject[]> {
  const args = ['get', 'seccompprofiles', '-o', 'json', ...(ns === undefined ? ['-A'] : ['-n', ns])];
  const r = await cp.kubectl(args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`kubectl get seccompprofiles: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { items: SpObject[] }).items;
}

export async function getProfile(cp: ControlPlane, ns: string, name: string): Promise<SpObject | undefined> {
  const r = await cp.kubectl(['get', 'seccompprofile', '-n', ns, name, '-o', 'json']);
  if (r.code !== 0) {
    if (/NotFound/.test(r.stderr)) return undefined;
    throw new Error(`kubectl get seccompprofile ${ns}/${name}: ${r.stderr}`);
  }
  return JSON.parse(r.stdout) as SpObject;
}

/** A SeccompNodeReport as kubectl returns it. */
export interface ReportObject {
  metadata: { name: string; ownerReferences?: { kind: string; name: string; uid: string }[] };
  nodeName: string;
  appliedRevision: string;
  installed: number;
  failedCount: number;
  inUseCount: number;
  failed: { profile: string; generation: number; reason: string; message: string }[];
  inUse: { profile: string; pods: string[] }[];
}

export async function getReports(cp: ControlPlane): Promise<ReportObject[]> {
  const r = await cp.kubectl(['get', 'seccompnodereports', '-o', 'json'], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`kubectl get seccompnodereports: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { items: ReportObject[] }).items;
}

/** The pods a node's report names for a profile (undefined: no report, or not in use there). */
export async function podsInReport(cp: ControlPlane, node: string, key: string): Promise<string[] | undefined> {
  const r = (await getReports(cp)).find((x) => x.nodeName === node);
  return r?.inUse.find((u) => u.profile === key)?.pods;
}

/** Status writes by the agents, in all (only the aggregator writes any). */
export async function statusWrites(agents: readonly AgentProc[]): Promise<number> {
  const all = await Promise.all(agents.map((a) => a.stats().catch(() => undefined)));
  return all.reduce((s, x) => s + (x?.aggregator.statusWrites ?? 0), 0);
}

/** The agent that is the aggregator now, if any. */
export async function aggregatorOf(agents: readonly AgentProc[]): Promise<AgentProc | undefined> {
  for (const a of agents) {
    const s = await a.stats().catch(() => undefined);
    if (s?.aggregator.leading === true) return a;
  }
  return undefined;
}

/** The bytes the engine renders for the SeccompProfiles in YAML text (the standalone path). */
export function renderYaml(texts: readonly string[]): Map<string, string> {
  const known: KnownProfile[] = [];
  for (const text of texts) {
    for (const doc of parseAllDocuments(text)) {
      const v: unknown = doc.toJS();
      if ((v as { kind?: string } | null)?.kind !== 'SeccompProfile') continue;
      const c = validateProfile(v, SYSCALL_CATALOG);
      if (c.ok) known.push({ ok: true, profile: c.profile, warnings: c.warnings });
    }
  }
  const out = new Map<string, string>();
  for (const [key, d] of computeDesired(known)) if (d.kind === 'install') out.set(key, d.content);
  return out;
}

export async function workshopYaml(): Promise<string[]> {
  return Promise.all(WORKSHOP_FILES.map((f) => readFile(repoPath('profiles', f), 'utf8')));
}

export const fileOf = (root: string, ns: string, name: string): string =>
  join(root, 'seccomp', 'operator', ns, `${name}.json`);

export async function readMaybe(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Human-readable state of profiles, for timeouts. */
export async function describeProfiles(cp: ControlPlane, ns?: string): Promise<string> {
  const items = await getProfiles(cp, ns);
  return items
    .slice(0, 30)
    .map(
      (p) =>
        `${p.metadata.namespace}/${p.metadata.name} gen=${p.metadata.generation} ${p.status?.status ?? '-'} ${p.status?.conditions?.[0]?.message ?? ''} nodes=${p.status?.installedNodes ?? '-'} specRevision=${p.status?.specRevision ?? '-'}`,
    )
    .join('\n');
}

/** A TCP proxy in front of the API server whose open connections can be cut silently. */
export interface BlackholeProxy {
  port: number;
  kubeconfig: string;
  /** Stops forwarding on every open connection without closing it; new connections still work. */
  blackhole(): number;
  close(): Promise<void>;
}

export async function startProxy(t: TestLike, cp: ControlPlane): Promise<BlackholeProxy> {
  const target = new URL(cp.server);
  const pairs = new Set<{ c: Socket; u: Socket }>();
  const all = new Set<Socket>();
  const server = createServer((c) => {
    const u = connect(Number(target.port), target.hostname);
    const pair = { c, u };
    pairs.add(pair);
    all.add(c);
    all.add(u);
    c.pipe(u);
    u.pipe(c);
    const drop = (): void => {
      pairs.delete(pair);
      all.delete(c);
      all.delete(u);
      c.destroy();
      u.destroy();
    };
    c.on('error', drop);
    u.on('error', drop);
    c.on('close', drop);
    u.on('close', drop);
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  const port = (server.address() as AddressInfo).port;
  const dir = await mkdtemp(join(tmpdir(), 'seccomp-agent-proxy-'));
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'proxy', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority': cp.caFile } },
      ],
      users: [{ name: 'u', user: { token: cp.token } }],
      contexts: [{ name: 'proxy', context: { cluster: 'proxy', user: 'u' } }],
      'current-context': 'proxy',
    }),
  );
  const close = async (): Promise<void> => {
    for (const s of all) s.destroy();
    await new Promise((res) => server.close(res));
    await rm(dir, { recursive: true, force: true });
  };
  t.teardown(close);
  return {
    port,
    kubeconfig,
    blackhole: () => {
      let n = 0;
      for (const p of pairs) {
        p.c.unpipe(p.u);
        p.u.unpipe(p.c);
        p.c.pause();
        p.u.pause();
        n++;
      }
      pairs.clear();
      return n;
    },
    close,
  };
}

/** A request that went through the delaying proxy, as the agent made it. */
export interface ProxiedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  /** The API server's status code, once its answer has begun. */
  status?: number;
  /** When the API server's answer (or, for a watch, its first byte) reached the proxy. */
  answeredAt?: number;
}

/**
 * Plain HTTP on loopback in front of the API server, so that a test can hold back what the agent
 * receives: `delay(match, ms)` makes every matching answer (each chunk of a watch, in order) reach
 * the agent `ms` later than the API server sent it. The order in which events reach one agent is
 * what this changes: a pod's DELETED after its profile's, a write's answer after the watch's
 * DELETED of the same object, as a loaded node or API server gives them.
 */
export interface DelayProxy {
  kubeconfig: string;
  /** Holds back answers to requests `match` accepts by `ms` (0 removes the rule); returns a remover. */
  delay(match: (r: ProxiedRequest) => boolean, ms: number): () => void;
  /** Every request so far, oldest first. */
  requests: ProxiedRequest[];
  /**
   * Cuts the agent off: open requests and watches are dropped, new connections are closed at once
   * (as when the node loses its network), until `up()`. The API server itself stays up.
   */
  down(): void;
  up(): void;
  close(): Promise<void>;
}

const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host']);
const forwardHeaders = (h: IncomingHttpHeaders): Record<string, string | string[]> => {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_HEADERS.has(k)) out[k] = v;
  return out;
};

export async function startDelayProxy(t: TestLike, cp: ControlPlane): Promise<DelayProxy> {
  const target = new URL(cp.server);
  const agent = new HttpsAgent({ keepAlive: true, ca: await readFile(cp.caFile) });
  const rules = new Set<{ match: (r: ProxiedRequest) => boolean; ms: number }>();
  const requests: ProxiedRequest[] = [];
  const delayOf = (r: ProxiedRequest): number => {
    let ms = 0;
    for (const rule of rules) if (rule.match(r)) ms = Math.max(ms, rule.ms);
    return ms;
  };
  let isDown = false;
  const server = createHttpServer((req, res) => {
    if (isDown) {
      res.destroy();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://proxy');
    const seen: ProxiedRequest = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams };
    requests.push(seen);
    if (requests.length > 20_000) requests.splice(0, 10_000);
    const up = httpsRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: forwardHeaders(req.headers),
        agent,
      },
      (ans) => {
        seen.status = ans.statusCode ?? 0;
        seen.answeredAt = Date.now();
        // Each piece keeps its place: it goes out at (when it came + the delay), never before the one
        // before it.
        let last = 0;
        let chain = Promise.resolve();
        const later = (fn: () => void): void => {
          const due = Math.max(Date.now() + delayOf(seen), last);
          last = due;
          chain = chain.then(() => new Promise<void>((r) => setTimeout(r, Math.max(0, due - Date.now()))).then(fn));
        };
        later(() => res.writeHead(ans.statusCode ?? 502, forwardHeaders(ans.headers)));
        ans.on('data', (c: Buffer) => later(() => res.write(c)));
        ans.on('end', () => later(() => res.end()));
        ans.on('error', () => later(() => res.destroy()));
      },
    );
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  server.on('connection', (c: Socket) => {
    if (isDown) c.destroy();
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  const port = (server.address() as AddressInfo).port;
  const dir = await mkdtemp(join(tmpdir(), 'seccomp-agent-delay-proxy-'));
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'proxy', cluster: { server: `http://127.0.0.1:${port}` } }],
      users: [{ name: 'u', user: { token: cp.token } }],
      contexts: [{ name: 'proxy', context: { cluster: 'proxy', user: 'u' } }],
      'current-context': 'proxy',
    }),
  );
  const close = async (): Promise<void> => {
    server.closeAllConnections();
    await new Promise((res) => server.close(res));
    agent.destroy();
    await rm(dir, { recursive: true, force: true });
  };
  t.teardown(close);
  return {
    kubeconfig,
    requests,
    delay: (match, ms) => {
      const rule = { match, ms };
      rules.add(rule);
      return () => rules.delete(rule);
    },
    down: () => {
      isDown = true;
      server.closeAllConnections();
    },
    up: () => {
      isDown = false;
    },
    close,
  };
}

/** A SeccompProfile with only a default action, as JSON for `cp.apply`. */
export const simpleProfile = (name: string, defaultAction: string, ns = NS): string =>
  JSON.stringify({
    apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
    kind: 'SeccompProfile',
    metadata: { name, namespace: ns },
    spec: { defaultAction },
  });

/**
 * A pod `ns/name` bound to `node` whose pod-level securityContext runs under `localhostProfile`
 * (any path, e.g. a cluster-scoped profile's `operator/<name>.json`).
 */
export const podWithProfile = (name: string, node: string, localhostProfile: string, ns = NS): string =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns },
    spec: {
      nodeName: node,
      securityContext: { seccompProfile: { type: 'Localhost', localhostProfile } },
      containers: [{ name: 'c', image: 'nginx:1.27' }],
    },
  });

/** A pod bound to `node` whose pod-level securityContext runs under `operator/<ns>/<profile>.json`. */
export const podUsing = (name: string, node: string, profile: string, ns = NS): string =>
  podWithProfile(name, node, `operator/${ns}/${profile}.json`, ns);
