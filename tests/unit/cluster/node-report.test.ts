// This node's SeccompNodeReport writer in fake time against a fake API server: when it writes,
// how often, what it writes, and what it says while it cannot.
import t from 'tap';
import { pino } from 'pino';
import { APPLY_PATCH } from '../../../agent/src/cluster/kube-api.js';
import {
  buildReport,
  NodeReportWriter,
  REPORT_FIELD_MANAGER,
  REPORTS_PATH,
} from '../../../agent/src/cluster/node-report.js';
import type { ProfileReport } from '../../../agent/src/profiles/reconciler.js';
import { REPORT_GROUP, REPORT_KIND, REPORT_VERSION } from '../../../shared/profile/enums.js';
import type { NodeReportBody } from '../../../shared/profile/schema.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { FakeKubeApi, kubeError } from '../../helpers/fake-kube-api.js';

const NODE = 'node-a';
const MIN_GAP = 250;
const RETRY = 2000;
const REPORT = `${REPORTS_PATH}/${NODE}`;
const NODE_PATH = `/api/v1/nodes/${NODE}`;

function world(o: { node?: 'found' | 'missing' | 'forbidden' } = {}) {
  const clock = new FakeClock();
  const api = new FakeKubeApi(clock);
  const body: NodeReportBody = {
    nodeName: NODE,
    appliedRevision: '10',
    installed: 3,
    failedCount: 0,
    inUseCount: 0,
    failed: [],
    inUse: [],
  };
  api.on('PATCH', REPORT, (req) => req.body);
  if ((o.node ?? 'found') === 'found') api.on('GET', NODE_PATH, { metadata: { name: NODE, uid: 'node-uid-1' } });
  if (o.node === 'forbidden') {
    api.on('GET', NODE_PATH, () => {
      throw kubeError(403, 'Forbidden');
    });
  }
  const w = new NodeReportWriter({
    api,
    clock,
    node: NODE,
    minGapMs: MIN_GAP,
    retryMs: RETRY,
    log: pino({ level: 'silent' }),
    build: () => structuredClone(body),
  });
  const writes = () => api.calls('PATCH', REPORT);
  return { clock, api, body, w, writes };
}

t.test('writes once on start, with server-side apply and the Node as owner', async (t) => {
  const { clock, w, writes } = world();
  t.ok(w.problem, 'not written yet: says so');
  t.ok(Number.isNaN(w.writtenRevision));
  const t0 = clock.now();
  w.update(false);
  w.update(false);
  await clock.advance(0);
  t.equal(writes().length, 1);
  const [write] = writes();
  t.equal(write?.at, t0, 'at once');
  t.equal(write?.contentType, APPLY_PATCH);
  t.same(write?.query, { fieldManager: REPORT_FIELD_MANAGER, force: true });
  t.same(write?.body, {
    apiVersion: `${REPORT_GROUP}/${REPORT_VERSION}`,
    kind: REPORT_KIND,
    metadata: { name: NODE, ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: NODE, uid: 'node-uid-1' }] },
    nodeName: NODE,
    appliedRevision: '10',
    installed: 3,
    failedCount: 0,
    inUseCount: 0,
    failed: [],
    inUse: [],
  });
  t.equal(w.problem, undefined);
  t.equal(w.writtenRevision, 10);
  t.equal(w.writes, 1);
  await clock.advance(10_000);
  t.equal(writes().length, 1, 'nothing more without a change');
});

