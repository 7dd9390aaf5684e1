/**
 * The real node of the test bed: a kubelet, containerd (with its CRI plugin) and CNI bridge
 * networking, built from Go modules by build-node.sh (versions pinned in versions.env), with
 * Debian's runc (/usr/sbin/runc). The kubelet registers with a control plane from
 * `startControlPlane` (cluster.ts), which must know the node's identity (`nodes: [name]`) and run
 * the controller-manager's `nodelifecycle` controller (it lifts the `not-ready` taint) and, for
 * pods to be placed without `nodeName`, kube-scheduler (`cp.startScheduler`).
 *
 * Everything the node makes is torn down with the test, also when the test fails: processes
 * (kubelet, containerd, shims, containers), mounts (kubelet bind-mounts its root dir onto itself;
 * volumes; netns), the cgroups under the node's own cgroupRoot, the bridge, the sysctls kubelet
 * changes (restored to their prior values), and the host paths kubelet and libcni hard-code
 * (/var/lib/kubelet, /var/lib/cni, /var/log/containers, /run/containerd) when this node made them.
 * A teardown that leaves something behind fails the test, naming what is left.
 *
 * Host quirks (tests/testbed notes, ../shared/realnode-notes.md): this VM's capability bounding set
 * lacks CAP_SYS_RESOURCE, so containerd runs with `restrict_oom_score_adj = true`; the host is
 * cgroup v1 (hybrid), so the kubelet runs with `failCgroupV1: false` and the cgroupfs driver.
 *
 * One real node at a time per machine (kubelet hard-codes /var/lib/kubelet/device-plugins and
 * /var/log/containers): a second `startRealNode` waits on a host-wide lock until the first is gone.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import {
  checkExecutables,
  freePorts,
  runBuildScript,
  spawnLogged,
  stopChild,
  tail,
  waitReady,
  type ControlPlane,
  type TestLike,
} from './cluster.js';
import { exec, pollUntil, type ExecResult } from './exec.js';

/** The node's binaries, from build-node.sh. */
export interface NodeBinaries {
  readonly binDir: string;
  readonly kubelet: string;
  readonly kubeScheduler: string;
  readonly containerd: string;
  readonly ctr: string;
  readonly containerdShim: string;
  /** Holds bridge, host-local and loopback (containerd's CNI bin dir). */
  readonly cniBinDir: string;
}

/** Debian's runc, the one containerd runs (containerd's CI uses a newer one; this one works here). */
export const RUNC = '/usr/sbin/runc';

let binariesPromise: Promise<NodeBinaries> | undefined;

/** Runs build-node.sh (fast when its cache is warm) and returns the node's binaries. */
export function nodeBinaries(): Promise<NodeBinaries> {
  binariesPromise ??= (async () => {
    const binDir = await runBuildScript('build-node.sh');
    const b: NodeBinaries = {
      binDir,
      kubelet: join(binDir, 'kubelet'),
      kubeScheduler: join(binDir, 'kube-scheduler'),
      containerd: join(binDir, 'containerd'),
      ctr: join(binDir, 'ctr'),
      containerdShim: join(binDir, 'containerd-shim-runc-v2'),
      cniBinDir: binDir,
    };
    await checkExecutables('build-node.sh', [
      b.kubelet,
      b.kubeScheduler,
      b.containerd,
      b.ctr,
      b.containerdShim,
      ...['bridge', 'host-local', 'loopback'].map((p) => join(binDir, p)),
    ]);
    return b;
  })().catch((e: unknown) => {
    binariesPromise = undefined;
    throw e;
  });
  return binariesPromise;
}

/** The part of an OCI runtime spec (config.json) the tests read back. */
export interface OciSpec {
  readonly process?: {
    readonly user?: { readonly uid?: number; readonly gid?: number; readonly additionalGids?: readonly number[] };
    readonly args?: readonly string[];
    readonly env?: readonly string[];
    readonly capabilities?: Readonly<
      Partial<Record<'bounding' | 'effective' | 'inheritable' | 'permitted' | 'ambient', readonly string[]>>
    >;
    readonly noNewPrivileges?: boolean;
  };
  readonly root?: { readonly path?: string; readonly readonly?: boolean };
  readonly mounts?: readonly {
    readonly destination: string;
    readonly source?: string;
    readonly type?: string;
    readonly options?: readonly string[];
  }[];
  readonly linux?: {
    readonly cgroupsPath?: string;
    readonly namespaces?: readonly { readonly type: string; readonly path?: string }[];
    readonly seccomp?: { readonly defaultAction?: string; readonly syscalls?: readonly unknown[] };
  };
}

