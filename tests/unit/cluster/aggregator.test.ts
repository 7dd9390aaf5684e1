// The aggregator in fake time against a fake API server: the status it writes for each profile
// from the live nodes' reports, the in-use finalizer it holds, and how few writes it makes.
import t from 'tap';
import { pino } from 'pino';
import { AGGREGATOR_FIELD_MANAGER, Aggregator, newAggregatorCounters } from '../../../agent/src/cluster/aggregator.js';
import { APPLY_PATCH, JSON_PATCH } from '../../../agent/src/cluster/kube-api.js';
import type { Verdict } from '../../../agent/src/cluster/plan-loop.js';
import { IN_USE_FINALIZER, profileObj, profilePath, type ProfileObj } from '../../../agent/src/cluster/profile-obj.js';
import { API_GROUP, API_VERSION, KIND } from '../../../shared/profile/enums.js';
import type { NodeReportBody, SeccompProfileStatus } from '../../../shared/profile/schema.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { FakeKubeApi, kubeError, type RecordedRequest } from '../../helpers/fake-kube-api.js';

const SELF = 'agg';
const MIN_GAP = 1000;
const COALESCE = 100;

interface RawOpts {
  name?: string;
  generation?: number;
  rv?: number;
  deleting?: boolean;
  disabled?: boolean;
  finalizers?: string[];
  status?: SeccompProfileStatus;
}

function rawProfile(o: RawOpts = {}): Record<string, unknown> {
  return {
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: KIND,
    metadata: {
      name: o.name ?? 'p',
      namespace: 'ns',
      uid: `uid-${o.name ?? 'p'}`,
      generation: o.generation ?? 1,
      resourceVersion: String(o.rv ?? 10),
      ...(o.deleting === true ? { deletionTimestamp: '2025-01-01T00:00:00Z' } : {}),
      ...(o.finalizers === undefined ? {} : { finalizers: o.finalizers }),
    },
    spec: { defaultAction: 'SCMP_ACT_ERRNO', ...(o.disabled === true ? { disabled: true } : {}) },
    ...(o.status === undefined ? {} : { status: o.status }),
  };
}

function report(
  node: string,
  applied: number,
  o: { failed?: [string, number][]; inUse?: [string, string[]][] } = {},
): NodeReportBody {
  const failed = (o.failed ?? []).map(([profile, generation]) => ({
    profile,
    generation,
    reason: 'InstallFailed' as const,
    message: `disk full on ${node}`,
  }));
  const inUse = (o.inUse ?? []).map(([profile, pods]) => ({ profile, pods }));
  return {
    nodeName: node,
    appliedRevision: String(applied),
    installed: 1,
    failedCount: failed.length,
    inUseCount: inUse.length,
    failed,
    inUse,
  };
}

/** Applies the JSON patches the deletion guard sends (test, add, remove on finalizers). */
function applyJsonPatch(obj: Record<string, unknown>, ops: { op: string; path: string; value?: unknown }[]): void {
  const meta = obj['metadata'] as { resourceVersion: string; finalizers?: string[] };
  for (const op of ops) {
    const m = /^\/metadata\/(resourceVersion|finalizers)(?:\/(-|\d+))?$/.exec(op.path);
    if (m === null) throw kubeError(422, 'Invalid');
    const fin = meta.finalizers ?? [];
    const idx = m[2] === undefined ? undefined : m[2] === '-' ? fin.length : Number(m[2]);
    const cur: unknown =
      m[1] === 'resourceVersion' ? meta.resourceVersion : idx === undefined ? meta.finalizers : fin[idx];
    if (op.op === 'test') {
      if (JSON.stringify(cur) !== JSON.stringify(op.value)) throw kubeError(422, 'Invalid');
    } else if (op.op === 'add' && m[1] === 'finalizers') {
      if (idx === undefined) meta.finalizers = op.value as string[];
      else meta.finalizers = [...fin.slice(0, idx), op.value as string, ...fin.slice(idx)];
    } else if (op.op === 'remove' && m[1] === 'finalizers' && idx !== undefined && idx < fin.length) {
      meta.finalizers = fin.filter((_, i) => i !== idx);
    } else throw kubeError(422, 'Invalid');
  }
}

/** The aggregator with its profile cache, verdicts and spec revisions, over a fake API server that stores profiles. */
class World {
  readonly clock = new FakeClock();
  readonly api = new FakeKubeApi(this.clock);
  readonly profiles = new Map<string, ProfileObj>();
  /** The server's copies. */
  readonly stored = new Map<string, Record<string, unknown>>();
  readonly verdicts = new Map<string, Verdict>();
  readonly specRevs = new Map<string, number>();
  readonly agg: Aggregator;
  #rv = 1000;

