// Cluster mode at scale: 20 agents (separate processes) and 500 profiles. Every file lands on every
// node, every profile reads Installed, and it reports the status writes per profile per node; once
// synced, an unchanged profile costs no write at all, and one edit costs about one write per node.
//
// NOT part of `npm test` (it is outside tests/**/*.test.ts): on a 2-core machine 20 × 500 needs far
// more than tap's 600 s (about 5 CPU seconds per profile at 20 agents). Run it by hand, with a size:
//   npm run build && SECCOMP_AGENT_SCALE=20x100 npx tap --timeout 3600 tests/bench/cluster-scale.ts
import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createNodes,
  fileOf,
  getProfiles,
  readMaybe,
  renderYaml,
  startAgent,
  startBed,
  waitFor,
  type AgentProc,
} from '../cluster/sync-helpers.js';

// The issue asks for 20 × 500; smaller sizes (e.g. SECCOMP_AGENT_SCALE=5x100) help find costs.
const [AGENTS, PROFILES] = ((): [number, number] => {
  const m = /^(\d+)x(\d+)$/.exec(process.env['SECCOMP_AGENT_SCALE'] ?? '');
  return m === null ? [20, 500] : [Number(m[1]), Number(m[2])];
})();
const SNS = 'scale';
const NODES = Array.from({ length: AGENTS }, (_v, i) => `node-${String(i + 1).padStart(2, '0')}`);
const SYSCALLS = [
  'ptrace',
  'mount',
  'umount2',
  'unshare',
  'setns',
  'kexec_load',
  'bpf',
  'perf_event_open',
  'keyctl',
  'add_key',
];
const profile = (i: number): Record<string, unknown> => ({
  apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
  kind: 'SeccompProfile',
  metadata: { name: `p-${String(i).padStart(3, '0')}`, namespace: SNS },
  spec: {
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [
      { names: SYSCALLS.slice(0, 1 + (i % SYSCALLS.length)), action: 'SCMP_ACT_ERRNO', errnoRet: 1 + (i % 30) },
    ],
  },
});

/** CPU seconds (user + system) a process has used so far; 0 once it is gone. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / 100;
}

/** The control plane's etcd and kube-apiserver: the processes whose command line names its data dir. */
async function controlPlanePids(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(dir) && /(kube-apiserver|etcd)\0/.test(cmd)) pids.push(Number(e));
  }
  return pids;
}

