// A node's files converge from the current state in every plan: files = (enabled profiles in the
// cache) ∪ (keys pods on this node name, when a file for them is on disk). A file whose object is
// gone (its finalizer removed by hand, its CRD deleted, the cluster moved to the other layout)
// stays while a pod here names it and goes with the plan after the last such pod left; `state:
// Disabled` and `disabled: true` remove the file whoever uses it. Both key forms (`<name>` and
// `<ns>/<name>`) in both layouts. Before, only the first plan's sweep kept in-use files: a later
// plan removed the file of any key that left the cache, and a file of the other layout kept at start
// stayed until the agent restarted. The real plan loop, reconciler and writer on an in-memory tree.
import { pino } from 'pino';
import t from 'tap';
import { buildReport } from '../../../agent/src/cluster/node-report.js';
import { PlanLoop, type ProfileSource } from '../../../agent/src/cluster/plan-loop.js';
import { profileObj, type ProfileObj } from '../../../agent/src/cluster/profile-obj.js';
import { ClusterReconciler, RememberingWriter } from '../../../agent/src/cluster/remembering-writer.js';
import { PodIndex, podUse, type PodUse } from '../../../agent/src/kube/pods.js';
import { ProfileWriter } from '../../../agent/src/profiles/writer.js';
import {
  PROFILE_VERSIONS,
  profileApi,
  splitProfileKey,
  type Layout,
  type ProfileVersion,
} from '../../../shared/profile/layout.js';
import { SYSCALL_CATALOG } from '../../../shared/syscalls/index.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { memoryFs } from '../../helpers/memory-fs.js';

const ROOT = '/var/lib/kubelet';
const OPERATOR = `${ROOT}/seccomp/operator/`;
const OWNER = { kubeletRoot: ROOT, uid: 65535, gid: 65535, chownAllowed: false };
const VERSION: Record<Layout, ProfileVersion> = { Namespaced: 'v1beta1', Cluster: PROFILE_VERSIONS[0] };

/** What a test does between two plans. */
type Step =
  | { profile: string; spec?: Record<string, unknown>; deleting?: boolean }
  | { gone: string }
  | { pod: string; uses: string; phase?: string }
  | { podGone: string };

interface Case {
  name: string;
  layout: Layout;
  /** Files on the node before the agent starts (a move leaves the other layout's), by key. */
  onDisk?: string[];
  steps: {
    do: Step[];
    /** Profile keys with a file under operator/ after the plan. */
    files: string[];
    /** The node's view of some keys after the plan (/v1/profiles); `absent`: not listed. */
    states?: Record<string, string>;
  }[];
}

const LOG = { defaultAction: 'SCMP_ACT_LOG' };