  constructor(pendingGraceMs = 0) {
    this.agg = new Aggregator({
      counters: newAggregatorCounters(),
      api: this.api,
      clock: this.clock,
      log: pino({ level: 'silent' }),
      profile: (key) => this.profiles.get(key),
      profileKeys: () => this.profiles.keys(),
      offer: (raw) => this.#cache(raw),
      kubeletRoot: '/var/lib/kubelet',
      verdict: (key) => this.verdicts.get(key),
      specRevision: (key) => this.specRevs.get(key) ?? NaN,
      coalesceMs: COALESCE,
      minGapMs: MIN_GAP,
      pendingGraceMs,
      concurrency: 4,
      retryMs: 500,
    });
    this.api.on('PATCH', /\/status$/, (req) => {
      const key = this.#keyOf(req.path.replace(/\/status$/, ''));
      const obj = this.#stored(key);
      obj['status'] = structuredClone((req.body as { status: unknown }).status);
      return this.#bump(obj);
    });
    this.api.on('PATCH', /\/seccompprofiles\/[^/]+$/, (req) => {
      const obj = structuredClone(this.#stored(this.#keyOf(req.path)));
      applyJsonPatch(obj, req.body as { op: string; path: string }[]);
      this.stored.set(this.#keyOf(req.path), obj);
      return this.#bump(obj);
    });
  }

  /** A profile as the watch brings it, with this agent's verdict and the spec revision of `rv`. */
  add(o: RawOpts & { invalid?: string }): ProfileObj {
    const raw = rawProfile(o);
    const p = this.#cache(raw);
    this.stored.set(p.key, structuredClone(p.raw));
    this.verdicts.set(p.key, { fingerprint: p.fingerprint, generation: p.generation, invalid: o.invalid });
    if (!this.specRevs.has(p.key)) this.specRevs.set(p.key, o.rv ?? 10);
    this.agg.touch(p.key);
    return p;
  }

  statusWrites(key = 'ns/p'): RecordedRequest[] {
    return this.api.calls('PATCH', `${profilePath('ns', key.split('/')[1] ?? '')}/status`);
  }

  finalizerPatches(): RecordedRequest[] {
    return this.api.calls('PATCH', /\/seccompprofiles\/[^/]+$/);
  }

  lastStatus(key = 'ns/p'): SeccompProfileStatus | undefined {
    return (this.statusWrites(key).at(-1)?.body as { status?: SeccompProfileStatus } | undefined)?.status;
  }

  async settle(): Promise<void> {
    await this.clock.advance(MIN_GAP * 3);
  }

  #cache(raw: Record<string, unknown>): ProfileObj {
    const p = profileObj(raw);
    if (p === undefined) throw new Error('not a profile');
    this.profiles.set(p.key, p);
    return p;
  }

  #keyOf(path: string): string {
    const m = /namespaces\/([^/]+)\/seccompprofiles\/([^/]+)$/.exec(path);
    return `${m?.[1]}/${m?.[2]}`;
  }

  #stored(key: string): Record<string, unknown> {
    const obj = this.stored.get(key);
    if (obj === undefined) throw kubeError(404, 'NotFound');
    return obj;
  }

  #bump(obj: Record<string, unknown>): Record<string, unknown> {
    (obj['metadata'] as { resourceVersion: string }).resourceVersion = String(++this.#rv);
    return structuredClone(obj);
  }
}

t.test(
  'Pending names the nodes it waits for; Installed once every live report reached the spec revision',
  async (t) => {
    const w = new World();
    w.add({ rv: 10 });
    w.agg.setReport(SELF, report(SELF, 10));
    w.agg.setReport('n1', report('n1', 9));
    w.agg.start([SELF, 'n1', 'n2']);
    await w.clock.advance(COALESCE);
    const [write] = w.statusWrites();
    t.ok(write, 'wrote the status');
    t.equal(write?.path, `${profilePath('ns', 'p')}/status`);
    t.same(write?.query, { fieldManager: AGGREGATOR_FIELD_MANAGER, force: true });
    t.equal(write?.contentType, APPLY_PATCH);
    t.match(write?.body, {
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: KIND,
      metadata: { name: 'p', namespace: 'ns' },
    });
    t.match(w.lastStatus(), {
      status: 'Pending',
      installedNodes: '1/3',
      specRevision: '10',
      observedGeneration: 1,
      conditions: [{ type: 'Ready', status: 'False', reason: 'Pending', message: 'waiting for 2 of 3 nodes: n1, n2' }],
    });

    w.agg.setReport('n2', report('n2', 12));
    await w.settle();
    t.match(w.lastStatus(), {
      status: 'Pending',
      installedNodes: '2/3',
      conditions: [{ message: 'waiting for 1 of 3 nodes: n1' }],
    });
    w.agg.setReport('n1', report('n1', 10));
    await w.settle();
    t.match(w.lastStatus(), {
      status: 'Installed',
      installedNodes: '3/3',
      conditions: [{ status: 'True', reason: 'Installed', message: 'installed on every node running the agent (3)' }],
    });
    const n = w.statusWrites().length;
    t.equal(n, 3);
    // Watermarks moving on after that change nothing.
    w.agg.setReport('n1', report('n1', 50));
    w.agg.setReport('n2', report('n2', 50));
    await w.settle();
    t.equal(w.statusWrites().length, n, 'no write when nothing in the status changed');
    t.equal(w.api.requests.length, n, 'and no other request');
  },
);

