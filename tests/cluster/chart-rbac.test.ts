// Issue 6: the chart's RBAC is sufficient and minimal, on a real kube-apiserver.
// Sufficient: the cluster agent, as a process, with a token minted for the chart's ServiceAccount,
// does its whole job: profiles on disk, its status entry on every profile, the in-use finalizer,
// events, its lease, and not one 403. Minimal: each (group, resource, verb) of the chart's rules is
// taken out in turn (a copy of the ClusterRole/Role without it, bound to a fresh ServiceAccount);
// the agent then hits exactly that 403, and the check named for the rule fails.
import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IN_USE_FINALIZER } from '../../agent/src/cluster/index.js';
import { startControlPlane, type ControlPlane } from '../testbed/cluster.js';
import {
  AGENT_NS,
  createNodes,
  getProfiles,
  NS,
  startAgent,
  waitFor,
  WORKSHOP_FILES,
  type AgentProc,
} from './sync-helpers.js';
import { atoms, CHART, dig, find, objects, without, type Obj, type Rule } from './chart-helpers.js';

const cp: ControlPlane = await startControlPlane(t);
const RELEASE = 'seccomp-agent';

const install = await cp.helm(['install', RELEASE, CHART, '--namespace', AGENT_NS, '--create-namespace'], {
  timeoutMs: 120_000,
});
if (install.code !== 0) throw new Error(`helm install: ${install.stderr}`);
const est = await cp.kubectl([
  'wait',
  '--for=condition=Established',
  '--timeout=60s',
  'crd/seccompprofiles.security-profiles-operator.x-k8s.io',
]);
if (est.code !== 0) throw new Error(`CRD not established: ${est.stderr}`);
await cp.kubectl(['apply', '-f', 'profiles/ns.yaml']);
for (const f of WORKSHOP_FILES) await cp.apply(await readFile(`profiles/${f}`, 'utf8'));

