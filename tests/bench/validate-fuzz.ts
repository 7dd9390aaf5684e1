/**
 * Benchmark (not a test): R4 for the profile validator at 10^6 generated inputs (any JSON, any
 * value, profile-shaped objects, mutated real and workshop profiles; the generators of
 * tests/unit/profile/validate-fuzz.test.ts, which runs 10^4 in CI).
 *
 *   npm run build && npx node dist/tests/bench/validate-fuzz.js [--runs 1000000] [--seed N]
 *
 * Prints the counts: inputs, accepted, refused, crashes (validateProfile threw), results over the size
 * limits (a finding over MAX_FINDING_BYTES, more than MAX_FINDINGS_PER_SEVERITY of one severity),
 * slow inputs (over 1 s: a hang would show here), the largest finding and message, the slowest
 * input, and the mean time per input; the first crash, if any, with its seed and path to replay.
 */
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { describeFindings } from '../../shared/profile/findings.js';
import { renderSpec } from '../../shared/profile/render.js';
import { validateProfile } from '../../shared/profile/validate.js';
import { SYSCALL_CATALOG } from '../../shared/syscalls/index.js';
import {
  MAX_FINDING_BYTES,
  MAX_FINDINGS_PER_SEVERITY,
  anyProfileInput,
  realProfileDocs,
} from '../helpers/profile-arbitraries.js';

const out = (line: string): void => void process.stdout.write(`${line}\n`);
const { values } = parseArgs({
  options: { runs: { type: 'string', default: '1000000' }, seed: { type: 'string' } },
});
const runs = Number(values.runs);
const seed = values.seed === undefined ? Date.now() | 0 : Number(values.seed);

const counts = { inputs: 0, accepted: 0, refused: 0, crashes: 0, oversized: 0, slow: 0 };
let largestFinding = 0;
let largestMessage = 0;
let slowestMs = 0;
let firstCrash: string | undefined;
const started = process.hrtime.bigint();
out(`validate-fuzz: seed ${seed}, ${runs} runs (node ${process.version})`);
fc.assert(
  fc.property(anyProfileInput(realProfileDocs()), (doc) => {
    counts.inputs++;
    const t0 = process.hrtime.bigint();
    try {
      const check = validateProfile(doc, SYSCALL_CATALOG);
      const findings = check.ok ? check.warnings : [...check.errors, ...check.warnings];
      for (const f of findings) largestFinding = Math.max(largestFinding, Buffer.byteLength(`${f.path}: ${f.message}`));
      const perSeverity = Math.max(
        findings.filter((f) => f.severity === 'error').length,
        findings.filter((f) => f.severity === 'warning').length,
      );
      if (perSeverity > MAX_FINDINGS_PER_SEVERITY || largestFinding > MAX_FINDING_BYTES) counts.oversized++;
      if (check.ok) {
        counts.accepted++;
        JSON.parse(renderSpec(check.profile.spec));
      } else {
        counts.refused++;
        largestMessage = Math.max(largestMessage, Buffer.byteLength(describeFindings(check.ref, check.errors)));
      }
    } catch (e: unknown) {
      counts.crashes++;
      firstCrash ??= e instanceof Error ? (e.stack ?? e.message) : String(e);
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    slowestMs = Math.max(slowestMs, ms);
    if (ms > 1000) counts.slow++;
    if (counts.inputs % 50_000 === 0) report();
  }),
  { numRuns: runs, seed },
);
/** The counts so far (printed every 50,000 inputs, so a long run that is stopped still tells). */
function report(): void {
  const totalMs = Number(process.hrtime.bigint() - started) / 1e6;
  out(
    `inputs ${counts.inputs}  accepted ${counts.accepted}  refused ${counts.refused}  crashes ${counts.crashes}  oversized ${counts.oversized}  slow (>1 s) ${counts.slow}`,
  );
  out(
    `  largest finding ${largestFinding} B (limit ${MAX_FINDING_BYTES})  largest message ${largestMessage} B  slowest input ${slowestMs.toFixed(1)} ms  mean ${((totalMs / counts.inputs) * 1000).toFixed(0)} µs per input (generation included)`,
  );
}
out('done:');
report();
if (firstCrash !== undefined) out(`first crash:\n${firstCrash}`);
