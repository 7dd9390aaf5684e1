// Cluster mode at scale (issue 4): 20 agents (separate processes) and 500 profiles created while they run.
// Every file lands byte for byte on every node, every profile reads Installed with 20 entries, and
// the status writes per profile per node are reported; once synced, an unchanged profile costs no
// write at all, and one edit costs about one write per node.
//
// Other sizes: SECCOMP_AGENT_SCALE=5x100 (agents x profiles). To see where the CPU goes:
// SECCOMP_AGENT_CPU_PROF=DIR runs every agent with node --cpu-prof into DIR (written when the
// agents are stopped at the end); SECCOMP_AGENT_APISERVER_PROF=FILE takes a Go CPU profile of
// kube-apiserver over the first SECCOMP_AGENT_APISERVER_PROF_SECONDS (default 60) of the sync.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeClient } from '../../agent/src/kube/client.js';
import {
  aggregatorOf,
  createNodes,
  fileOf,
  getReports,
  readMaybe,
  renderYaml,
  startAgent,
  startBed,
  statusWrites,
  waitFor,
  type AgentProc,
  type SpObject,
} from './sync-helpers.js';

// 20 x 500 takes about 4 minutes on a 2-core machine (all Installed 209 s after the first create);
// tap's 600 s per file (.taprc) would leave little room on a slower or busier CI machine, so this
// file asks the runner for 15 minutes (a test file's t.setTimeout is sent to tap's runner).
t.setTimeout(15 * 60_000);

const [AGENTS, PROFILES] = ((): [number, number] => {
  const m = /^(\d+)x(\d+)$/.exec(process.env['SECCOMP_AGENT_SCALE'] ?? '');
  return m === null ? [20, 500] : [Number(m[1]), Number(m[2])];
})();
const CPU_PROF = process.env['SECCOMP_AGENT_CPU_PROF'];
const APISERVER_PROF = process.env['SECCOMP_AGENT_APISERVER_PROF'];
const APISERVER_PROF_SECONDS = Number(process.env['SECCOMP_AGENT_APISERVER_PROF_SECONDS'] ?? 60);

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
const GROUP_PATH = '/apis/security-profiles-operator.x-k8s.io/v1beta1';
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
// The test's own reads and writes go straight to the API server: a kubectl process per poll of
// 500 objects (and kubectl apply's GET before each create) cost more CPU than the agents' work.
const admin = KubeClient.load(cp.kubeconfig);
t.teardown(() => admin.close());
await cp.apply(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"${SNS}"}}`);
await createNodes(cp, NODES);
const timing = { leaseDurationSeconds: 30, watchTimeoutSeconds: 120, watchdogMs: 300_000 };
const agents: AgentProc[] = [];
for (let i = 0; i < NODES.length; i += 5) {
  agents.push(
    ...(await Promise.all(
      NODES.slice(i, i + 5).map((node) =>
        startAgent(t, {
          node,
          kubeconfig: cp.kubeconfig,
          timing,
          logLevel: 'warn',
          ...(CPU_PROF === undefined ? {} : { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`] }),
        }),
      ),
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

