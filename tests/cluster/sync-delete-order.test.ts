// Cluster mode, deletion in every order (issue 10 item 1): a pod's and its profile's deletions, and a
// namespace's, reach a loaded agent in any order and late; whatever the order, the profile's file
// leaves the node and the profile is released. The agent talks to the API server through a proxy
// that holds back chosen answers (tests/cluster/sync-helpers.ts startDelayProxy), which gives each
// order for certain instead of by luck:
//
// - the profile's deletion first, the pod's late (the pods watch held back);
// - the pod's deletion first, the profile's late (the profiles watch held back);
// - the answer to the agent's own status write reaching it after the watch said the profile is
//   gone (the write's answer held back): taking that answer for the current object brought the
//   deleted profile back into the agent's cache, and its file stayed on the node for good;
// - `kubectl delete namespace` with the pod and the profile in it, each watch held back in turn.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { IN_USE_FINALIZER } from '../../agent/src/cluster/index.js';
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
  startDelayProxy,
  waitFor,
  type ProxiedRequest,
} from './sync-helpers.js';

const NODE = 'node-1';
const DELAY_MS = 3000;
const cp = await startBed(t);
await cp.startControllerManager(['namespace']);
await createNodes(cp, [NODE]);
const proxy = await startDelayProxy(t, cp);
const agent = await startAgent(t, { node: NODE, kubeconfig: proxy.kubeconfig });
await waitFor('the agent ready', async () => ((await agent.ready()) ? true : undefined));

const profile = (name: string, ns: string): string =>
  JSON.stringify({
    apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
    kind: 'SeccompProfile',
    metadata: { name, namespace: ns },
    spec: { defaultAction: 'SCMP_ACT_LOG' },
  });

const watchOf =
  (suffix: string) =>
  (r: ProxiedRequest): boolean =>
    r.query.get('watch') === 'true' && r.path.endsWith(suffix);
const podsWatch = watchOf('/api/v1/pods');
const profilesWatch = watchOf('/seccompprofiles');
const statusWriteOf =
  (name: string) =>
  (r: ProxiedRequest): boolean =>
    r.method === 'PATCH' && r.path.endsWith(`/seccompprofiles/${name}/status`);

const onNode = async (ns: string, name: string): Promise<boolean> =>
  (await readMaybe(fileOf(agent.root, ns, name))) !== undefined;
const agentLists = async (ns: string, name: string): Promise<boolean> => {
  const res = await fetch(`${agent.url}/v1/profiles`);
  const items = ((await res.json()) as { items: { namespace: string; name: string }[] }).items;
  return items.some((i) => i.namespace === ns && i.name === name);
};
const state = async (ns: string): Promise<string> =>
  `${await describeProfiles(cp, ns).catch((e: unknown) => String(e))}\nagent log (tail):\n${agent.log().slice(-4000)}`;

/** A profile and a pod on this node that uses it, with the file there and the profile held for the pod. */
async function inUse(ns: string, name: string): Promise<void> {
  const a = await cp.apply(profile(name, ns));
  if (a.code !== 0) throw new Error(`apply profile ${ns}/${name}: ${a.stderr}`);
  const p = await cp.apply(podUsing(name, NODE, name, ns));
  if (p.code !== 0) throw new Error(`apply pod ${ns}/${name}: ${p.stderr}`);
  await waitFor(
    `${ns}/${name} on the node, held for its pod`,
    async () => {
      const sp = await getProfile(cp, ns, name);
      const pods = await podsInReport(cp, NODE, `${ns}/${name}`);
      return (await onNode(ns, name)) &&
        sp?.metadata.finalizers?.includes(IN_USE_FINALIZER) === true &&
        pods?.includes(`${ns}/${name}`) === true
        ? true
        : undefined;
    },
    60_000,
    () => state(ns),
  );
}

