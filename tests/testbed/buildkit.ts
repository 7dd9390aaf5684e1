/**
 * buildkitd for the test bed's images (images.ts): started for the first build and stopped after
 * the last, in a network namespace of its own that has only `lo`, so no RUN step can reach
 * anything; its root is in the cache (`<cache>/buildkit`), one daemon per root (flock); buildctl
 * runs each build. The binaries come from build-images.sh.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkExecutables, runBuildScript } from './cluster.js';
import { exec, pollUntil } from './exec.js';
import { testbedCacheDir } from './rootfs.js';

const sha256 = (data: string): string => createHash('sha256').update(data).digest('hex');

/** A running buildkitd (network namespace of its own) and the build call. */
export interface Builder {
  build(req: BuildRequest): Promise<void>;
}

export interface BuildRequest {
  /** The main build context (`--local context`). */
  readonly context: string;
  /** The Dockerfile's directory and name; default the context and `Dockerfile`. */
  readonly dockerfileDir?: string;
  readonly dockerfileName?: string;
  /** Named contexts given as local directories: `--opt context:<name>=local:<name>`. */
  readonly localContexts?: Readonly<Record<string, string>>;
  /** Named contexts from OCI layouts: name → { dir, digest } (`oci-layout://<store>@<digest>`). */
  readonly ociContexts?: Readonly<Record<string, { readonly dir: string; readonly digest: string }>>;
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** `type=oci,dest=…` (tar) or `type=oci,tar=false,dest=…` (a layout directory). */
  readonly output: { readonly dest: string; readonly name: string; readonly tar: boolean };
  readonly timeoutMs?: number;
  /** Where buildctl's progress output goes after a build (kept next to the cached result). */
  readonly log?: string;
}

let binDirPromise: Promise<string> | undefined;

/** Runs build-images.sh (fast when warm) and returns the directory of buildkitd and buildctl. */
function buildkitBinDir(): Promise<string> {
  binDirPromise ??= (async () => {
    const dir = await runBuildScript('build-images.sh');
    await checkExecutables('build-images.sh', [path.join(dir, 'buildkitd'), path.join(dir, 'buildctl')]);
    return dir;
  })().catch((e: unknown) => {
    binDirPromise = undefined;
    throw e;
  });
  return binDirPromise;
}

interface Daemon {
  readonly child: ChildProcess;
  readonly runDir: string;
  readonly addr: string;
  readonly buildctl: string;
  readonly log: string;
  exited: boolean;
}

let daemon: { promise: Promise<Daemon>; users: number } | undefined;
let daemonStarts = 0;

/** How many times this process started buildkitd (a warm cache starts none). */
export function buildkitdStarts(): number {
  return daemonStarts;
}

