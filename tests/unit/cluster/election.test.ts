// Leader election over the aggregator Lease, in fake time against a fake lease store that does
// what the API server does with a Lease: create (409 when it exists), update with optimistic
// concurrency (409 when the resourceVersion is stale), and a watch that shows every change.
import t from 'tap';
import { pino } from 'pino';
import {
  AGGREGATOR_LEASE,
  Election,
  type ElectionOptions,
  type RawLease,
} from '../../../agent/src/cluster/election.js';
import { microTime } from '../../../agent/src/cluster/clock.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { FakeKubeApi, kubeError, type RecordedRequest } from '../../helpers/fake-kube-api.js';

const NS = 'seccomp-agent';
const LEASES = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`;
const LEASE = `${LEASES}/${AGGREGATOR_LEASE}`;
const DURATION = 10_000;
const RENEW = 3000;
const JITTER = 1500;

/** The one Lease object, as the API server keeps it, with a watch. */
class LeaseStore {
  lease: RawLease | undefined;
  #rv = 100;
  readonly watchers: ((l: RawLease | undefined) => void)[] = [];

  /** Writes it as some other agent would (no request recorded). */
  put(spec: NonNullable<RawLease['spec']>): RawLease {
    this.lease = { metadata: { name: AGGREGATOR_LEASE, namespace: NS, resourceVersion: String(++this.#rv) }, spec };
    const l = structuredClone(this.lease);
    for (const w of this.watchers) w(structuredClone(l));
    return l;
  }

  /** Serves POST and PUT of the lease on `api`. */
  serve(api: FakeKubeApi): void {
    api.on('POST', LEASES, (req) => {
      if (this.lease !== undefined) throw kubeError(409, 'AlreadyExists');
      return this.#write(req);
    });
    api.on('PUT', LEASE, (req) => {
      const rv = (req.body as RawLease).metadata?.resourceVersion;
      if (this.lease === undefined) throw kubeError(404, 'NotFound');
      if (rv !== this.lease.metadata?.resourceVersion) throw kubeError(409, 'Conflict');
      return this.#write(req);
    });
  }

  #write(req: RecordedRequest): RawLease {
    const l = this.put(structuredClone((req.body as RawLease).spec ?? {}));
    return l;
  }
}

interface Candidate {
  e: Election;
  api: FakeKubeApi;
  started: number[];
  stopped: number[];
}

function candidate(
  clock: FakeClock,
  store: LeaseStore,
  identity: string,
  o: Partial<ElectionOptions> & { watch?: boolean } = {},
): Candidate {
  const api = new FakeKubeApi(clock);
  store.serve(api);
  const started: number[] = [];
  const stopped: number[] = [];
  const e = new Election({
    api,
    clock,
    random: () => 0.5,
    log: pino({ level: 'silent' }),
    namespace: NS,
    identity,
    leaseDurationMs: DURATION,
    renewMs: RENEW,
    jitterMs: JITTER,
    onStart: () => started.push(clock.now()),
    onStop: () => stopped.push(clock.now()),
    ...o,
  });
  if (o.watch !== false) store.watchers.push((l) => e.observe(l));
  return { e, api, started, stopped };
}

const otherSpec = (clock: FakeClock, holder = 'other'): NonNullable<RawLease['spec']> => ({
  holderIdentity: holder,
  leaseDurationSeconds: DURATION / 1000,
  acquireTime: microTime(clock.now()),
  renewTime: microTime(clock.now()),
  leaseTransitions: 3,
});

t.test('no lease: creates it (POST) after the jitter and leads', async (t) => {
  const clock = new FakeClock();
  const store = new LeaseStore();
  const c = candidate(clock, store, 'me');
  const t0 = clock.now();
  c.e.observe(undefined);
  await clock.advance(JITTER * 0.5 - 1);
  t.equal(c.api.requests.length, 0, 'waits for the jitter');
  await clock.advance(1);
  const [post] = c.api.calls('POST');
  t.equal(post?.at, t0 + JITTER * 0.5);
  t.match(post?.body, {
    metadata: { name: AGGREGATOR_LEASE, namespace: NS },
    spec: { holderIdentity: 'me', leaseDurationSeconds: 10, leaseTransitions: 1 },
  });
  t.notOk((post?.body as RawLease).metadata?.resourceVersion, 'a create carries no resourceVersion');
  t.ok(c.e.leading);
  t.same(c.started, [t0 + 750]);
  t.equal(c.e.holder, 'me');
});

t.test('a lease held by another agent that keeps renewing is never tried', async (t) => {
  const clock = new FakeClock();
  const store = new LeaseStore();
  const c = candidate(clock, store, 'me');
  c.e.observe(store.put(otherSpec(clock)));
  for (let i = 0; i < 20; i++) {
    await clock.advance(RENEW);
    store.put({ ...otherSpec(clock), acquireTime: store.lease?.spec?.acquireTime ?? '' });
  }
  t.equal(c.api.requests.length, 0);
  t.notOk(c.e.leading);
  t.equal(c.e.holder, 'other');
});

t.test(
  'a lease not renewed for its duration is taken (PUT with the resourceVersion seen) after duration + jitter',
  async (t) => {
    const cases = [
      { name: 'the lease’s own duration (10 s)', leaseDurationSeconds: 10, random: 0.5, want: 10_000 + 750 },
      { name: 'a longer duration on the lease (15 s)', leaseDurationSeconds: 15, random: 0, want: 15_000 },
      { name: 'no duration on the lease: ours', leaseDurationSeconds: undefined, random: 0.999, want: 10_000 + 1498.5 },
    ];
    for (const k of cases) {
      await t.test(k.name, async (t) => {
        const clock = new FakeClock();
        const store = new LeaseStore();
        const c = candidate(clock, store, 'me', { random: () => k.random });
        const { leaseDurationSeconds: _d, ...spec } = otherSpec(clock);
        const seen = store.put(
          k.leaseDurationSeconds === undefined ? spec : { ...spec, leaseDurationSeconds: k.leaseDurationSeconds },
        );
        const t0 = clock.now();
        await clock.advance(k.want - 1);
        t.equal(c.api.requests.length, 0, 'nothing before the lease expired by our clock plus jitter');
        await clock.advance(1);
        const [put] = c.api.calls('PUT');
        t.equal(put?.at, t0 + k.want, 'takeover in fake time: duration + jitter');
        t.ok(
          (put?.at ?? Infinity) - t0 <= (k.leaseDurationSeconds ?? 10) * 1000 + JITTER,
          'within duration + max jitter',
        );
        t.equal(put?.path, LEASE);
        t.match(put?.body, {
          metadata: { resourceVersion: seen.metadata?.resourceVersion },
          spec: { holderIdentity: 'me', leaseDurationSeconds: 10, leaseTransitions: 4 },
        });
        t.ok(c.e.leading);
      });
    }
  },
);

t.test('a 409 on the try: does not lead, and the new holder is left alone while it renews', async (t) => {
  const clock = new FakeClock();
  const store = new LeaseStore();
  const c = candidate(clock, store, 'me', { watch: false });
  c.e.observe(store.put(otherSpec(clock)));
  await clock.advance(DURATION);
  // Another candidate takes it; our watch has not shown that yet.
  store.put(otherSpec(clock, 'quick'));
  await clock.advance(JITTER);
  const [put] = c.api.calls('PUT');
  t.ok(put, 'tried');
  t.notOk(c.e.leading, 'lost the race');
  t.same(c.started, []);
  // The watch catches up; the new holder renews.
  store.watchers.push((l) => c.e.observe(l));
  c.e.observe(store.lease);
  const tried = c.api.requests.length;
  for (let i = 0; i < 10; i++) {
    await clock.advance(RENEW);
    store.put({ ...otherSpec(clock, 'quick') });
  }
  t.equal(c.api.requests.length, tried, 'no more tries');
  t.equal(c.e.holder, 'quick');
});

t.test('the leader renews every renewMs, with the resourceVersion of its last write', async (t) => {
  const clock = new FakeClock();
  const store = new LeaseStore();
  const c = candidate(clock, store, 'me');
  c.e.observe(undefined);
  await clock.advance(750);
  const t0 = clock.now();
  await clock.advance(4 * RENEW);
  const puts = c.api.calls('PUT');
  t.same(
    puts.map((p) => p.at - t0),
    [RENEW, 2 * RENEW, 3 * RENEW, 4 * RENEW],
  );
  const post = c.api.calls('POST')[0];
  const acquired = (post?.body as RawLease).spec?.acquireTime;
  for (const p of puts) {
    t.equal((p.body as RawLease).spec?.acquireTime, acquired, 'acquireTime kept on renewal');
    t.equal((p.body as RawLease).spec?.renewTime, microTime(p.at));
  }
  t.equal(c.e.stats.renewals, 4);
  t.same(c.stopped, []);
});

t.test('renewals failing for longer than duration - 2 s: steps down before anyone can take over', async (t) => {
  const cases = [
    { name: '500s', err: () => kubeError(500, 'InternalError') },
    { name: '409s', err: () => kubeError(409, 'Conflict') },
  ];
  for (const k of cases) {
    await t.test(k.name, async (t) => {
      const clock = new FakeClock();
      const store = new LeaseStore();
      const c = candidate(clock, store, 'me');
      c.e.observe(undefined);
      await clock.advance(750);
      await clock.advance(RENEW);
      const lastRenew = clock.now();
      t.equal(c.e.stats.renewals, 1);
      c.api.on('PUT', LEASE, () => {
        throw k.err();
      });
      await clock.advance(DURATION);
      t.equal(c.stopped.length, 1, 'onStop called once');
      t.notOk(c.e.leading);
      const stoppedAt = c.stopped[0] ?? Infinity;
      t.ok(
        stoppedAt - lastRenew > DURATION - 2000 - RENEW,
        `stepped down ${stoppedAt - lastRenew} ms after the last renewal`,
      );
      t.ok(stoppedAt - lastRenew <= DURATION - 2000, 'at most duration - 2 s after it');
      const failedPuts = c.api.calls('PUT').filter((p) => p.at > lastRenew && p.at <= stoppedAt);
      t.ok(failedPuts.length >= 2, 'retried');
      t.ok(failedPuts.length <= 10, `not a tight loop (${failedPuts.length} tries)`);
    });
  }
});

t.test('the watch shows another holder: the leader steps down', async (t) => {
  const clock = new FakeClock();
  const store = new LeaseStore();
  const c = candidate(clock, store, 'me');
  c.e.observe(undefined);
  await clock.advance(750);
  t.ok(c.e.leading);
  store.put(otherSpec(clock, 'usurper'));
  t.notOk(c.e.leading);
  t.same(c.stopped, [clock.now()]);
  const n = c.api.requests.length;
  await clock.advance(RENEW * 2);
  t.equal(c.api.requests.length, n, 'no renewal of a lease it lost');
});

t.test('an older resourceVersion from the watch is ignored', async (t) => {
  const clock = new FakeClock();
  const store = new LeaseStore();
  const c = candidate(clock, store, 'me');
  c.e.observe(undefined);
  await clock.advance(750);
  c.e.observe({ metadata: { name: AGGREGATOR_LEASE, resourceVersion: '1' }, spec: otherSpec(clock, 'stale') });
  t.ok(c.e.leading);
  t.equal(c.e.holder, 'me');
});

t.test('stop() while leading releases the lease (empty holder, 1 s) and calls onStop', async (t) => {
  const clock = new FakeClock();
  const store = new LeaseStore();
  const c = candidate(clock, store, 'me');
  c.e.observe(undefined);
  await clock.advance(750 + RENEW);
  const rv = store.lease?.metadata?.resourceVersion;
  await c.e.stop();
  const last = c.api.requests.at(-1);
  t.equal(last?.method, 'PUT');
  t.match(last?.body, { metadata: { resourceVersion: rv }, spec: { holderIdentity: '', leaseDurationSeconds: 1 } });
  t.equal(store.lease?.spec?.holderIdentity, '');
  t.equal(c.stopped.length, 1);
  t.notOk(c.e.leading);
  const n = c.api.requests.length;
  await clock.advance(DURATION * 2);
  t.equal(c.api.requests.length, n, 'a stopped election writes nothing more');
});

t.test('stop() while not leading writes nothing', async (t) => {
  const clock = new FakeClock();
  const store = new LeaseStore();
  const c = candidate(clock, store, 'me');
  c.e.observe(store.put(otherSpec(clock)));
  await c.e.stop();
  await clock.advance(DURATION * 2);
  t.equal(c.api.requests.length, 0);
  t.same(c.stopped, []);
});

t.test('a lease held by our own identity (we restarted) is renewed at once', async (t) => {
  const clock = new FakeClock();
  const store = new LeaseStore();
  const c = candidate(clock, store, 'me');
  const before = otherSpec(clock, 'me');
  await clock.advance(5000);
  const t0 = clock.now();
  c.e.observe(store.put(before));
  await clock.advance(0);
  const [put] = c.api.calls('PUT');
  t.equal(put?.at, t0, 'no wait, no jitter');
  t.match(put?.body, {
    spec: { holderIdentity: 'me', acquireTime: before.acquireTime, leaseTransitions: before.leaseTransitions },
  });
  t.ok(c.e.leading);
  t.same(c.started, [t0]);
});

t.test(
  'two candidates: one leads; when it stops, the other takes over within the jitter; when it dies, within duration + jitter',
  async (t) => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const a = candidate(clock, store, 'a', { random: () => 0.1 });
    const b = candidate(clock, store, 'b', { random: () => 0.9 });
    const c = candidate(clock, store, 'c', { random: () => 0.999 });
    for (const x of [a, b, c]) x.e.observe(undefined);
    await clock.advance(JITTER);
    t.ok(a.e.leading, 'the one with the shorter jitter leads');
    t.notOk(b.e.leading, 'the others saw the holder and did not try');
    t.equal(b.api.requests.length + c.api.requests.length, 0);
    await clock.advance(30_000);
    t.ok(a.e.leading);
    t.notOk(b.e.leading);

    const released = clock.now();
    await a.e.stop();
    await clock.advance(JITTER);
    t.ok(b.e.leading, 'released: taken over');
    t.ok((b.started[0] ?? Infinity) - released <= JITTER, `within the jitter (${(b.started[0] ?? 0) - released} ms)`);

    // b loses the API server (as good as dead to the others) without releasing: a fresh candidate
    // that saw every renewal takes over within duration + jitter of b's last one, and only after b stopped leading.
    await clock.advance(RENEW);
    t.notOk(c.e.leading);
    b.api.on('PUT', LEASE, () => {
      throw new Error('connect ECONNREFUSED');
    });
    const lastRenew = Math.max(
      ...b.api
        .calls('PUT')
        .filter((p) => p.at <= clock.now())
        .map((p) => p.at),
    );
    await clock.advance(DURATION + JITTER);
    t.ok(c.e.leading, 'taken over');
    const takeover = c.started[0] ?? Infinity;
    t.ok(
      takeover - lastRenew <= DURATION + JITTER,
      `within duration + jitter of the last renewal (${takeover - lastRenew} ms)`,
    );
    t.equal(b.stopped.length, 1);
    t.ok((b.stopped[0] ?? Infinity) < takeover, 'the old leader stepped down first: never two leaders');
    await c.e.stop();
    await b.e.stop();
  },
);
