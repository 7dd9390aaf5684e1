/**
 * Running host commands for the node test bed: capture output, never throw on a non-zero exit unless
 * asked, and turn "command not found" into an error that names the Debian package to install.
 */
import { spawn } from 'node:child_process';

/** Debian packages that provide the host commands the node test bed uses. */
export const DEBIAN_PACKAGE_OF: Readonly<Record<string, string>> = {
  runc: 'runc',
  auditd: 'auditd',
  auditctl: 'auditd',
  busybox: 'busybox-static',
  gcc: 'gcc libc6-dev',
  'apt-get': 'apt',
  'apt-cache': 'apt',
  'dpkg-deb': 'dpkg',
  'dpkg-query': 'dpkg',
  ldd: 'libc-bin',
  chroot: 'coreutils',
  mmdebstrap: 'mmdebstrap',
  flock: 'util-linux',
  unshare: 'util-linux',
  setpriv: 'util-linux',
  ip: 'iproute2',
};

/** What a finished command produced. */
export interface ExecResult {
  readonly code: number;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options for {@link exec}. */
export interface ExecOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Kill the command (SIGKILL) after this long; the result then has signal SIGKILL. */
  readonly timeoutMs?: number;
}

/** The error for a host tool that is not installed; the message names the Debian package. */
export function missingTool(tool: string, detail = ''): Error {
  const pkgs = DEBIAN_PACKAGE_OF[tool] ?? tool;
  return new Error(
    `node test bed: '${tool}' is not available${detail ? ` (${detail})` : ''}; ` +
      `install the Debian package(s): apt-get install -y ${pkgs}`,
  );
}

/** Runs a command to completion and captures stdout/stderr; resolves whatever the exit status. */
export function exec(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      reject(e.code === 'ENOENT' ? missingTool(cmd) : e);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        code: code ?? -1,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

/** Like {@link exec} but throws (with the command's stderr) when it exits non-zero. */
export async function mustExec(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const r = await exec(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(
      `node test bed: '${[cmd, ...args].join(' ')}' failed (exit ${r.code}${r.signal ? `, ${r.signal}` : ''}): ` +
        `${r.stderr.trim() || r.stdout.trim()}`,
    );
  }
  return r;
}

/** Polls `probe` every `intervalMs` until it returns a value other than undefined or time runs out. */
export async function pollUntil<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) return undefined;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
