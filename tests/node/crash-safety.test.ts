// Crash safety of profile writes, with real processes on a real disk (the trials are described in
// tests/helpers/crash-trials.ts): SIGKILL a process writing profiles through the agent's ProfileWriter,
// check that no file is torn, start the agent again and check that no temp file is left. This test
// runs TRIALS of them; tests/bench/crash-safety.ts runs 1,000 (issue 10, reliability table R1).
import t from 'tap';
import { runCrashTrials } from '../helpers/crash-trials.js';

const TRIALS = 200;

t.test(
  `${TRIALS} SIGKILLs of a writing process: never a torn profile, no temp file after the next start`,
  async (t) => {
    const f = await runCrashTrials(TRIALS);
    t.comment(`worked on ${f.work} (statfs type ${f.workFs}, not tmpfs); A ${f.aBytes} bytes, B ${f.bBytes} bytes`);
    t.comment(
      `${f.trials} kills: ${f.midWrite} with a temp file present (mid-write), ${f.beforeFirstInstall} before the first ` +
        `install completed, ${f.totalInstalls} installs completed in all (mean ${f.meanInstallMs.toFixed(1)} ms each), ` +
        `${f.freshRoots} runs on a fresh kubelet root (${f.newFilesSeen} first-time files seen complete); next start ` +
        `by the CLI process ${f.cliStarts} times, by startStandalone ${f.trials - f.cliStarts} times; temp files seen ` +
        `e.g. ${f.tempFilesSeen.join(', ')}`,
    );
    t.ok(f.aBytes > 4096 && f.bBytes > 4096, 'two large contents');
    t.equal(f.torn, 0, 'no torn profile file after a kill');
    t.equal(f.tempFilesAfterRestart, 0, 'no temp file after the next start');
    t.same(f.problems, [], 'no torn, vanished or wrongly owned profile, no failed start, no leftover');
    t.ok(f.midWrite >= 5, `kills landed mid-write (temp file present) in ${f.midWrite} of ${f.trials} trials`);
  },
);