const cases: Case[] = [
  {
    name: 'Namespaced: the finalizer removed by hand while a pod here uses it: the file stays until the pod goes',
    layout: 'Namespaced',
    steps: [
      {
        do: [{ profile: 'ns/p' }, { profile: 'ns/q' }, { pod: 'ns/web', uses: 'operator/ns/p.json' }],
        files: ['ns/p', 'ns/q'],
        states: { 'ns/p': 'Installed', 'ns/q': 'Installed' },
      },
      { do: [{ gone: 'ns/p' }, { gone: 'ns/q' }], files: ['ns/p'], states: { 'ns/p': 'Retained', 'ns/q': 'absent' } },
      { do: [{ pod: 'ns/other', uses: 'operator/ns/q.json' }], files: ['ns/p'], states: { 'ns/q': 'absent' } },
      { do: [{ podGone: 'ns/web' }], files: [], states: { 'ns/p': 'absent' } },
    ],
  },
  {
    name: 'Cluster: the same with operator/<name>.json',
    layout: 'Cluster',
    steps: [
      {
        do: [{ profile: 'p' }, { profile: 'q' }, { pod: 'default/web', uses: 'operator/p.json' }],
        files: ['p', 'q'],
      },
      { do: [{ gone: 'p' }, { gone: 'q' }], files: ['p'], states: { p: 'Retained' } },
      { do: [{ podGone: 'default/web' }], files: [], states: { p: 'absent' } },
    ],
  },
  {
    name: 'Namespaced: deletion with a pod here: kept while deleting (Installed), then while gone (Retained)',
    layout: 'Namespaced',
    steps: [
      { do: [{ profile: 'ns/p' }, { pod: 'ns/web', uses: 'operator/ns/p.json' }], files: ['ns/p'] },
      { do: [{ profile: 'ns/p', deleting: true }], files: ['ns/p'], states: { 'ns/p': 'Installed' } },
      { do: [{ gone: 'ns/p' }], files: ['ns/p'], states: { 'ns/p': 'Retained' } },
      { do: [{ podGone: 'ns/web' }], files: [] },
    ],
  },
  {
    name: 'Cluster: a pod that finished uses nothing: the kept file goes',
    layout: 'Cluster',
    steps: [
      { do: [{ profile: 'p' }, { pod: 'default/job', uses: 'operator/p.json' }], files: ['p'] },
      { do: [{ gone: 'p' }], files: ['p'] },
      { do: [{ pod: 'default/job', uses: 'operator/p.json', phase: 'Succeeded' }], files: [] },
    ],
  },
  {
    name: 'Cluster: the profile comes back while kept: Installed with its new bytes',
    layout: 'Cluster',
    steps: [
      { do: [{ profile: 'p' }, { pod: 'default/web', uses: 'operator/p.json' }], files: ['p'] },
      { do: [{ gone: 'p' }], files: ['p'], states: { p: 'Retained' } },
      { do: [{ profile: 'p', spec: { defaultAction: 'SCMP_ACT_ERRNO' } }], files: ['p'], states: { p: 'Installed' } },
      { do: [{ podGone: 'default/web' }], files: ['p'], states: { p: 'Installed' } },
    ],
  },
  {
    name: 'moved to Cluster: a Namespaced file a pod names stays, and goes when the pod goes (no restart)',
    layout: 'Cluster',
    onDisk: ['ns/old', 'ns/idle', 'stray'],
    steps: [
      {
        do: [{ profile: 'fresh' }, { pod: 'ns/web', uses: 'operator/ns/old.json' }],
        files: ['fresh', 'ns/old'],
        states: { 'ns/old': 'Retained', 'ns/idle': 'absent', fresh: 'Installed' },
      },
      { do: [{ profile: 'other' }], files: ['fresh', 'ns/old', 'other'], states: { 'ns/old': 'Retained' } },
      { do: [{ podGone: 'ns/web' }], files: ['fresh', 'other'], states: { 'ns/old': 'absent' } },
    ],
  },
  {
    name: 'moved back to Namespaced: an operator/<name>.json file a pod names stays, and goes when the pod goes',
    layout: 'Namespaced',
    onDisk: ['fresh', 'idle'],
    steps: [
      {
        do: [{ profile: 'ns/p' }, { pod: 'default/web', uses: 'operator/fresh.json' }],
        files: ['fresh', 'ns/p'],
        states: { fresh: 'Retained' },
      },
      { do: [{ podGone: 'default/web' }], files: ['ns/p'], states: { fresh: 'absent' } },
    ],
  },
  {
    name: 'Cluster: state: Disabled removes the file though a pod here uses it',
    layout: 'Cluster',
    steps: [
      { do: [{ profile: 'p' }, { pod: 'default/web', uses: 'operator/p.json' }], files: ['p'] },
      { do: [{ profile: 'p', spec: { ...LOG, state: 'Disabled' } }], files: [], states: { p: 'Disabled' } },
      { do: [{ profile: 'p', spec: { ...LOG, state: 'Enabled' } }], files: ['p'], states: { p: 'Installed' } },
    ],
  },
  {
    name: 'Namespaced: disabled: true removes the file though a pod here uses it',
    layout: 'Namespaced',
    steps: [
      { do: [{ profile: 'ns/p' }, { pod: 'ns/web', uses: 'operator/ns/p.json' }], files: ['ns/p'] },
      { do: [{ profile: 'ns/p', spec: { ...LOG, disabled: true } }], files: [], states: { 'ns/p': 'Disabled' } },
    ],
  },
  {
    name: 'a pod naming a file that is not there keeps nothing and lists nothing',
    layout: 'Namespaced',
    steps: [
      { do: [{ pod: 'ns/web', uses: 'operator/ns/missing.json' }], files: [], states: { 'ns/missing': 'absent' } },
    ],
  },
];

function world(layout: Layout) {
  const clock = new FakeClock();
  const fs = memoryFs();
  const log = pino({ level: 'silent' });
  const writer = new RememberingWriter(fs, OWNER, log);
  const reconciler = new ClusterReconciler(writer, ROOT, log);
  const api = profileApi(layout, VERSION[layout]);
  const cache = new Map<string, ProfileObj>();
  let rv = 100;
  const profiles: ProfileSource = {
    synced: true,
    get: (k) => cache.get(k),
    values: () => cache.values(),
    keys: () => cache.keys(),
    get resourceVersion() {
      return String(rv);
    },
  };
  const podIndex = new PodIndex();
  const pods = new Map<string, PodUse>();
  const events: { reason: string; name: string; note: string }[] = [];
  const loop = new PlanLoop({
    ...{ profiles, podsSynced: () => true, podIndex, writer, reconciler, catalog: SYSCALL_CATALOG, layout, fs },
    events: { record: (target, _type, reason, _action, note) => events.push({ reason, name: target.name, note }) },
    ...{ kubeletRoot: ROOT, chownAllowed: false, driftGuard: false, clock, coalesceMs: 50, retryMs: 1000, log },
    onApplied: () => {},
  });
  const act = (s: Step): void => {
    rv++;
    if ('profile' in s) {
      const { namespace, name } = splitProfileKey(s.profile);
      const raw = {
        apiVersion: api.apiVersion,
        kind: 'SeccompProfile',
        metadata: {
          name,
          ...(namespace === '' ? {} : { namespace }),
          uid: `uid-${s.profile}`,
          generation: rv,
          resourceVersion: String(rv),
          ...(s.deleting === true ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
        },
        spec: s.spec ?? LOG,
      };
      const p = profileObj(raw, api);
      if (p === undefined) throw new Error(`not a profile of the ${layout} layout: ${s.profile}`);
      cache.set(p.key, p);
    } else if ('gone' in s) {
      cache.delete(s.gone);
    } else if ('pod' in s) {
      const [namespace, name] = s.pod.split('/');
      const cur = podUse({
        metadata: { name, namespace, uid: `uid-${s.pod}` },
        spec: {
          nodeName: 'node-a',
          securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: s.uses } },
          containers: [{ name: 'c', image: 'x' }],
        },
        status: { phase: s.phase ?? 'Running' },
      });
      podIndex.update(pods.get(s.pod), cur);
      if (cur !== undefined) pods.set(s.pod, cur);
    } else {
      podIndex.update(pods.get(s.podGone), undefined);
      pods.delete(s.podGone);
    }
  };
  const plan = async (): Promise<void> => {
    loop.schedule();
    await clock.advance(100);
  };
  /** Profile keys of the files under operator/, sorted. */
  const files = (): string[] =>
    [...fs.files().keys()]
      .filter((p) => p.startsWith(OPERATOR) && p.endsWith('.json'))
      .map((p) => p.slice(OPERATOR.length, -'.json'.length))
      .sort();
  const seed = async (keys: readonly string[]): Promise<void> => {
    const plain = new ProfileWriter(fs, OWNER, log);
    for (const k of keys) {
      const { namespace, name } = splitProfileKey(k);
      await plain.install(namespace, name, '{"defaultAction":"SCMP_ACT_LOG"}');
    }
  };
  return { loop, act, plan, files, seed, events, fs, podIndex };
}

