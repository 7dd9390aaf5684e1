/**
 * Crash safety of profile writes, with real processes on a real disk: a child process installs large
 * profiles in a loop through the agent's ProfileWriter (dist/, the code the CLI runs) and is SIGKILLed
 * at a random point (after a random number of installs, plus a random part of one). After every kill
 * each profile file must be exactly one complete version (or absent if that kubelet root never had
 * it), with the right mode and owner; then the agent starts on a profiles directory that accounts for
 * those profiles and must leave no temp file behind. The start is the agent's own start-up path
 * (`startStandalone`, what `main` runs) in this process, and every CLI_EVERY-th trial the real CLI
 * (`--once`) as a process. Kills that land while a temp file exists show the trials exercise the window.
 * Used by tests/node/crash-safety.test.ts (a smaller count) and tests/bench/crash-safety.ts (1,000).
 */
import { spawn, execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { parseDocument } from 'yaml';
import { SYSCALL_CATALOG } from '../../shared/syscalls/index.js';
import { realFs } from '../../agent/src/profiles/fs.js';
import { startStandalone } from '../../agent/src/standalone.js';
import { repoRoot } from './shared.js';

const REPO_ROOT = repoRoot;
const SHARED = path.join(REPO_ROOT, '..', 'shared');
const NODE = process.execPath; // the Node 24 that runs tap
const DIST = path.join(REPO_ROOT, 'dist');
const MAIN = path.join(DIST, 'agent', 'src', 'main.js');
const WRITER_JS = path.join(DIST, 'agent', 'src', 'profiles', 'writer.js');
const FS_JS = path.join(DIST, 'agent', 'src', 'profiles', 'fs.js');

/** A fresh kubelet root every this many trials, so first writes (no old file) are killed too. */
const FRESH_EVERY = 10;
/**
 * Where kills land, independent of how fast the disk is today: after a random number of completed
 * installs (0 to MAX_INSTALLS_BEFORE_KILL), plus a random delay up to 1.5 times the mean install time
 * measured so far, so they spread over every step of an install (temp file, write, fsync, chown,
 * chmod, rename, directory fsync).
 */
const MAX_INSTALLS_BEFORE_KILL = 8;
/** The real CLI process is the "next start" every this many trials (it costs ~0.7 s a run). */
const CLI_EVERY = 10;
const NAMESPACE = 'crash-test';
const NAMES = ['moby-0', 'moby-1', 'moby-2', 'moby-3'] as const;
const UID = 65535;
const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

/** Children get no tap loader/processinfo: they run plain compiled JS. */
const childEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  return env;
};

async function must(file: string, hint: string): Promise<void> {
  await fs.access(file).catch(() => {
    throw new Error(`${file} is missing: ${hint}`);
  });
}

/** dist/ must exist and be at least as new as the sources this test exercises through it. */
async function requireFreshDist(): Promise<void> {
  const pairs: [string, string][] = [
    [path.join(REPO_ROOT, 'agent/src/profiles/writer.ts'), WRITER_JS],
    [path.join(REPO_ROOT, 'agent/src/profiles/fs.ts'), FS_JS],
    [path.join(REPO_ROOT, 'agent/src/main.ts'), MAIN],
  ];
  for (const [src, out] of pairs) {
    await must(out, "run 'npm run build' first (npm test does)");
    const [s, o] = await Promise.all([fs.stat(src), fs.stat(out)]);
    if (s.mtimeMs > o.mtimeMs)
      throw new Error(`${out} is older than ${src}: run 'npm run build' first (npm test does)`);
  }
}

/** A directory on a real disk (not tmpfs/ramfs), where fsync and rename mean what they do on a node. */
async function realDiskBase(): Promise<string> {
  for (const dir of [os.tmpdir(), '/var/tmp', path.join(REPO_ROOT, '.tap')]) {
    try {
      const st = await fs.statfs(dir);
      if (st.type !== TMPFS_MAGIC && st.type !== RAMFS_MAGIC) return dir;
    } catch {
      // try the next one
    }
  }
  throw new Error('no directory on a real disk found (os.tmpdir(), /var/tmp and .tap are all tmpfs or missing)');
}

