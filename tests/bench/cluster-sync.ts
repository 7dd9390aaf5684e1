/**
 * Cluster mode benchmark (not a test): prints figures, asserts nothing.
 *
 *   npm run build && node dist/tests/bench/cluster-sync.js [--agents 20] [--edits 40] [--gap 300] [--profiles 5000] [--pods 2000]
 *
 * 1. apply-to-file latency on N agents: a PATCH of a profile's spec → the new bytes in each node's
 *    file (p50/p99 over edits × nodes);
 * 2. initial sync of 5,000 profiles by one fresh agent: start → /readyz ready, with every file;
 * 3. agent RSS with no pods versus 2,000 pods bound to other nodes (the pod watch is field-selected,
 *    so it should not grow).
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeClient } from '../../agent/src/kube/client.js';
import {
  createAll,
  createNodes,
  fileOf,
  readMaybe,
  startAgent,
  startBed,
  waitFor,
  type AgentProc,
} from '../cluster/sync-helpers.js';
import type { TestLike } from '../testbed/cluster.js';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '20' },
    edits: { type: 'string', default: '40' },
    profiles: { type: 'string', default: '5000' },
    pods: { type: 'string', default: '2000' },
    gap: { type: 'string', default: '300' },
  },
});
const N_AGENTS = Number(values.agents);
const N_EDITS = Number(values.edits);
const N_PROFILES = Number(values.profiles);
const N_PODS = Number(values.pods);
/** Pause after each edit has reached every node (ms), so edits do not queue behind each other. */
const GAP_MS = Number(values.gap);

/** Figures go to stdout, one line each. */
const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
const teardowns: (() => unknown)[] = [];
const bed: TestLike = { teardown: (fn) => teardowns.push(fn), comment: (...a) => say(`# ${a.map(String).join(' ')}`) };
const cleanup = async (): Promise<void> => {
  for (const fn of teardowns.reverse()) await fn();
};

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const rssMiB = async (pid: number): Promise<number> => {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN) / 1024;
};
const sp = (ns: string, name: string, action: string): Record<string, unknown> => ({
  apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
  kind: 'SeccompProfile',
  metadata: { name, namespace: ns },
  spec: { defaultAction: action, syscalls: [{ names: ['ptrace', 'mount'], action: 'SCMP_ACT_ERRNO' }] },
});
const PROFILES_PATH = (ns: string): string =>
  `/apis/security-profiles-operator.x-k8s.io/v1beta1/namespaces/${ns}/seccompprofiles`;