t.test('what makes a write', async (t) => {
  const cases: { name: string; change: (b: NodeReportBody) => void; force: boolean; writes: boolean }[] = [
    { name: 'nothing changed', change: () => undefined, force: false, writes: false },
    { name: 'only appliedRevision moved', change: (b) => (b.appliedRevision = '11'), force: false, writes: false },
    {
      name: 'only appliedRevision moved, forced',
      change: (b) => (b.appliedRevision = '11'),
      force: true,
      writes: true,
    },
    { name: 'nothing changed, forced', change: () => undefined, force: true, writes: true },
    {
      name: 'a failure appeared',
      change: (b) => {
        b.failed = [{ profile: 'ns/p', generation: 1, reason: 'InstallFailed', message: 'disk full' }];
        b.failedCount = 1;
      },
      force: false,
      writes: true,
    },
    {
      name: 'pods use a profile',
      change: (b) => {
        b.inUse = [{ profile: 'ns/p', pods: ['ns/web'] }];
        b.inUseCount = 1;
      },
      force: false,
      writes: true,
    },
    { name: 'the installed count changed', change: (b) => (b.installed = 4), force: false, writes: true },
  ];
  for (const c of cases) {
    const { clock, body, w, writes } = world();
    w.update(false);
    await clock.advance(1000);
    c.change(body);
    w.update(c.force);
    await clock.advance(1000);
    t.equal(writes().length, c.writes ? 2 : 1, c.name);
    if (c.writes) t.equal(w.writtenRevision, Number(body.appliedRevision), `${c.name}: watermark written`);
  }
});

t.test('writes are at least minGapMs apart, and changes during a write make one more', async (t) => {
  const { clock, api, body, w, writes } = world();
  const t0 = clock.now();
  w.update(false);
  await clock.advance(0);
  for (let i = 0; i < 10; i++) {
    body.installed++;
    w.update(false);
    await clock.advance(20);
  }
  await clock.advance(1000);
  t.same(
    writes().map((r) => r.at - t0),
    [0, MIN_GAP],
    'the changes within the gap went out together',
  );
  t.match(writes()[1]?.body, { installed: 13 });

  // A write that answers slowly: changes meanwhile make exactly one more write after it.
  const slow = Promise.withResolvers<unknown>();
  api.on('PATCH', REPORT, () => slow.promise);
  body.installed++;
  w.update(false);
  await clock.advance(MIN_GAP);
  const before = writes().length;
  for (let i = 0; i < 5; i++) {
    body.installed++;
    w.update(false);
    await clock.advance(100);
  }
  t.equal(writes().length, before, 'one write in flight at a time');
  api.on('PATCH', REPORT, (req) => req.body);
  slow.resolve({});
  await clock.advance(1000);
  t.equal(writes().length, before + 1, 'one more, with the latest body');
  t.match(writes().at(-1)?.body, { installed: body.installed });
});

t.test('a failed write: `problem` says why, retried after retryMs, cleared after a success', async (t) => {
  const { clock, api, w, writes } = world();
  let failures = 2;
  api.on('PATCH', REPORT, (req) => {
    if (failures-- > 0) throw kubeError(500, 'InternalError');
    return req.body;
  });
  const t0 = clock.now();
  w.update(false);
  await clock.advance(0);
  t.match(w.problem, /^cannot write its SeccompNodeReport: fake API server answered 500/);
  t.equal(w.failures, 1);
  t.ok(Number.isNaN(w.writtenRevision), 'nothing written');
  await clock.advance(RETRY);
  t.equal(w.failures, 2);
  t.ok(w.problem);
  await clock.advance(RETRY);
  t.equal(w.problem, undefined);
  t.same(
    writes().map((r) => r.at - t0),
    [0, RETRY, 2 * RETRY],
  );
  t.equal(w.writes, 1);
  t.equal(w.writtenRevision, 10);
});

