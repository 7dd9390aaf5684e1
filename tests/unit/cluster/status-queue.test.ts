// The keyed queue behind the aggregator's status writes, driven in fake time: what a burst of
// changes costs in runs, and how the gap, the concurrency cap and retries shape them.
import t from 'tap';
import { KeyedQueue, type KeyedQueueOptions } from '../../../agent/src/cluster/status-queue.js';
import { FakeClock, flush } from '../../helpers/fake-clock.js';

interface Harness {
  clock: FakeClock;
  q: KeyedQueue;
  /** [key, fake time] of every run started. */
  started: [string, number][];
  /** Runs still in flight, by key: resolve or reject to end them. */
  open: Map<string, PromiseWithResolvers<void>>;
  errors: string[];
}

/** A queue whose runs stay open until the test ends them (or end at once with `autoFinish`). */
function harness(o: Partial<KeyedQueueOptions> & { autoFinish?: boolean } = {}): Harness {
  const clock = new FakeClock();
  const started: [string, number][] = [];
  const open = new Map<string, PromiseWithResolvers<void>>();
  const errors: string[] = [];
  const q = new KeyedQueue({
    clock,
    concurrency: 4,
    coalesceMs: 100,
    minGapMs: 1000,
    retryMs: 500,
    run: (key) => {
      started.push([key, clock.now()]);
      if (o.autoFinish !== false) return Promise.resolve();
      const d = Promise.withResolvers<void>();
      open.set(key, d);
      return d.promise.finally(() => open.delete(key));
    },
    onError: (key) => {
      errors.push(key);
      return true;
    },
    ...o,
  });
  return { clock, q, started, open, errors };
}

t.test('many enqueues of one key within the coalescing delay make one run', async (t) => {
  const h = harness();
  const t0 = h.clock.now();
  for (let i = 0; i < 50; i++) {
    h.q.enqueue('ns/a');
    await h.clock.advance(1);
  }
  await h.clock.advance(200);
  // The first enqueue fixed the due time; the later ones did not push it back.
  t.same(h.started, [['ns/a', t0 + 100]]);
  t.equal(h.q.runs, 1);
  t.equal(h.q.pending, 0);
});

t.test('two runs of one key are at least minGapMs apart', async (t) => {
  const h = harness();
  const t0 = h.clock.now();
  h.q.enqueue('k');
  await h.clock.advance(150); // first run at t0+100
  for (let i = 0; i < 10; i++) {
    h.q.enqueue('k');
    await h.clock.advance(200);
  }
  await h.clock.advance(2000);
  const times = h.started.map(([, at]) => at - t0);
  t.same(times, [100, 1100, 2100], 'one run per gap while changes keep coming');
  t.equal(h.q.pending, 0);
});

t.test('different keys do not wait for each other’s gap', async (t) => {
  const h = harness();
  const t0 = h.clock.now();
  h.q.enqueue('a');
  h.q.enqueue('b');
  await h.clock.advance(100);
  h.q.enqueue('c');
  await h.clock.advance(100);
  t.same(
    h.started.map(([k, at]) => [k, at - t0]),
    [
      ['a', 100],
      ['b', 100],
      ['c', 200],
    ],
  );
});

t.test('the concurrency cap', async (t) => {
  const cases = [
    { concurrency: 1, keys: 5 },
    { concurrency: 2, keys: 5 },
    { concurrency: 4, keys: 10 },
  ];
  for (const c of cases) {
    await t.test(`concurrency ${c.concurrency}, ${c.keys} keys`, async (t) => {
      const h = harness({ concurrency: c.concurrency, autoFinish: false });
      for (let i = 0; i < c.keys; i++) h.q.enqueue(`k${i}`);
      await h.clock.advance(100);
      t.equal(h.q.inFlight, c.concurrency, 'fills every slot');
      t.equal(h.started.length, c.concurrency, 'and no more');
      t.equal(h.clock.pending, 0, 'no timer armed while every slot is busy');
      let maxInFlight = 0;
      while (h.open.size > 0) {
        const [first] = h.open.values();
        first?.resolve();
        await flush();
        maxInFlight = Math.max(maxInFlight, h.q.inFlight);
        await h.clock.advance(0);
        maxInFlight = Math.max(maxInFlight, h.q.inFlight);
      }
      t.equal(h.started.length, c.keys, 'every key ran once');
      t.ok(maxInFlight <= c.concurrency, `never more than ${c.concurrency} at once`);
      await h.q.whenIdle();
    });
  }
});

