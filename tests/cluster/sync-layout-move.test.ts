// Moving a cluster between the layouts (issue 14; docs/cluster.md, "Moving a cluster from one layout
// to the other") on a real API server, with the chart and 2 agents as processes: files of profiles
// still in use stay. First within a layout: a profile whose in-use finalizer is removed by hand while
// a pod uses it keeps its file on that pod's node, which goes when the pod goes. Then Namespaced →
// Cluster: the CRD deleted (`--wait=false`, the held finalizer removed by hand: the forced move),
// `helm upgrade --set profileLayout=Cluster`, the agents rolled as the DaemonSet would; the file of
// the old layout a pod names stays while the pod exists and goes once it is deleted, without an agent
// restart, and the reference operator's v1 examples install at operator/<name>.json. Then back.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { IN_USE_FINALIZER } from '../../agent/src/cluster/index.js';
import type { Layout } from '../../shared/profile/layout.js';
import { spoExamplesDir } from '../helpers/spo-v1.js';
import { repoPath, startControlPlane } from '../testbed/cluster.js';
import { CHART } from './chart-helpers.js';
import {
  AGENT_NS,
  createNodes,
  fileOf,
  getProfile,
  NS,
  podsInReport,
  podUsing,
  podWithProfile,
  readMaybe,
  simpleProfile,
  startAgent,
  waitFor,
  type AgentProc,
  type SpObject,
} from './sync-helpers.js';

const G = 'security-profiles-operator.x-k8s.io';
const CRD = `crd/seccompprofiles.${G}`;
const NODES = ['node-1', 'node-2'];
const EXAMPLES = [
  'profile-block-all',
  'profile-complain-unsafe',
  'profile-allow-unsafe',
  'profile-complain-block-high-risk',
];

const t0 = performance.now();
const cp = await startControlPlane(t);
const helm = async (verb: 'install' | 'upgrade', layout: Layout): Promise<void> => {
  const r = await cp.helm(
    [verb, 'seccomp-agent', CHART, '--namespace', AGENT_NS, '--create-namespace', '--set', `profileLayout=${layout}`],
    { timeoutMs: 120_000 },
  );
  if (r.code !== 0) throw new Error(`helm ${verb} --set profileLayout=${layout}: ${r.stderr}`);
  const est = await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', CRD]);
  if (est.code !== 0) throw new Error(`CRD not established: ${est.stderr}`);
};
await helm('install', 'Namespaced');
await cp.kubectl(['apply', '-f', repoPath('profiles', 'ns.yaml')]);
await createNodes(cp, NODES);
// Each node keeps its kubelet root across agent restarts, as a node does.
const roots = await Promise.all(NODES.map((n) => mkdtemp(join(tmpdir(), `seccomp-agent-move-${n}-`))));
t.teardown(() => Promise.all(roots.map((r) => rm(r, { recursive: true, force: true }))));
const start = (i: number): Promise<AgentProc> =>
  startAgent(t, { node: NODES[i] ?? '', kubeconfig: cp.kubeconfig, root: roots[i] ?? '' });
let agents: AgentProc[] = await Promise.all(NODES.map((_n, i) => start(i)));
t.comment(`control plane, chart and 2 agents up in ${Math.round(performance.now() - t0)} ms`);
const agent = (node: string): AgentProc => {
  const a = agents.find((x) => x.node === node);
  if (a === undefined) throw new Error(`no agent on ${node}`);
  return a;
};
const clusterFile = (a: AgentProc, name: string): string => join(a.root, 'seccomp', 'operator', `${name}.json`);
const has = async (path: string): Promise<boolean> => (await readMaybe(path)) !== undefined;

interface View {
  namespace: string;
  name: string;
  state: string;
  message?: string;
}
const views = async (a: AgentProc): Promise<View[]> =>
  ((await (await fetch(`${a.url}/v1/profiles`)).json()) as { items: View[] }).items;
const viewOf = async (a: AgentProc, namespace: string, name: string): Promise<View | undefined> =>
  (await views(a)).find((v) => v.namespace === namespace && v.name === name);

