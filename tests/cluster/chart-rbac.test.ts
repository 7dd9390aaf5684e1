// Issue 6 (and 11): the chart's RBAC is sufficient and minimal, on a real kube-apiserver.
// Sufficient: the cluster agent, as a process, with a token minted for the chart's ServiceAccount,
// does its whole job: profiles on disk, its SeccompNodeReport (owned by its Node), the aggregate
// status as the elected aggregator, the in-use finalizer, events, its lease and the election lease,
// and the API server refuses it nothing. Minimal: each (group, resource, verb) of the chart's rules
// is taken out in turn (a copy of the ClusterRole/Role without it, bound to a fresh ServiceAccount);
// the API server's audit log then shows it refusing the agent exactly that, and the check named for
// the rule fails.
import t from 'tap';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IN_USE_FINALIZER } from '../../agent/src/cluster/index.js';
import { startControlPlane, type ControlPlane } from '../testbed/cluster.js';
import {
  AGENT_NS,
  createNodes,
  getProfile,
  getProfiles,
  NS,
  startAgent,
  waitFor,
  WORKSHOP_FILES,
  type AgentProc,
} from './sync-helpers.js';
import {
  atoms,
  auditArgs,
  CHART,
  CRD_NAMES,
  dig,
  find,
  objects,
  refusals,
  without,
  type Obj,
  type Rule,
} from './chart-helpers.js';

// 21 cases, each a fresh agent that may first have to wait out a killed aggregator's lease: more
// than .taprc's 600 s (t.setTimeout in a test file is sent to tap's runner).
t.setTimeout(20 * 60_000);

const auditDir = await mkdtemp(join(tmpdir(), 'seccomp-agent-rbac-audit-'));
t.teardown(() => rm(auditDir, { recursive: true, force: true }));
const audit = await auditArgs(auditDir, AGENT_NS);
const cp: ControlPlane = await startControlPlane(t, { apiServerArgs: audit.args });
const RELEASE = 'seccomp-agent';
/** The leader-election Lease every agent watches (docs/cluster.md). */
const AGGREGATOR_LEASE = 'seccomp-agent-aggregator';

const install = await cp.helm(['install', RELEASE, CHART, '--namespace', AGENT_NS, '--create-namespace'], {
  timeoutMs: 120_000,
});
if (install.code !== 0) throw new Error(`helm install: ${install.stderr}`);
const est = await cp.kubectl([
  'wait',
  '--for=condition=Established',
  '--timeout=60s',
  ...CRD_NAMES.map((n) => `crd/${n}`),
]);
if (est.code !== 0) throw new Error(`CRDs not established: ${est.stderr}`);
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
      '/nodes:get',
      '/nodes:list',
      '/nodes:watch',
      '/pods:list',
      '/pods:watch',
      'coordination.k8s.io/leases:create',
      'coordination.k8s.io/leases:list',
      'coordination.k8s.io/leases:patch',
      'coordination.k8s.io/leases:update',
      'coordination.k8s.io/leases:watch',
      'events.k8s.io/events:create',
      'seccomp-agent.security-profiles-operator.x-k8s.io/seccompnodereports:create',
      'seccomp-agent.security-profiles-operator.x-k8s.io/seccompnodereports:list',
      'seccomp-agent.security-profiles-operator.x-k8s.io/seccompnodereports:patch',
      'seccomp-agent.security-profiles-operator.x-k8s.io/seccompnodereports:watch',
      'security-profiles-operator.x-k8s.io/seccompprofiles/status:patch',
      'security-profiles-operator.x-k8s.io/seccompprofiles:list',
      'security-profiles-operator.x-k8s.io/seccompprofiles:patch',
      'security-profiles-operator.x-k8s.io/seccompprofiles:watch',
    ],
    'every verb the agent uses (agent/src/cluster/, agent/src/kube/): a new one needs a rule and a case below',
  );
  t.same(
    new Set(atoms(nsRules).map((a) => `${a.group}/${a.resource}`)),
    new Set(['coordination.k8s.io/leases']),
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

async function lease(name: string): Promise<Obj | undefined> {
  const r = await cp.kubectl(['get', 'lease', name, '-n', AGENT_NS, '-o', 'json']);
  if (r.code !== 0) {
    if (/NotFound/.test(r.stderr)) return undefined;
    throw new Error(`kubectl get lease ${name}: ${r.stderr}`);
  }
  return JSON.parse(r.stdout) as Obj;
}

async function hasLease(node: string): Promise<boolean> {
  return (await lease(`seccomp-agent-${node}`)) !== undefined;
}

/** The node's SeccompNodeReport, undefined while there is none. */
async function report(node: string): Promise<Obj | undefined> {
  const r = await cp.kubectl(['get', 'seccompnodereports', node, '-o', 'json']);
  if (r.code !== 0) {
    if (/NotFound/.test(r.stderr)) return undefined;
    throw new Error(`kubectl get seccompnodereport ${node}: ${r.stderr}`);
  }
  return JSON.parse(r.stdout) as Obj;
}

async function nodeUid(node: string): Promise<string> {
  const r = await cp.kubectl(['get', 'node', node, '-o', 'jsonpath={.metadata.uid}']);
  if (r.code !== 0 || r.stdout === '') throw new Error(`kubectl get node ${node}: ${r.stderr}`);
  return r.stdout;
}

/** status.installedNodes of one profile in NS (what kubectl prints as NODES). */
async function installedNodes(profile: string): Promise<unknown> {
  return dig(await getProfile(cp, NS, profile), 'status', 'installedNodes');
}

/** What the API server refused the ServiceAccount `account` of the agent namespace (audit log). */
const refused = (account: string): Promise<string[]> =>
  refusals(audit.log, `system:serviceaccount:${AGENT_NS}:${account}`);

async function filesOf(agent: AgentProc): Promise<string[]> {
  return readdir(join(agent.root, 'seccomp', 'operator', NS)).catch(() => []);
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
  const rep = await waitFor('the SeccompNodeReport of this node', async () => report(node), 60_000, describe);
  t.equal(rep['nodeName'], node, 'report: written by this node (seccompnodereports create, patch)');
  t.match(rep['appliedRevision'], /^[0-9]+$/, 'report: a watermark');
  t.match(
    dig(rep, 'metadata', 'ownerReferences'),
    [{ apiVersion: 'v1', kind: 'Node', name: node, uid: await nodeUid(node) }],
    'report: owned by its Node (nodes get), so it goes with the Node',
  );
  await waitFor(
    `installedNodes 1/1 on every profile`,
    async () => {
      const ps = await getProfiles(cp, NS);
      return ps.length === count && ps.every((p) => dig(p, 'status', 'installedNodes') === '1/1') ? true : undefined;
    },
    60_000,
    describe,
  );
  t.pass('status: the aggregate on every profile, by the elected aggregator (seccompprofiles/status patch)');
  const election = await waitFor(
    'the election lease',
    async () => {
      const l = await lease(AGGREGATOR_LEASE);
      return typeof dig(l, 'spec', 'holderIdentity') === 'string' && dig(l, 'spec', 'holderIdentity') !== ''
        ? l
        : undefined;
    },
    60_000,
    describe,
  );
  t.comment(`the aggregator: ${String(dig(election, 'spec', 'holderIdentity'))}`);
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
  t.same(await refused(RELEASE), [], 'the API server refused the agent nothing (audit log)');
  const rss = (await readFile(`/proc/${String(agent.proc.pid)}/status`, 'utf8')).match(/^(VmRSS|VmHWM):\s+\d+ kB$/gm);
  t.comment(
    `cluster agent with ${count} profiles and 1 pod, under tap's NODE_OPTIONS hooks (docs/install.md has the clean figure): ${rss?.join(', ') ?? 'no /proc figures'}`,
  );
  await agent.stop();
});

