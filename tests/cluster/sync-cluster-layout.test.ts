// The Cluster layout (issue 14) on a real API server with 3 agents: the reference operator's v1
// CRD shape (cluster-scoped, v1 stored, v1beta1 served, no conversion). Every SeccompProfile example
// of ../shared/spo-v1/examples/ applies unchanged with kubectl, installs as operator/<name>.json
// with the reference operator's bytes on every node, shows Installed with path and conditions, and
// loads in runc; profile-allowed-syscalls read as v1 and as v1beta1 is one object; state: Disabled
// removes the file from every node; deletion while a pod names operator/<name>.json waits for it.
import { join } from 'node:path';
import t from 'tap';
import { IN_USE_FINALIZER } from '../../agent/src/cluster/index.js';
import { spoExamples, spoExamplesDir } from '../helpers/spo-v1.js';
import { runContainer } from '../testbed/node.js';
import { ensureBusyboxRootfs } from '../testbed/rootfs.js';
import {
  createNodes,
  describeProfiles,
  podsInReport,
  podWithProfile,
  readMaybe,
  startAgent,
  startBed,
  waitFor,
  type AgentProc,
  type SpObject,
} from './sync-helpers.js';

const NODES = ['node-1', 'node-2', 'node-3'];
const G = 'security-profiles-operator.x-k8s.io';
const cp = await startBed(t, 'Cluster');
await createNodes(cp, NODES);
const agents: AgentProc[] = await Promise.all(NODES.map((node) => startAgent(t, { node, kubeconfig: cp.kubeconfig })));
const examples = spoExamples();
const names = [...new Set(examples.map((e) => e.name))].sort();
const fileOn = (a: AgentProc, name: string): string => join(a.root, 'seccomp', 'operator', `${name}.json`);

async function getSp(name: string, version = 'v1'): Promise<SpObject | undefined> {
  const r = await cp.kubectl(['get', `seccompprofiles.${version}.${G}`, name, '-o', 'json']);
  if (r.code !== 0) {
    if (/NotFound/.test(r.stderr)) return undefined;
    throw new Error(r.stderr);
  }
  return JSON.parse(r.stdout) as SpObject;
}

t.test('the agents discovered the Cluster layout, v1', async (t) => {
  for (const a of agents) t.same((await a.stats()).profileApi, { layout: 'Cluster', version: 'v1' }, a.node);
});

t.test('every SeccompProfile example applies unchanged, installs everywhere, shows Installed', async (t) => {
  for (const f of [...new Set(examples.map((e) => e.file))]) {
    const r = await cp.kubectl(['apply', '-f', join(spoExamplesDir(), f)]);
    t.equal(r.code, 0, `kubectl apply -f ${f}: ${r.stderr}`);
  }
  const all = await waitFor(
    'every example Installed on 3/3 nodes',
    async () => {
      const got = await Promise.all(names.map((n) => getSp(n)));
      return got.every((p) => p?.status?.status === 'Installed' && p.status.installedNodes === '3/3') ? got : undefined;
    },
    90_000,
    () => describeProfiles(cp),
  );
  for (const p of all) {
    if (p === undefined) continue;
    const name = p.metadata.name;
    t.equal(p.metadata.namespace, undefined, `${name}: cluster-scoped`);
    t.equal(p.status?.localhostProfile, `operator/${name}.json`);
    // Each test agent has its own kubelet root; the aggregator writes its own (a DaemonSet gives all the same).
    const path = (p.status as { path?: string }).path ?? '';
    t.ok(
      agents.some((a) => path === fileOn(a, name)),
      `${name}: path ${path}`,
    );
    t.match(p.status?.conditions, [{ type: 'Ready', status: 'True', reason: 'Installed' }], `${name}: Ready`);
  }
  for (const ex of examples) {
    for (const a of agents) t.equal(await readMaybe(fileOn(a, ex.name)), ex.expected, `${a.node} ${ex.name}: bytes`);
  }
  const list = await cp.kubectl(['get', 'seccompprofiles']);
  t.equal(list.code, 0, list.stderr);
  for (const n of names)
    t.match(list.stdout, new RegExp(`^${n.replace(/\./g, '\\.')}\\s+Installed\\s+3/3`, 'm'), `kubectl get lists ${n}`);
});

t.test('the installed files load in runc', async (t) => {
  const busybox = await ensureBusyboxRootfs();
  for (const n of names) {
    const profile = await readMaybe(fileOn(agents[0] as AgentProc, n));
    const c = await runContainer(t, { rootfs: busybox, args: ['/bin/true'], profile, timeoutMs: 20_000 });
    // A profile that denies what /bin/true needs fails the workload, not the filter: runc says
    // nothing about seccomp then.
    t.notMatch(c.stderr, /seccomp/i, `${n}: runc loads it (exit ${c.exitCode})`);
  }
});