/** Options of {@link startRealNode}. */
export interface RealNodeOptions {
  readonly cp: ControlPlane;
  /** The node name; must be among the control plane's `nodes`. Default `realnode`. */
  readonly name?: string;
  /**
   * The pause image (an OCI image layout tar and its reference): imported before the kubelet starts
   * and configured as containerd's sandbox image.
   */
  readonly pauseImage: { readonly archive: string; readonly ref: string };
  /** How long to wait for containerd, then for the node to be Ready and untainted; default 120 s. */
  readonly readyTimeoutMs?: number;
}

/** A running real node; torn down with the test that started it. */
export interface RealNode {
  readonly name: string;
  /** The kubelet's --root-dir (the chart's `kubeletRoot`): profiles go to `<it>/seccomp/...`. */
  readonly kubeletRoot: string;
  /** The node's temp dir (containerd's root and state, CNI, logs). */
  readonly dir: string;
  /** The kubelet's cgroupRoot, e.g. `/realnode-1a2b3c`: pod cgroups are `<it>/kubepods/...`. */
  readonly cgroupRoot: string;
  /** The pods' CNI subnet (a /24 in 198.18.0.0/15, on a bridge of this node's own). */
  readonly podSubnet: string;
  readonly binaries: NodeBinaries;
  /**
   * `ctr -n k8s.io images import --index-name <ref> <tar>`: an OCI layout tar as image `ref` (an
   * archive that names itself `ref`, as BuildKit's do, is imported without --index-name).
   */
  importImage(ociTarPath: string, ref: string): Promise<void>;
  /** Runs `ctr -n k8s.io <args>` against this node's containerd. */
  ctr(args: readonly string[]): Promise<ExecResult>;
  /**
   * The 64-hex containerd id of a pod's container (or init container), from the pod's status;
   * undefined until it has one.
   */
  containerId(namespace: string, pod: string, container?: string): Promise<string | undefined>;
  /** Host pid of a container's init process (containerd's task), by container id. */
  containerPid(containerId: string): Promise<number>;
  /** Host pid of a pod's container (the first container when none is named). */
  podPid(namespace: string, pod: string, container?: string): Promise<number>;
  /** The OCI runtime spec containerd wrote for the container (config.json of its task bundle). */
  ociSpec(containerId: string): Promise<OciSpec>;
  /**
   * Runs a process in a running container (`ctr tasks exec`: the container's namespaces, user,
   * capabilities and seccomp filter, as `kubectl exec` would).
   */
  execInContainer(containerId: string, args: readonly string[]): Promise<ExecResult>;
  /** The container record containerd keeps (`ctr containers info`), with the OCI spec it was created with. */
  containerInfo(containerId: string): Promise<{ readonly Spec?: OciSpec }>;
  /** Runs a host command in the network namespace of `pid` (`nsenter -n -t <pid>`). */
  inNetns(pid: number, cmd: string, args: readonly string[]): Promise<ExecResult>;
  /** The tail of the kubelet's log (for failure messages). */
  kubeletLog(lines?: number): Promise<string>;
  /** Stops everything and removes what the node made; also run by the test's teardown. */
  stop(): Promise<void>;
}

const SYSCTLS = ['vm/overcommit_memory', 'kernel/panic', 'kernel/panic_on_oops'] as const;
// Paths the kubelet, libcni and ctr write outside the node's dir whatever they are told.
const HOST_PATHS = ['/var/lib/kubelet', '/var/lib/cni', '/var/log/containers', '/var/log/pods', '/run/containerd'];
const LOCK_FILE = '/run/seccomp-agent-testbed-realnode.lock';
const CGROUP_BASE = '/sys/fs/cgroup';