async function kubectlOk(args: string[]): Promise<void> {
  const r = await cp.kubectl(args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
}

const forceDeletePod = (ns: string, name: string): Promise<void> =>
  kubectlOk(['delete', 'pod', '-n', ns, name, '--grace-period=0', '--force']);

/** The file and the object gone, and the agent no longer listing the profile. */
async function gone(ns: string, name: string, what: string): Promise<void> {
  await waitFor(
    what,
    async () =>
      !(await onNode(ns, name)) && (await getProfile(cp, ns, name)) === undefined && !(await agentLists(ns, name))
        ? true
        : undefined,
    60_000,
    () => state(ns),
  );
}

/** Checks for `ms` that the file stays away (nothing the agent still had on its way brings it back). */
async function staysGone(t: Test, ns: string, name: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  let back = 0;
  while (Date.now() < until) {
    if ((await onNode(ns, name)) || (await agentLists(ns, name))) back++;
    await new Promise((r) => setTimeout(r, 200));
  }
  t.equal(back, 0, `${name}.json stays off the node and out of /v1/profiles`);
}

t.test("the profile's deletion reaches the agent before its pod's", async (t) => {
  const name = 'profile-first';
  await inUse(NS, name);
  const undo = proxy.delay(podsWatch, DELAY_MS);
  t.teardown(undo);
  await forceDeletePod(NS, name);
  await kubectlOk(['delete', 'sp', '-n', NS, name, '--wait=false']);
  await gone(NS, name, `${name} released and its file removed once the late pod deletion arrived`);
  undo();
  await staysGone(t, NS, name, 2000);
});

t.test("the pod's deletion reaches the agent before its profile's", async (t) => {
  const name = 'pod-first';
  await inUse(NS, name);
  const undo = proxy.delay(profilesWatch, DELAY_MS);
  t.teardown(undo);
  await forceDeletePod(NS, name);
  await kubectlOk(['delete', 'sp', '-n', NS, name, '--wait=false']);
  await gone(NS, name, `${name} released and its file removed once the late profile deletion arrived`);
  undo();
  await staysGone(t, NS, name, 2000);
});

t.test("a status write's answer that arrives after the profile is gone does not bring it back", async (t) => {
  const name = 'late-answer';
  await inUse(NS, name);
  const undo = proxy.delay(statusWriteOf(name), DELAY_MS);
  t.teardown(undo);
  const mark = proxy.requests.length;
  await forceDeletePod(NS, name);
  // The agent sees the pod go, releases the profile and writes its status entry without the pod;
  // the API server has answered that write, the proxy holds the answer back.
  const write = await waitFor(
    "the API server's answer to the agent's status write after the pod went",
    async () =>
      proxy.requests.slice(mark).find((r) => statusWriteOf(name)(r) && r.status === 200 && r.answeredAt !== undefined),
    60_000,
    () => state(NS),
  );
  await kubectlOk(['delete', 'sp', '-n', NS, name, '--wait=false']);
  await gone(NS, name, `${name} deleted and its file removed`);
  // The held answer reaches the agent DELAY_MS after the API server sent it; watch what follows.
  const delivered = (write.answeredAt ?? 0) + DELAY_MS;
  await new Promise((r) => setTimeout(r, Math.max(0, delivered - Date.now())));
  await staysGone(t, NS, name, 4000);
  undo();
});

for (const [held, match] of [
  ['pods', podsWatch],
  ['seccompprofiles', profilesWatch],
] as const) {
  t.test(`kubectl delete namespace with the pod and the profile in it (${held} watch held back)`, async (t) => {
    const ns = `order-${held}`;
    const name = 'in-namespace';
    await kubectlOk(['create', 'namespace', ns]);
    await inUse(ns, name);
    const undo = proxy.delay(match, DELAY_MS);
    t.teardown(undo);
    await kubectlOk(['delete', 'namespace', ns, '--wait=false']);
    // The namespace controller deletes the pod gracefully; with no kubelet here the test finishes
    // it, as the kubelet does once the containers have stopped.
    await waitFor(
      `the namespace controller deleting pod ${ns}/${name}`,
      async () => {
        const r = await cp.kubectl(['get', 'pod', '-n', ns, name, '-o', 'jsonpath={.metadata.deletionTimestamp}']);
        if (r.code !== 0 && /NotFound/.test(r.stderr)) return true;
        return r.stdout.trim() !== '' ? true : undefined;
      },
      60_000,
    );
    await cp.kubectl(['delete', 'pod', '-n', ns, name, '--grace-period=0', '--force']);
    await gone(ns, name, `${ns}/${name} removed with its namespace`);
    await waitFor(
      `namespace ${ns} gone`,
      async () => ((await cp.kubectl(['get', 'namespace', ns])).code !== 0 ? true : undefined),
      120_000,
    );
    undo();
    await staysGone(t, ns, name, 2000);
    t.equal(await readMaybe(fileOf(agent.root, ns, name)), undefined, 'no file of the namespace left');
  });
}

t.test('no profile file is left on the node', async (t) => {
  t.same(await readdir(join(agent.root, 'seccomp', 'operator')), [], 'the operator directory is empty');
});
