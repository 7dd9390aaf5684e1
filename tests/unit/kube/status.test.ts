import t from 'tap';
import {
  aggregate,
  correctionRank,
  nodeEntry,
  sameAggregate,
  sameEntry,
  type AggregateInput,
} from '../../../agent/src/kube/status.js';
import type { ProfileReport } from '../../../agent/src/profiles/reconciler.js';
import type { NodeStatus } from '../../../shared/profile/schema.js';

const report = (state: ProfileReport['state'], extra: Partial<ProfileReport> = {}): ProfileReport => ({
  namespace: 'ns',
  name: 'p',
  state,
  path: '/k/seccomp/operator/ns/p.json',
  localhostProfile: 'operator/ns/p.json',
  warnings: [],
  bases: [],
  ...extra,
});
const entry = (nodeName: string, status: NodeStatus['status'], extra: Partial<NodeStatus> = {}): NodeStatus => ({
  nodeName,
  status,
  observedGeneration: 2,
  ...extra,
});
const input = (over: Partial<AggregateInput>): AggregateInput => ({
  namespace: 'ns',
  name: 'p',
  generation: 2,
  deleting: false,
  disabled: false,
  invalid: false,
  entries: [],
  liveNodes: ['a', 'b'],
  previous: undefined,
  now: '2025-01-01T00:00:00Z',
  ...over,
});

t.test('node entry', async (t) => {
  t.same(
    nodeEntry({ node: 'a', generation: 2, report: report('Installed', { sha256: 'abc' }), deleting: false, users: [] }),
    { nodeName: 'a', status: 'Installed', observedGeneration: 2, sha256: 'abc' },
  );
  t.match(
    nodeEntry({ node: 'a', generation: 2, report: report('Error', { message: 'bad' }), deleting: false, users: [] }),
    { status: 'Error', message: 'bad' },
  );
  t.match(
    nodeEntry({
      node: 'a',
      generation: 2,
      report: report('Installed', { sha256: 'abc' }),
      deleting: true,
      users: ['ns/pod'],
    }),
    {
      status: 'Terminating',
      message: /ns\/pod/,
      sha256: 'abc',
      activeWorkloads: ['ns/pod'],
    },
  );
  t.same(nodeEntry({ node: 'a', generation: 2, report: undefined, deleting: true, users: [] }), {
    nodeName: 'a',
    status: 'Terminating',
    observedGeneration: 2,
    message: 'removed from this node',
  });
  t.ok(
    sameEntry(entry('a', 'Installed'), { ...entry('a', 'Installed'), lastUpdateTime: 'x' }),
    'the write time does not count',
  );
  t.notOk(sameEntry(entry('a', 'Installed'), entry('a', 'Installed', { observedGeneration: 1 })));
});

t.test('aggregate', async (t) => {
  t.match(
    aggregate(input({ entries: [entry('a', 'Installed')] })),
    { status: 'Pending', conditions: [{ status: 'False', reason: 'Pending' }] },
    'a live node has not reported',
  );
  t.match(
    aggregate(input({ entries: [entry('a', 'Installed'), entry('b', 'Installed', { observedGeneration: 1 })] })),
    { status: 'Pending' },
    'a node on an old generation',
  );
  const ok = aggregate(input({ entries: [entry('a', 'Installed'), entry('b', 'Installed')] }));
  t.match(ok, {
    status: 'Installed',
    localhostProfile: 'operator/ns/p.json',
    observedGeneration: 2,
    activeWorkloads: [],
    conditions: [{ type: 'Ready', status: 'True', reason: 'Installed', observedGeneration: 2 }],
  });
  t.match(
    aggregate(
      input({ invalid: true, entries: [entry('a', 'Error', { message: 'spec.x: bad' }), entry('b', 'Error')] }),
    ),
    { status: 'Error', conditions: [{ reason: 'ProfileInvalid', message: 'a: spec.x: bad' }] },
  );
  t.match(aggregate(input({ entries: [entry('a', 'Installed'), entry('b', 'Error', { message: 'EACCES' })] })), {
    status: 'Error',
    conditions: [{ reason: 'InstallFailed' }],
  });
  t.match(aggregate(input({ disabled: true, entries: [entry('a', 'Disabled'), entry('b', 'Disabled')] })), {
    status: 'Disabled',
  });
  const term = aggregate(
    input({
      deleting: true,
      entries: [
        entry('a', 'Terminating', { activeWorkloads: ['ns/y', 'ns/x'] }),
        entry('b', 'Terminating', { activeWorkloads: ['ns/x'] }),
      ],
    }),
  );
  t.match(term, {
    status: 'Terminating',
    activeWorkloads: ['ns/x', 'ns/y'],
    conditions: [{ reason: 'Terminating', message: /ns\/x, ns\/y/ }],
  });

  const prev = { ...ok, conditions: [{ ...ok.conditions[0], lastTransitionTime: '2020-01-01T00:00:00Z' }] } as never;
  const again = aggregate(
    input({ entries: [entry('a', 'Installed'), entry('b', 'Installed')], previous: prev, now: '2030-01-01T00:00:00Z' }),
  );
  t.equal(
    again.conditions[0]?.lastTransitionTime,
    '2020-01-01T00:00:00Z',
    'the transition time stays while the status does',
  );
  t.ok(sameAggregate(again, prev), 'same aggregate: nothing to write');
  t.notOk(sameAggregate(aggregate(input({ entries: [entry('a', 'Installed')] })), prev));
});

t.test('correction rank: a permutation of the live nodes, different per profile', async (t) => {
  const live = ['a', 'b', 'c', 'd', 'e'];
  const ranks = live.map((n) => correctionRank('ns/p', n, live)).sort();
  t.same(ranks, [0, 1, 2, 3, 4]);
  const firsts = new Set(
    ['ns/p1', 'ns/p2', 'ns/p3', 'ns/p4', 'ns/p5', 'ns/p6', 'ns/p7', 'ns/p8'].map((k) =>
      live.find((n) => correctionRank(k, n, live) === 0),
    ),
  );
  t.ok(firsts.size > 1, 'different profiles are corrected first by different nodes');
});