const run = (file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(file, args, { cwd: REPO_ROOT, env: childEnv(), timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });

// The writing process. It takes its settings from argv and prints `ready` just before its first write,
// then one line per completed install: the outcome and how long the install took in ms. Contents alternate per pass, starting with B: the agent's
// start-up sync leaves every file at A, so every install is a real write (never a skip).
const CHILD = `
import { readFileSync } from 'node:fs';
import pino from 'pino';
const [writerJs, fsJs, root, ns, names, fileA, fileB] = process.argv.slice(1);
const { ProfileWriter } = await import(writerJs);
const { realFs } = await import(fsJs);
const contents = [readFileSync(fileA, 'utf8'), readFileSync(fileB, 'utf8')];
const w = new ProfileWriter(realFs, { kubeletRoot: root, uid: ${UID}, gid: ${UID}, chownAllowed: true }, pino({ level: 'silent' }));
process.stdout.write('ready\\n');
for (let pass = 0; ; pass++) {
  for (const name of names.split(',')) {
    const start = performance.now();
    const outcome = await w.install(ns, name, contents[(pass + 1) % 2]);
    process.stdout.write(outcome + ' ' + (performance.now() - start).toFixed(3) + '\\n');
  }
}
`;

interface KillResult {
  /** How long each completed install took, in ms. */
  installMs: number[];
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Starts the writer and SIGKILLs it `delayMs` after its `afterInstalls`-th completed install (0: after
 * it said ready, i.e. before its first write); reports how far it got.
 */
function killWriter(afterInstalls: number, delayMs: number, args: string[]): Promise<KillResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, ['--input-type=module', '-e', CHILD, ...args], {
      cwd: REPO_ROOT,
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let stderr = '';
    let armed = false;
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the writer did not reach ready + ${afterInstalls} installs within 30 s: ${stderr}`));
    }, 30_000);
    const installs = (): number[] =>
      out
        .split('\n')
        .slice(1, -1) // after `ready`, complete lines only
        .map((l) => Number(l.split(' ')[1]));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (armed || !out.startsWith('ready\n') || installs().length < afterInstalls) return;
      armed = true;
      clearTimeout(guard);
      if (delayMs === 0) child.kill('SIGKILL');
      else setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearTimeout(guard);
      resolve({ installMs: out.startsWith('ready\n') ? installs() : [], signal, stderr });
    });
  });
}

/** What a run of crash trials found. */
export interface CrashFigures {
  trials: number;
  /** Profile files found neither complete old nor complete new right after a kill. */
  torn: number;
  /** Temp files (`<name>.json.<n>`) still there after the agent's next start. */
  tempFilesAfterRestart: number;
  /** Kills that landed while a temp file existed (mid-write). */
  midWrite: number;
  beforeFirstInstall: number;
  totalInstalls: number;
  meanInstallMs: number;
  freshRoots: number;
  newFilesSeen: number;
  cliStarts: number;
  tempFilesSeen: string[];
  /** Every violation, described (torn, vanished, wrong mode, a start that failed, leftovers). */
  problems: string[];
  work: string;
  workFs: string;
  aBytes: number;
  bBytes: number;
}

/** Runs `trials` kill-and-restart trials in a fresh directory on a real disk (removed afterwards). */
export async function runCrashTrials(trials: number): Promise<CrashFigures> {
  await requireFreshDist();
  await must(
    path.join(SHARED, 'real-profiles', 'moby-default-amd64.yaml'),
    `the shared material must sit beside the repository at ${SHARED}`,
  );

  const base = await realDiskBase();
  const work = await fs.mkdtemp(path.join(base, 'seccomp-agent-crash-'));
  const workFs = `0x${(await fs.statfs(work)).type.toString(16)}`;
  const cleanUp = (): Promise<void> => fs.rm(work, { recursive: true, force: true });

  // The profiles directory: moby's amd64 default profile (runc 1.1.5 refuses the all-architecture one) under four names.
  const profilesDir = path.join(work, 'profiles');
  await fs.mkdir(profilesDir);
  const mobyYaml = await fs.readFile(path.join(SHARED, 'real-profiles', 'moby-default-amd64.yaml'), 'utf8');
  const docs = NAMES.map((name) => {
    const doc = parseDocument(mobyYaml);
    doc.setIn(['metadata', 'name'], name);
    doc.setIn(['metadata', 'namespace'], NAMESPACE);
    return doc.toString();
  });
  await fs.writeFile(path.join(profilesDir, 'moby.yaml'), docs.join('---\n'));

  let root = '';
  let rootNo = 0;
  const nsDir = (): string => path.join(root, 'seccomp', 'operator', NAMESPACE);
  const freshRoot = async (): Promise<void> => {
    root = path.join(work, `kubelet-${rootNo++}`);
    await fs.mkdir(root);
  };

  /** The agent's next start as the real CLI, --once. */
  const agentOnce = () =>
    run(NODE, [MAIN, '--profiles-dir', profilesDir, '--kubelet-root', root, '--once', '--log-level', 'warn']);

  /** The agent's next start in this process: the start-up sync `main` runs (sweep, then install all). */
  async function agentStart(): Promise<{ code: number; stderr: string }> {
    const agent = await startStandalone({
      profilesDir,
      kubeletRoot: root,
      catalog: SYSCALL_CATALOG,
      fs: realFs,
      log: pino({ level: 'silent' }),
      chownAllowed: true,
      follow: false,
    });
    const failed = agent.first.reports.filter((r) => r.state !== 'Installed');
    const problems = agent.first.snapshot.problems.map((p) => p.message);
    const bad = [...problems, ...failed.map((r) => `${r.path}: ${r.message ?? r.state}`)];
    return { code: bad.length === 0 ? 0 : 1, stderr: bad.join('\n') };
  }

  // A = what the agent itself renders for these profiles; B = a modified rendering of a different size.
  await freshRoot();
  const setup = await agentOnce();
  if (setup.code !== 0) {
    await cleanUp();
    throw new Error(`agent --once on ${profilesDir} exited ${setup.code}: ${setup.stderr}`);
  }
  const A = await fs.readFile(path.join(nsDir(), `${NAMES[0]}.json`));
  const parsedA = JSON.parse(A.toString()) as { defaultAction: string; syscalls: unknown[] };
  const B = Buffer.from(
    JSON.stringify({ ...parsedA, defaultAction: 'SCMP_ACT_LOG', syscalls: parsedA.syscalls.slice(0, -3) }),
  );
  const fileA = path.join(work, 'A.json');
  const fileB = path.join(work, 'B.json');
  await fs.writeFile(fileA, A);
  await fs.writeFile(fileB, B);

  const TEMP_NAME = new RegExp(`^(${NAMES.join('|')})\\.json\\.\\d+$`);

  try {
    const problems: string[] = [];
    let torn = 0;
    let tempLeft = 0;
    let midWrite = 0;
    let installsDone = 0;
    let installMsSum = 0;
    let beforeFirstInstall = 0;
    let totalInstalls = 0;
    let killedOnFresh = 0;
    let newFilesSeen = 0;
    let cliStarts = 0;
    const tempFilesSeen: string[] = [];

    let everWritten = true; // the set-up run wrote every file into the first root
    for (let trial = 0; trial < trials; trial++) {
      if (trial > 0 && trial % FRESH_EVERY === 0) {
        await freshRoot();
        everWritten = false;
        killedOnFresh++;
      }
      // Every 25th kill is as early as it gets: the moment the writer says it is about to write.
      const early = trial % 25 === 0;
      const meanMs = installsDone === 0 ? 10 : installMsSum / installsDone;
      const afterInstalls = early ? 0 : randomInt(0, MAX_INSTALLS_BEFORE_KILL + 1);
      const delay = early ? 0 : randomInt(0, Math.ceil(1.5 * meanMs) + 1);
      const args = [WRITER_JS, FS_JS, root, NAMESPACE, NAMES.join(','), fileA, fileB];
      const k = await killWriter(afterInstalls, delay, args);
      const where = `trial ${trial} (killed ${delay} ms after install ${afterInstalls}, ${k.installMs.length} installs done)`;
      if (k.signal !== 'SIGKILL')
        problems.push(`${where}: writer ended by ${k.signal ?? 'exit'} not SIGKILL: ${k.stderr}`);
      totalInstalls += k.installMs.length;
      for (const ms of k.installMs) {
        if (!Number.isFinite(ms)) continue;
        installsDone++;
        installMsSum += ms;
      }
      if (k.installMs.length === 0) beforeFirstInstall++;

      // Right after the kill: every profile file is one complete version, temp files are all we tolerate.
      const entries = await fs.readdir(nsDir()).catch(() => [] as string[]);
      let temps = 0;
      for (const e of entries) {
        if ((NAMES as readonly string[]).includes(e.replace(/\.json$/, '')) && e.endsWith('.json')) continue;
        if (TEMP_NAME.test(e)) {
          temps++;
          if (tempFilesSeen.length < 3) tempFilesSeen.push(e);
        } else problems.push(`${where}: unexpected entry ${e}`);
      }
      if (temps > 0) midWrite++;
      for (const name of NAMES) {
        const file = path.join(nsDir(), `${name}.json`);
        const data = await fs.readFile(file).catch(() => undefined);
        if (data === undefined) {
          if (everWritten) problems.push(`${where}: ${name}.json vanished although it existed before`);
          continue;
        }
        if (!everWritten) newFilesSeen++;
        if (!data.equals(A) && !data.equals(B)) {
          torn++;
          problems.push(
            `${where}: ${name}.json is torn: ${data.length} bytes, neither A (${A.length}) nor B (${B.length})`,
          );
        }
        const st = await fs.stat(file);
        if ((st.mode & 0o7777) !== 0o644 || st.uid !== UID || st.gid !== UID) {
          problems.push(
            `${where}: ${name}.json visible with mode ${(st.mode & 0o7777).toString(8)} owner ${st.uid}:${st.gid}`,
          );
        }
      }

      // The next start: the agent sweeps, installs, and leaves exactly the profile files.
      const viaCli = trial % CLI_EVERY === CLI_EVERY - 1;
      if (viaCli) cliStarts++;
      const next = viaCli ? await agentOnce() : await agentStart();
      if (next.code !== 0)
        problems.push(
          `${where}: agent ${viaCli ? '--once exited' : 'start-up sync failed'} ${next.code}: ${next.stderr.trim()}`,
        );
      const after = (await fs.readdir(nsDir()).catch(() => [] as string[])).sort();
      tempLeft += after.filter((e) => TEMP_NAME.test(e)).length;
      const want = NAMES.map((n) => `${n}.json`).sort();
      if (JSON.stringify(after) !== JSON.stringify(want)) {
        problems.push(`${where}: after the next start the directory holds ${JSON.stringify(after)}`);
      }
      for (const name of NAMES) {
        const data = await fs.readFile(path.join(nsDir(), `${name}.json`)).catch(() => undefined);
        if (data === undefined || !data.equals(A))
          problems.push(`${where}: after the next start ${name}.json is not A`);
      }
      const dirSt = await fs.stat(nsDir());
      if ((dirSt.mode & 0o7777) !== 0o744 || dirSt.uid !== UID) {
        problems.push(
          `${where}: after the next start the namespace directory has mode ${(dirSt.mode & 0o7777).toString(8)} owner ${dirSt.uid}`,
        );
      }
      everWritten = true;
    }
    return {
      trials,
      torn,
      tempFilesAfterRestart: tempLeft,
      midWrite,
      beforeFirstInstall,
      totalInstalls,
      meanInstallMs: installMsSum / Math.max(1, installsDone),
      freshRoots: killedOnFresh,
      newFilesSeen,
      cliStarts,
      tempFilesSeen,
      problems,
      work,
      workFs,
      aBytes: A.length,
      bBytes: B.length,
    };
  } finally {
    await cleanUp();
  }
}
