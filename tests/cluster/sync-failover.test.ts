// Cluster mode, the elected aggregator (issue 11): exactly one agent aggregates; kill it (SIGKILL, no
// release of its lease) and another takes over by itself. While the dead node's Lease is still fresh
// the status says honestly that it waits for that node; once the Lease expires the node no longer
// counts. The in-use finalizer held for a pod on a surviving node stays through the failover, holds
// the deletion, and is released by the new aggregator when the pod goes.
import t from 'tap';
import { DEFAULT_CLUSTER_TIMING, IN_USE_FINALIZER } from '../../agent/src/cluster/index.js';
import {
  aggregatorOf,
  createNodes,
  describeProfiles,
  fileOf,
  getProfile,
  NS,
  podUsing,
  podsInReport,
  readMaybe,
  simpleProfile,
  startAgent,
  startBed,
  TEST_TIMING,
  waitFor,
  type AgentProc,
} from './sync-helpers.js';

const NODES = ['node-1', 'node-2', 'node-3'];
const cp = await startBed(t);
await createNodes(cp, NODES);
// The production election timings, so the takeover figure is the real one.
const election = {
  electionLeaseSeconds: DEFAULT_CLUSTER_TIMING.electionLeaseSeconds,
  electionRenewMs: DEFAULT_CLUSTER_TIMING.electionRenewMs,
  electionJitterMs: DEFAULT_CLUSTER_TIMING.electionJitterMs,
};
const agents: AgentProc[] = await Promise.all(
  NODES.map((node) => startAgent(t, { node, kubeconfig: cp.kubeconfig, timing: election })),
);
const describe = (): Promise<string> => describeProfiles(cp, NS);

async function installedOn(name: string, nodes: string, generation: number): Promise<true | undefined> {
  const p = await getProfile(cp, NS, name);
  return p?.status?.status === 'Installed' &&
    p.status.installedNodes === nodes &&
    p.status.observedGeneration === generation
    ? true
    : undefined;
}

const leader = await waitFor('one agent to become the aggregator', () => aggregatorOf(agents), 60_000);
const survivors = agents.filter((a) => a !== leader);
const keeper = survivors[0] as AgentProc;
await cp.apply(simpleProfile('kept', 'SCMP_ACT_LOG'));
await cp.apply(simpleProfile('edited', 'SCMP_ACT_LOG'));
await waitFor(
  'both profiles Installed on 3/3',
  async () => (await installedOn('kept', '3/3', 1)) && installedOn('edited', '3/3', 1),
  60_000,
  describe,
);
await cp.apply(podUsing('user', keeper.node, 'kept'));
await waitFor(
  `the in-use finalizer for the pod on ${keeper.node}`,
  async () => {
    const p = await getProfile(cp, NS, 'kept');
    return p?.metadata.finalizers?.includes(IN_USE_FINALIZER) === true &&
      (await podsInReport(cp, keeper.node, `${NS}/kept`))?.includes(`${NS}/user`) === true
      ? true
      : undefined;
  },
  30_000,
  describe,
);

t.test('the aggregator is killed: another agent takes over and the status stays right', async (t) => {
  t.equal(
    (await Promise.all(agents.map((a) => a.stats()))).filter((s) => s.aggregator.leading).length,
    1,
    'one aggregator',
  );
  const killed = Date.now();
  await leader.kill();
  const next = await waitFor('another agent to become the aggregator', () => aggregatorOf(survivors), 60_000);
  const takeover = Date.now() - killed;
  t.not(next.node, leader.node, `${next.node} took over from ${leader.node}`);
  t.comment(
    `takeover ${takeover} ms after the SIGKILL (aggregator lease ${election.electionLeaseSeconds} s, renewed every ${election.electionRenewMs} ms, jitter up to ${election.electionJitterMs} ms: the defaults)`,
  );
  const lease = await cp.kubectl([
    'get',
    'lease',
    '-n',
    'seccomp-agent',
    'seccomp-agent-aggregator',
    '-o',
    'jsonpath={.spec.holderIdentity}',
  ]);
  t.equal(lease.stdout, next.node, 'the election lease names the new aggregator');

  // An edit right away: the dead node's Lease is still fresh, so the status waits for it, by name.
  const edited = Date.now();
  const r = await cp.kubectl([
    'patch',
    'sp',
    '-n',
    NS,
    'edited',
    '--type',
    'merge',
    '-p',
    '{"spec":{"defaultAction":"SCMP_ACT_ERRNO"}}',
  ]);
  t.equal(r.code, 0, r.stderr);
  for (const a of survivors) {
    await waitFor(
      `the edit on ${a.node}`,
      async () =>
        (await readMaybe(fileOf(a.root, NS, 'edited'))) === '{"defaultAction":"SCMP_ACT_ERRNO"}' ? true : undefined,
      30_000,
    );
  }
  const final = await waitFor(
    'edited Installed on the 2 live nodes at generation 2',
    () => installedOn('edited', '2/2', 2),
    60_000,
    describe,
  );
  t.ok(final, 'Installed 2/2 once the dead node stopped counting');
  t.comment(
    `edit to Installed 2/2: ${Date.now() - edited} ms (the dead node's Lease had to expire: ${TEST_TIMING.leaseDurationSeconds ?? 40} s in this test)`,
  );
  const kept = await getProfile(cp, NS, 'kept');
  t.ok(kept?.metadata.finalizers?.includes(IN_USE_FINALIZER), 'the in-use finalizer stayed through the failover');
  t.same(kept?.status?.activeWorkloads, [`${NS}/user`], 'activeWorkloads still names the pod');
});

t.test('in-use deletion is held and released by the new aggregator', async (t) => {
  const del = await cp.kubectl(['delete', 'sp', '-n', NS, 'kept', '--wait=false']);
  t.equal(del.code, 0, del.stderr);
  const term = await waitFor(
    'kept Terminating, naming the pod',
    async () => {
      const p = await getProfile(cp, NS, 'kept');
      return p?.status?.status === 'Terminating' ? p : undefined;
    },
    30_000,
    describe,
  );
  t.match(term.status?.conditions?.[0]?.message, new RegExp(`${NS}/user`), 'the Ready message names the pod');
  t.ok(await readMaybe(fileOf(keeper.root, NS, 'kept')), `${keeper.node} keeps the file while the pod runs`);
  const dp = await cp.kubectl(['delete', 'pod', '-n', NS, 'user', '--grace-period=0', '--force']);
  t.equal(dp.code, 0, dp.stderr);
  await waitFor(
    'kept released and gone from every live node',
    async () => {
      if ((await getProfile(cp, NS, 'kept')) !== undefined) return undefined;
      for (const a of survivors) if ((await readMaybe(fileOf(a.root, NS, 'kept'))) !== undefined) return undefined;
      return true;
    },
    30_000,
    describe,
  );
  t.pass('released once no live node reported the pod');
});

t.test('an agent that cannot write its Lease says so and is not ready', async (t) => {
  await createNodes(cp, ['node-lost']);
  const lost = await startAgent(t, { node: 'node-lost', kubeconfig: cp.kubeconfig, namespace: 'no-such-namespace' });
  const s = await waitFor(
    'the agent to name its Lease as the problem',
    async () => {
      const st = await lost.stats().catch(() => undefined);
      return st !== undefined && /Lease/.test(st.readyReason) ? st : undefined;
    },
    60_000,
  );
  t.notOk(s.ready, 'not ready');
  t.match(s.readyReason, /cannot renew its Lease no-such-namespace\/seccomp-agent-node-lost/, s.readyReason);
  t.notOk(await lost.ready(), '/readyz answers not ready');
  await lost.stop();
});