t.test('the owner reference', async (t) => {
  const cases: { name: string; node: 'found' | 'missing' | 'forbidden'; owner: boolean }[] = [
    { name: 'the Node’s uid', node: 'found', owner: true },
    { name: 'no Node (404): no owner', node: 'missing', owner: false },
    { name: 'not allowed to read it (403): no owner', node: 'forbidden', owner: false },
  ];
  for (const c of cases) {
    const { clock, body, w, api, writes } = world({ node: c.node });
    w.update(false);
    await clock.advance(0);
    body.installed++;
    w.update(false);
    await clock.advance(1000);
    t.equal(writes().length, 2, `${c.name}: written`);
    const meta = (writes()[0]?.body as { metadata: Record<string, unknown> }).metadata;
    if (c.owner)
      t.same(meta['ownerReferences'], [{ apiVersion: 'v1', kind: 'Node', name: NODE, uid: 'node-uid-1' }], c.name);
    else t.same(meta, { name: NODE }, c.name);
    t.equal(api.calls('GET', NODE_PATH).length, 1, `${c.name}: the Node read once`);
  }

  await t.test('another error reading the Node: the write fails and is retried, Node read again', async (t) => {
    const { clock, w, api, writes } = world();
    let fail = true;
    api.on('GET', NODE_PATH, () => {
      if (fail) throw kubeError(503, 'ServiceUnavailable');
      return { metadata: { uid: 'node-uid-2' } };
    });
    w.update(false);
    await clock.advance(0);
    t.equal(writes().length, 0, 'no report without knowing the owner');
    t.ok(w.problem);
    fail = false;
    await clock.advance(RETRY);
    t.match(writes()[0]?.body, { metadata: { ownerReferences: [{ uid: 'node-uid-2' }] } });
    t.equal(w.problem, undefined);
  });
});

t.test('stop: no write after it', async (t) => {
  const { clock, body, w, writes } = world();
  w.update(false);
  await clock.advance(0);
  body.installed++;
  w.update(false);
  await w.stop();
  await clock.advance(1000);
  w.update(true);
  await clock.advance(1000);
  t.equal(writes().length, 1);
});

t.test('the body: counts, failures and uses only, nothing per profile installed cleanly', async (t) => {
  const rep = (name: string, state: ProfileReport['state'], message?: string): [string, ProfileReport] => [
    `ns/${name}`,
    {
      namespace: 'ns',
      name,
      state,
      path: `/k/seccomp/operator/ns/${name}.json`,
      localhostProfile: `operator/ns/${name}.json`,
      warnings: [],
      bases: [],
      ...(message === undefined ? {} : { message }),
    },
  ];
  const reports = new Map([
    rep('a', 'Installed'),
    rep('b', 'Installed'),
    rep('z-bad', 'Error', 'spec.syscalls[0].names[0]: "x" is not a syscall'),
    rep('io', 'Error', 'x'.repeat(5000)),
    rep('off', 'Disabled'),
  ]);
  const verdicts = new Map([
    ['ns/z-bad', { generation: 3, invalid: 'refused' }],
    ['ns/io', { generation: 1, invalid: undefined }],
  ]);
  const body = buildReport({
    node: NODE,
    appliedRevision: 42,
    reports,
    verdict: (k) => verdicts.get(k),
    inUse: [{ profile: 'ns/a', pods: ['ns/p1'] }],
  });
  t.match(body, {
    nodeName: NODE,
    appliedRevision: '42',
    installed: 2,
    failedCount: 2,
    inUseCount: 1,
    inUse: [{ profile: 'ns/a', pods: ['ns/p1'] }],
  });
  t.same(
    body.failed.map((f) => [f.profile, f.generation, f.reason]),
    [
      ['ns/io', 1, 'InstallFailed'],
      ['ns/z-bad', 3, 'ProfileInvalid'],
    ],
    'failures sorted, with the generation and the reason',
  );
  t.equal(body.failed[0]?.message.length, 1024, 'a long message is cut');
  t.equal(
    buildReport({ node: NODE, appliedRevision: NaN, reports: new Map(), verdict: () => undefined, inUse: [] })
      .appliedRevision,
    '0',
    'before the first plan the watermark is 0',
  );
  const many = new Map(Array.from({ length: 500 }, (_v, i) => rep(`p${i}`, 'Installed')));
  const size = (r: Map<string, ProfileReport>): number =>
    JSON.stringify(buildReport({ node: NODE, appliedRevision: 9, reports: r, verdict: () => undefined, inUse: [] }))
      .length;
  t.equal(size(many) - size(new Map([rep('one', 'Installed')])), 2, 'only the count grows: "500" for "1"');
});