/** The profile `podOn` made for `node` has no aggregate status (no aggregator wrote it). */
const noStatus = async (node: string): Promise<boolean> => (await installedNodes(`for-${node}`)) === undefined;

/**
 * What must go wrong without one rule, beyond the 403 itself. A rule with no entry is refused too
 * (the audit log shows it), but nothing a user sees depends on it alone.
 */
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
    check: 'the aggregate status is written',
    broken: noStatus,
  },
  'seccomp-agent.security-profiles-operator.x-k8s.io/seccompnodereports:create': {
    check: "the node's report exists",
    broken: async (n) => (await report(n)) === undefined,
  },
  'seccomp-agent.security-profiles-operator.x-k8s.io/seccompnodereports:patch': {
    check: "the node's report exists",
    broken: async (n) => (await report(n)) === undefined,
  },
  '/nodes:get': {
    check: 'the report is owned by its Node',
    // The report is still written, without the owner: wait for it, then look.
    broken: async (n) =>
      dig(await waitFor(`the report of ${n}`, async () => report(n), 60_000), 'metadata', 'ownerReferences') ===
      undefined,
  },
  'events.k8s.io/events:create': {
    check: 'events are recorded',
    broken: async (n) => (await nodeEvents(n)).length === 0,
  },
  'coordination.k8s.io/leases:create': { check: 'the agent lease exists', broken: async (n) => !(await hasLease(n)) },
  'coordination.k8s.io/leases:patch': { check: 'the agent lease exists', broken: async (n) => !(await hasLease(n)) },
  // The election Lease exists from the first case on, so taking it over needs a PUT.
  'coordination.k8s.io/leases:update': { check: 'the agent is elected and writes status', broken: noStatus },
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
      const got = await waitFor(
        `a 403 for ${key}`,
        async () => (await refused(name)).find((m) => m.includes(denied)),
        90_000,
        async () =>
          `refused: ${(await refused(name)).join('\n') || 'nothing'}\nagent log:\n${plainLog(agent).slice(-3000)}`,
      );
      t.pass(`the agent is refused: ${got}`);
      t.same([...new Set((await refused(name)).filter((m) => !m.includes(denied)))], [], 'and refused nothing else');
      const c = consequence[key];
      if (c !== undefined) t.ok(await c.broken(node, agent), `named check fails: ${c.check}`);
      await agent.kill();
    });
  };
  for (const [i, a] of all.entries()) await run(a, i);
});