async function kubectl(args: string[]): Promise<string> {
  const r = await cp.kubectl(args);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const deletePod = (ns: string, name: string): Promise<string> =>
  kubectl(['delete', 'pod', '-n', ns, name, '--grace-period=0', '--force']);
const stripFinalizers = (target: string[]): Promise<string> =>
  kubectl(['patch', 'seccompprofile', ...target, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);

/** What the DaemonSet does when its pod template changes: each agent stops, a new one starts on the same root. */
async function roll(): Promise<void> {
  const next: AgentProc[] = [];
  for (const [i, a] of agents.entries()) {
    await a.stop();
    next.push(await start(i));
  }
  agents = next;
}

/** The forced move: the CRD deleted, its held profiles' finalizers removed by hand, then helm upgrade. */
async function move(to: Layout, held: string[][]): Promise<void> {
  await kubectl(['delete', CRD, '--wait=false']);
  for (const target of held) {
    // The profile is Terminating, held by the in-use finalizer (a pod uses it) until removed by hand.
    await waitFor(`${target.join(' ')} Terminating`, async () => {
      const r = await cp.kubectl(['get', 'seccompprofile', ...target, '-o', 'json']);
      return r.code === 0 && (JSON.parse(r.stdout) as SpObject).metadata.deletionTimestamp !== undefined
        ? true
        : undefined;
    });
    await stripFinalizers(target);
  }
  await kubectl(['wait', '--for=delete', CRD, '--timeout=60s']);
  await helm('upgrade', to);
  const ds = await kubectl([
    'get',
    'daemonset',
    '-n',
    AGENT_NS,
    'seccomp-agent',
    '-o',
    'jsonpath={.spec.template.metadata.annotations}',
  ]);
  if (!ds.includes(`"seccomp-agent.dev/profile-layout":"${to}"`))
    throw new Error(`the pod template did not change: ${ds}`);
  await roll();
}

t.test('Namespaced: three profiles on both nodes, pods on node-1 use two of them', async (t) => {
  for (const name of ['forced', 'moved', 'idle']) await cp.apply(simpleProfile(name, 'SCMP_ACT_LOG'));
  await cp.apply(podUsing('user-forced', 'node-1', 'forced'));
  await cp.apply(podUsing('user-moved', 'node-1', 'moved'));
  await waitFor('Installed 2/2, held by the in-use finalizer', async () => {
    for (const name of ['forced', 'moved', 'idle']) {
      const p = await getProfile(cp, NS, name);
      if (p?.status?.status !== 'Installed' || p.status.installedNodes !== '2/2') return undefined;
      if ((name !== 'idle') !== (p.metadata.finalizers?.includes(IN_USE_FINALIZER) === true)) return undefined;
    }
    return true;
  });
  for (const a of agents) {
    t.same((await a.stats()).profileApi, { layout: 'Namespaced', version: 'v1beta1' }, a.node);
    for (const name of ['forced', 'moved', 'idle']) t.ok(await has(fileOf(a.root, NS, name)), `${a.node}: ${name}`);
  }
});

/** A profile with one of the two spellings of "not installed" is Disabled, has no file, and keeps its spec. */
async function disabledSpelling(t: Test, layout: Layout, spelling: Record<string, unknown>): Promise<void> {
  const name = `off-${layout.toLowerCase()}`;
  const ns = layout === 'Cluster' ? '' : NS;
  await cp.apply(
    JSON.stringify({
      apiVersion: `${G}/${layout === 'Cluster' ? 'v1' : 'v1beta1'}`,
      kind: 'SeccompProfile',
      metadata: { name, ...(ns === '' ? {} : { namespace: ns }) },
      spec: { defaultAction: 'SCMP_ACT_LOG', ...spelling },
    }),
  );
  const target = ns === '' ? [name] : ['-n', ns, name];
  const p = await waitFor(`${name} Disabled`, async () => {
    const r = await cp.kubectl(['get', 'seccompprofile', ...target, '-o', 'json']);
    const o = r.code === 0 ? (JSON.parse(r.stdout) as SpObject) : undefined;
    return o?.status?.status === 'Disabled' ? o : undefined;
  });
  t.match(p.spec, spelling, `${layout}: the API server keeps ${JSON.stringify(spelling)}`);
  for (const a of agents) {
    const file = ns === '' ? clusterFile(a, name) : fileOf(a.root, ns, name);
    t.notOk(await has(file), `${a.node}: no file for ${JSON.stringify(spelling)}`);
  }
}

t.test('Namespaced: the v1 spelling state: Disabled installs nothing', (t) =>
  disabledSpelling(t, 'Namespaced', { state: 'Disabled' }),
);

t.test('the in-use finalizer removed by hand while a pod uses it: the file stays on its node', async (t) => {
  const node1 = agent('node-1');
  const before = await readMaybe(fileOf(node1.root, NS, 'forced'));
  await kubectl(['delete', 'seccompprofile', '-n', NS, 'forced', '--wait=false']);
  await stripFinalizers(['-n', NS, 'forced']);
  const kept = await waitFor('the object gone, the file gone from node-2, kept on node-1', async () => {
    if ((await getProfile(cp, NS, 'forced')) !== undefined) return undefined;
    if (await has(fileOf(agent('node-2').root, NS, 'forced'))) return undefined;
    const v = await viewOf(node1, NS, 'forced');
    return v?.state === 'Retained' ? v : undefined;
  });
  t.match(kept.message, /stays while pods on this node use it: seccomp-test\/user-forced/, '/v1/profiles says why');
  t.equal(await readMaybe(fileOf(node1.root, NS, 'forced')), before, 'node-1 keeps the bytes');
  t.same(await podsInReport(cp, 'node-1', `${NS}/forced`), [`${NS}/user-forced`], 'the report lists the pod');
  const plans = (await node1.stats()).plans;
  await new Promise((r) => setTimeout(r, 1500));
  t.ok(await has(fileOf(node1.root, NS, 'forced')), 'and it stays');

  await deletePod(NS, 'user-forced');
  await waitFor('node-1 removes it once the pod is gone', async () =>
    (await has(fileOf(node1.root, NS, 'forced'))) ? undefined : true,
  );
  t.equal(node1.proc.exitCode, null, 'the same agent process: no restart');
  t.ok((await node1.stats()).plans > plans, 'a plan after the pod event removed it');
  t.equal(await viewOf(node1, NS, 'forced'), undefined, 'and it is no longer listed');
});

t.test('Namespaced → Cluster: the file of the old layout a pod uses stays, new v1 profiles install', async (t) => {
  await move('Cluster', [['-n', NS, 'moved']]);
  const [node1, node2] = [agent('node-1'), agent('node-2')];
  for (const a of agents) t.same((await a.stats()).profileApi, { layout: 'Cluster', version: 'v1' }, a.node);
  await waitFor('the new agents have planned', async () =>
    (await Promise.all(agents.map((a) => a.ready()))).every(Boolean) ? true : undefined,
  );
  t.ok(await has(fileOf(node1.root, NS, 'moved')), 'node-1 keeps operator/seccomp-test/moved.json: a pod names it');
  t.match(await viewOf(node1, NS, 'moved'), { state: 'Retained', message: /seccomp-test\/user-moved/ });
  t.notOk(await has(fileOf(node1.root, NS, 'idle')), 'node-1: the unused profile is gone');
  t.same(await readdir(join(node2.root, 'seccomp', 'operator')), [], 'node-2: nothing of the old layout');

  await kubectl(['apply', '-f', join(spoExamplesDir(), 'seccompprofile.yaml')]);
  const out = await waitFor('the v1 examples Installed 2/2', async () => {
    const r = await cp.kubectl(['get', 'seccompprofiles']);
    return (r.stdout.match(/\sInstalled\s+2\/2\s/g) ?? []).length === EXAMPLES.length ? r.stdout : undefined;
  });
  t.match(out, /^NAME\s+STATUS\s+NODES\s+AGE/m, 'kubectl get seccompprofiles: no namespace');
  for (const a of agents) for (const n of EXAMPLES) t.ok(await has(clusterFile(a, n)), `${a.node}: operator/${n}.json`);
  await disabledSpelling(t, 'Cluster', { disabled: true });
  const ev = JSON.parse(await kubectl(['get', 'events.events.k8s.io', '-n', 'default', '-o', 'json'])) as {
    items: { reason: string; regarding: { name: string; namespace?: string } }[];
  };
  t.ok(
    ev.items.some((e) => e.reason === 'Installed' && e.regarding.name === 'profile-block-all'),
    "a cluster-scoped profile's Events are in default",
  );

  await deletePod(NS, 'user-moved');
  // The file goes first, then its namespace directory, now empty.
  const want = EXAMPLES.map((n) => `${n}.json`).sort();
  const operator = join(node1.root, 'seccomp', 'operator');
  await waitFor(
    'node-1 removes the old file and its directory once the pod is gone, holding only the new layout',
    async () => (JSON.stringify((await readdir(operator)).sort()) === JSON.stringify(want) ? true : undefined),
    30_000,
    async () => `node-1 operator/: ${(await readdir(operator)).join(' ')}`,
  );
  t.equal(node1.proc.exitCode, null, 'the same agent process: no restart');
  t.notOk(await has(fileOf(node1.root, NS, 'moved')), 'operator/seccomp-test/moved.json is gone');
});

t.test('and back, Cluster → Namespaced: operator/<name>.json stays while its pod runs', async (t) => {
  await cp.apply(podWithProfile('user-back', 'node-2', 'operator/profile-allow-unsafe.json', 'default'));
  await waitFor('the in-use finalizer on profile-allow-unsafe', async () => {
    const r = await cp.kubectl(['get', 'seccompprofile', 'profile-allow-unsafe', '-o', 'json']);
    return r.code === 0 && (JSON.parse(r.stdout) as SpObject).metadata.finalizers?.includes(IN_USE_FINALIZER) === true
      ? true
      : undefined;
  });
  await move('Namespaced', [['profile-allow-unsafe']]);
  const [node1, node2] = [agent('node-1'), agent('node-2')];
  for (const a of agents) t.same((await a.stats()).profileApi, { layout: 'Namespaced', version: 'v1beta1' }, a.node);
  await waitFor('the new agents have planned', async () =>
    (await Promise.all(agents.map((a) => a.ready()))).every(Boolean) ? true : undefined,
  );
  t.ok(await has(clusterFile(node2, 'profile-allow-unsafe')), 'node-2 keeps operator/profile-allow-unsafe.json');
  t.match(await viewOf(node2, '', 'profile-allow-unsafe'), { state: 'Retained', message: /default\/user-back/ });
  t.same(await readdir(join(node1.root, 'seccomp', 'operator')), [], 'node-1: nothing of the Cluster layout');
  for (const n of EXAMPLES.filter((x) => x !== 'profile-allow-unsafe'))
    t.notOk(await has(clusterFile(node2, n)), `node-2: ${n} gone`);

  await cp.apply(simpleProfile('again', 'SCMP_ACT_LOG'));
  await waitFor('a v1beta1 profile installs at operator/<ns>/<name>.json', async () => {
    const p = await getProfile(cp, NS, 'again');
    if (p?.status?.status !== 'Installed' || p.status.installedNodes !== '2/2') return undefined;
    return (await Promise.all(agents.map((a) => has(fileOf(a.root, NS, 'again'))))).every(Boolean) ? true : undefined;
  });
  await deletePod('default', 'user-back');
  await waitFor('node-2 removes operator/profile-allow-unsafe.json once the pod is gone', async () =>
    (await has(clusterFile(node2, 'profile-allow-unsafe'))) ? undefined : true,
  );
  t.equal(node2.proc.exitCode, null, 'the same agent process: no restart');
  t.same(await readdir(join(node2.root, 'seccomp', 'operator')), [NS], 'node-2 holds only the Namespaced layout');
});
