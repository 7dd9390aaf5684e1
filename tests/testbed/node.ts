/**
 * The node tier of the test bed: a real auditd and real runc containers on this machine.
 *
 * - {@link ensureAuditd} makes sure an auditd is running; one started here is stopped when the test
 *   file ends (never one we did not start).
 * - {@link auditMark}, {@link collectAudit} and {@link auditFence} read what auditd wrote after a
 *   point, polling with a bound instead of sleeping.
 * - {@link runContainer} (to completion) and {@link startContainer} (detached) run runc containers
 *   with a given seccomp profile, a kubelet-like cgroupsPath and a runc state dir of our own; every
 *   container, bundle and state dir is removed in `t.teardown`.
 * - {@link startNginx} runs Debian's nginx in a container and waits until it answers HTTP.
 *
 * Missing host tools make the test fail with the Debian package to install; nothing is skipped.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, rmSync, rmdirSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import tap from 'tap';
import { exec, missingTool, mustExec, pollUntil, type ExecResult } from './exec.js';
import { ensureNginxRootfs, nginxConf } from './rootfs.js';

/** The part of a tap test the helpers need: somewhere to register cleanup. */
export interface TestLike {
  teardown(fn: () => unknown): void;
}

// Teardowns do not run when a test file dies (an exception at top level, process.exit). Whatever is
// still registered here when the process exits is cleaned up synchronously: the auditd we started,
// containers, bundles and state dirs. Normal teardown unregisters what it cleaned.
const leftovers = new Map<string, () => void>();
let exitHook = false;
function onExitCleanup(key: string, fn: () => void): void {
  leftovers.set(key, fn);
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const cleanup of leftovers.values()) {
      try {
        cleanup();
      } catch {
        // best effort while exiting
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// auditd

/** A running auditd and where it writes. */
export interface AuditdHandle {
  readonly pid: number;
  readonly startedByUs: boolean;
  readonly logPath: string;
}

/** Fields of `auditctl -s` as numbers (enabled, pid, lost, ...). */
export async function auditStatus(): Promise<Record<string, number>> {
  const r = await mustExec('auditctl', ['-s']);
  const status: Record<string, number> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^(\w+) (\d+)/.exec(line);
    if (m?.[1] && m[2]) status[m[1]] = Number(m[2]);
  }
  return status;
}

async function auditdLogPath(): Promise<string> {
  const conf = await fs.readFile('/etc/audit/auditd.conf', 'utf8').catch(() => '');
  const m = /^\s*log_file\s*=\s*(\S+)\s*$/m.exec(conf);
  return m?.[1] ?? '/var/log/audit/audit.log';
}

async function isAuditd(pid: number): Promise<boolean> {
  if (pid <= 0) return false;
  const comm = await fs.readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
  return comm.trim() === 'auditd';
}

let auditd: Promise<AuditdHandle> | undefined;

/**
 * Makes sure an auditd is running and returns it. If none runs, starts one (`auditd`, no systemd
 * here) and registers, on the test file's root, a teardown that stops it and restores the kernel's
 * previous `enabled` flag. One auditd per test file (process); later calls reuse it.
 */
export function ensureAuditd(_t?: TestLike): Promise<AuditdHandle> {
  auditd ??= startAuditdIfNeeded();
  return auditd;
}

async function startAuditdIfNeeded(): Promise<AuditdHandle> {
  const logPath = await auditdLogPath();
  const before = await auditStatus().catch((e: unknown) => {
    throw missingTool('auditctl', e instanceof Error ? e.message : String(e));
  });
  const running = before['pid'] ?? 0;
  if (await isAuditd(running)) {
    await fs.access(logPath).catch(() => {
      throw new Error(`node test bed: auditd (pid ${running}) runs but ${logPath} does not exist`);
    });
    return { pid: running, startedByUs: false, logPath };
  }
  const started = await exec('auditd', []);
  if (started.code !== 0) {
    throw new Error(`node test bed: could not start auditd (exit ${started.code}): ${started.stderr.trim()}`);
  }
  const pid = await pollUntil(async () => {
    const s = await auditStatus();
    const p = s['pid'] ?? 0;
    if (!(await isAuditd(p))) return undefined;
    return (await fs.access(logPath).then(
      () => true,
      () => false,
    ))
      ? p
      : undefined;
  }, 10_000);
  if (pid === undefined) throw new Error(`node test bed: auditd did not come up within 10 s (no pid or no ${logPath})`);
  const previousEnabled = before['enabled'];
  const restoreEnabled = () => {
    if (previousEnabled === 0) spawnSync('auditctl', ['-e', '0'], { stdio: 'ignore' });
  };
  onExitCleanup('auditd', () => {
    process.kill(pid, 'SIGTERM');
    restoreEnabled();
  });
  tap.teardown(async () => {
    await stopAuditd(pid);
    restoreEnabled();
    leftovers.delete('auditd');
  });
  return { pid, startedByUs: true, logPath };
}

async function stopAuditd(pid: number): Promise<void> {
  if (!(await isAuditd(pid))) return;
  process.kill(pid, 'SIGTERM');
  const gone = await pollUntil(async () => ((await isAuditd(pid)) ? undefined : true), 10_000);
  if (!gone) throw new Error(`node test bed: auditd ${pid} (started by this test file) did not stop within 10 s`);
}

/** A position in the audit log: the file (by inode) and a byte offset at a line boundary. */
export interface AuditMark {
  readonly path: string;
  readonly ino: number;
  readonly offset: number;
}

/** The current end of the audit log; lines written later are read with {@link readAuditSince}. */
export async function auditMark(logPath: string): Promise<AuditMark> {
  const st = await fs.stat(logPath);
  return { path: logPath, ino: st.ino, offset: st.size };
}

async function readRange(file: string, offset: number): Promise<Buffer> {
  const fh = await fs.open(file, 'r');
  try {
    const { size } = await fh.stat();
    if (size <= offset) return Buffer.alloc(0);
    const buf = Buffer.alloc(size - offset);
    const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Complete lines of `buf` and how many bytes they span (an incomplete last line is held back). */
function completeLines(buf: Buffer): { lines: string[]; used: number } {
  const end = buf.lastIndexOf(0x0a);
  if (end < 0) return { lines: [], used: 0 };
  const text = buf.subarray(0, end).toString('utf8');
  return { lines: text.split('\n'), used: end + 1 };
}

/**
 * Reads the complete lines written after `mark` and returns them with the mark to read on from.
 * Follows one rotation (audit.log -> audit.log.N): the rest of the old file first, then the new one.
 */
export async function readAuditSince(mark: AuditMark): Promise<{ lines: string[]; mark: AuditMark }> {
  const st = await fs.stat(mark.path);
  if (st.ino === mark.ino) {
    const { lines, used } = completeLines(await readRange(mark.path, mark.offset));
    return { lines, mark: { ...mark, offset: mark.offset + used } };
  }
  const lines: string[] = [];
  for (let n = 1; n <= 99; n++) {
    const old = `${mark.path}.${n}`;
    const ost = await fs.stat(old).catch(() => undefined);
    if (!ost) break;
    if (ost.ino === mark.ino) {
      lines.push(...completeLines(await readRange(old, mark.offset)).lines);
      break;
    }
  }
  const fresh = completeLines(await readRange(mark.path, 0));
  lines.push(...fresh.lines);
  return { lines, mark: { path: mark.path, ino: st.ino, offset: fresh.used } };
}

/**
 * Reads audit lines written after `mark` until `done(lines so far)` is true or `timeoutMs` passes
 * (audit writes are buffered, so lines show up late). Returns every line read; the caller asserts.
 */
export async function collectAudit(
  mark: AuditMark,
  done: (lines: readonly string[]) => boolean,
  timeoutMs = 10_000,
): Promise<string[]> {
  const all: string[] = [];
  let at = mark;
  await pollUntil(
    async () => {
      const r = await readAuditSince(at);
      at = r.mark;
      all.push(...r.lines);
      return done(all) ? true : undefined;
    },
    timeoutMs,
    100,
  );
  return all;
}

/**
 * Writes a unique USER record (`auditctl -m`) and waits until auditd has written it: every record
 * the kernel queued before (e.g. a finished container's SECCOMP records) is then in the log too.
 * Returns the lines after `mark` up to (not including) the fence. Throws if the fence never shows.
 */
export async function auditFence(mark: AuditMark, timeoutMs = 10_000): Promise<string[]> {
  const token = `seccomp-agent-testbed-fence-${randomBytes(6).toString('hex')}`;
  await mustExec('auditctl', ['-m', token]);
  const lines = await collectAudit(mark, (ls) => ls.some((l) => l.includes(token)), timeoutMs);
  const i = lines.findIndex((l) => l.includes(token));
  if (i < 0) throw new Error(`node test bed: auditd did not log the fence record within ${timeoutMs} ms`);
  return lines.slice(0, i);
}

/** The fields of a `type=SECCOMP` record the node tests look at (an oracle independent of the agent). */
export interface SeccompRecord {
  readonly pid: number;
  readonly comm: string;
  readonly exe: string;
  readonly arch: string;
  readonly syscall: number;
  readonly code: string;
  readonly line: string;
}

function auditField(line: string, key: string): string | undefined {
  const m = new RegExp(`(?:^|\\s)${key}=("[^"]*"|\\S+)`).exec(line);
  const v = m?.[1];
  if (v === undefined) return undefined;
  if (v.startsWith('"')) return v.slice(1, -1);
  // comm= and exe= are hex-encoded (no quotes) when they hold a space, quote or control byte.
  if ((key === 'comm' || key === 'exe') && /^[0-9A-F]+$/.test(v) && v.length % 2 === 0) {
    return Buffer.from(v, 'hex').toString('utf8');
  }
  return v;
}

/** The `type=SECCOMP` records among audit lines (the kernel's part, before auditd's 0x1d enrichment). */
export function seccompRecords(lines: readonly string[]): SeccompRecord[] {
  const out: SeccompRecord[] = [];
  for (const full of lines) {
    if (!full.startsWith('type=SECCOMP ')) continue;
    const line = full.split('\x1d')[0] ?? full;
    out.push({
      pid: Number(auditField(line, 'pid')),
      comm: auditField(line, 'comm') ?? '',
      exe: auditField(line, 'exe') ?? '',
      arch: auditField(line, 'arch') ?? '',
      syscall: Number(auditField(line, 'syscall')),
      code: auditField(line, 'code') ?? '',
      line: full,
    });
  }
  return out;
}

/** SECCOMP `code=` of SCMP_ACT_LOG. */
export const CODE_LOG = '0x7ffc0000';

// ---------------------------------------------------------------------------------------------
// runc containers

/** The capabilities `runc spec` gives (used by results.txt's bundles). */
export const RUNC_SPEC_CAPABILITIES: readonly string[] = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

/** The capabilities containerd's CRI plugin gives a Kubernetes container by default. */
export const CONTAINERD_DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** What to run and how. Defaults are kubelet-like (containerd's capabilities, no no_new_privs). */
export interface ContainerSpec {
  /** Root filesystem (shared, mounted read-only). */
  readonly rootfs: string;
  readonly args: readonly string[];
  /** `linux.seccomp` as the JSON text on disk (parsed into config.json); undefined = no seccomp. */
  readonly profile?: string | undefined;
  readonly env?: readonly string[];
  /** Container id; default 64 random hex digits, like containerd. */
  readonly id?: string;
  /** Pod uid for the cgroupsPath; default a random UUID. */
  readonly podUid?: string;
  /** QoS segment of the cgroupsPath (kubelet, cgroupfs driver); default besteffort. */
  readonly qosClass?: 'besteffort' | 'burstable' | 'guaranteed';
  /** Share the host's network namespace (so a server on 127.0.0.1 is reachable); default false. */
  readonly hostNetwork?: boolean;
  /** Default {@link CONTAINERD_DEFAULT_CAPABILITIES}. */
  readonly capabilities?: readonly string[];
  /**
   * no_new_privs; default false, as for a pod without `allowPrivilegeEscalation: false`. With it
   * off, runc loads the filter before dropping privileges, so runc's own init runs under it longer.
   */
  readonly noNewPrivileges?: boolean;
  /** Bind mounts of host files or directories; read-only unless `writable`. */
  readonly binds?: readonly { readonly source: string; readonly destination: string; readonly writable?: boolean }[];
  /** The process's user (an image's `User`, a pod's runAsUser/runAsGroup/supplementalGroups); default root. */
  readonly user?: { readonly uid: number; readonly gid: number; readonly additionalGids?: readonly number[] };
  /** The process's working directory (an image's `WorkingDir`); default /. */
  readonly cwd?: string;
  /** Writable tmpfs mounts; default ['/tmp']. */
  readonly tmpfs?: readonly string[];
  /** For {@link runContainer}: kill the container after this long (default 30 s). */
  readonly timeoutMs?: number;
}

/** A container that ran to completion (or failed to start). */
export interface CompletedContainer {
  readonly id: string;
  readonly cgroupsPath: string;
  /** Host pid of the container's init; undefined when runc never started it. */
  readonly pid: number | undefined;
  /** runc's exit status: the workload's, 128+signal if killed, 1 if runc failed. */
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A detached container; it is removed at teardown if `stop()` was not called. */
export interface RunningContainer {
  readonly id: string;
  readonly cgroupsPath: string;
  /** Host pid of the container's init (from `runc state`). */
  readonly pid: number;
  /** `runc state` status: running, stopped, ... */
  status(): Promise<string>;
  /** What the container wrote to stdout and stderr so far. */
  output(): Promise<string>;
  /** Runs a process in the running container (`runc exec`: same namespaces, same seccomp filter). */
  exec(args: readonly string[]): Promise<ExecResult>;
  /** Kills and deletes the container (idempotent). */
  stop(): Promise<void>;
}

interface Prepared {
  readonly id: string;
  readonly cgroupsPath: string;
  readonly podUid: string;
  readonly qosSegment: string;
  readonly bundle: string;
  readonly stateDir: string;
  runc(args: readonly string[]): Promise<ExecResult>;
}

let runcChecked = false;

async function checkRunc(): Promise<void> {
  if (runcChecked) return;
  const r = await exec('runc', ['--version']);
  if (r.code !== 0) throw missingTool('runc', r.stderr.trim());
  runcChecked = true;
}

/** Kubelet's cgroupfs layout: /kubepods[/<qos>]/pod<uid>/<container id>. */
function cgroupsPathOf(qos: string, podUid: string, id: string): string {
  return `/kubepods${qos ? `/${qos}` : ''}/pod${podUid}/${id}`;
}

function configJson(spec: ContainerSpec, cgroupsPath: string, hostname: string): unknown {
  const caps = [...(spec.capabilities ?? CONTAINERD_DEFAULT_CAPABILITIES)];
  const namespaces = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (!spec.hostNetwork) namespaces.push({ type: 'network' });
  const mounts: unknown[] = [
    { destination: '/proc', type: 'proc', source: 'proc' },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    {
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    },
    ...(spec.tmpfs ?? ['/tmp']).map((d) => ({
      destination: d,
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'nodev', 'mode=1777', 'size=65536k'],
    })),
    ...(spec.binds ?? []).map((b) => ({
      destination: b.destination,
      type: 'bind',
      source: b.source,
      options: b.writable ? ['rbind', 'rw'] : ['rbind', 'ro'],
    })),
  ];
  const linux: Record<string, unknown> = {
    cgroupsPath,
    resources: { devices: [{ allow: false, access: 'rwm' }] },
    namespaces,
    maskedPaths: [
      '/proc/acpi',
      '/proc/asound',
      '/proc/kcore',
      '/proc/keys',
      '/proc/latency_stats',
      '/proc/timer_list',
      '/proc/timer_stats',
      '/proc/sched_debug',
      '/sys/firmware',
      '/proc/scsi',
    ],
    readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
  };
  if (spec.profile !== undefined) linux['seccomp'] = JSON.parse(spec.profile) as unknown;
  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: false,
      user: spec.user
        ? { uid: spec.user.uid, gid: spec.user.gid, additionalGids: [...(spec.user.additionalGids ?? [])] }
        : { uid: 0, gid: 0 },
      args: [...spec.args],
      env: [
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        `HOSTNAME=${hostname}`,
        ...(spec.env ?? []),
      ],
      cwd: spec.cwd ?? '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: spec.noNewPrivileges ?? false,
    },
    root: { path: spec.rootfs, readonly: true },
    hostname,
    mounts,
    linux,
  };
}

/** The cgroup hierarchies mounted under /sys/fs/cgroup (v1 controllers and, on hybrid hosts, unified). */
function cgroupHierarchiesSync(): string[] {
  const base = '/sys/fs/cgroup';
  try {
    const dirs = readdirSync(base, { withFileTypes: true }).filter((e) => e.isDirectory());
    return dirs.length > 0 ? dirs.map((e) => path.join(base, e.name)) : [base];
  } catch {
    return [base];
  }
}

/** Removes the pod-level cgroup directories runc leaves behind (the container's own are removed by runc). */
async function removePodCgroups(podUid: string, qosSegment: string): Promise<void> {
  for (const h of cgroupHierarchiesSync()) {
    await fs.rmdir(path.join(h, 'kubepods', qosSegment, `pod${podUid}`)).catch(() => undefined);
  }
}

async function prepare(t: TestLike, spec: ContainerSpec): Promise<Prepared> {
  await checkRunc();
  if (spec.profile !== undefined) JSON.parse(spec.profile); // a bad profile text fails here, loudly
  const id = spec.id ?? randomBytes(32).toString('hex');
  const podUid = spec.podUid ?? randomUUID();
  const qos = spec.qosClass ?? 'besteffort';
  const qosSegment = qos === 'guaranteed' ? '' : qos;
  const cgroupsPath = cgroupsPathOf(qosSegment, podUid, id);
  const bundle = await fs.mkdtemp(path.join(os.tmpdir(), 'seccomp-agent-bundle-'));
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'seccomp-agent-runc-'));
  const runc = (args: readonly string[]) => exec('runc', ['--root', stateDir, ...args], { timeoutMs: 60_000 });
  onExitCleanup(`container:${id}`, () => {
    spawnSync('runc', ['--root', stateDir, 'delete', '-f', id], { stdio: 'ignore', timeout: 30_000 });
    for (const h of cgroupHierarchiesSync()) {
      try {
        rmdirSync(path.join(h, 'kubepods', qosSegment, `pod${podUid}`));
      } catch {
        // not there, or still in use
      }
    }
    rmSync(bundle, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });
  t.teardown(async () => {
    await runc(['delete', '-f', id]);
    await removePodCgroups(podUid, qosSegment);
    await fs.rm(bundle, { recursive: true, force: true });
    await fs.rm(stateDir, { recursive: true, force: true });
    leftovers.delete(`container:${id}`);
  });
  const config = configJson(spec, cgroupsPath, id.slice(0, 12));
  await fs.writeFile(path.join(bundle, 'config.json'), JSON.stringify(config, null, 1));
  return { id, cgroupsPath, podUid, qosSegment, bundle, stateDir, runc };
}

async function readPidFile(file: string): Promise<number | undefined> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  const pid = Number.parseInt(text, 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Runs a container to completion (`runc run`, no terminal) and returns its output and exit status.
 * A container runc cannot start is not an error here: exitCode is non-zero and stderr says why.
 */
export async function runContainer(t: TestLike, spec: ContainerSpec): Promise<CompletedContainer> {
  const p = await prepare(t, spec);
  const pidFile = path.join(p.bundle, 'pid');
  const timeoutMs = spec.timeoutMs ?? 30_000;
  const r = await new Promise<{ code: number; stdout: string; stderr: string; timedOut: boolean }>(
    (resolve, reject) => {
      const child = spawn('runc', ['--root', p.stateDir, 'run', '--bundle', p.bundle, '--pid-file', pidFile, p.id], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        void p.runc(['kill', p.id, 'KILL']);
      }, timeoutMs);
      child.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(e.code === 'ENOENT' ? missingTool('runc') : e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({
          code: code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          timedOut,
        });
      });
    },
  );
  if (r.timedOut) {
    throw new Error(
      `node test bed: container ${p.id} (${spec.args.join(' ')}) still ran after ${timeoutMs} ms; killed`,
    );
  }
  return {
    id: p.id,
    cgroupsPath: p.cgroupsPath,
    pid: await readPidFile(pidFile),
    exitCode: r.code,
    stdout: r.stdout,
    stderr: r.stderr,
  };
}

