// R4 (event part): property-based fuzzing, 10^4 generated inputs each; the bench runs 10^6
// (tests/bench/fuzz-events.ts). Counts, not timings: 0 crashes, 0 answers outside 2xx/4xx; inputs
// over the per-input bound are reported.
import t from 'tap';
import {
  auditLineArb,
  checkRequest,
  checkSplitter,
  corpusLines,
  fuzzApp,
  lineChecker,
  requestArb,
  runFuzz,
  splitterInputArb,
} from '../../helpers/events-fuzz.js';

const RUNS = 10_000;
const corpus = corpusLines();

t.test(`R4: the audit line parser and the per-line path, ${RUNS} generated lines`, async (t) => {
  const c = lineChecker();
  const counts = await runFuzz(auditLineArb(corpus), c.check, RUNS);
  t.comment(
    `parser: ${counts.inputs} inputs, ${counts.problems} problems, ${counts.slow} over 100 ms (${counts.slowAgain} again when re-run)`,
  );
  t.equal(counts.inputs, RUNS);
  t.equal(counts.problems, 0, counts.firstProblem ?? 'no line made the path throw or yield a bad record');
  t.equal(c.finish(), null, 'what was stored renders');
});

t.test(`R4: the line splitter against a plain split, ${RUNS} streams cut at random`, async (t) => {
  const counts = await runFuzz(splitterInputArb, checkSplitter, RUNS);
  t.comment(
    `splitter: ${counts.inputs} inputs, ${counts.problems} problems, ${counts.slow} over 100 ms (${counts.slowAgain} again when re-run)`,
  );
  t.equal(counts.inputs, RUNS);
  t.equal(counts.problems, 0, counts.firstProblem ?? 'same lines, same overlong count, never over the cap');
});

t.test(`R4: /v1/events, /v1/syscalls, /v1/suggest query parsing, ${RUNS} requests`, async (t) => {
  const { app, store } = await fuzzApp(corpus);
  t.teardown(() => app.close());
  const counts = await runFuzz(requestArb, (r) => checkRequest(app, r), RUNS);
  t.comment(
    `http: ${counts.inputs} requests, ${counts.problems} outside 2xx/4xx, ${counts.slow} over 100 ms (${counts.slowAgain} again when re-run)`,
  );
  t.equal(counts.inputs, RUNS);
  t.equal(counts.problems, 0, counts.firstProblem ?? 'every answer 2xx or 4xx');
  await new Promise((r) => setImmediate(r));
  t.equal(store.subscribers, 0, 'every follow stream closed with its client');
});