/** What the sweep needs to undo; everything is known before the first process starts. */
interface Made {
  readonly dir: string;
  readonly runcRoot: string;
  readonly cgroupRoot: string;
  readonly bridge: string;
  readonly sysctls: Map<string, string>;
  readonly hostPaths: string[];
}

function cgroupHierarchies(): string[] {
  return readdirSync(CGROUP_BASE, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => join(CGROUP_BASE, e.name));
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Mount points at or below `dir` in this mount namespace, deepest first. */
function mountsUnder(dir: string): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .map((p) => p.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Host pids whose command line names `needle` (containerd, the kubelet, shims: all take our dir). */
function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(needle)) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** Every directory at or under `root`, deepest first. */
function dirsDeepestFirst(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    out.push(d);
  };
  if (existsSync(root)) walk(root);
  return out;
}

/**
 * Undoes everything the node made, synchronously (so the process's exit hook can run it too).
 * Returns what it could not undo.
 */
function sweep(m: Made): string[] {
  const problems: string[] = [];
  // Containers first (runc kills their processes and removes their cgroups), then whatever still
  // names our dir (kubelet, containerd, shims), then any process left in our cgroups.
  const list = spawnSync(RUNC, ['--root', m.runcRoot, 'list', '-q'], { encoding: 'utf8', timeout: 30_000 });
  for (const id of (list.stdout ?? '').split('\n').filter(Boolean)) {
    spawnSync(RUNC, ['--root', m.runcRoot, 'delete', '-f', id], { stdio: 'ignore', timeout: 30_000 });
  }
  for (const pid of pidsMentioning(`${m.dir}/`)) kill(pid);
  const cgroups = cgroupHierarchies().flatMap((h) => dirsDeepestFirst(join(h, m.cgroupRoot)));
  for (let attempt = 0; attempt < 50; attempt++) {
    let busy = false;
    for (const cg of cgroups) {
      if (!existsSync(cg)) continue;
      try {
        for (const p of readFileSync(join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) kill(Number(p));
        rmdirSync(cg);
      } catch {
        busy = true;
      }
    }
    if (!busy) break;
    sleepSync(100);
  }
  for (const cg of cgroups) if (existsSync(cg)) problems.push(`cgroup ${cg}`);

  for (const p of mountsUnder(m.dir)) {
    if (spawnSync('umount', [p], { stdio: 'ignore' }).status !== 0) {
      spawnSync('umount', ['-l', p], { stdio: 'ignore' });
    }
  }
  const mounts = mountsUnder(m.dir);
  problems.push(...mounts.map((p) => `mount ${p}`));

  if (existsSync(`/sys/class/net/${m.bridge}`)) {
    spawnSync('ip', ['link', 'del', m.bridge], { stdio: 'ignore' });
    if (existsSync(`/sys/class/net/${m.bridge}`)) problems.push(`bridge ${m.bridge}`);
  }
  for (const [key, value] of m.sysctls) {
    try {
      writeFileSync(`/proc/sys/${key}`, value);
    } catch (e: unknown) {
      problems.push(`sysctl ${key}=${value} (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  for (const p of m.hostPaths) rmSync(p, { recursive: true, force: true });
  // Never remove a tree that still has a mount in it (a bind of a host path would be emptied too).
  if (mounts.length === 0) rmSync(m.dir, { recursive: true, force: true });
  return problems;
}

const liveNodes = new Map<string, Made>();
let exitHook = false;
function onExit(m: Made): void {
  liveNodes.set(m.dir, m);
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const made of liveNodes.values()) sweep(made);
  });
}

/** Holds the host-wide real-node lock until `release()` (or this process's death). */
async function takeLock(timeoutMs: number): Promise<{ release(): void }> {
  const holder = spawn('flock', ['-x', LOCK_FILE, '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  holder.on('error', () => {});
  let out = '';
  holder.stdout.setEncoding('utf8');
  const got = await new Promise<boolean>((res) => {
    const timer = setTimeout(() => res(false), timeoutMs);
    holder.stdout.on('data', (d: string) => {
      out += d;
      if (out.includes('locked')) {
        clearTimeout(timer);
        res(true);
      }
    });
    holder.once('exit', () => {
      clearTimeout(timer);
      res(false);
    });
  });
  const release = (): void => {
    holder.stdin.end();
    holder.kill('SIGTERM');
  };
  if (!got) {
    release();
    throw new Error(`test bed: another real node held ${LOCK_FILE} for more than ${timeoutMs} ms`);
  }
  return { release };
}

function containerdConfig(dir: string, runcRoot: string, cniBinDir: string, sandboxImage: string): string {
  return `version = 3
root = '${dir}/containerd/root'
state = '${dir}/containerd/state'
imports = []
disabled_plugins = ['io.containerd.nri.v1.nri', 'io.containerd.snapshotter.v1.btrfs', 'io.containerd.snapshotter.v1.zfs', 'io.containerd.snapshotter.v1.devmapper', 'io.containerd.snapshotter.v1.erofs', 'io.containerd.snapshotter.v1.blockfile']

[grpc]
  address = '${dir}/containerd.sock'

[ttrpc]
  address = '${dir}/containerd.sock.ttrpc'

[debug]
  level = 'info'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '${sandboxImage}'

  [plugins.'io.containerd.cri.v1.runtime']
    netns_mounts_under_state_dir = true
    # This VM's bounding set lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below 0.
    restrict_oom_score_adj = true
    enable_criu = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '${RUNC}'
          Root = '${runcRoot}'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['${cniBinDir}']
      conf_dir = '${dir}/cni/net.d'

  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'

  [plugins.'io.containerd.internal.v1.opt']
    path = '${dir}/containerd/opt'

  # At most 42 characters (shim socket paths must fit sun_path).
  [plugins.'io.containerd.shim.v1.manager']
    socket_dir = '${dir}/shim'
`;
}

function cniConfig(dir: string, bridge: string, subnet: string): string {
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'realnode',
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: false,
          ipMasq: false,
          hairpinMode: false,
          ipam: { type: 'host-local', dataDir: join(dir, 'cni', 'ipam'), ranges: [[{ subnet }]] },
        },
        { type: 'loopback' },
      ],
    },
    null,
    2,
  );
}

function kubeletConfig(o: { dir: string; cgroupRoot: string; port: number; healthzPort: number }): string {
  // JSON is YAML.
  return JSON.stringify(
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      // This host is cgroup v1 (hybrid); kubelet 1.35+ refuses it unless told (KEP-5573).
      failCgroupV1: false,
      cgroupDriver: 'cgroupfs',
      cgroupRoot: o.cgroupRoot,
      cgroupsPerQOS: true,
      enforceNodeAllocatable: ['pods'],
      containerRuntimeEndpoint: `unix://${o.dir}/containerd.sock`,
      podLogsDir: join(o.dir, 'pod-logs'),
      address: '127.0.0.1',
      port: o.port,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: o.healthzPort,
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true } },
      authorization: { mode: 'Webhook' },
      failSwapOn: false,
      protectKernelDefaults: false,
      makeIPTablesUtilChains: false,
      resolvConf: '',
      evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      serializeImagePulls: false,
      nodeStatusUpdateFrequency: '2s',
      rotateCertificates: false,
    },
    null,
    2,
  );
}

