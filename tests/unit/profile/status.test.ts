// The aggregator's pure part: from the live nodes' reports to a profile's status.
import t from 'tap';
import type { NodeReportBody, SeccompProfileStatus } from '../../../shared/profile/schema.js';
import {
  MAX_ACTIVE_WORKLOADS,
  MAX_NAMED,
  MAX_WOULD_BLOCK_NAMES,
  inUseOnLiveNodes,
  nameList,
  nodeView,
  profileStatus,
  revision,
  tally,
  type NodeView,
  type ProfileStatusInput,
} from '../../../shared/profile/status.js';

const KEY = 'ns/p';

/** A node's report: its watermark, the profiles failed there ([key, generation]) and in use ([key, pods]). */
function report(
  node: string,
  applied: number | string,
  o: { failed?: [string, number, NodeReportBody['failed'][number]['reason']?][]; inUse?: [string, string[]][] } = {},
): NodeReportBody {
  const failed = (o.failed ?? []).map(([profile, generation, reason]) => ({
    profile,
    generation,
    reason: reason ?? 'InstallFailed',
    message: `cannot write ${profile} on ${node}`,
  }));
  const inUse = (o.inUse ?? []).map(([profile, pods]) => ({ profile, pods }));
  return {
    nodeName: node,
    appliedRevision: String(applied),
    installed: 0,
    failedCount: failed.length,
    inUseCount: inUse.length,
    failed,
    inUse,
  };
}

const views = (...rs: NodeReportBody[]): Map<string, NodeView> => new Map(rs.map((r) => [r.nodeName, nodeView(r)]));

function input(o: Partial<ProfileStatusInput> = {}): ProfileStatusInput {
  return {
    namespace: 'ns',
    name: 'p',
    generation: 2,
    specRevision: 10,
    deleting: false,
    disabled: false,
    invalid: undefined,
    liveNodes: [],
    reports: new Map(),
    previous: undefined,
    now: '2025-01-01T00:00:00Z',
    kubeletRoot: '/var/lib/kubelet',
    ...o,
  };
}