/** The rules the release installed (read back from the API server, not from the chart files). */
async function installedRules(kind: 'clusterrole' | 'role'): Promise<Rule[]> {
  const r = await cp.kubectl(['get', kind, RELEASE, ...(kind === 'role' ? ['-n', AGENT_NS] : []), '-o', 'json']);
  if (r.code !== 0) throw new Error(`kubectl get ${kind}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { rules: Rule[] }).rules;
}
const clusterRules = await installedRules('clusterrole');
const nsRules = await installedRules('role');

/**
 * A profile of the node's own (the complainer's spec) and a Pod bound to `node` (no scheduler here)
 * that runs under it: only this node's agent has a reason to put the in-use finalizer on it.
 */
async function podOn(node: string): Promise<string> {
  const profile = `for-${node}`;
  await cp.apply(
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        {
          apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
          kind: 'SeccompProfile',
          metadata: { name: profile, namespace: NS },
          spec: { defaultAction: 'SCMP_ACT_LOG' },
        },
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: `uses-${profile}`, namespace: NS },
          spec: {
            nodeName: node,
            securityContext: {
              seccompProfile: { type: 'Localhost', localhostProfile: `operator/${NS}/${profile}.json` },
            },
            containers: [{ name: 'c', image: 'busybox' }],
          },
        },
      ],
    }),
  );
  return profile;
}

async function hasFinalizer(profile: string): Promise<boolean> {
  const p = (await getProfiles(cp, NS)).find((x) => x.metadata.name === profile);
  return p?.metadata.finalizers?.includes(IN_USE_FINALIZER) === true;
}

/** The agent's log with JSON string escapes undone, so apiserver messages read as they were sent. */
const plainLog = (a: AgentProc): string => a.log().replace(/\\"/g, '"');

/** A ServiceAccount bound to the given rules (a ClusterRole and a Role in the agent's namespace). */
async function accountWith(name: string, cluster: Rule[], ns: Rule[]): Promise<string> {
  const subject = [{ kind: 'ServiceAccount', name, namespace: AGENT_NS }];
  const items: Obj[] = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: AGENT_NS } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name }, rules: cluster },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: subject,
    },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: AGENT_NS }, rules: ns },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace: AGENT_NS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: subject,
    },
  ];
  await cp.apply(
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: items.filter((i) => i['kind'] !== 'ClusterRole' || cluster.length > 0),
    }),
  );
  return cp.kubeconfigFor(await cp.mintToken(AGENT_NS, name));
}

t.test('the chart declares the rules this test checks, and nothing else', async (t) => {
  const objs = objects((await cp.helm(['get', 'manifest', RELEASE, '-n', AGENT_NS])).stdout);
  t.same(dig(find(objs, 'ClusterRole'), 'rules'), clusterRules, "the installed ClusterRole is the chart's");
  t.same(
    [...atoms(clusterRules), ...atoms(nsRules)].map((a) => `${a.group}/${a.resource}:${a.verb}`).sort(),
    [
      '/nodes:list',
      '/nodes:watch',
      '/pods:list',
      '/pods:watch',
      'coordination.k8s.io/leases:create',
      'coordination.k8s.io/leases:list',
      'coordination.k8s.io/leases:patch',
      'coordination.k8s.io/leases:watch',
      'events.k8s.io/events:create',
      'security-profiles-operator.x-k8s.io/seccompprofiles/status:patch',
      'security-profiles-operator.x-k8s.io/seccompprofiles:list',
      'security-profiles-operator.x-k8s.io/seccompprofiles:patch',
      'security-profiles-operator.x-k8s.io/seccompprofiles:watch',
    ],
    'every verb the agent uses (agent/src/cluster.ts, agent/src/kube/): a new one needs a rule and a case below',
  );
  t.same(
    atoms(nsRules).map((a) => a.group),
    ['coordination.k8s.io', 'coordination.k8s.io', 'coordination.k8s.io', 'coordination.k8s.io'],
    'only leases are namespaced',
  );
});

async function nodeEvents(node: string): Promise<Obj[]> {
  const r = await cp.kubectl(['get', 'events.events.k8s.io', '-n', NS, '-o', 'json']);
  if (r.code !== 0) throw new Error(`kubectl get events: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { items: Obj[] }).items.filter(
    (e) => e['reportingController'] === 'seccomp-agent' && e['reportingInstance'] === `seccomp-agent-${node}`,
  );
}

async function hasLease(node: string): Promise<boolean> {
  const r = await cp.kubectl(['get', 'lease', `seccomp-agent-${node}`, '-n', AGENT_NS, '-o', 'name']);
  return r.code === 0;
}

async function filesOf(agent: AgentProc): Promise<string[]> {
  return readdir(join(agent.root, 'seccomp', 'operator', NS)).catch(() => []);
}

async function statusNodes(node: string): Promise<number> {
  return (await getProfiles(cp, NS)).filter((p) => p.status?.nodes?.some((n) => n.nodeName === node) === true).length;
}

