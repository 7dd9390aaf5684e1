// Cluster mode, bad input: a profile the API server accepts but our validation refuses (an unknown
// syscall name, which runc would skip silently) shows Error with the message, writes no file, and
// leaves the other profiles alone; a valid profile edited into an invalid one keeps its last good file.
import t from 'tap';
import {
  createNodes,
  describeProfiles,
  fileOf,
  getProfile,
  NS,
  readMaybe,
  startAgent,
  startBed,
  waitFor,
  type AgentProc,
} from './sync-helpers.js';
import { repoPath } from '../testbed/cluster.js';

const NODES = ['node-1', 'node-2'];
const cp = await startBed(t);
await createNodes(cp, NODES);
const agents: AgentProc[] = await Promise.all(NODES.map((node) => startAgent(t, { node, kubeconfig: cp.kubeconfig })));
await cp.kubectl(['apply', '-f', repoPath('profiles', 'multiple.yaml')]);

const sp = (name: string, names: string[]): string => `
apiVersion: security-profiles-operator.x-k8s.io/v1beta1
kind: SeccompProfile
metadata: { name: ${name}, namespace: ${NS} }
spec:
  defaultAction: SCMP_ACT_ALLOW
  syscalls:
    - { names: [${names.join(', ')}], action: SCMP_ACT_ERRNO }
`;

t.test('an unknown syscall name: Error with the message, no file, others unaffected', async (t) => {
  const r = await cp.kubectl(['apply', '-f', '-'], { input: sp('typo', ['ptrace', 'unshar']) });
  t.equal(r.code, 0, 'the API server accepts it');
  const p = await waitFor(
    'typo shows Error',
    async () => {
      const o = await getProfile(cp, NS, 'typo');
      return o?.status?.status === 'Error' ? o : undefined;
    },
    30_000,
    () => describeProfiles(cp, NS),
  );
  const ready = p.status?.conditions?.find((c) => c.type === 'Ready');
  t.match(ready, { status: 'False', reason: 'ProfileInvalid' });
  t.match(
    ready?.message,
    /spec\.syscalls\[0\]\.names\[1\]: "unshar" is not a syscall on any architecture \(did you mean "unshare"\?\)/,
    'the message names the field and the fix',
  );
  for (const a of agents) t.equal(await readMaybe(fileOf(a.root, NS, 'typo')), undefined, `no typo.json on ${a.node}`);
  const others = [
    'profile-allow-unsafe',
    'profile-block-all',
    'profile-complain-unsafe',
    'profile-complain-block-high-risk',
  ];
  await waitFor(
    'the other profiles Installed',
    async () => {
      for (const n of others) if ((await getProfile(cp, NS, n))?.status?.status !== 'Installed') return undefined;
      return true;
    },
    30_000,
    () => describeProfiles(cp, NS),
  );
  const table = await cp.kubectl(['get', 'sp', '-n', NS]);
  t.match(table.stdout, /typo\s+Error/);
  for (const n of [
    'profile-allow-unsafe',
    'profile-block-all',
    'profile-complain-unsafe',
    'profile-complain-block-high-risk',
  ]) {
    t.match(table.stdout, new RegExp(`${n}\\s+Installed`), `${n} still Installed`);
  }
  const ev = await cp.kubectl([
    'get',
    'events.events.k8s.io',
    '-n',
    NS,
    '--field-selector',
    'reason=ProfileInvalid',
    '-o',
    'json',
  ]);
  t.ok(
    (JSON.parse(ev.stdout) as { items: { type: string }[] }).items.some((e) => e.type === 'Warning'),
    'a Warning event ProfileInvalid',
  );
  for (const a of agents) t.ok(await a.ready(), `${a.node} stays ready: a refused profile is not a failed write`);
});

t.test('a valid profile edited into an invalid one keeps its last good file', async (t) => {
  await cp.apply(sp('later-bad', ['ptrace']));
  const good = '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["ptrace"],"action":"SCMP_ACT_ERRNO"}]}';
  await waitFor(
    'later-bad installed',
    async () => {
      for (const a of agents) if ((await readMaybe(fileOf(a.root, NS, 'later-bad'))) !== good) return undefined;
      return true;
    },
    30_000,
  );
  await cp.apply(sp('later-bad', ['ptrace', 'mount_setattrr']));
  const p = await waitFor(
    'later-bad shows Error at generation 2',
    async () => {
      const o = await getProfile(cp, NS, 'later-bad');
      return o?.status?.status === 'Error' && o.status.observedGeneration === 2 ? o : undefined;
    },
    30_000,
    () => describeProfiles(cp, NS),
  );
  t.match(p.status?.conditions?.[0]?.message, /the last good version stays installed/);
  for (const a of agents)
    t.equal(await readMaybe(fileOf(a.root, NS, 'later-bad')), good, `${a.node} keeps the last good file`);
});