t.test('one run at a time per key; an enqueue during a run makes exactly one more run after it', async (t) => {
  const h = harness({ autoFinish: false, minGapMs: 0 });
  const t0 = h.clock.now();
  h.q.enqueue('k');
  await h.clock.advance(100);
  t.equal(h.q.inFlight, 1);
  for (let i = 0; i < 5; i++) {
    h.q.enqueue('k');
    await h.clock.advance(300);
  }
  t.equal(h.started.length, 1, 'no second run while the first is in flight');
  h.open.get('k')?.resolve();
  await h.clock.advance(0);
  t.equal(h.started.length, 2, 'one more run as soon as the first ends (its due time has passed)');
  t.equal(h.started[1]?.[1], t0 + 1600);
  h.open.get('k')?.resolve();
  await h.clock.advance(5000);
  t.equal(h.started.length, 2, 'and no third');
});

t.test('a run that throws is retried after retryMs (and the gap)', async (t) => {
  const cases = [
    { name: 'retry after the gap', retryMs: 500, minGapMs: 1000, want: 1000 },
    { name: 'retry after retryMs', retryMs: 3000, minGapMs: 1000, want: 3000 },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const clock = new FakeClock();
      const t0 = clock.now();
      const at: number[] = [];
      const errors: unknown[] = [];
      const q = new KeyedQueue({
        clock,
        concurrency: 4,
        coalesceMs: 0,
        minGapMs: c.minGapMs,
        retryMs: c.retryMs,
        run: () => {
          at.push(clock.now() - t0);
          return at.length === 1 ? Promise.reject(new Error('boom')) : Promise.resolve();
        },
        onError: (_k, e) => {
          errors.push(e);
          return true;
        },
      });
      q.enqueue('k');
      await clock.advance(10_000);
      t.same(at, [0, c.want]);
      t.equal(errors.length, 1);
      await q.whenIdle();
    });
  }
  await t.test('not retried when onError says no', async (t) => {
    const h = harness({ run: () => Promise.reject(new Error('gone')), onError: () => false });
    h.q.enqueue('k');
    await h.clock.advance(10_000);
    t.equal(h.q.runs, 1);
    t.equal(h.q.pending, 0);
  });
});

t.test('forget drops a pending run and the gap', async (t) => {
  const h = harness();
  const t0 = h.clock.now();
  h.q.enqueue('k');
  await h.clock.advance(100);
  h.q.enqueue('k');
  t.equal(h.q.pending, 1);
  h.q.forget('k');
  t.equal(h.q.pending, 0);
  await h.clock.advance(2000);
  t.equal(h.started.length, 1, 'the forgotten run never happens');
  h.q.enqueue('k');
  await h.clock.advance(100);
  t.same(
    h.started.map(([, at]) => at - t0),
    [100, 2200],
  );
  // A forgotten key leaves nobody waiting.
  h.q.enqueue('k');
  let idle = false;
  void h.q.whenIdle().then(() => (idle = true));
  h.q.forget('k');
  await flush();
  t.ok(idle, 'whenIdle resolves with nothing left');
});

t.test('stop cancels the timer and later enqueues', async (t) => {
  const h = harness();
  h.q.enqueue('k');
  h.q.stop();
  t.equal(h.clock.pending, 0);
  h.q.enqueue('j');
  await h.clock.advance(5000);
  t.equal(h.started.length, 0);
});