for (const c of cases) {
  t.test(c.name, async (t) => {
    const w = world(c.layout);
    await w.seed(c.onDisk ?? []);
    for (const [i, step] of c.steps.entries()) {
      for (const s of step.do) w.act(s);
      await w.plan();
      const what = `step ${i + 1} (${JSON.stringify(step.do)})`;
      t.same(w.files(), [...step.files].sort(), `${what}: the files`);
      const reports = w.loop.reportMap();
      for (const [key, state] of Object.entries(step.states ?? {})) {
        t.equal(reports.get(key)?.state ?? 'absent', state, `${what}: ${key} is ${state}`);
      }
    }
  });
}

t.test('what the node shows of a kept file: /v1/profiles names the pods, the report counts it nowhere', async (t) => {
  const w = world('Cluster');
  w.act({ profile: 'p' });
  w.act({ profile: 'q' });
  w.act({ pod: 'default/web', uses: 'operator/p.json' });
  w.act({ pod: 'default/api', uses: 'operator/p.json' });
  await w.plan();
  w.act({ gone: 'p' });
  await w.plan();
  const kept = w.loop.reportMap().get('p');
  t.match(kept, {
    namespace: '',
    name: 'p',
    state: 'Retained',
    path: `${OPERATOR}p.json`,
    localhostProfile: 'operator/p.json',
    sha256: /^[0-9a-f]{64}$/,
    message:
      'no SeccompProfile names this file any more; it stays while pods on this node use it: default/api, default/web',
  });
  const report = buildReport({
    node: 'node-a',
    appliedRevision: w.loop.appliedRevision,
    reports: w.loop.reportMap(),
    verdict: (key) => w.loop.verdict(key),
    inUse: w.podIndex.profilesInUse().map((profile) => ({ profile, pods: w.podIndex.users(profile) })),
  });
  t.equal(report.installed, 1, 'only q counts as installed');
  t.same(report.failed, [], 'a kept file is no failure');
  t.same(report.inUse, [{ profile: 'p', pods: ['default/api', 'default/web'] }], 'the pods are listed as for any key');
  t.match(
    w.events.filter((e) => e.name === 'p').map((e) => e.reason),
    ['Installed', 'ProfileInUse'],
    'an Event says it is kept',
  );
  w.act({ podGone: 'default/web' });
  await w.plan();
  t.match(w.loop.reportMap().get('p')?.message, /use it: default\/api$/, 'the message follows the pods');
  t.equal(w.events.filter((e) => e.reason === 'ProfileInUse').length, 1, 'one Event while it stays kept');
  w.act({ podGone: 'default/api' });
  await w.plan();
  t.same(w.files(), ['q']);
  t.match(w.events.at(-1), { reason: 'ProfileRemoved', name: 'p', note: /no pod here uses it any more/ });
});

t.test('a file the sweep kept is followed only when it is under operator/ (a pod names any path)', async (t) => {
  const w = world('Namespaced');
  await w.fs.mkdir(`${ROOT}/seccomp`, { recursive: true, mode: 0o755 });
  await w.fs.writeFileAtomic(`${ROOT}/seccomp/x.json`, 'not ours', { mode: 0o644, fsync: true });
  w.act({ pod: 'ns/web', uses: 'operator/../x.json' });
  await w.plan();
  w.act({ podGone: 'ns/web' });
  await w.plan();
  t.equal(w.fs.files().get(`${ROOT}/seccomp/x.json`), 'not ours', 'a file outside operator/ is never touched');
  t.same(w.loop.reports(), [], 'and nothing is listed');
});
