/**
 * Benchmark (not a test): the reliability table's R1, 1,000 SIGKILLs of a process writing profiles
 * through the agent's ProfileWriter on a real disk, each followed by the agent's next start (the trials
 * are described in tests/helpers/crash-trials.ts; tests/node/crash-safety.test.ts runs fewer).
 *
 *   npm run build && npx node dist/tests/bench/crash-safety.js [--trials 1000]
 *
 * Prints the trials, torn files, temp files left after the restart, how many kills landed mid-write
 * (a temp file present: the window the figures are about) and the time taken; exits 1 when a file was
 * torn or a temp file was left.
 */
import { parseArgs } from 'node:util';
import { runCrashTrials } from '../helpers/crash-trials.js';

const { values } = parseArgs({ options: { trials: { type: 'string', default: '1000' } } });
const trials = Number(values.trials);
if (!Number.isInteger(trials) || trials < 1) throw new Error(`--trials "${values.trials}" is not a whole number >= 1`);
const out = (line: string): void => void process.stdout.write(`${line}\n`);
const start = performance.now();
const f = await runCrashTrials(trials);
const s = (performance.now() - start) / 1000;
out(`R1 crash safety on ${f.work} (statfs ${f.workFs}), profiles of ${f.aBytes} and ${f.bBytes} bytes`);
out(`trials                        ${f.trials}`);
out(`torn files after a kill       ${f.torn}`);
out(`temp files after the restart  ${f.tempFilesAfterRestart}`);
out(`other problems                ${f.problems.length - f.torn}`);
out(`kills mid-write (temp file)   ${f.midWrite} (${((100 * f.midWrite) / f.trials).toFixed(1)} % of trials)`);
out(`kills before the first install ${f.beforeFirstInstall}`);
out(`installs completed            ${f.totalInstalls} (mean ${f.meanInstallMs.toFixed(1)} ms)`);
out(`restarts by the CLI / in-process ${f.cliStarts} / ${f.trials - f.cliStarts}`);
out(`time                          ${s.toFixed(0)} s (${((1000 * s) / f.trials).toFixed(0)} ms a trial)`);
for (const p of f.problems.slice(0, 20)) out(`problem: ${p}`);
process.exitCode = f.torn === 0 && f.tempFilesAfterRestart === 0 && f.problems.length === 0 ? 0 : 1;