const started = Date.now();
const cp = await startBed(t);
await cp.apply(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"${SNS}"}}`);
await createNodes(cp, NODES);
const timing = { leaseDurationSeconds: 30, watchTimeoutSeconds: 120, watchdogMs: 300_000 };
const agents: AgentProc[] = [];
for (let i = 0; i < NODES.length; i += 5) {
  agents.push(
    ...(await Promise.all(
      NODES.slice(i, i + 5).map((node) => startAgent(t, { node, kubeconfig: cp.kubeconfig, timing, logLevel: 'warn' })),
    )),
  );
}
t.comment(`${AGENTS} agents started in ${Date.now() - started} ms`);
const cpPids = await controlPlanePids(cp.dataDir);
const cpuOf = async (pids: readonly number[]): Promise<number> =>
  (await Promise.all(pids.map(cpuSeconds))).reduce((a, b) => a + b, 0);
const agentPids = agents.flatMap((a) => (a.proc.pid === undefined ? [] : [a.proc.pid]));
const cpuReport = async (since: { cp: number; agents: number }): Promise<string> =>
  `control plane ${((await cpuOf(cpPids)) - since.cp).toFixed(1)} CPU s, agents ${((await cpuOf(agentPids)) - since.agents).toFixed(1)} CPU s`;

const objects = Array.from({ length: PROFILES }, (_v, i) => profile(i));
const expected = renderYaml(objects.map((o) => JSON.stringify(o)));
const totalWrites = async (): Promise<number> =>
  (await Promise.all(agents.map((a) => a.stats()))).reduce((s, x) => s + x.statusWrites, 0);

t.test(`${AGENTS} agents × ${PROFILES} profiles: every file, every status Installed`, async (t) => {
  const t0 = Date.now();
  const cpu0 = { cp: await cpuOf(cpPids), agents: await cpuOf(agentPids) };
  for (let i = 0; i < PROFILES; i += 100) {
    await cp.apply(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects.slice(i, i + 100) }), {
      timeoutMs: 600_000,
    });
  }
  t.comment(`applied ${PROFILES} profiles in ${Date.now() - t0} ms`);
  await waitFor(
    'every file on every node',
    async () => {
      for (const a of agents) {
        const files = await readdir(join(a.root, 'seccomp', 'operator', SNS)).catch(() => []);
        if (files.length < PROFILES) return undefined;
      }
      return true;
    },
    300_000,
  );
  t.comment(
    `all ${AGENTS * PROFILES} files on disk ${Date.now() - t0} ms after the first apply (${await cpuReport(cpu0)})`,
  );
  let wrong = 0;
  for (const a of agents) {
    for (const [key, content] of expected) {
      const [ns = '', name = ''] = key.split('/');
      if ((await readMaybe(fileOf(a.root, ns, name))) !== content) wrong++;
    }
  }
  t.equal(wrong, 0, `all ${AGENTS * PROFILES} files hold the expected bytes`);
  let lastNot = 0;
  await waitFor(
    'every profile Installed',
    async () => {
      const items = await getProfiles(cp, SNS);
      lastNot = items.filter(
        (p) => p.status?.status !== 'Installed' || (p.status.nodes ?? []).length !== AGENTS,
      ).length;
      return items.length === PROFILES && lastNot === 0 ? true : undefined;
    },
    300_000,
    async () => `${lastNot} profiles not Installed with ${AGENTS} entries`,
  );
  t.comment(`every status Installed ${Date.now() - t0} ms after the first apply (${await cpuReport(cpu0)})`);
  for (const a of agents) t.ok(await a.ready(), `${a.node} ready`);

  let last = -1;
  await waitFor(
    'status writes to settle',
    async () => {
      const now = await totalWrites();
      const settled = now === last;
      last = now;
      return settled ? true : undefined;
    },
    120_000,
  );
  const stats = await Promise.all(agents.map((a) => a.stats()));
  const corrections = stats.reduce((s, x) => s + x.statusCorrections, 0);
  const perPair = stats.flatMap((s) => Object.values(s.statusWritesByProfile));
  t.comment(
    `initial sync: ${last} status writes for ${PROFILES} profiles × ${AGENTS} nodes = ${(last / (PROFILES * AGENTS)).toFixed(3)} per profile per node (${corrections} aggregate corrections; max ${Math.max(...perPair)} by one node for one profile)`,
  );
  t.comment(
    `events: sent ${stats.reduce((s, x) => s + x.events.sent, 0)}, dropped by the rate limit ${stats.reduce((s, x) => s + x.events.dropped, 0)}`,
  );
  const rss = stats.map((x) => x.memory.rssMiB);
  t.comment(
    `settled ${Date.now() - t0} ms after the first apply (${await cpuReport(cpu0)}); plans per agent ${Math.min(...stats.map((x) => x.plans))}–${Math.max(...stats.map((x) => x.plans))}; agent RSS ${Math.min(...rss)}–${Math.max(...rss)} MiB`,
  );
});

t.test('after sync: no write for unchanged profiles, about one per node for an edit', async (t) => {
  const before = await totalWrites();
  await new Promise((r) => setTimeout(r, 10_000));
  const quiet = (await totalWrites()) - before;
  t.equal(
    quiet,
    0,
    `0 status writes in a quiet 10 s for ${PROFILES} unchanged profiles (${(quiet / (PROFILES * AGENTS)).toFixed(3)} per profile per node)`,
  );

  const perProfileBefore = await Promise.all(
    agents.map(async (a) => (await a.stats()).statusWritesByProfile['scale/p-007'] ?? 0),
  );
  const r = await cp.kubectl([
    'patch',
    'sp',
    '-n',
    SNS,
    'p-007',
    '--type',
    'merge',
    '-p',
    '{"spec":{"defaultAction":"SCMP_ACT_LOG"}}',
  ]);
  t.equal(r.code, 0, r.stderr);
  await waitFor(
    'p-007 Installed at generation 2',
    async () => {
      const p = (await getProfiles(cp, SNS)).find((x) => x.metadata.name === 'p-007');
      return p?.status?.status === 'Installed' && p.status.observedGeneration === 2 ? true : undefined;
    },
    120_000,
  );
  let last = -1;
  await waitFor(
    'writes to settle',
    async () => {
      const now = await totalWrites();
      const settled = now === last;
      last = now;
      return settled ? true : undefined;
    },
    60_000,
  );
  const perProfileAfter = await Promise.all(
    agents.map(async (a) => (await a.stats()).statusWritesByProfile['scale/p-007'] ?? 0),
  );
  const edits = perProfileAfter.reduce((s, x, i) => s + x - (perProfileBefore[i] ?? 0), 0);
  const others = last - before - edits;
  t.comment(
    `one edit: ${edits} status writes for p-007 over ${AGENTS} nodes (${(edits / AGENTS).toFixed(2)} per node); ${others} writes for the ${PROFILES - 1} unchanged profiles`,
  );
  t.equal(others, 0, 'no write for the unchanged profiles');
  t.ok(edits >= AGENTS, 'every node reported the new generation');
});