/**
 * Starts a detached container (`runc run -d`); its stdout and stderr go to a file in the bundle.
 * Throws with runc's error when the container cannot start.
 */
export async function startContainer(t: TestLike, spec: ContainerSpec): Promise<RunningContainer> {
  const p = await prepare(t, spec);
  const logFile = path.join(p.bundle, 'output.log');
  const log = await fs.open(logFile, 'w');
  let started;
  try {
    started = await new Promise<{ code: number }>((resolve, reject) => {
      const child = spawn(
        'runc',
        ['--root', p.stateDir, 'run', '-d', '--bundle', p.bundle, '--pid-file', path.join(p.bundle, 'pid'), p.id],
        { stdio: ['ignore', log.fd, log.fd] },
      );
      child.on('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? missingTool('runc') : e));
      child.on('close', (code) => resolve({ code: code ?? -1 }));
    });
  } finally {
    await log.close();
  }
  const output = () => fs.readFile(logFile, 'utf8').catch(() => '');
  if (started.code !== 0) {
    throw new Error(
      `node test bed: runc could not start container ${p.id} (exit ${started.code}): ${(await output()).trim()}`,
    );
  }
  const state = async (): Promise<{ pid: number; status: string } | undefined> => {
    const r = await p.runc(['state', p.id]);
    if (r.code !== 0) return undefined;
    const s = JSON.parse(r.stdout) as { pid?: unknown; status?: unknown };
    return { pid: Number(s.pid), status: String(s.status) };
  };
  const st = await state();
  if (!st || !(st.pid > 0)) throw new Error(`node test bed: runc state ${p.id} gave no pid: ${await output()}`);
  let stopped = false;
  return {
    id: p.id,
    cgroupsPath: p.cgroupsPath,
    pid: st.pid,
    status: async () => (await state())?.status ?? 'gone',
    output,
    exec: (args) => p.runc(['exec', p.id, ...args]),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await p.runc(['delete', '-f', p.id]);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// nginx

/** A free TCP port on 127.0.0.1 (the kernel picks one; it is free when this returns). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

/** A running nginx container and where it serves. */
export interface NginxContainer {
  readonly container: RunningContainer;
  readonly port: number;
  readonly url: string;
  /** Host pids of the worker processes (children of the master, `container.pid`). */
  workerPids(): Promise<number[]>;
}

/**
 * Starts Debian's nginx (master + workers, like the official image) in a container on the host's
 * network with `profile`, and waits (bounded, 10 s) until it answers `GET /` with 200. Throws with
 * the container's output if it dies or never answers.
 */
export async function startNginx(
  t: TestLike,
  opts: { profile?: string | undefined; port?: number } & Partial<Pick<ContainerSpec, 'id' | 'podUid'>>,
): Promise<NginxContainer> {
  const rootfs = await ensureNginxRootfs();
  const port = opts.port ?? (await freePort());
  const confDir = await fs.mkdtemp(path.join(os.tmpdir(), 'seccomp-agent-nginx-'));
  t.teardown(() => fs.rm(confDir, { recursive: true, force: true }));
  const conf = path.join(confDir, 'nginx.conf');
  await fs.writeFile(conf, nginxConf(port));
  const container = await startContainer(t, {
    rootfs,
    args: ['/usr/sbin/nginx', '-e', 'stderr'],
    profile: opts.profile,
    hostNetwork: true,
    binds: [{ source: conf, destination: '/etc/nginx/nginx.conf' }],
    tmpfs: ['/tmp', '/run', '/var/lib/nginx', '/var/log/nginx', '/var/cache/nginx'],
    ...(opts.id === undefined ? {} : { id: opts.id }),
    ...(opts.podUid === undefined ? {} : { podUid: opts.podUid }),
  });
  const url = `http://127.0.0.1:${port}/`;
  const tail = async () => (await container.output()).slice(-3000);
  let last = '';
  // Poll until nginx answers at all (connection refused while it starts); any HTTP answer is final.
  const status = await pollUntil(
    async () => {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
        await res.text();
        return res.status;
      } catch (e: unknown) {
        last = e instanceof Error ? `${e.message}${e.cause instanceof Error ? `: ${e.cause.message}` : ''}` : String(e);
      }
      const state = await container.status();
      if (state !== 'running') throw new Error(`node test bed: nginx container is ${state}: ${await tail()}`);
      return undefined;
    },
    10_000,
    100,
  );
  if (status !== 200) {
    throw new Error(
      `node test bed: nginx did not answer ${url} with 200 within 10 s ` +
        `(${status === undefined ? last : `HTTP ${status}`}); output: ${await tail()}`,
    );
  }
  return {
    container,
    port,
    url,
    workerPids: async () => {
      const text = await fs.readFile(`/proc/${container.pid}/task/${container.pid}/children`, 'utf8').catch(() => '');
      return text.split(/\s+/).filter(Boolean).map(Number);
    },
  };
}
