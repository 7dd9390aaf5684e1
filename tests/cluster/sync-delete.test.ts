// Cluster mode, deletion: a profile in use by a pod on a node stays on that node and shows
// Terminating naming the pod; when the pod goes the file goes and the object is released. A node
// whose agent is gone and whose Node object is deleted never holds a deletion back.
import t from 'tap';
import {
  createNodes,
  describeProfiles,
  fileOf,
  getProfile,
  NS,
  podUsing,
  podsInReport,
  readMaybe,
  startAgent,
  startBed,
  waitFor,
  WORKSHOP_FILES,
  type AgentProc,
} from './sync-helpers.js';
import { repoPath } from '../testbed/cluster.js';
import { IN_USE_FINALIZER } from '../../agent/src/cluster/index.js';

const NODES = ['node-1', 'node-2', 'node-3'];
const cp = await startBed(t);
await createNodes(cp, NODES);
const agents: AgentProc[] = await Promise.all(NODES.map((node) => startAgent(t, { node, kubeconfig: cp.kubeconfig })));
const agent = (n: string): AgentProc => agents.find((a) => a.node === n) as AgentProc;
for (const f of WORKSHOP_FILES) await cp.kubectl(['apply', '-f', repoPath('profiles', f)]);

const hasFile = async (a: AgentProc, name: string): Promise<boolean> =>
  (await readMaybe(fileOf(a.root, NS, name))) !== undefined;

await waitFor('workshop profiles on every node', async () => {
  for (const a of agents)
    if (!(await hasFile(a, 'complainer')) || !(await hasFile(a, 'profile-block-all'))) return undefined;
  return true;
});

t.test('deletion while a pod on node-2 uses the profile', async (t) => {
  await cp.apply(podUsing('complainer', 'node-2', 'complainer'));
  const held = await waitFor(
    'the in-use finalizer and node-2 naming the pod',
    async () => {
      const p = await getProfile(cp, NS, 'complainer');
      const pods = await podsInReport(cp, 'node-2', `${NS}/complainer`);
      return p?.metadata.finalizers?.includes(IN_USE_FINALIZER) === true &&
        pods?.includes(`${NS}/complainer`) === true &&
        p.status?.activeWorkloads?.includes(`${NS}/complainer`) === true
        ? p
        : undefined;
    },
    30_000,
    () => describeProfiles(cp, NS),
  );
  t.same(held.status?.activeWorkloads, [`${NS}/complainer`], 'status.activeWorkloads names the pod');

  const del = await cp.kubectl(['delete', 'sp', '-n', NS, 'complainer', '--wait=false']);
  t.equal(del.code, 0, del.stderr);
  const term = await waitFor(
    'Terminating naming the pod, and the file gone from nodes 1 and 3',
    async () => {
      const p = await getProfile(cp, NS, 'complainer');
      if (p?.status?.status !== 'Terminating') return undefined;
      if ((await hasFile(agent('node-1'), 'complainer')) || (await hasFile(agent('node-3'), 'complainer')))
        return undefined;
      return p;
    },
    30_000,
    () => describeProfiles(cp, NS),
  );
  t.match(
    term.status?.conditions?.find((c) => c.type === 'Ready'),
    { status: 'False', reason: 'Terminating', message: new RegExp(`${NS}/complainer`) },
    'the Ready condition names the pod',
  );
  t.same(
    await podsInReport(cp, 'node-2', `${NS}/complainer`),
    [`${NS}/complainer`],
    "node-2's SeccompNodeReport names the pod",
  );
  t.ok(await hasFile(agent('node-2'), 'complainer'), 'node-2 keeps the file while the pod uses it');
  const table = await cp.kubectl(['get', 'sp', '-n', NS, 'complainer']);
  t.match(table.stdout, /complainer\s+Terminating/, 'kubectl get sp shows Terminating');

  const gone = Date.now();
  const dp = await cp.kubectl(['delete', 'pod', '-n', NS, 'complainer', '--grace-period=0', '--force']);
  t.equal(dp.code, 0, dp.stderr);
  await waitFor(
    'the profile released and node-2 file removed',
    async () => {
      const p = await getProfile(cp, NS, 'complainer');
      return p === undefined && !(await hasFile(agent('node-2'), 'complainer')) ? true : undefined;
    },
    30_000,
    () => describeProfiles(cp, NS),
  );
  t.comment(`released ${Date.now() - gone} ms after the pod was deleted (polling every 250 ms)`);
  for (const a of agents) t.notOk(await hasFile(a, 'complainer'), `no complainer.json on ${a.node}`);
});

t.test('a vanished node does not block deletion', async (t) => {
  await cp.apply(podUsing('block-all', 'node-3', 'profile-block-all'));
  await waitFor(
    'node-3 reports the pod and holds the finalizer',
    async () => {
      const p = await getProfile(cp, NS, 'profile-block-all');
      const pods = await podsInReport(cp, 'node-3', `${NS}/profile-block-all`);
      return p?.metadata.finalizers?.includes(IN_USE_FINALIZER) === true && (pods?.length ?? 0) > 0 ? true : undefined;
    },
    30_000,
    () => describeProfiles(cp, NS),
  );
  await agent('node-3').kill();
  const del = await cp.kubectl(['delete', 'sp', '-n', NS, 'profile-block-all', '--wait=false']);
  t.equal(del.code, 0, del.stderr);
  const dn = await cp.kubectl(['delete', 'node', 'node-3']);
  t.equal(dn.code, 0, dn.stderr);
  await waitFor(
    'profile-block-all released although node-3 reported users',
    async () => ((await getProfile(cp, NS, 'profile-block-all')) === undefined ? true : undefined),
    30_000,
    () => describeProfiles(cp, NS),
  );
  for (const n of ['node-1', 'node-2'])
    t.notOk(await hasFile(agent(n), 'profile-block-all'), `no profile-block-all.json on ${n}`);
  t.ok(
    await hasFile(agent('node-3'), 'profile-block-all'),
    'the stopped agent could not touch its node (the file is there until it comes back)',
  );
});

t.test('a node whose lease expired does not block deletion either', async (t) => {
  await cp.apply(podUsing('deny', 'node-1', 'confine-nginx-explicit-deny'));
  await waitFor(
    'node-1 reports the pod',
    async () => {
      const p = await getProfile(cp, NS, 'confine-nginx-explicit-deny');
      return p?.metadata.finalizers?.includes(IN_USE_FINALIZER) === true ? true : undefined;
    },
    30_000,
  );
  await agent('node-1').kill();
  const del = await cp.kubectl(['delete', 'sp', '-n', NS, 'confine-nginx-explicit-deny', '--wait=false']);
  t.equal(del.code, 0, del.stderr);
  await waitFor(
    'released once node-1 lease expired',
    async () => ((await getProfile(cp, NS, 'confine-nginx-explicit-deny')) === undefined ? true : undefined),
    60_000,
    () => describeProfiles(cp, NS),
  );
  t.pass('node-2 released it after node-1 lease expired (Node object still there)');
});