/** apiserver_request_total by verb, resource and subresource (the API server's own count). */
async function requestCounts(): Promise<Map<string, number>> {
  const r = await cp.kubectl(['get', '--raw', '/metrics'], { timeoutMs: 60_000 });
  const out = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const label = (n: string): string => new RegExp(`${n}="([^"]*)"`).exec(line)?.[1] ?? '';
    const key = `${label('verb')} ${label('resource')}${label('subresource') === '' ? '' : `/${label('subresource')}`}`;
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}
const requestReport = (before: Map<string, number>, after: Map<string, number>): string =>
  [...after]
    .map(([k, v]): [string, number] => [k, v - (before.get(k) ?? 0)])
    .filter(([k, v]) => v > 0 && !k.startsWith('WATCH') && !/ (leases|nodes)$/.test(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, 6)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');

/** Every profile in the namespace, listed in pages straight from the API server. */
async function listProfiles(): Promise<SpObject[]> {
  const items: SpObject[] = [];
  let cont: string | undefined;
  do {
    const page = await admin.request<{ items: SpObject[]; metadata?: { continue?: string } }>({
      method: 'GET',
      path: `${GROUP_PATH}/namespaces/${SNS}/seccompprofiles`,
      query: { limit: 250, continue: cont },
      timeoutMs: 120_000,
    });
    items.push(...page.items);
    cont = page.metadata?.continue === '' ? undefined : page.metadata?.continue;
  } while (cont !== undefined);
  return items;
}

const objects = Array.from({ length: PROFILES }, (_v, i) => profile(i));
const expected = renderYaml(objects.map((o) => JSON.stringify(o)));
/** Status writes (the aggregator's) plus node report writes, by all agents. */
const totalWrites = async (): Promise<number> =>
  (await Promise.all(agents.map((a) => a.stats()))).reduce((s, x) => s + x.aggregator.statusWrites + x.reportWrites, 0);
const reportWrites = async (): Promise<number> =>
  (await Promise.all(agents.map((a) => a.stats()))).reduce((s, x) => s + x.reportWrites, 0);
/** Waits until the agents' status write counters stop moving for `quietMs`; returns the total. */
async function writesSettled(what: string, quietMs: number, timeoutMs: number): Promise<number> {
  let last = -1;
  let since = Date.now();
  return waitFor(
    what,
    async () => {
      const now = await totalWrites();
      if (now !== last) {
        last = now;
        since = Date.now();
        return undefined;
      }
      return Date.now() - since >= quietMs ? now : undefined;
    },
    timeoutMs,
  );
}

t.test(`${AGENTS} agents × ${PROFILES} profiles: every file, every status Installed`, async (t) => {
  const t0 = Date.now();
  const cpu0 = { cp: await cpuOf(cpPids), agents: await cpuOf(agentPids) };
  const requests0 = await requestCounts();
  if (APISERVER_PROF !== undefined) {
    const curl = spawn('curl', [
      '-s',
      '--cacert',
      cp.caFile,
      '-H',
      `Authorization: Bearer ${cp.token}`,
      '-o',
      APISERVER_PROF,
      `${cp.server}/debug/pprof/profile?seconds=${APISERVER_PROF_SECONDS}`,
    ]);
    t.teardown(() => curl.kill());
  }
  // Created as a controller or a CI job would, a few at a time.
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < objects.length) {
        const body = objects[next++];
        await admin.request({
          method: 'POST',
          path: `${GROUP_PATH}/namespaces/${SNS}/seccompprofiles`,
          body,
          timeoutMs: 120_000,
        });
      }
    }),
  );
  t.comment(`created ${PROFILES} profiles in ${Date.now() - t0} ms`);
  await waitFor(
    'every file on every node',
    async () => {
      for (const a of agents) {
        const files = await readdir(join(a.root, 'seccomp', 'operator', SNS)).catch(() => []);
        if (files.length < PROFILES) return undefined;
      }
      return true;
    },
    15 * 60_000,
  );
  t.comment(
    `all ${AGENTS * PROFILES} files on disk ${Date.now() - t0} ms after the first create (${await cpuReport(cpu0)})`,
  );
  let wrong = 0;
  for (const a of agents) {
    for (const [key, content] of expected) {
      const [ns = '', name = ''] = key.split('/');
      if ((await readMaybe(fileOf(a.root, ns, name))) !== content) wrong++;
    }
  }
  t.equal(wrong, 0, `all ${AGENTS * PROFILES} files hold the expected bytes`);

  let notYet = 0;
  let items: SpObject[] = [];
  await waitFor(
    'every profile Installed',
    async () => {
      items = await listProfiles();
      notYet = items.filter(
        (p) => p.status?.status !== 'Installed' || p.status.installedNodes !== `${AGENTS}/${AGENTS}`,
      ).length;
      if (items.length === PROFILES && notYet === 0) return true;
      await new Promise((r) => setTimeout(r, 2000));
      return undefined;
    },
    15 * 60_000,
    async () => `${notYet} profiles not Installed on ${AGENTS}/${AGENTS} nodes`,
  );
  t.comment(`every status Installed ${Date.now() - t0} ms after the first create (${await cpuReport(cpu0)})`);
  t.equal(items.length, PROFILES, `${PROFILES} profiles`);
  t.equal(
    items.filter(
      (p) =>
        p.status?.status === 'Installed' &&
        p.status.localhostProfile === `operator/${SNS}/${p.metadata.name}.json` &&
        p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true &&
        p.status.installedNodes === `${AGENTS}/${AGENTS}` &&
        p.status.observedGeneration === 1,
    ).length,
    PROFILES,
    `every profile Installed, Ready, NODES ${AGENTS}/${AGENTS}`,
  );
  const reports = await getReports(cp);
  t.equal(reports.length, AGENTS, `${AGENTS} SeccompNodeReports`);
  t.equal(
    reports.filter((r) => r.installed === PROFILES && r.failedCount === 0 && r.inUseCount === 0).length,
    AGENTS,
    `every report: ${PROFILES} installed, no exception listed`,
  );
  const sizes = items.map((p) => JSON.stringify(p).length);
  t.comment(
    `stored profile size (JSON, managedFields included): ${Math.min(...sizes)}–${Math.max(...sizes)} bytes; report size ${Math.max(...reports.map((r) => JSON.stringify(r).length))} bytes`,
  );
  for (const a of agents) t.ok(await a.ready(), `${a.node} ready`);

  const total = await writesSettled('status and report writes to settle', 5000, 300_000);
  const stats = await Promise.all(agents.map((a) => a.stats()));
  const status = stats.reduce((s, x) => s + x.aggregator.statusWrites, 0);
  const perProfile = stats.flatMap((s) => Object.values(s.aggregator.statusWritesByProfile));
  t.equal(stats.filter((s) => s.aggregator.leading).length, 1, 'one aggregator');
  t.comment(
    `initial sync: ${status} status writes for ${PROFILES} profiles (${(status / PROFILES).toFixed(3)} per profile, ${(status / (PROFILES * AGENTS)).toFixed(4)} per profile per node; max ${Math.max(...perProfile)} for one profile) and ${total - status} node report writes (${((total - status) / AGENTS).toFixed(1)} per node)`,
  );
  t.comment(
    `events: sent ${stats.reduce((s, x) => s + x.events.sent, 0)}, dropped by the rate limit ${stats.reduce((s, x) => s + x.events.dropped, 0)}`,
  );
  t.comment(`API requests during the sync: ${requestReport(requests0, await requestCounts())}`);
  const rss = stats.map((x) => x.memory.rssMiB);
  t.comment(
    `settled ${Date.now() - t0} ms after the first create (${await cpuReport(cpu0)}); plans per agent ${Math.min(...stats.map((x) => x.plans))}–${Math.max(...stats.map((x) => x.plans))}; agent RSS ${Math.min(...rss)}–${Math.max(...rss)} MiB`,
  );
});