t.test('a new spec waits out the pending grace: one write, Installed, when every node reports within it', async (t) => {
  const GRACE = 1000;
  const w = new World(GRACE);
  w.add({ rv: 10 });
  w.agg.setReport(SELF, report(SELF, 10));
  w.agg.setReport('n1', report('n1', 9));
  w.agg.start([SELF, 'n1']);
  await w.clock.advance(COALESCE);
  t.equal(w.statusWrites().length, 0, 'no Pending written inside the grace');
  await w.clock.advance(GRACE / 2);
  w.agg.setReport('n1', report('n1', 10));
  await w.clock.advance(COALESCE);
  t.equal(w.statusWrites().length, 1, 'one write');
  t.match(w.lastStatus(), { status: 'Installed', installedNodes: '2/2' });

  const slow = new World(GRACE);
  slow.add({ rv: 10 });
  slow.agg.setReport(SELF, report(SELF, 10));
  slow.agg.setReport('n1', report('n1', 9));
  slow.agg.start([SELF, 'n1']);
  await slow.clock.advance(GRACE + COALESCE);
  t.match(slow.lastStatus(), { status: 'Pending', installedNodes: '1/2' }, 'Pending once the grace is over');
});

t.test('Error when a live node lists the profile failed for the current generation', async (t) => {
  const cases = [
    {
      name: 'one of three',
      failing: ['n1'],
      live: [SELF, 'n1', 'n2'],
      message: 'failed on 1 of 3 nodes: n1; n1: disk full on n1',
    },
    {
      name: 'twelve: the first 10 named',
      failing: Array.from({ length: 12 }, (_, i) => `n${String(i).padStart(2, '0')}`),
      live: [SELF, ...Array.from({ length: 12 }, (_, i) => `n${String(i).padStart(2, '0')}`)],
      message:
        'failed on 12 of 13 nodes: n00, n01, n02, n03, n04, n05, n06, n07, n08, n09 and 2 more; n00: disk full on n00',
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const w = new World();
      w.add({ generation: 3, rv: 10 });
      for (const n of c.live) w.agg.setReport(n, report(n, 10, { failed: c.failing.includes(n) ? [['ns/p', 3]] : [] }));
      w.agg.start(c.live);
      await w.settle();
      t.match(w.lastStatus(), { status: 'Error', conditions: [{ reason: 'InstallFailed', message: c.message }] });
      t.equal(w.statusWrites().length, 1);
    });
  }
  await t.test('a failure for an older generation does not count', async (t) => {
    const w = new World();
    w.add({ generation: 3, rv: 10 });
    w.agg.setReport(SELF, report(SELF, 10, { failed: [['ns/p', 2]] }));
    w.agg.start([SELF]);
    await w.settle();
    t.match(w.lastStatus(), { status: 'Installed' });
  });
});

t.test('ProfileInvalid from this agent’s own verdict; nothing before the verdict matches the spec', async (t) => {
  const w = new World();
  const p = w.add({ invalid: 'spec.syscalls[0].names: must not be empty' });
  w.verdicts.set(p.key, { fingerprint: 'an older spec', generation: 0, invalid: undefined });
  w.agg.setReport(SELF, report(SELF, 10));
  w.agg.start([SELF]);
  await w.settle();
  t.equal(w.api.requests.length, 0, 'no verdict for the current spec yet: no write');
  w.verdicts.set(p.key, {
    fingerprint: p.fingerprint,
    generation: 1,
    invalid: 'spec.syscalls[0].names: must not be empty',
  });
  w.agg.touch(p.key);
  await w.settle();
  t.match(w.lastStatus(), {
    status: 'Error',
    conditions: [{ reason: 'ProfileInvalid', message: 'spec.syscalls[0].names: must not be empty' }],
  });
});

