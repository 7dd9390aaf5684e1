// Cluster mode, the everyday path: three agents (separate processes, each its own node and kubelet
// root) against a real kube-apiserver install the workshop's profiles byte for byte, the profiles
// read Installed in kubectl, an edit reaches every node, and a base profile edit re-renders its child.
import t from 'tap';
import { stat } from 'node:fs/promises';
import {
  AGENT_NS,
  createNodes,
  describeProfiles,
  fileOf,
  getProfile,
  getProfiles,
  getReports,
  statusWrites,
  NS,
  readMaybe,
  renderYaml,
  startAgent,
  startBed,
  waitFor,
  workshopYaml,
  WORKSHOP_FILES,
  type AgentProc,
} from './sync-helpers.js';
import { repoPath } from '../testbed/cluster.js';

const NODES = ['node-1', 'node-2', 'node-3'];
const cp = await startBed(t);
await createNodes(cp, NODES);
const agents: AgentProc[] = await Promise.all(NODES.map((node) => startAgent(t, { node, kubeconfig: cp.kubeconfig })));

/** Every agent's root holds exactly `expected` for these keys (undefined = no file). */
async function filesMatch(expected: Map<string, string | undefined>): Promise<true | undefined> {
  for (const a of agents) {
    for (const [key, content] of expected) {
      const [ns = '', name = ''] = key.split('/');
      if ((await readMaybe(fileOf(a.root, ns, name))) !== content) return undefined;
    }
  }
  return true;
}

async function allInstalled(
  names: readonly string[],
  generation?: (name: string) => number,
): Promise<true | undefined> {
  const items = await getProfiles(cp, NS);
  for (const n of names) {
    const p = items.find((i) => i.metadata.name === n);
    if (p?.status?.status !== 'Installed') return undefined;
    if (generation !== undefined && p.status.observedGeneration !== generation(n)) return undefined;
  }
  return true;
}

t.test('three agents install the workshop profiles byte for byte and report Installed', async (t) => {
  for (const f of WORKSHOP_FILES) {
    const r = await cp.kubectl(['apply', '-f', repoPath('profiles', f)]);
    t.equal(r.code, 0, `kubectl apply -f profiles/${f}: ${r.stderr}`);
  }
  const expected = renderYaml(await workshopYaml());
  t.equal(expected.size, 7, 'seven workshop profiles');
  t.equal(expected.get(`${NS}/complainer`)?.length, 32, 'complainer.json is 32 bytes (seed)');
  t.equal(expected.get(`${NS}/profile-block-all`)?.length, 34, 'profile-block-all.json is 34 bytes (seed)');
  t.equal(
    expected.get(`${NS}/profile-complain-block-high-risk`)?.length,
    813,
    'profile-complain-block-high-risk.json is 813 bytes (seed)',
  );

  await waitFor('every node to hold the seven files', () => filesMatch(expected), 60_000);
  for (const a of agents) {
    for (const key of expected.keys()) {
      const [ns = '', name = ''] = key.split('/');
      const st = await stat(fileOf(a.root, ns, name));
      t.equal(st.mode & 0o7777, 0o644, `${a.node} ${key} mode 0644`);
      t.equal(`${st.uid}:${st.gid}`, '65535:65535', `${a.node} ${key} owned by 65535`);
    }
    t.ok(await a.ready(), `${a.node} /readyz is ready`);
  }
  const names = [...expected.keys()].map((k) => k.split('/')[1] ?? '');
  await waitFor(
    'kubectl to show Installed for all',
    () => allInstalled(names),
    60_000,
    () => describeProfiles(cp, NS),
  );

  const table = await cp.kubectl(['get', 'sp', '-n', NS]);
  t.equal(table.code, 0, table.stderr);
  const rows = table.stdout.trim().split('\n');
  t.match(rows[0] ?? '', /NAME\s+STATUS\s+NODES\s+AGE\s+LOCALHOSTPROFILE/, 'printer columns');
  for (const n of names) {
    t.match(
      table.stdout,
      new RegExp(`${n}\\s+Installed\\s+3/3\\s+\\S+\\s+operator/${NS}/${n}\\.json`),
      `${n} Installed in kubectl get sp`,
    );
  }

  const p = await getProfile(cp, NS, 'profile-complain-block-high-risk');
  const ready = p?.status?.conditions?.find((c) => c.type === 'Ready');
  t.match(ready, { status: 'True', reason: 'Installed', observedGeneration: 1 }, 'Ready condition');
  t.equal(p?.status?.localhostProfile, `operator/${NS}/profile-complain-block-high-risk.json`);
  t.equal(p?.status?.installedNodes, '3/3', 'installed on 3 of 3 nodes');
  t.match(ready?.message, /every node running the agent \(3\)/, 'the Ready message counts the nodes');
  const reports = await getReports(cp);
  t.same(reports.map((r) => r.nodeName).sort(), NODES, 'one SeccompNodeReport per node');
  for (const r of reports) {
    t.match(r, { installed: 7, failedCount: 0, inUseCount: 0, failed: [], inUse: [] }, `${r.nodeName}'s report`);
    t.ok(Number(r.appliedRevision) >= Number(p?.status?.specRevision), `${r.nodeName} has reached the spec revision`);
    t.match(
      r.metadata.ownerReferences,
      [{ kind: 'Node', name: r.nodeName }],
      `${r.nodeName}'s report is owned by its Node`,
    );
  }
  const reportTable = await cp.kubectl(['get', 'seccompnodereports']);
  t.match(
    reportTable.stdout,
    /NAME\s+APPLIED\s+INSTALLED\s+FAILED\s+INUSE\s+AGE/,
    'kubectl get seccompnodereports columns',
  );

  const ev = await cp.kubectl(['get', 'events.events.k8s.io', '-n', NS, '-o', 'json']);
  const items = (
    JSON.parse(ev.stdout) as { items: { reason: string; regarding: { name: string }; reportingInstance: string }[] }
  ).items;
  for (const node of NODES) {
    t.ok(
      items.some(
        (e) =>
          e.reason === 'Installed' &&
          e.regarding.name === 'complainer' &&
          e.reportingInstance === `seccomp-agent-${node}`,
      ),
      `an Installed event on complainer from ${node}`,
    );
  }
});

