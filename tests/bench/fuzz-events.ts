/**
 * Fuzzing of the event path's parsers at scale (reliability R4; not a test: it prints counts).
 *
 *   npm run build && npx node --expose-gc dist/tests/bench/fuzz-events.js [--runs N] [--seed S] [--only parser|splitter|http|longline]
 *
 * 1. The audit line parser and the whole per-line path (parse, attribute, store, metrics), the line
 *    splitter against a plain split, and the /v1/events, /v1/syscalls, /v1/suggest query parsing
 *    (fastify inject): N generated inputs each (default 10^6), the generators of the unit test
 *    (tests/helpers/events-fuzz.ts). Printed: inputs, problems (crashes, bad records, answers
 *    outside 2xx/4xx), inputs over the 100 ms per-input bound (a hang would show there).
 * 2. Issue 10 item 10: one line without a newline, fed in 256 KiB reads. The splitter before the
 *    fix (kept here as the baseline: the held-back part copied on every read) against LineSplitter,
 *    CPU time and RSS growth, on 20 MB (both) and 100 MB (LineSplitter only).
 */
import { LineSplitter } from '../../agent/src/events/lines.js';
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
  type FuzzCounts,
} from '../helpers/events-fuzz.js';

/** One line of the report. */
const print = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

const runs = Number(arg('runs') ?? 1_000_000);
const seed = arg('seed') === undefined ? Date.now() % 2 ** 31 : Number(arg('seed'));
const only = arg('only');

function report(name: string, c: FuzzCounts, ms: number): void {
  print(
    `${name.padEnd(9)} ${String(c.inputs).padStart(8)} inputs  ${String(c.problems).padStart(3)} problems  ` +
      `${String(c.slow).padStart(4)} over 100 ms (${c.slowAgain} again when re-run)  ${(ms / 1000).toFixed(1)} s  ${Math.round(c.inputs / (ms / 1000))}/s` +
      (c.firstProblem === undefined ? '' : `  first: ${c.firstProblem.slice(0, 200)}`),
  );
}

async function timed(name: string, f: () => Promise<FuzzCounts>): Promise<void> {
  const start = performance.now();
  const c = await f();
  report(name, c, performance.now() - start);
}

/** The splitter as it was before item 10: the held-back start is concatenated on every read. */
class UnboundedSplitter {
  private partial: Buffer | null = null;
  push(chunk: Buffer): string[] {
    const last = chunk.lastIndexOf(0x0a);
    if (last < 0) {
      this.partial = this.partial === null ? Buffer.from(chunk) : Buffer.concat([this.partial, chunk]);
      return [];
    }
    const head = chunk.subarray(0, last);
    const text =
      this.partial === null ? head.toString('latin1') : Buffer.concat([this.partial, head]).toString('latin1');
    this.partial = last + 1 < chunk.length ? Buffer.from(chunk.subarray(last + 1)) : null;
    return text.split('\n');
  }
}

function longLine(name: string, s: { push(b: Buffer): string[] }, mb: number): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const chunk = Buffer.alloc(256 * 1024, 0x61);
  const rss0 = process.memoryUsage().rss;
  let rssMax = rss0;
  const cpu0 = process.cpuUsage();
  for (let done = 0; done < mb * 1024 * 1024; done += chunk.length) {
    s.push(chunk);
    if ((done / chunk.length) % 16 === 0) rssMax = Math.max(rssMax, process.memoryUsage().rss);
  }
  const lines = s.push(Buffer.from('\nnext\n'));
  const cpu = process.cpuUsage(cpu0);
  print(
    `${name.padEnd(26)} ${String(mb).padStart(4)} MB line: ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s CPU, ` +
      `RSS +${Math.round((rssMax - rss0) / 2 ** 20)} MiB, then ${lines.length} line(s)`,
  );
}

print(`fuzz-events: ${runs} inputs each, seed ${seed}`);
const corpus = corpusLines();
if (only === undefined || only === 'parser') {
  const c = lineChecker();
  await timed('parser', () => runFuzz(auditLineArb(corpus), c.check, runs, { seed }));
  const f = c.finish();
  if (f !== null) print(`parser: ${f}`);
}
if (only === undefined || only === 'splitter')
  await timed('splitter', () => runFuzz(splitterInputArb, checkSplitter, runs, { seed }));
if (only === undefined || only === 'http') {
  const { app, store } = await fuzzApp(corpus);
  await timed('http', () =>
    runFuzz(requestArb, (r) => checkRequest(app, r), runs, {
      seed,
      onProgress: (c) => print(`http      ... ${c.inputs} inputs, ${c.problems} problems, ${c.slow} over 100 ms`),
    }),
  );
  await new Promise((r) => setImmediate(r));
  print(`http      follow streams left open: ${store.subscribers}`);
  await app.close();
}
if (only === undefined || only === 'longline') {
  longLine('before (unbounded, baseline)', new UnboundedSplitter(), 20);
  longLine('LineSplitter (16 KiB cap)', new LineSplitter(), 20);
  longLine('LineSplitter (16 KiB cap)', new LineSplitter(), 100);
}