t.test('the in-use finalizer', async (t) => {
  await t.test('added (JSON patch, test on resourceVersion) when a live node reports pods using it', async (t) => {
    const w = new World();
    w.add({ rv: 10 });
    w.agg.setReport(SELF, report(SELF, 10));
    w.agg.setReport('n1', report('n1', 10, { inUse: [['ns/p', ['ns/web']]] }));
    w.agg.start([SELF, 'n1']);
    await w.settle();
    const [patch] = w.finalizerPatches();
    t.equal(patch?.contentType, JSON_PATCH);
    t.same(patch?.body, [
      { op: 'test', path: '/metadata/resourceVersion', value: '10' },
      { op: 'add', path: '/metadata/finalizers', value: [IN_USE_FINALIZER] },
    ]);
    t.same(w.profiles.get('ns/p')?.finalizers, [IN_USE_FINALIZER], 'the answer went into the cache');
    t.match(w.lastStatus(), { status: 'Installed', activeWorkloads: ['ns/web'] });
    t.equal(w.finalizerPatches().length, 1);
  });

  await t.test('added after other finalizers (test on the list, add at the end)', async (t) => {
    const w = new World();
    w.add({ finalizers: ['example.com/keep'] });
    w.agg.setReport(SELF, report(SELF, 10, { inUse: [['ns/p', ['ns/web']]] }));
    w.agg.start([SELF]);
    await w.settle();
    t.same(w.finalizerPatches()[0]?.body, [
      { op: 'test', path: '/metadata/finalizers', value: ['example.com/keep'] },
      { op: 'add', path: '/metadata/finalizers/-', value: IN_USE_FINALIZER },
    ]);
  });

  await t.test('released when no live node uses it; not while a live node has no report', async (t) => {
    const w = new World();
    w.add({ finalizers: ['example.com/keep', IN_USE_FINALIZER] });
    w.agg.setReport(SELF, report(SELF, 10));
    w.agg.start([SELF, 'n1']);
    await w.settle();
    t.equal(w.finalizerPatches().length, 0, 'n1 has not reported: it may have users');
    w.agg.setReport('n1', report('n1', 10));
    await w.settle();
    t.same(w.finalizerPatches()[0]?.body, [
      { op: 'test', path: '/metadata/finalizers/1', value: IN_USE_FINALIZER },
      { op: 'remove', path: '/metadata/finalizers/1' },
    ]);
    t.same(w.profiles.get('ns/p')?.finalizers, ['example.com/keep']);
  });

  await t.test('a node that is not live never holds it nor adds it', async (t) => {
    const w = new World();
    w.add({ finalizers: [IN_USE_FINALIZER] });
    w.agg.setReport(SELF, report(SELF, 10));
    w.agg.setReport('gone', report('gone', 10, { inUse: [['ns/p', ['ns/web']]], failed: [['ns/p', 1]] }));
    w.agg.start([SELF]);
    await w.settle();
    t.equal(w.finalizerPatches().length, 1, 'released');
    t.same(w.profiles.get('ns/p')?.finalizers, []);
    t.match(w.lastStatus(), { status: 'Installed', installedNodes: '1/1', activeWorkloads: [] }, 'its failure ignored');

    const w2 = new World();
    w2.add({});
    w2.agg.setReport(SELF, report(SELF, 10));
    w2.agg.setReport('gone', report('gone', 10, { inUse: [['ns/p', ['ns/web']]] }));
    w2.agg.start([SELF]);
    await w2.settle();
    t.equal(w2.finalizerPatches().length, 0, 'not added for a dead node’s pods');
  });

  await t.test('a stale copy (test op fails): retried with the fresh object', async (t) => {
    const w = new World();
    w.add({ rv: 10 });
    // The server has moved on; the watch brings it later.
    const stored = w.stored.get('ns/p');
    if (stored !== undefined) (stored['metadata'] as { resourceVersion: string }).resourceVersion = '11';
    w.agg.setReport(SELF, report(SELF, 10, { inUse: [['ns/p', ['ns/web']]] }));
    w.agg.start([SELF]);
    await w.clock.advance(COALESCE);
    t.equal(w.finalizerPatches().length, 1, 'tried');
    t.same(w.profiles.get('ns/p')?.finalizers, []);
    w.add({ rv: 11 });
    await w.settle();
    t.same(w.profiles.get('ns/p')?.finalizers, [IN_USE_FINALIZER]);
    t.equal(w.finalizerPatches().length, 2);
  });

  await t.test('not added once deletion started; Terminating names the pods', async (t) => {
    const w = new World();
    w.add({ deleting: true, finalizers: ['example.com/keep'] });
    w.agg.setReport(SELF, report(SELF, 10, { inUse: [['ns/p', ['ns/web-2', 'ns/web-1']]] }));
    w.agg.start([SELF]);
    await w.settle();
    t.equal(w.finalizerPatches().length, 0);
    t.match(w.lastStatus(), {
      status: 'Terminating',
      activeWorkloads: ['ns/web-1', 'ns/web-2'],
      conditions: [{ reason: 'Terminating', message: 'deletion waits for the pods that use it: ns/web-1, ns/web-2' }],
    });
  });

  await t.test('deleting and released: no status write for an object about to go', async (t) => {
    const w = new World();
    w.add({ deleting: true, finalizers: [IN_USE_FINALIZER] });
    w.agg.setReport(SELF, report(SELF, 10));
    w.agg.start([SELF]);
    await w.settle();
    t.equal(w.finalizerPatches().length, 1);
    t.equal(w.statusWrites().length, 0);
  });
});