t.test("sufficient: with the chart's ServiceAccount the agent does its whole job", async (t) => {
  const node = 'node-full';
  await createNodes(cp, [node]);
  const own = await podOn(node);
  const count = (await getProfiles(cp, NS)).length;
  const kubeconfig = await cp.kubeconfigFor(await cp.mintToken(AGENT_NS, RELEASE));
  const agent = await startAgent(t, { node, kubeconfig });
  const describe = async (): Promise<string> => plainLog(agent).slice(-3000);

  const files = await waitFor(
    'every profile on disk',
    async () => ((await filesOf(agent)).length === count ? true : undefined),
    60_000,
    describe,
  );
  t.ok(files, `${count} profile files under ${agent.root}`);
  await waitFor(
    `a status entry for ${node} on every profile`,
    async () => ((await statusNodes(node)) === count ? true : undefined),
    60_000,
    describe,
  );
  t.pass("status: this node's entry on every profile (seccompprofiles/status patch)");
  await waitFor(
    `the in-use finalizer on ${own}`,
    async () => ((await hasFinalizer(own)) ? true : undefined),
    60_000,
    describe,
  );
  t.pass('finalizer: added while a pod on the node uses the profile (seccompprofiles patch)');
  const events = await waitFor(
    'Installed events from this node',
    async () => {
      const ev = await nodeEvents(node);
      return ev.filter((e) => e['reason'] === 'Installed').length === count ? ev : undefined;
    },
    60_000,
    describe,
  );
  t.equal(dig(events[0], 'regarding', 'kind'), 'SeccompProfile', 'events regard the profiles');
  await waitFor('the agent lease', async () => ((await hasLease(node)) ? true : undefined), 60_000, describe);
  t.pass('lease: seccomp-agent-node-full in the agent namespace');
  await waitFor('ready', async () => ((await agent.ready()) ? true : undefined), 60_000, describe);
  t.pass('/readyz answers 200');
  t.notMatch(plainLog(agent), /forbidden|cannot \w+ resource/, 'not one 403 in the agent log');
  const rss = (await readFile(`/proc/${String(agent.proc.pid)}/status`, 'utf8')).match(/^(VmRSS|VmHWM):\s+\d+ kB$/gm);
  t.comment(
    `cluster agent with ${count} profiles and 1 pod, under tap's NODE_OPTIONS hooks (docs/install.md has the clean figure): ${rss?.join(', ') ?? 'no /proc figures'}`,
  );
  await agent.stop();
});

/** What must go wrong without one rule, beyond the 403 itself. */
const consequence: Record<string, { check: string; broken: (node: string, agent: AgentProc) => Promise<boolean> }> = {
  'security-profiles-operator.x-k8s.io/seccompprofiles:patch': {
    check: 'the in-use finalizer is added',
    broken: async (n) => !(await hasFinalizer(`for-${n}`)),
  },
  'security-profiles-operator.x-k8s.io/seccompprofiles:list': {
    check: 'profiles reach the node',
    broken: async (_n, a) => (await filesOf(a)).length === 0,
  },
  'security-profiles-operator.x-k8s.io/seccompprofiles/status:patch': {
    check: "the node's status entry is written",
    broken: async (n) => (await statusNodes(n)) === 0,
  },
  'events.k8s.io/events:create': {
    check: 'events are recorded',
    broken: async (n) => (await nodeEvents(n)).length === 0,
  },
  'coordination.k8s.io/leases:create': { check: 'the agent lease exists', broken: async (n) => !(await hasLease(n)) },
  'coordination.k8s.io/leases:patch': { check: 'the agent lease exists', broken: async (n) => !(await hasLease(n)) },
};

t.test("minimal: without any one rule, that rule's check fails", async (t) => {
  const all = [
    ...atoms(clusterRules).map((a) => ({ ...a, where: 'cluster' as const })),
    ...atoms(nsRules).map((a) => ({ ...a, where: 'ns' as const })),
  ];
  const run = async (a: (typeof all)[number], i: number): Promise<void> => {
    const key = `${a.group}/${a.resource}:${a.verb}`;
    await t.test(`without ${a.verb} ${a.resource}${a.group === '' ? '' : ` (${a.group})`}`, async (t) => {
      const name = `minus-${i}`;
      const node = `node-${name}`;
      await createNodes(cp, [node]);
      await podOn(node);
      const kubeconfig = await accountWith(
        name,
        a.where === 'cluster' ? without(clusterRules, a) : clusterRules,
        a.where === 'ns' ? without(nsRules, a) : nsRules,
      );
      const agent = await startAgent(t, { node, kubeconfig });
      const denied = `cannot ${a.verb} resource "${a.resource}" in API group "${a.group}"`;
      await waitFor(
        `a 403 for ${key}`,
        async () => (plainLog(agent).includes(denied) ? true : undefined),
        90_000,
        async () => plainLog(agent).slice(-3000),
      );
      t.pass(`the agent is refused: ${denied}`);
      const c = consequence[key];
      if (c !== undefined) t.ok(await c.broken(node, agent), `named check fails: ${c.check}`);
      await agent.kill();
    });
  };
  for (const [i, a] of all.entries()) await run(a, i);
});