try {
  const cp = await startBed(bed);
  const admin = KubeClient.load(cp.kubeconfig);
  const timing = { leaseDurationSeconds: 30, watchTimeoutSeconds: 120, watchdogMs: 300_000 };

  // ---- 1. apply-to-file latency on N agents ----
  const nodes = Array.from({ length: N_AGENTS }, (_v, i) => `bench-${i + 1}`);
  await createNodes(cp, nodes);
  await cp.apply('{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"lat"}}');
  await admin.request({ method: 'POST', path: PROFILES_PATH('lat'), body: sp('lat', 'target', 'SCMP_ACT_ALLOW') });
  const agents: AgentProc[] = [];
  for (const node of nodes)
    agents.push(await startAgent(bed, { node, kubeconfig: cp.kubeconfig, timing, logLevel: 'warn' }));
  await waitFor(
    'the target on every node',
    async () => {
      for (const a of agents) if ((await readMaybe(fileOf(a.root, 'lat', 'target'))) === undefined) return undefined;
      return true;
    },
    120_000,
  );
  await new Promise((r) => setTimeout(r, 5000)); // let the first status writes settle
  const latencies: number[] = [];
  for (let e = 0; e < N_EDITS; e++) {
    const action = e % 2 === 0 ? 'SCMP_ACT_LOG' : 'SCMP_ACT_ALLOW';
    const want = `{"defaultAction":"${action}","syscalls":[{"names":["ptrace","mount"],"action":"SCMP_ACT_ERRNO"}]}`;
    const t0 = performance.now();
    await admin.request({
      method: 'PATCH',
      path: `${PROFILES_PATH('lat')}/target`,
      body: { spec: { defaultAction: action } },
      contentType: 'application/merge-patch+json',
    });
    const pending = new Set(agents);
    while (pending.size > 0) {
      for (const a of [...pending]) {
        if ((await readMaybe(fileOf(a.root, 'lat', 'target'))) === want) {
          latencies.push(performance.now() - t0);
          pending.delete(a);
        }
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, GAP_MS));
  }
  say(
    `apply-to-file latency, ${N_AGENTS} agents × ${N_EDITS} edits: p50 ${pct(latencies, 50).toFixed(0)} ms, p99 ${pct(latencies, 99).toFixed(0)} ms, max ${Math.max(...latencies).toFixed(0)} ms (file polled every 5 ms, ${GAP_MS} ms between edits)`,
  );
  const all = await Promise.all(agents.map((a) => a.stats()));
  const writes = all.reduce((s, x) => s + (x.aggregator.statusWritesByProfile['lat/target'] ?? 0), 0);
  const reports = all.reduce((s, x) => s + x.reportWrites, 0);
  say(
    `status writes for the edited profile: ${writes} for ${N_EDITS + 1} generations = ${(writes / (N_EDITS + 1)).toFixed(2)} per change (independent of the ${N_AGENTS} nodes); node report writes ${reports} = ${(reports / ((N_EDITS + 1) * N_AGENTS)).toFixed(2)} per node per change`,
  );
  for (const a of agents) await a.stop();

  // ---- 2. initial sync of N_PROFILES by one fresh agent ----
  await cp.apply('{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"many"}}');
  const c0 = performance.now();
  await createAll(
    admin,
    Array.from({ length: N_PROFILES }, (_v, i) =>
      sp('many', `p-${i}`, i % 2 === 0 ? 'SCMP_ACT_ERRNO' : 'SCMP_ACT_LOG'),
    ),
    () => PROFILES_PATH('many'),
  );
  say(`created ${N_PROFILES} profiles in ${((performance.now() - c0) / 1000).toFixed(1)} s`);
  await createNodes(cp, ['sync-node']);
  const s0 = performance.now();
  const fresh = await startAgent(bed, { node: 'sync-node', kubeconfig: cp.kubeconfig, timing, logLevel: 'warn' });
  await waitFor('ready', async () => ((await fresh.ready()) ? true : undefined), 600_000);
  const readyMs = performance.now() - s0;
  const files = (await readdir(join(fresh.root, 'seccomp', 'operator', 'many'))).length;
  say(
    `initial sync: ${N_PROFILES} profiles (+1) → ready in ${(readyMs / 1000).toFixed(2)} s (process start included; ${((N_PROFILES * 1000) / readyMs).toFixed(0)} profiles/s), ${files} files in operator/many`,
  );
  const st = await fresh.stats();
  say(
    `  status writes ${st.aggregator.statusWrites}, report writes ${st.reportWrites} so far; RSS ${(await rssMiB(fresh.proc.pid ?? 0)).toFixed(0)} MiB with ${st.profiles} profiles cached`,
  );
  await fresh.stop();

  // ---- 3. RSS with no pods vs N_PODS pods on other nodes ----
  await cp.apply('{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"pods"}}');
  await createNodes(cp, ['rss-node', 'other-1', 'other-2']);
  // delete the many profiles so the RSS figure is about pods
  await admin.request({ method: 'DELETE', path: PROFILES_PATH('many'), timeoutMs: 300_000 });
  await waitFor(
    'the many profiles gone',
    async () => {
      const l = await admin.request<{ items: unknown[] }>({
        method: 'GET',
        path: PROFILES_PATH('many'),
        query: { limit: 1 },
      });
      return l.items.length === 0 ? true : undefined;
    },
    300_000,
  );
  const rssAgent = await startAgent(bed, { node: 'rss-node', kubeconfig: cp.kubeconfig, timing, logLevel: 'warn' });
  await waitFor('ready', async () => ((await rssAgent.ready()) ? true : undefined), 120_000);
  await new Promise((r) => setTimeout(r, 5000));
  const pid = rssAgent.proc.pid ?? 0;
  const none = await rssMiB(pid);
  const p0 = performance.now();
  await createAll(
    admin,
    Array.from({ length: N_PODS }, (_v, i) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `pod-${i}`, namespace: 'pods', labels: { app: 'bench' } },
      spec: {
        nodeName: i % 2 === 0 ? 'other-1' : 'other-2',
        securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'operator/lat/target.json' } },
        containers: [{ name: 'c', image: 'nginx:1.27', env: [{ name: 'PADDING', value: 'x'.repeat(512) }] }],
      },
    })),
    () => '/api/v1/namespaces/pods/pods',
  );
  say(`created ${N_PODS} pods on other nodes in ${((performance.now() - p0) / 1000).toFixed(1)} s`);
  await new Promise((r) => setTimeout(r, 10_000));
  const withPods = await rssMiB(pid);
  const ps = await rssAgent.stats();
  say(
    `agent RSS: ${none.toFixed(0)} MiB with no pods, ${withPods.toFixed(0)} MiB with ${N_PODS} pods on other nodes (ratio ${(withPods / none).toFixed(2)}; pods cached by the agent: ${ps.podsOnNode}, pod list/watch events it received: ${ps.informers['pods']?.events ?? 0})`,
  );
  admin.close();
} finally {
  await cleanup();
}