t.test('nothing changed: no status writes', async (t) => {
  // settle: wait until the counters stop moving, then watch a quiet period
  const total = (): Promise<number> => statusWrites(agents);
  let last = -1;
  await waitFor(
    'status writes to settle',
    async () => {
      const now = await total();
      const settled = now === last;
      last = now;
      return settled ? true : undefined;
    },
    60_000,
  );
  await new Promise((r) => setTimeout(r, 5000));
  t.equal(await total(), last, `no status write in a quiet period (${last} writes in all so far)`);
  const stats = await Promise.all(agents.map((a) => a.stats()));
  const leaders = stats.filter((s) => s.aggregator.leading);
  t.equal(leaders.length, 1, 'exactly one agent is the aggregator');
  for (const s of stats) {
    const perProfile = Object.values(s.aggregator.statusWritesByProfile);
    t.comment(
      `${s.node}: aggregator=${s.aggregator.leading} ${s.aggregator.statusWrites} status writes for ${perProfile.length} profiles (max ${perProfile.length === 0 ? 0 : Math.max(...perProfile)} per profile), ${s.reportWrites} report writes`,
    );
    if (s.aggregator.leading)
      t.same(s.aggregator.liveNodes, NODES, `the aggregator ${s.node} sees the three agents alive`);
  }
});

t.test('an edit reaches every node', async (t) => {
  const r = await cp.kubectl([
    'patch',
    'sp',
    '-n',
    NS,
    'complainer',
    '--type',
    'merge',
    '-p',
    JSON.stringify({ spec: { syscalls: [{ names: ['ptrace'], action: 'SCMP_ACT_ERRNO' }] } }),
  ]);
  t.equal(r.code, 0, r.stderr);
  const want = '{"defaultAction":"SCMP_ACT_LOG","syscalls":[{"names":["ptrace"],"action":"SCMP_ACT_ERRNO"}]}';
  await waitFor('the edited file on every node', () => filesMatch(new Map([[`${NS}/complainer`, want]])), 30_000);
  t.pass('every node holds the edited complainer.json');
  await waitFor(
    'complainer Installed at generation 2',
    () => allInstalled(['complainer'], () => 2),
    30_000,
    () => describeProfiles(cp, NS),
  );
  t.pass('status Installed for generation 2');
});

t.test('a base profile edit re-renders its child', async (t) => {
  const base = (action: string): string => `
apiVersion: security-profiles-operator.x-k8s.io/v1beta1
kind: SeccompProfile
metadata: { name: base-net, namespace: ${NS} }
spec:
  defaultAction: SCMP_ACT_ERRNO
  syscalls:
    - { names: [socket, connect], action: ${action} }
`;
  const child = `
apiVersion: security-profiles-operator.x-k8s.io/v1beta1
kind: SeccompProfile
metadata: { name: app, namespace: ${NS} }
spec:
  baseProfileName: base-net
  defaultAction: SCMP_ACT_ERRNO
  syscalls:
    - { names: [read, write], action: SCMP_ACT_ALLOW }
`;
  await cp.apply(base('SCMP_ACT_ALLOW') + '---' + child);
  const first = renderYaml([base('SCMP_ACT_ALLOW'), child]).get(`${NS}/app`);
  t.match(first, /"socket","connect"\],"action":"SCMP_ACT_ALLOW"/, 'the child includes the base rules');
  await waitFor('the child on every node', () => filesMatch(new Map([[`${NS}/app`, first]])), 30_000);
  await cp.apply(base('SCMP_ACT_LOG'));
  const second = renderYaml([base('SCMP_ACT_LOG'), child]).get(`${NS}/app`);
  t.not(second, first);
  await waitFor('the re-rendered child on every node', () => filesMatch(new Map([[`${NS}/app`, second]])), 30_000);
  t.pass('every node re-rendered app.json after base-net changed');
  await waitFor(
    'app and base-net Installed',
    () => allInstalled(['app', 'base-net']),
    30_000,
    () => describeProfiles(cp, NS),
  );
});

t.test('the agents hold a lease each', async (t) => {
  const r = await cp.kubectl(['get', 'leases', '-n', AGENT_NS, '-o', 'name']);
  t.same(
    r.stdout.trim().split('\n').sort(),
    ['aggregator', ...NODES].map((n) => `lease.coordination.k8s.io/seccomp-agent-${n}`).sort(),
    'one lease per node, and the aggregator election lease',
  );
});