const names = (n: number, prefix = 'n'): string[] =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(2, '0')}`);

t.test('nameList names the first 10, then "and N more"', async (t) => {
  const cases: [number, string][] = [
    [0, ''],
    [1, 'n00'],
    [3, 'n00, n01, n02'],
    [MAX_NAMED, names(10).join(', ')],
    [11, `${names(10).join(', ')} and 1 more`],
    [25, `${names(10).join(', ')} and 15 more`],
  ];
  for (const [n, want] of cases) t.equal(nameList(names(n)), want, `${n} names`);
});

t.test('revision: resourceVersions as numbers, NaN when unknown', async (t) => {
  const cases: [string | undefined, number][] = [
    ['12', 12],
    ['0', 0],
    ['', NaN],
    [undefined, NaN],
    ['abc', NaN],
    ['Infinity', NaN],
  ];
  for (const [rv, want] of cases) t.same(revision(rv), want, `${String(rv)}`);
});

t.test('tally: where each live node stands', async (t) => {
  const reports = views(
    report('a', 10), // watermark reached the spec revision
    report('b', 9), // not yet
    report('d', 12, { failed: [[KEY, 2]] }), // failed for the current generation
    report('e', 10, { failed: [[KEY, 1]] }), // failed for an older generation: no longer counts
    report('f', 3, { failed: [['ns/other', 2]], inUse: [[KEY, ['ns/pod-f']]] }), // another profile failed
    report('x', 100, { failed: [[KEY, 2]], inUse: [[KEY, ['ns/ghost']]] }), // not live: ignored
  );
  const cases: { name: string; i: Partial<ProfileStatusInput>; want: ReturnType<typeof tally> }[] = [
    {
      name: 'mixed',
      i: { liveNodes: ['a', 'b', 'c', 'd', 'e', 'f'], reports },
      want: {
        installed: ['a', 'e'],
        pending: ['b', 'c', 'f'],
        failed: [{ node: 'd', reason: 'InstallFailed', message: 'cannot write ns/p on d' }],
        users: ['ns/pod-f'],
        logged: [],
        loggedPods: [],
      },
    },
    {
      name: 'unknown spec revision: nobody has installed it',
      i: { liveNodes: ['a', 'e'], reports, specRevision: NaN },
      want: { installed: [], pending: ['a', 'e'], failed: [], users: [], logged: [], loggedPods: [] },
    },
    {
      name: 'no live nodes',
      i: { liveNodes: [], reports },
      want: { installed: [], pending: [], failed: [], users: [], logged: [], loggedPods: [] },
    },
  ];
  for (const c of cases) t.same(tally(input(c.i)), c.want, c.name);
});

t.test('profileStatus: the status, reason, message and installedNodes', async (t) => {
  const many = names(13);
  const cases: {
    name: string;
    i: Partial<ProfileStatusInput>;
    status: string;
    reason: string;
    message: string | RegExp;
    installedNodes: string;
  }[] = [
    {
      name: 'all live nodes reached the spec revision',
      i: { liveNodes: ['a', 'b'], reports: views(report('a', 10), report('b', 11)) },
      status: 'Installed',
      reason: 'Installed',
      message: 'installed on every node running the agent (2)',
      installedNodes: '2/2',
    },
    {
      name: 'a live node behind, one without a report',
      i: { liveNodes: ['a', 'b', 'c'], reports: views(report('a', 10), report('b', 9)) },
      status: 'Pending',
      reason: 'Pending',
      message: 'waiting for 2 of 3 nodes: b, c',
      installedNodes: '1/3',
    },
    {
      name: 'many pending: the first 10 named',
      i: { liveNodes: many, reports: views(report('n00', 10)) },
      status: 'Pending',
      reason: 'Pending',
      message: `waiting for 12 of 13 nodes: ${many.slice(1, 11).join(', ')} and 2 more`,
      installedNodes: '1/13',
    },
    {
      name: 'no live node at all',
      i: { liveNodes: [] },
      status: 'Pending',
      reason: 'Pending',
      message: 'waiting for 0 of 0 nodes: ',
      installedNodes: '0/0',
    },
    {
      name: 'failed on some nodes (current generation)',
      i: {
        liveNodes: ['a', 'b', 'c'],
        reports: views(
          report('a', 10),
          report('b', 10, { failed: [[KEY, 2]] }),
          report('c', 10, { failed: [[KEY, 2]] }),
        ),
      },
      status: 'Error',
      reason: 'InstallFailed',
      message: 'failed on 2 of 3 nodes: b, c; b: cannot write ns/p on b',
      installedNodes: '1/3',
    },
    {
      name: 'failed on 12 nodes: the first 10 named, then "and 2 more"',
      i: { liveNodes: names(12), reports: views(...names(12).map((n) => report(n, 10, { failed: [[KEY, 2]] }))) },
      status: 'Error',
      reason: 'InstallFailed',
      message: `failed on 12 of 12 nodes: ${names(10).join(', ')} and 2 more; n00: cannot write ns/p on n00`,
      installedNodes: '0/12',
    },
    {
      name: 'every failing node says ProfileInvalid',
      i: { liveNodes: ['a'], reports: views(report('a', 10, { failed: [[KEY, 2, 'ProfileInvalid']] })) },
      status: 'Error',
      reason: 'ProfileInvalid',
      message: /^failed on 1 of 1 nodes: a; /,
      installedNodes: '0/1',
    },
    {
      name: 'a failure on a node that is not live is ignored',
      i: { liveNodes: ['a'], reports: views(report('a', 10), report('gone', 10, { failed: [[KEY, 2]] })) },
      status: 'Installed',
      reason: 'Installed',
      message: 'installed on every node running the agent (1)',
      installedNodes: '1/1',
    },
    {
      name: 'invalid by the aggregator’s own validation, whatever the nodes say',
      i: {
        liveNodes: ['a'],
        reports: views(report('a', 10, { failed: [[KEY, 2]] })),
        invalid: { message: 'spec.syscalls[0].action: must be one of ...' },
      },
      status: 'Error',
      reason: 'ProfileInvalid',
      message: 'spec.syscalls[0].action: must be one of ...',
      installedNodes: '0/1',
    },
    {
      name: 'disabled',
      i: { liveNodes: ['a'], reports: views(report('a', 10)), disabled: true },
      status: 'Disabled',
      reason: 'Disabled',
      message: 'disabled (spec.state: Disabled or spec.disabled: true): not installed on any node',
      installedNodes: '1/1',
    },
    {
      name: 'deleting, pods on live nodes still use it (and on a dead one, not named)',
      i: {
        deleting: true,
        invalid: { message: 'x' },
        liveNodes: ['a', 'b'],
        reports: views(
          report('a', 10, { inUse: [[KEY, ['ns/web-2', 'ns/web-1']]] }),
          report('b', 10, { inUse: [[KEY, ['ns/web-1']]] }),
          report('dead', 10, { inUse: [[KEY, ['ns/zombie']]] }),
        ),
      },
      status: 'Terminating',
      reason: 'Terminating',
      message: 'deletion waits for the pods that use it: ns/web-1, ns/web-2',
      installedNodes: '2/2',
    },
    {
      name: 'deleting, nobody uses it',
      i: { deleting: true, liveNodes: ['a'], reports: views(report('a', 10)) },
      status: 'Terminating',
      reason: 'Terminating',
      message: 'being removed from every node',
      installedNodes: '1/1',
    },
  ];
  for (const c of cases) {
    const s = profileStatus(input(c.i));
    const cond = s.conditions[0];
    t.equal(s.status, c.status, `${c.name}: status`);
    t.equal(cond?.reason, c.reason, `${c.name}: reason`);
    if (typeof c.message === 'string') t.equal(cond?.message, c.message, `${c.name}: message`);
    else t.match(cond?.message, c.message, `${c.name}: message`);
    t.equal(cond?.status, c.status === 'Installed' ? 'True' : 'False', `${c.name}: Ready`);
    t.equal(s.installedNodes, c.installedNodes, `${c.name}: installedNodes`);
    t.equal(s.conditions.length, 1);
  }
});

t.test('profileStatus: the fixed fields', async (t) => {
  const s = profileStatus(input({ generation: 7, specRevision: 42, liveNodes: ['a'] }));
  t.equal(s.localhostProfile, 'operator/ns/p.json');
  t.equal(s.observedGeneration, 7);
  t.equal(s.conditions[0]?.observedGeneration, 7);
  t.equal(s.specRevision, '42');
  t.equal(profileStatus(input({ specRevision: NaN })).specRevision, '', 'unknown spec revision: empty');
  t.equal(
    s.path,
    '/var/lib/kubelet/seccomp/operator/ns/p.json',
    'path: the file on the nodes, as the reference operator fills it',
  );
});

t.test(
  'profileStatus of a cluster-scoped profile (namespace empty): operator/<name>.json, keyed by name',
  async (t) => {
    const r = report('a', 20, { inUse: [['p', ['default/pod']]] });
    const s = profileStatus(input({ namespace: '', liveNodes: ['a'], reports: views(r), kubeletRoot: '/k/' }));
    t.equal(s.localhostProfile, 'operator/p.json');
    t.equal(s.path, '/k/seccomp/operator/p.json');
    t.equal(s.status, 'Installed');
    t.same(s.activeWorkloads, ['default/pod'], 'the report keys it by name alone');
    t.match(s.conditions[0], { type: 'Ready', status: 'True', reason: 'Installed', message: /installed/ });
  },
);

t.test('lastTransitionTime is kept while Ready does not change', async (t) => {
  const then = '2024-06-01T00:00:00Z';
  const now = '2025-01-01T00:00:00Z';
  const prev = (ready: 'True' | 'False', lastTransitionTime?: string): SeccompProfileStatus => ({
    conditions: [
      {
        type: 'Ready',
        status: ready,
        reason: 'X',
        message: 'x',
        observedGeneration: 1,
        ...(lastTransitionTime === undefined ? {} : { lastTransitionTime }),
      },
    ],
  });
  const pendingInput = { liveNodes: ['a'] }; // no report: Pending (Ready False)
  const installedInput = { liveNodes: ['a'], reports: views(report('a', 10)) }; // Ready True
  const cases: {
    name: string;
    i: Partial<ProfileStatusInput>;
    previous: SeccompProfileStatus | undefined;
    want: string;
  }[] = [
    { name: 'no previous status', i: pendingInput, previous: undefined, want: now },
    { name: 'False → False (Pending, reason changed)', i: pendingInput, previous: prev('False', then), want: then },
    { name: 'True → True', i: installedInput, previous: prev('True', then), want: then },
    { name: 'False → True', i: installedInput, previous: prev('False', then), want: now },
    { name: 'True → False', i: pendingInput, previous: prev('True', then), want: now },
    { name: 'previous without a time', i: pendingInput, previous: prev('False'), want: now },
    { name: 'previous without conditions', i: pendingInput, previous: { status: 'Pending' }, want: now },
  ];
  for (const c of cases) {
    t.equal(
      profileStatus(input({ ...c.i, previous: c.previous, now })).conditions[0]?.lastTransitionTime,
      c.want,
      c.name,
    );
  }
});

t.test('activeWorkloads: the pods of live nodes, deduplicated, sorted, capped', async (t) => {
  const pods = (n: number, node: string): string[] =>
    Array.from({ length: n }, (_, i) => `ns/${node}-pod-${String(i).padStart(3, '0')}`);
  const cases: { name: string; reports: NodeReportBody[]; live: string[]; want: (s: string[]) => void }[] = [
    {
      name: 'sorted across nodes, one entry per pod',
      reports: [
        report('b', 10, { inUse: [[KEY, ['ns/z', 'ns/a']]] }),
        report('a', 10, { inUse: [[KEY, ['ns/m', 'ns/a']]] }),
      ],
      live: ['a', 'b'],
      want: (s) => t.same(s, ['ns/a', 'ns/m', 'ns/z']),
    },
    {
      name: `capped at ${MAX_ACTIVE_WORKLOADS}`,
      reports: [report('a', 10, { inUse: [[KEY, pods(80, 'a')]] }), report('b', 10, { inUse: [[KEY, pods(80, 'b')]] })],
      live: ['a', 'b'],
      want: (s) => {
        t.equal(s.length, MAX_ACTIVE_WORKLOADS);
        t.same(s, [...pods(80, 'a'), ...pods(20, 'b')], 'the first ones in order');
      },
    },
    {
      name: 'other profiles’ pods and dead nodes’ pods left out',
      reports: [report('a', 10, { inUse: [['ns/other', ['ns/x']]] }), report('dead', 10, { inUse: [[KEY, ['ns/y']]] })],
      live: ['a'],
      want: (s) => t.same(s, []),
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async () =>
      c.want(profileStatus(input({ liveNodes: c.live, reports: views(...c.reports) })).activeWorkloads),
    );
  }
});

t.test('inUseOnLiveNodes: the in-use finalizer’s rule', async (t) => {
  const reports = views(
    report('a', 1, { inUse: [[KEY, ['ns/pod']]] }),
    report('b', 1, { inUse: [[KEY, []]] }),
    report('c', 1, { inUse: [['ns/other', ['ns/pod']]] }),
  );
  const cases: [string[], boolean, string][] = [
    [['a'], true, 'a live node with pods using it'],
    [['b'], false, 'an empty pod list does not count'],
    [['c'], false, 'another profile'],
    [['d'], false, 'a live node without a report'],
    [['b', 'c', 'd'], false, 'none of them'],
    [['d', 'a'], true, 'any live node'],
    [[], false, 'no live nodes (a’s report is not read)'],
  ];
  for (const [live, want, name] of cases) t.equal(inUseOnLiveNodes(KEY, live, reports), want, name);
});

/** A report whose profile KEY is in use by `pods`, of which `loggedPods` logged `logged`. */
function logging(node: string, pods: string[], logged: string[], loggedPods: string[]): NodeReportBody {
  const r = report(node, 10, { inUse: [[KEY, pods]] });
  return { ...r, inUse: r.inUse.map((u) => ({ ...u, logged, loggedPods })) };
}

t.test('issue 15: a complain profile says what an enforcing version would block', async (t) => {
  const reports = views(
    logging('a', ['ns/p1', 'ns/p2'], ['mkdirat', 'rseq'], ['ns/p1']),
    logging('b', ['ns/p3'], ['faccessat2', 'rseq'], ['ns/p3']),
    logging('dead', ['ns/p9'], ['ptrace'], ['ns/p9']), // not live: ignored
    report('c', 10),
  );
  const live = ['a', 'b', 'c'];
  const cases: {
    name: string;
    i: Partial<ProfileStatusInput>;
    condition?: { status: string; reason: string; message: string };
    wouldBlock?: SeccompProfileStatus['wouldBlock'];
  }[] = [
    {
      name: 'calls logged on two nodes: their union, and the pods that made them',
      i: { complain: true, liveNodes: live, reports },
      condition: {
        status: 'True',
        reason: 'CallsLogged',
        message: 'would block 3 calls seen in 2 pods: faccessat2, mkdirat, rseq',
      },
      wouldBlock: { calls: 3, pods: 2, syscalls: ['faccessat2', 'mkdirat', 'rseq'] },
    },
    {
      name: 'one call, one pod: singular',
      i: { complain: true, liveNodes: ['a'], reports: views(logging('a', ['ns/p1'], ['rseq'], ['ns/p1'])) },
      condition: { status: 'True', reason: 'CallsLogged', message: 'would block 1 call seen in 1 pod: rseq' },
      wouldBlock: { calls: 1, pods: 1, syscalls: ['rseq'] },
    },
    {
      name: 'in use, nothing logged yet',
      i: { complain: true, liveNodes: ['a'], reports: views(logging('a', ['ns/p1'], [], [])) },
      condition: { status: 'False', reason: 'NoCallsLogged', message: 'no call logged yet by the pod that uses it' },
    },
    { name: 'not a complain profile: no WouldBlock', i: { complain: false, liveNodes: live, reports } },
    { name: 'no pod uses it: no WouldBlock', i: { complain: true, liveNodes: ['c'], reports } },
    { name: 'being deleted: no WouldBlock', i: { complain: true, deleting: true, liveNodes: live, reports } },
  ];
  for (const c of cases) {
    const s = profileStatus(input(c.i));
    const wb = s.conditions.find((x) => x.type === 'WouldBlock');
    if (c.condition === undefined) t.equal(wb, undefined, `${c.name}: no condition`);
    else t.match(wb, c.condition, `${c.name}: the condition`);
    t.same(s.wouldBlock, c.wouldBlock, `${c.name}: status.wouldBlock`);
    t.equal(s.conditions[0]?.type, 'Ready', `${c.name}: Ready stays first`);
  }
});

t.test('issue 15: wouldBlock lists at most MAX_WOULD_BLOCK_NAMES names, and counts them all', async (t) => {
  const many = names(MAX_WOULD_BLOCK_NAMES + 20, 'call');
  const s = profileStatus(
    input({ complain: true, liveNodes: ['a'], reports: views(logging('a', ['ns/p1'], many, ['ns/p1'])) }),
  );
  t.equal(s.wouldBlock?.calls, many.length);
  t.equal(s.wouldBlock?.syscalls.length, MAX_WOULD_BLOCK_NAMES);
  t.match(s.conditions[1]?.message, /^would block 120 calls seen in 1 pod: call00, .* and 110 more$/);
});

t.test('issue 15: the WouldBlock transition time holds while its status holds', async (t) => {
  const i = input({ complain: true, liveNodes: ['a'], reports: views(logging('a', ['ns/p1'], ['rseq'], ['ns/p1'])) });
  const first = profileStatus(i);
  const again = profileStatus({ ...i, previous: first, now: '2025-01-02T00:00:00Z' });
  t.equal(again.conditions[1]?.lastTransitionTime, '2025-01-01T00:00:00Z');
});