t.test('profile-allowed-syscalls as v1 and as v1beta1: one object read two ways', async (t) => {
  const v1 = await getSp('profile-allowed-syscalls', 'v1');
  const beta = await getSp('profile-allowed-syscalls', 'v1beta1');
  t.equal((beta as unknown as { apiVersion: string }).apiVersion, `${G}/v1beta1`);
  t.equal((v1 as unknown as { apiVersion: string }).apiVersion, `${G}/v1`);
  t.same(beta?.spec, v1?.spec, 'the same spec');
  t.same(beta?.metadata, v1?.metadata, 'the same object (uid, resourceVersion, generation)');
  t.same(beta?.status, v1?.status, 'the same status');
  // A v1beta1 copy of the v1 example, applied: the same object, unchanged.
  const ex = examples.find((e) => e.name === 'profile-allowed-syscalls');
  const copy = ex?.yaml.replace(`${G}/v1\n`, `${G}/v1beta1\n`) ?? '';
  t.match(copy, `apiVersion: ${G}/v1beta1`);
  const r = await cp.kubectl(['apply', '-f', '-'], { input: copy });
  t.equal(r.code, 0, r.stderr);
  const after = await getSp('profile-allowed-syscalls', 'v1');
  t.equal(after?.metadata.generation, v1?.metadata.generation, 'applying the v1beta1 copy changes no spec');
  t.same(after?.spec, v1?.spec);
  // A new object written as v1beta1 reads back as v1 (and installs as any v1 profile does).
  const fresh = copy.replace('name: profile-allowed-syscalls', 'name: written-as-v1beta1');
  t.match(fresh, 'name: written-as-v1beta1');
  const w = await cp.kubectl(['apply', '-f', '-'], { input: fresh });
  t.equal(w.code, 0, w.stderr);
  const asV1 = await getSp('written-as-v1beta1', 'v1');
  t.equal((asV1 as unknown as { apiVersion: string }).apiVersion, `${G}/v1`);
  t.same(asV1?.spec, v1?.spec, 'written as v1beta1, read as v1: the same spec');
  await waitFor('written-as-v1beta1 on every node with the bytes of the v1 example', async () => {
    for (const a of agents) if ((await readMaybe(fileOn(a, 'written-as-v1beta1'))) !== ex?.expected) return undefined;
    return true;
  });
  const rm = await cp.kubectl(['delete', 'seccompprofile', 'written-as-v1beta1']);
  t.equal(rm.code, 0, rm.stderr);
});

t.test('state: Disabled removes the file from every node', async (t) => {
  const r = await cp.kubectl([
    'patch',
    'seccompprofile',
    'profile-block-all',
    '--type=merge',
    '-p',
    '{"spec":{"state":"Disabled"}}',
  ]);
  t.equal(r.code, 0, r.stderr);
  await waitFor('profile-block-all gone from every node, Disabled', async () => {
    for (const a of agents) if ((await readMaybe(fileOn(a, 'profile-block-all'))) !== undefined) return undefined;
    return (await getSp('profile-block-all'))?.status?.status === 'Disabled' ? true : undefined;
  });
  const bad = await cp.kubectl([
    'patch',
    'seccompprofile',
    'profile-block-all',
    '--type=merge',
    '-p',
    '{"spec":{"disabled":false}}',
  ]);
  t.not(bad.code, 0, 'the API server refuses disabled: false beside state: Disabled');
  t.match(bad.stderr, /state and spec.disabled disagree/);
  const back = await cp.kubectl([
    'patch',
    'seccompprofile',
    'profile-block-all',
    '--type=merge',
    '-p',
    '{"spec":{"state":"Enabled"}}',
  ]);
  t.equal(back.code, 0, back.stderr);
  await waitFor('profile-block-all back on every node', async () => {
    for (const a of agents) if ((await readMaybe(fileOn(a, 'profile-block-all'))) === undefined) return undefined;
    return true;
  });
});

t.test('deletion while a pod names operator/<name>.json', async (t) => {
  await cp.apply(podWithProfile('user', 'node-2', 'operator/profile-allow-unsafe.json', 'default'));
  await waitFor('node-2 reports the pod, the finalizer is on', async () => {
    const p = await getSp('profile-allow-unsafe');
    const pods = await podsInReport(cp, 'node-2', 'profile-allow-unsafe');
    return pods?.includes('default/user') === true && p?.metadata.finalizers?.includes(IN_USE_FINALIZER) === true
      ? true
      : undefined;
  });
  const del = await cp.kubectl(['delete', 'seccompprofile', 'profile-allow-unsafe', '--wait=false']);
  t.equal(del.code, 0, del.stderr);
  const term = await waitFor('Terminating, the file only on node-2', async () => {
    const p = await getSp('profile-allow-unsafe');
    if (p?.status?.status !== 'Terminating') return undefined;
    for (const a of agents) {
      const has = (await readMaybe(fileOn(a, 'profile-allow-unsafe'))) !== undefined;
      if (has !== (a.node === 'node-2')) return undefined;
    }
    return p;
  });
  t.same(term.status?.activeWorkloads, ['default/user']);
  const gone = await cp.kubectl(['delete', 'pod', '-n', 'default', 'user', '--grace-period=0', '--force']);
  t.equal(gone.code, 0, gone.stderr);
  await waitFor("the object and node-2's file gone", async () => {
    if ((await getSp('profile-allow-unsafe')) !== undefined) return undefined;
    return (await readMaybe(fileOn(agents[1] as AgentProc, 'profile-allow-unsafe'))) === undefined ? true : undefined;
  });
  t.pass('released when the pod went');
});