t.test('no write when the status on the object already says the same (lastTransitionTime aside)', async (t) => {
  const w = new World();
  w.add({});
  w.agg.setReport(SELF, report(SELF, 10));
  w.agg.start([SELF]);
  await w.settle();
  const status = w.lastStatus();
  t.ok(status);
  // A new aggregator (after a takeover, later) sees the object with that status.
  const w2 = new World();
  await w2.clock.advance(3_600_000);
  w2.add({ status: status ?? {} });
  w2.agg.setReport(SELF, report(SELF, 10));
  w2.agg.start([SELF]);
  await w2.settle();
  t.equal(w2.api.requests.length, 0);
});

t.test('a node joining or leaving the live set changes the counts', async (t) => {
  const w = new World();
  w.add({});
  w.agg.setReport(SELF, report(SELF, 10));
  w.agg.start([SELF]);
  await w.settle();
  t.match(w.lastStatus(), { installedNodes: '1/1' });
  w.agg.setLive([SELF, 'n1']);
  await w.settle();
  t.match(w.lastStatus(), { status: 'Pending', installedNodes: '1/2' });
  w.agg.setLive([SELF]);
  await w.settle();
  t.match(w.lastStatus(), { status: 'Installed', installedNodes: '1/1' });
});

t.test('at most one status write per profile per minGap, however many reports arrive', async (t) => {
  const w = new World();
  w.add({ name: 'p' });
  w.add({ name: 'q' });
  const nodes = Array.from({ length: 40 }, (_, i) => `n${String(i).padStart(2, '0')}`);
  w.agg.setReport(SELF, report(SELF, 10));
  for (const n of nodes) w.agg.setReport(n, report(n, 1));
  w.agg.start([SELF, ...nodes]);
  // One node after another catches up, every 50 ms: each report changes both profiles' counts.
  for (const n of nodes) {
    w.agg.setReport(n, report(n, 10));
    await w.clock.advance(50);
  }
  await w.settle();
  for (const key of ['ns/p', 'ns/q']) {
    const at = w.statusWrites(key).map((r) => r.at);
    t.ok(
      at.length <= Math.ceil((nodes.length * 50) / MIN_GAP) + 2,
      `${key}: ${at.length} writes for ${nodes.length} reports`,
    );
    for (let i = 1; i < at.length; i++)
      t.ok((at[i] ?? 0) - (at[i - 1] ?? 0) >= MIN_GAP, `${key}: write ${i} a gap after the one before`);
    t.match(w.lastStatus(key), { status: 'Installed', installedNodes: '41/41' });
  }
});

t.test('a write that fails is retried; a profile gone (404) is not', async (t) => {
  const w = new World();
  w.add({});
  w.agg.setReport(SELF, report(SELF, 10));
  let fail = 1;
  w.api.on('PATCH', /\/status$/, () => {
    if (fail-- > 0) throw kubeError(500, 'InternalError');
    return structuredClone(w.stored.get('ns/p') ?? {});
  });
  w.agg.start([SELF]);
  await w.settle();
  t.equal(w.statusWrites().length, 2, 'retried once');

  const w2 = new World();
  w2.add({});
  w2.agg.setReport(SELF, report(SELF, 10));
  w2.api.on('PATCH', /\/status$/, () => {
    throw kubeError(404, 'NotFound');
  });
  w2.agg.start([SELF]);
  await w2.settle();
  t.equal(w2.statusWrites().length, 1, 'not retried');
});