t.test(
  'after sync: no write for unchanged profiles; an edit costs a few status writes and one report per node',
  async (t) => {
    const before = await totalWrites();
    await new Promise((r) => setTimeout(r, 10_000));
    const quiet = (await totalWrites()) - before;
    t.equal(quiet, 0, `0 status or report writes in a quiet 10 s for ${PROFILES} unchanged profiles`);

    const key = `${SNS}/p-007`;
    const leader = await aggregatorOf(agents);
    const perProfileBefore = (await leader?.stats())?.aggregator.statusWritesByProfile[key] ?? 0;
    const statusBefore = await statusWrites(agents);
    const reportsBefore = await reportWrites();
    await admin.request({
      method: 'PATCH',
      path: `${GROUP_PATH}/namespaces/${SNS}/seccompprofiles/p-007`,
      body: { spec: { defaultAction: 'SCMP_ACT_LOG' } },
      contentType: 'application/merge-patch+json',
    });
    const want = renderYaml([
      JSON.stringify({ ...profile(7), spec: { ...(profile(7)['spec'] as object), defaultAction: 'SCMP_ACT_LOG' } }),
    ]).get(key);
    await waitFor(
      'the edit on every node and p-007 Installed at generation 2',
      async () => {
        for (const a of agents) if ((await readMaybe(fileOf(a.root, SNS, 'p-007'))) !== want) return undefined;
        const p = await admin.request<SpObject>({
          method: 'GET',
          path: `${GROUP_PATH}/namespaces/${SNS}/seccompprofiles/p-007`,
        });
        return p.status?.status === 'Installed' &&
          p.status.observedGeneration === 2 &&
          p.status.installedNodes === `${AGENTS}/${AGENTS}`
          ? true
          : undefined;
      },
      120_000,
    );
    await writesSettled('writes to settle', 5000, 120_000);
    const edits = ((await leader?.stats())?.aggregator.statusWritesByProfile[key] ?? 0) - perProfileBefore;
    const status = (await statusWrites(agents)) - statusBefore;
    const reports = (await reportWrites()) - reportsBefore;
    t.comment(
      `one edit: ${edits} status writes for p-007 (${status - edits} for the ${PROFILES - 1} unchanged profiles) and ${reports} node report writes over ${AGENTS} nodes`,
    );
    t.equal(status - edits, 0, 'no status write for the unchanged profiles');
    t.ok(edits >= 1 && edits <= 3, `a few status writes for the edit, not one per node (${edits})`);
    t.ok(
      reports >= AGENTS && reports <= Math.ceil(AGENTS * 1.25),
      `about one report write per node (${reports} for ${AGENTS})`,
    );
  },
);

if (CPU_PROF !== undefined) {
  t.test('stop the agents so they write their CPU profiles', async (t) => {
    await Promise.all(agents.map((a) => a.stop()));
    t.pass(`profiles in ${CPU_PROF}`);
  });
}