interface PodJson {
  status?: {
    containerStatuses?: { name: string; containerID?: string }[];
    initContainerStatuses?: { name: string; containerID?: string }[];
  };
  spec?: { containers?: { name: string }[] };
}

interface OciIndex {
  manifests?: { annotations?: Record<string, string> }[];
}

interface NodeJson {
  spec?: { taints?: { key: string; effect: string }[] };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

/**
 * Starts containerd and a kubelet registered with `cp` as node `name`, waits until the node is
 * Ready and without the `not-ready` taint, and registers the teardown on `t`.
 */
/** containerd with CRI, started in the node's dir; ready once it booted and answers ctr. */
async function startContainerd(o: {
  readonly binaries: NodeBinaries;
  readonly dir: string;
  readonly env: string;
  readonly log: string;
  readonly readyTimeoutMs: number;
  /** Gets the process as soon as it runs, so a failed wait still stops it. */
  readonly started: (child: ChildProcess) => void;
}): Promise<{ child: ChildProcess; ctr: RealNode['ctr']; importImage: RealNode['importImage'] }> {
  const { binaries, dir, readyTimeoutMs, env, log, started } = o;
  const child = spawnLogged(
    '/usr/bin/env',
    [env, binaries.containerd, '--config', join(dir, 'containerd.toml')],
    log,
    dir,
  );
  started(child);
  const ctrArgs = (args: readonly string[]): string[] => ['--address', join(dir, 'containerd.sock'), ...args];
  // Ready once it says it booted (its CRI services are registered by then) and answers ctr.
  await waitReady('containerd', child, log, readyTimeoutMs, async () => {
    if (!(await readFile(log, 'utf8')).includes('containerd successfully booted')) return false;
    const r = await exec(binaries.ctr, ctrArgs(['version']), { timeoutMs: 5000 });
    return r.code === 0;
  });
  const ctr = (args: readonly string[]): Promise<ExecResult> =>
    exec(binaries.ctr, ctrArgs(['-n', 'k8s.io', ...args]), { timeoutMs: 120_000 });
  const importImage = async (tar: string, ref: string): Promise<void> => {
    // An archive whose manifest already carries containerd's name annotation (BuildKit writes
    // io.containerd.image.name) is imported as named: with --index-name as well, ctr creates the
    // same name twice and its clean-up then deletes it. An unnamed OCI layout needs --index-name.
    const index = await exec('tar', ['-xOf', tar, '--wildcards', '*index.json']);
    const named = (JSON.parse(index.code === 0 ? index.stdout : '{}') as OciIndex).manifests?.some(
      (m) => m.annotations?.['io.containerd.image.name'] === ref,
    );
    const r = await ctr(['images', 'import', ...(named === true ? [] : ['--index-name', ref]), tar]);
    if (r.code !== 0) throw new Error(`test bed: ctr images import ${tar} as ${ref} failed: ${r.stderr.trim()}`);
    const list = await ctr(['images', 'ls', '-q']);
    if (!list.stdout.split('\n').includes(ref)) {
      throw new Error(
        `test bed: after ctr images import ${tar}, containerd has no image ${ref}: ${list.stdout.trim()}`,
      );
    }
  };
  return { child, ctr, importImage };
}

/**
 * The kubelet, registered with the control plane as `name`; resolves once the node is Ready and
 * the not-ready taint is gone. `started` gets the process as soon as it runs, so a failed wait
 * still stops it.
 */
async function startKubelet(o: {
  readonly binaries: NodeBinaries;
  readonly cp: RealNodeOptions['cp'];
  readonly name: string;
  readonly dir: string;
  readonly env: string;
  readonly kubeletRoot: string;
  readonly cgroupRoot: string;
  readonly log: string;
  readonly containerdLog: string;
  readonly readyTimeoutMs: number;
  readonly started: (child: ChildProcess) => void;
}): Promise<void> {
  const { binaries, cp, name, dir, env, kubeletRoot, cgroupRoot, log, containerdLog, readyTimeoutMs, started } = o;
  const [port, healthzPort] = await freePorts(2);
  if (port === undefined || healthzPort === undefined) throw new Error('test bed: no free ports');
  await writeFile(join(dir, 'kubelet.yaml'), kubeletConfig({ dir, cgroupRoot, port, healthzPort }));
  const child = spawnLogged(
    '/usr/bin/env',
    [
      env,
      binaries.kubelet,
      `--config=${join(dir, 'kubelet.yaml')}`,
      `--root-dir=${kubeletRoot}`,
      `--cert-dir=${join(dir, 'kubelet-certs')}`,
      `--kubeconfig=${await cp.nodeKubeconfig(name)}`,
      `--hostname-override=${name}`,
      '--v=2',
    ],
    log,
    dir,
  );
  let last = 'not registered';
  started(child);
  await waitReady('kubelet', child, log, readyTimeoutMs, async () => {
    const r = await cp.kubectl(['get', 'node', name, '-o', 'json']);
    if (r.code !== 0) return false;
    const n = JSON.parse(r.stdout) as NodeJson;
    const ready = n.status?.conditions?.find((c) => c.type === 'Ready');
    const taints = (n.spec?.taints ?? []).map((x) => `${x.key}:${x.effect}`);
    last = `Ready=${ready?.status ?? '?'} (${ready?.message ?? ''}), taints [${taints.join(', ')}]`;
    return ready?.status === 'True' && !taints.some((x) => x.startsWith('node.kubernetes.io/not-ready'));
  }).catch(async (e: unknown) => {
    throw new Error(
      `test bed: node ${name} not Ready and untainted (last: ${last}); the not-ready taint needs the ` +
        `controller-manager's nodelifecycle controller. Tail of ${containerdLog}:\n${await tail(containerdLog, 15)}`,
      { cause: e },
    );
  });
}

/** A pod's containers as containerd runs them: ids from the pod's status, bundles, init pids. */
function containerLookups(cp: RealNodeOptions['cp'], stateDir: string) {
  const containerId = async (ns: string, pod: string, container?: string): Promise<string | undefined> => {
    const r = await cp.kubectl(['-n', ns, 'get', 'pod', pod, '-o', 'json']);
    if (r.code !== 0) return undefined;
    const p = JSON.parse(r.stdout) as PodJson;
    const want = container ?? p.spec?.containers?.[0]?.name;
    const statuses = [...(p.status?.containerStatuses ?? []), ...(p.status?.initContainerStatuses ?? [])];
    const id = statuses.find((c) => c.name === want)?.containerID;
    return id?.startsWith('containerd://') ? id.slice('containerd://'.length) : undefined;
  };
  const bundle = (id: string): string => {
    if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`test bed: ${id} is not a containerd container id`);
    return join(stateDir, 'io.containerd.runtime.v2.task', 'k8s.io', id);
  };
  const containerPid = async (id: string): Promise<number> => {
    const pid = Number((await readFile(join(bundle(id), 'init.pid'), 'utf8')).trim());
    if (!(pid > 0)) throw new Error(`test bed: no init pid for container ${id}`);
    return pid;
  };

