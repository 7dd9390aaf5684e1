// A node's report write in flight already answers an aggregator's ask for the revision it carries:
// the aggregator's first (Pending) status of a change often lands while the node's report of that
// same change is still being written, and counting only the last report written made every such
// node write its report twice per change (seen in the scale simulation, tests/bench/cluster-scale-sim.ts).
import { pino } from 'pino';
import t from 'tap';
import type { NodeReportBody } from '../../../shared/profile/schema.js';
import { systemClock } from '../../../agent/src/cluster/clock.js';
import type { KubeApi } from '../../../agent/src/cluster/kube-api.js';
import { NodeReportWriter } from '../../../agent/src/cluster/node-report.js';
import type { KubeRequest } from '../../../agent/src/kube/client.js';

t.test('coveredRevision counts the write in flight, and falls back when it fails', async (t) => {
  let revision = 238;
  const held: { req: KubeRequest; answer: (ok: boolean) => void }[] = [];
  const api: KubeApi = {
    request: <T>(req: KubeRequest): Promise<T> => {
      if (req.method === 'GET') return Promise.resolve({ metadata: { uid: 'u-1' } } as T);
      return new Promise<T>((res, rej) =>
        held.push({ req, answer: (ok) => (ok ? res({} as T) : rej(new Error('boom'))) }),
      );
    },
  };
  const body = (): NodeReportBody => ({
    nodeName: 'n',
    appliedRevision: String(revision),
    installed: 0,
    failedCount: 0,
    inUseCount: 0,
    failed: [],
    inUse: [],
  });
  const w = new NodeReportWriter({
    api,
    clock: systemClock,
    node: 'n',
    minGapMs: 0,
    retryMs: 200,
    log: pino({ level: 'silent' }),
    build: body,
  });
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 20));
  t.ok(Number.isNaN(w.coveredRevision), 'nothing before the first write');
  w.update(true);
  await settle();
  t.equal(held.length, 1, 'one write in flight');
  t.equal(w.coveredRevision, 238, 'the write in flight covers its revision');
  t.ok(Number.isNaN(w.writtenRevision), 'not written yet');
  held.shift()?.answer(true);
  await settle();
  t.equal(w.writtenRevision, 238);
  revision = 250;
  w.update(true);
  await settle();
  t.equal(w.coveredRevision, 250);
  held.shift()?.answer(false);
  await settle();
  t.equal(w.coveredRevision, 238, 'a failed write covers nothing');
  await new Promise((r) => setTimeout(r, 250));
  t.equal(held.length, 1, 'and is retried');
  held.shift()?.answer(true);
  await settle();
  t.equal(w.writtenRevision, 250);
  await w.stop();
});