async function startDaemon(): Promise<Daemon> {
  const bin = await buildkitBinDir();
  const root = path.join(testbedCacheDir(), 'buildkit');
  await fs.mkdir(path.join(root, 'root'), { recursive: true });
  const runDir = await fs.mkdtemp(path.join(os.tmpdir(), 'seccomp-agent-buildkit-'));
  const sock = path.join(runDir, 'buildkitd.sock');
  const config = path.join(runDir, 'buildkitd.toml');
  // Only the OCI worker (runc); its cache is kept to 10 GB.
  await fs.writeFile(
    config,
    '[worker.oci]\n  enabled = true\n  gc = true\n  maxUsedSpace = "10GB"\n[worker.containerd]\n  enabled = false\n',
  );
  const log = path.join(runDir, 'buildkitd.log');
  const logFd = await fs.open(log, 'w');
  // flock: one buildkitd per root. unshare --net: a network namespace with only lo, brought up by
  // `ip`; the RUN steps share it (--oci-worker-net=host), so they reach nothing. Its own process
  // group, so stopping it stops flock, the shell and buildkitd together. setpriv --pdeathsig: when
  // this process dies without stopping it (a killed test), flock and then buildkitd die too, and
  // the lock is free for the next run.
  const child = spawn(
    'setpriv',
    [
      '--pdeathsig',
      'KILL',
      'flock',
      path.join(root, '.lock'),
      'setpriv',
      '--pdeathsig',
      'KILL',
      'unshare',
      '--net',
      '--',
      'sh',
      '-c',
      'ip link set lo up && exec "$@"',
      'sh',
      path.join(bin, 'buildkitd'),
      '--config',
      config,
      '--root',
      path.join(root, 'root'),
      '--addr',
      `unix://${sock}`,
      '--oci-worker-binary',
      '/usr/sbin/runc',
      '--oci-worker-net',
      'host',
    ],
    { detached: true, stdio: ['ignore', logFd.fd, logFd.fd] },
  );
  await logFd.close();
  const d: Daemon = { child, runDir, addr: `unix://${sock}`, buildctl: path.join(bin, 'buildctl'), log, exited: false };
  child.on('exit', () => {
    d.exited = true;
  });
  const stop = (): void => {
    if (!d.exited && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  };
  process.once('exit', stop);
  // Another test process may hold the root's lock for a whole build: wait for it.
  const ready = await pollUntil(
    async () => {
      if (d.exited) return false;
      const r = await exec(d.buildctl, ['--addr', d.addr, 'debug', 'workers'], { timeoutMs: 10_000 });
      return r.code === 0 ? true : undefined;
    },
    30 * 60_000,
    250,
  );
  if (ready !== true) {
    const text = await fs.readFile(log, 'utf8').catch(() => '');
    stop();
    throw new Error(`images: buildkitd did not start (${d.exited ? 'it exited' : 'timeout'}): ${text.slice(-3000)}`);
  }
  return d;
}

async function stopDaemon(d: Daemon): Promise<void> {
  if (!d.exited && d.child.pid !== undefined) {
    const gone = new Promise<void>((resolve) => d.child.once('exit', () => resolve()));
    process.kill(-d.child.pid, 'SIGTERM');
    const timer = setTimeout(() => {
      if (!d.exited && d.child.pid !== undefined) process.kill(-d.child.pid, 'SIGKILL');
    }, 20_000);
    await gone;
    clearTimeout(timer);
  }
  await fs.rm(d.runDir, { recursive: true, force: true });
}

/** Runs `fn` with a buildkitd, started for the first caller and stopped after the last. */
export async function withBuilder<T>(fn: (b: Builder) => Promise<T>): Promise<T> {
  if (!daemon) {
    daemonStarts++;
    daemon = { promise: startDaemon(), users: 0 };
  }
  const mine = daemon;
  mine.users++;
  try {
    const d = await mine.promise;
    return await fn({ build: (req) => build(d, req) });
  } finally {
    mine.users--;
    if (mine.users === 0) {
      if (daemon === mine) daemon = undefined;
      const d = await mine.promise.catch(() => undefined);
      if (d) await stopDaemon(d);
    }
  }
}

async function build(d: Daemon, req: BuildRequest): Promise<void> {
  const args = [
    '--addr',
    d.addr,
    'build',
    '--progress=plain',
    '--frontend',
    'dockerfile.v0',
    '--local',
    `context=${req.context}`,
    '--local',
    `dockerfile=${req.dockerfileDir ?? req.context}`,
    '--opt',
    `filename=${req.dockerfileName ?? 'Dockerfile'}`,
  ];
  for (const [name, dir] of Object.entries(req.localContexts ?? {})) {
    const id = name.replace(/[^A-Za-z0-9]/g, '');
    args.push('--local', `${id}=${dir}`, '--opt', `context:${name}=local:${id}`);
  }
  for (const [name, { dir, digest }] of Object.entries(req.ociContexts ?? {})) {
    const id = `oci${sha256(name).slice(0, 8)}`;
    args.push('--oci-layout', `${id}=${dir}`, '--opt', `context:${name}=oci-layout://${id}@${digest}`);
  }
  for (const [k, v] of Object.entries(req.buildArgs ?? {})) args.push('--opt', `build-arg:${k}=${v}`);
  const o = req.output;
  args.push('--output', `type=oci,name=${o.name},dest=${o.dest}${o.tar ? '' : ',tar=false'}`);
  const r = await exec(d.buildctl, args, { timeoutMs: req.timeoutMs ?? 30 * 60_000 });
  if (req.log) await fs.writeFile(req.log, r.stderr);
  if (r.code !== 0) {
    throw new Error(
      `images: buildctl build of ${o.name} failed (exit ${r.code}${r.signal ? `, ${r.signal}` : ''}):\n` +
        r.stderr.slice(-6000),
    );
  }
}