  return { containerId, bundle, containerPid };
}

export async function startRealNode(t: TestLike, o: RealNodeOptions): Promise<RealNode> {
  const binaries = await nodeBinaries();
  const name = o.name ?? 'realnode';
  const readyTimeoutMs = o.readyTimeoutMs ?? 120_000;
  const lock = await takeLock(10 * 60_000);

  const suffix = randomBytes(3).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'seccomp-agent-rn-'));
  const runcRoot = join(dir, 'runc-root');
  const stateDir = join(dir, 'containerd', 'state');
  const kubeletRoot = join(dir, 'kubelet');
  const cgroupRoot = `/realnode-${suffix}`;
  const bridge = `rnbr${suffix}`;
  const podSubnet = `198.18.${String(randomBytes(1)[0] ?? 77)}.0/24`;
  const made: Made = {
    dir,
    runcRoot,
    cgroupRoot,
    bridge,
    sysctls: new Map(SYSCTLS.map((k) => [k, readFileSync(`/proc/sys/${k}`, 'utf8').trim()])),
    hostPaths: HOST_PATHS.filter((p) => !existsSync(p)),
  };
  onExit(made);

  let containerd: ChildProcess | undefined;
  let kubelet: ChildProcess | undefined;
  const kubeletLogPath = join(dir, 'kubelet.log');
  const containerdLogPath = join(dir, 'containerd.log');
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    try {
      await stopChild(kubelet);
      // Containers go before containerd, so the shims report their exits and quit.
      const list = await exec(RUNC, ['--root', runcRoot, 'list', '-q']);
      for (const id of list.stdout.split('\n').filter(Boolean)) {
        await exec(RUNC, ['--root', runcRoot, 'delete', '-f', id], { timeoutMs: 30_000 });
      }
      await stopChild(containerd);
      // For debugging a run: SECCOMP_AGENT_TESTBED_NODE_LOGS=<dir> keeps the node's logs there.
      const keep = process.env['SECCOMP_AGENT_TESTBED_NODE_LOGS'];
      if (keep !== undefined && keep !== '') {
        await mkdir(keep, { recursive: true });
        for (const f of [kubeletLogPath, containerdLogPath]) {
          await copyFile(f, join(keep, basename(f))).catch(() => undefined);
        }
      }
      const problems = sweep(made);
      liveNodes.delete(dir);
      if (problems.length > 0) {
        throw new Error(`test bed: the real node's teardown left behind: ${problems.join('; ')}`);
      }
    } finally {
      lock.release();
    }
  };
  t.teardown(stop);

  try {
    // The kubelet's cgroupRoot must exist in every hierarchy; cpuset needs cpus and mems first.
    for (const h of cgroupHierarchies()) {
      mkdirSync(join(h, cgroupRoot), { recursive: true });
      if (h.endsWith('/cpuset')) {
        for (const f of ['cpuset.cpus', 'cpuset.mems']) {
          writeFileSync(join(h, cgroupRoot, f), readFileSync(join(h, f), 'utf8').trim());
        }
      }
    }
    for (const d of ['cni/net.d', 'cni/ipam', 'containerd/root', 'shim', 'pod-logs', 'kubelet-certs']) {
      await mkdir(join(dir, d), { recursive: true });
    }
    await writeFile(
      join(dir, 'containerd.toml'),
      containerdConfig(dir, runcRoot, binaries.cniBinDir, o.pauseImage.ref),
    );
    await writeFile(join(dir, 'cni', 'net.d', '10-realnode.conflist'), cniConfig(dir, bridge, podSubnet));

    const env = `PATH=${binaries.binDir}:/usr/sbin:/usr/bin:/sbin:/bin`;
    const { ctr, importImage } = await startContainerd({
      binaries,
      dir,
      env,
      log: containerdLogPath,
      readyTimeoutMs,
      started: (child) => {
        containerd = child;
      },
    });
    await importImage(o.pauseImage.archive, o.pauseImage.ref);

    await startKubelet({
      binaries,
      cp: o.cp,
      name,
      dir,
      env,
      kubeletRoot,
      cgroupRoot,
      log: kubeletLogPath,
      containerdLog: containerdLogPath,
      readyTimeoutMs,
      started: (child) => {
        kubelet = child;
      },
    });
    t.comment(`real node ${name} Ready (kubelet root ${kubeletRoot}, cgroup root ${cgroupRoot}, pods ${podSubnet})`);

    const { containerId, bundle, containerPid } = containerLookups(o.cp, stateDir);

    return {
      name,
      kubeletRoot,
      dir,
      cgroupRoot,
      podSubnet,
      binaries,
      importImage,
      ctr,
      containerId,
      containerPid,
      async podPid(ns, pod, container) {
        const id = await pollUntil(() => containerId(ns, pod, container), 30_000, 200);
        if (id === undefined) throw new Error(`test bed: pod ${ns}/${pod} has no container id after 30 s`);
        return containerPid(id);
      },
      async ociSpec(id) {
        return JSON.parse(await readFile(join(bundle(id), 'config.json'), 'utf8')) as OciSpec;
      },
      async execInContainer(id, args) {
        await mkdir(join(dir, 'fifo'), { recursive: true });
        return ctr([
          'tasks',
          'exec',
          '--fifo-dir',
          join(dir, 'fifo'),
          '--exec-id',
          `exec-${randomBytes(4).toString('hex')}`,
          id,
          ...args,
        ]);
      },
      async containerInfo(id) {
        const r = await ctr(['containers', 'info', id]);
        if (r.code !== 0) throw new Error(`test bed: ctr containers info ${id}: ${r.stderr.trim()}`);
        return JSON.parse(r.stdout) as { Spec?: OciSpec };
      },
      inNetns: (pid, cmd, args) => exec('nsenter', ['-n', '-t', String(pid), cmd, ...args], { timeoutMs: 30_000 }),
      kubeletLog: (lines = 40) => tail(kubeletLogPath, lines),
      stop,
    };
  } catch (e: unknown) {
    await stop().catch(() => undefined);
    throw e;
  }
}
