// Issue 13: the chart installed, upgraded and uninstalled on a real node (tests/testbed/realcluster.ts:
// kubelet, containerd, runc, kube-scheduler and the controllers a DaemonSet needs), with the agent
// image BuildKit built from Dockerfile.agent. What the API-server-only install test
// (tests/cluster/chart-install.test.ts) cannot show: the agent pod passes the real kubelet's
// readiness probe, and `kubectl rollout status` (the NOTES' check) waits for it (`helm --wait` does
// not on one node: it lets a DaemonSet have maxUnavailable, here 1, pods unready); an upgrade replaces the pod on its node (maxSurge 0: the old
// agent frees the node's port before the new one binds it) with the new settings in the container
// containerd runs; `helm uninstall` stops the agent and leaves the profile files on the node, where
// pods still use them, as the chart's NOTES say.
import t from 'tap';
import { startRealCluster } from '../testbed/realcluster.js';
import { AGENT_NS, NS, fileOf, getProfile, readMaybe, waitFor } from '../cluster/sync-helpers.js';

const NODE = 'node-1';
const RELEASE = 'seccomp-agent';
const CHART = 'manifests/helm/seccomp-agent';

const { cp, node, chartArgs } = await startRealCluster(t, { node: NODE });

interface AgentPod {
  readonly name: string;
  readonly uid: string;
  readonly ready: boolean;
  readonly restarts: number;
}

async function agentPods(): Promise<AgentPod[]> {
  const r = await cp.kubectl([
    '-n',
    AGENT_NS,
    'get',
    'pods',
    '-l',
    `app.kubernetes.io/instance=${RELEASE}`,
    '-o',
    'json',
  ]);
  if (r.code !== 0) return [];
  const items = (
    JSON.parse(r.stdout) as {
      items: {
        metadata: { name: string; uid: string; deletionTimestamp?: string };
        status?: { conditions?: { type: string; status: string }[]; containerStatuses?: { restartCount: number }[] };
      }[];
    }
  ).items;
  return items
    .filter((p) => p.metadata.deletionTimestamp === undefined)
    .map((p) => ({
      name: p.metadata.name,
      uid: p.metadata.uid,
      ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
      restarts: p.status?.containerStatuses?.reduce((n, c) => n + c.restartCount, 0) ?? 0,
    }));
}

async function readyz(): Promise<number> {
  const res = await fetch('http://127.0.0.1:8686/readyz');
  await res.text();
  return res.status;
}

let first: AgentPod | undefined;

async function rolledOut(): Promise<number | null> {
  const r = await cp.kubectl(['-n', AGENT_NS, 'rollout', 'status', `daemonset/${RELEASE}`, '--timeout=240s'], {
    timeoutMs: 250_000,
  });
  return r.code;
}

t.test('helm install; kubectl rollout status returns once the real kubelet finds the agent ready', async (t) => {
  const r = await cp.helm(['install', RELEASE, CHART, '-n', AGENT_NS, '--create-namespace', ...chartArgs], {
    timeoutMs: 120_000,
  });
  t.equal(r.code, 0, `helm install: ${r.stderr.trim()}`);
  t.equal(await rolledOut(), 0, 'kubectl rollout status daemonset/seccomp-agent');
  const pods = await agentPods();
  t.equal(pods.length, 1, 'one agent pod: one node');
  first = pods[0];
  t.equal(first?.ready, true, 'it is Ready (its readinessProbe on 127.0.0.1:8686/readyz passed)');
  t.equal(first?.restarts, 0, 'no restarts');
  const ds = await cp.kubectl([
    '-n',
    AGENT_NS,
    'get',
    'ds',
    RELEASE,
    '-o',
    'jsonpath={.status.numberReady}/{.status.desiredNumberScheduled}',
  ]);
  t.equal(ds.stdout, '1/1', 'the DaemonSet counts it ready');
  t.equal(await readyz(), 200, "the node's 127.0.0.1:8686/readyz answers 200");
});

t.test('a profile reaches the node through the agent pod', async (t) => {
  t.equal((await cp.kubectl(['apply', '-f', 'profiles/ns.yaml'])).code, 0, 'namespace');
  t.equal((await cp.kubectl(['apply', '-f', 'profiles/complainer.yaml'])).code, 0, 'profile');
  await waitFor('complainer Installed', async () =>
    (await getProfile(cp, NS, 'complainer'))?.status?.status === 'Installed' ? true : undefined,
  );
  t.equal(
    await readMaybe(fileOf(node.kubeletRoot, NS, 'complainer')),
    '{"defaultAction":"SCMP_ACT_LOG"}',
    'the file is on the node',
  );
});

t.test(
  'helm upgrade replaces the pod on its node, with the new settings in the container containerd runs',
  async (t) => {
    const r = await cp.helm(['upgrade', RELEASE, CHART, '-n', AGENT_NS, '--reuse-values', '--set', 'logLevel=debug'], {
      timeoutMs: 120_000,
    });
    t.equal(r.code, 0, `helm upgrade: ${r.stderr.trim()}`);
    t.equal(await rolledOut(), 0, 'kubectl rollout status daemonset/seccomp-agent');
    const pod = await waitFor('one ready agent pod after the upgrade', async () => {
      const pods = await agentPods();
      return pods.length === 1 && pods[0]?.ready === true ? pods[0] : undefined;
    });
    t.not(pod.uid, first?.uid, 'a new pod (the old one was deleted first: maxSurge 0, the port is the node’s)');
    t.equal(pod.restarts, 0, 'which started at the first try: the old agent had freed 127.0.0.1:8686');
    const id = await node.containerId(AGENT_NS, pod.name, 'agent');
    t.ok(id !== undefined, 'its container runs');
    if (id !== undefined) {
      const env = (await node.ociSpec(id)).process?.env ?? [];
      t.ok(env.includes('SECCOMP_AGENT_LOG_LEVEL=debug'), 'the OCI spec has the new value (logLevel=debug)');
    }
    t.equal(await readyz(), 200, 'and it answers /readyz');
  },
);

t.test('helm uninstall stops the agent; the files stay on the node', async (t) => {
  const r = await cp.helm(['uninstall', RELEASE, '-n', AGENT_NS, '--wait'], { timeoutMs: 180_000 });
  t.equal(r.code, 0, `helm uninstall: ${r.stderr.trim()}`);
  await waitFor('no agent pod', async () => ((await agentPods()).length === 0 ? true : undefined), 120_000);
  await waitFor('nothing on 127.0.0.1:8686', async () => ((await readyz().catch(() => 0)) === 0 ? true : undefined));
  t.pass('the pod is gone and nothing answers on the node’s port');
  t.equal(
    await readMaybe(fileOf(node.kubeletRoot, NS, 'complainer')),
    '{"defaultAction":"SCMP_ACT_LOG"}',
    'complainer.json stays on the node, where pods can still use it',
  );
  const sp = await cp.kubectl(['get', 'seccompprofile', '-n', NS, 'complainer', '-o', 'name']);
  t.equal(
    sp.stdout.trim(),
    'seccompprofile.security-profiles-operator.x-k8s.io/complainer',
    'the profile stays, with its CRD',
  );
});
