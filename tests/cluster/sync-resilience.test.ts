// Cluster mode, failures: an API server outage of 30 s removes no file and the agents converge on
// what changed once it is back; a watch whose connection is cut silently (a proxy that stops
// forwarding without closing) is restarted by the watchdog and the change it missed arrives.
import t from 'tap';
import {
  createNodes,
  describeProfiles,
  fileOf,
  getProfile,
  NS,
  readMaybe,
  renderYaml,
  startAgent,
  startBed,
  startProxy,
  waitFor,
  workshopYaml,
  WORKSHOP_FILES,
  type AgentProc,
} from './sync-helpers.js';
import { repoPath } from '../testbed/cluster.js';

const cp = await startBed(t);
await createNodes(cp, ['node-1', 'node-2', 'node-3']);
const proxy = await startProxy(t, cp);
const agents: AgentProc[] = await Promise.all([
  startAgent(t, { node: 'node-1', kubeconfig: cp.kubeconfig }),
  startAgent(t, { node: 'node-2', kubeconfig: cp.kubeconfig }),
  // node-3 talks through the proxy; its watchdog is short and the server's watch timeout long, so
  // only the watchdog can bring a cut watch back within the test.
  startAgent(t, {
    node: 'node-3',
    kubeconfig: proxy.kubeconfig,
    timing: { watchTimeoutSeconds: 300, watchdogMs: 10_000 },
  }),
]);
for (const f of WORKSHOP_FILES) await cp.kubectl(['apply', '-f', repoPath('profiles', f)]);
const expected = renderYaml(await workshopYaml());

async function snapshot(): Promise<Map<string, string | undefined>> {
  const out = new Map<string, string | undefined>();
  for (const a of agents) {
    for (const key of expected.keys()) {
      const [ns = '', name = ''] = key.split('/');
      out.set(`${a.node} ${key}`, await readMaybe(fileOf(a.root, ns, name)));
    }
  }
  return out;
}

await waitFor('the workshop files on every node', async () => {
  for (const [k, v] of await snapshot()) if (v !== expected.get(k.split(' ')[1] ?? '')) return undefined;
  return true;
});

t.test('a 30 s API server outage removes nothing; changes after it converge', async (t) => {
  const before = await snapshot();
  await cp.stopApiServer();
  const until = Date.now() + 30_000;
  let checks = 0;
  let lost = 0;
  while (Date.now() < until) {
    const now = await snapshot();
    for (const [k, v] of before) if (now.get(k) !== v) lost++;
    checks++;
    await new Promise((r) => setTimeout(r, 500));
  }
  t.equal(lost, 0, `no file removed or changed during the outage (${checks} checks of ${before.size} files)`);
  await cp.startApiServer();

  await cp.kubectl([
    'patch',
    'sp',
    '-n',
    NS,
    'profile-block-all',
    '--type',
    'merge',
    '-p',
    '{"spec":{"defaultAction":"SCMP_ACT_KILL_PROCESS"}}',
  ]);
  await cp.kubectl(['delete', 'sp', '-n', NS, 'profile-allow-unsafe']);
  await cp.apply(
    `{"apiVersion":"security-profiles-operator.x-k8s.io/v1beta1","kind":"SeccompProfile","metadata":{"name":"after-outage","namespace":"${NS}"},"spec":{"defaultAction":"SCMP_ACT_LOG"}}`,
  );
  await waitFor(
    'every node converged on the changes made after the outage',
    async () => {
      for (const a of agents) {
        if ((await readMaybe(fileOf(a.root, NS, 'profile-block-all'))) !== '{"defaultAction":"SCMP_ACT_KILL_PROCESS"}')
          return undefined;
        if ((await readMaybe(fileOf(a.root, NS, 'profile-allow-unsafe'))) !== undefined) return undefined;
        if ((await readMaybe(fileOf(a.root, NS, 'after-outage'))) !== '{"defaultAction":"SCMP_ACT_LOG"}')
          return undefined;
      }
      return true;
    },
    90_000,
  );
  t.pass('edit, delete and create after the outage reached every node');
  await waitFor(
    'status converged',
    async () => {
      const p = await getProfile(cp, NS, 'profile-block-all');
      const q = await getProfile(cp, NS, 'after-outage');
      return p?.status?.status === 'Installed' && p.status.observedGeneration === 2 && q?.status?.status === 'Installed'
        ? true
        : undefined;
    },
    90_000,
    () => describeProfiles(cp, NS),
  );
  t.pass('Installed at the new generation');
  for (const a of agents) {
    const s = await a.stats();
    t.comment(
      `${a.node}: informer failures ${s.informers['seccompprofiles']?.failures}, lists ${s.informers['seccompprofiles']?.lists}, relists on 410 ${s.informers['seccompprofiles']?.relistsOn410}`,
    );
  }
});

t.test('a watch cut silently is restarted by the watchdog', async (t) => {
  const node3 = agents[2] as AgentProc;
  const before = (await node3.stats()).informers['seccompprofiles']?.watchdogRestarts ?? 0;
  const cut = proxy.blackhole();
  t.ok(cut > 0, `cut ${cut} open connection(s) of node-3 silently`);
  await cp.kubectl([
    'patch',
    'sp',
    '-n',
    NS,
    'complainer',
    '--type',
    'merge',
    '-p',
    '{"spec":{"defaultAction":"SCMP_ACT_ERRNO"}}',
  ]);
  await waitFor(
    'node-3 to get the change made after its watch was cut',
    async () =>
      (await readMaybe(fileOf(node3.root, NS, 'complainer'))) === '{"defaultAction":"SCMP_ACT_ERRNO"}'
        ? true
        : undefined,
    90_000,
    async () => `node-3 stats: ${JSON.stringify((await node3.stats()).informers)}`,
  );
  // The file can also arrive through the answer to one of node-3's own status writes; what must
  // happen regardless is that the cut watch is found silent and restarted.
  const after = await waitFor(
    'the watchdog to restart the cut profile watch',
    async () => {
      const n = (await node3.stats()).informers['seccompprofiles']?.watchdogRestarts ?? 0;
      return n > before ? n : undefined;
    },
    60_000,
  );
  t.ok(after > before, `the watchdog restarted the profile watch (${before} → ${after})`);
  for (const a of agents.slice(0, 2))
    t.equal(
      await readMaybe(fileOf(a.root, NS, 'complainer')),
      '{"defaultAction":"SCMP_ACT_ERRNO"}',
      `${a.node} has it too`,
    );
});
