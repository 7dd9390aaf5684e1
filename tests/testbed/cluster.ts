/**
 * The cluster tier of the test bed: a real etcd and kube-apiserver on loopback ports, with kubectl
 * and helm pointed at them. Binaries come from build.sh (versions pinned in versions.env); nothing
 * is mocked and nothing is skipped: a missing binary or a control plane that will not start fails
 * the test with the reason.
 *
 * There is no controller-manager, scheduler or kubelet: objects are stored and validated, pods
 * stay Pending, namespaces are never finalized, and no default ServiceAccount is created.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { access, constants, mkdir, readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The little of a tap test this fixture needs. */
export interface TestLike {
  teardown(fn: () => unknown): void;
  comment(...args: unknown[]): void;
}

/** Paths of the test bed's binaries. */
export interface TestbedBinaries {
  readonly binDir: string;
  readonly etcd: string;
  readonly kubeApiserver: string;
  readonly kubeControllerManager: string;
  readonly kubectl: string;
  readonly helm: string;
}

/** Output of a finished command; `code` is null when it was killed by a signal. */
export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number | null;
}

/** Options for one kubectl or helm run. */
export interface CommandOptions {
  /** Written to the command's stdin (e.g. a manifest for `apply -f -`). */
  readonly input?: string;
  /** Kill the command after this long; default 60 s. */
  readonly timeoutMs?: number;
  /** Use this kubeconfig instead of the admin one (see `kubeconfigFor`). */
  readonly kubeconfig?: string;
  /** Working directory; default the repository root, so relative manifest paths work. */
  readonly cwd?: string;
}

/** Options for `startControlPlane`. */
export interface ControlPlaneOptions {
  /** How long to wait for etcd /health and apiserver /readyz; default 90 s each. */
  readonly readyTimeoutMs?: number;
  /** Extra kube-apiserver flags, e.g. `['--feature-gates=X=true']`. */
  readonly apiServerArgs?: readonly string[];
  /**
   * Node identities (`system:node:<name>` in `system:nodes`) for real kubelets; with any, the
   * apiserver authorizes with `Node,RBAC` and admits with NodeRestriction, as a kubeadm cluster does.
   */
  readonly nodes?: readonly string[];
  /**
   * Admit pods through the ServiceAccount plugin (token volumes, `default` accounts required: run
   * the controller-manager's `serviceaccount` controller). Off by default: without a
   * controller-manager no `default` ServiceAccount exists and every pod would be refused.
   */
  readonly serviceAccountAdmission?: boolean;
}

/** A running control plane, torn down with the test that started it. */
export interface ControlPlane {
  /** Admin kubeconfig (token of a system:masters user). */
  readonly kubeconfig: string;
  /** `https://127.0.0.1:<port>` */
  readonly server: string;
  /** `http://127.0.0.1:<port>` of the control plane's etcd. */
  readonly etcdUrl: string;
  /** The temp directory holding etcd's data, certificates, kubeconfigs and logs; removed by stop(). */
  readonly dataDir: string;
  /** The admin bearer token. */
  readonly token: string;
  /** PEM of the CA that signed the apiserver's serving certificate. */
  readonly caFile: string;
  /** Milliseconds from spawning etcd to the apiserver answering /readyz (binaries already built). */
  readonly startupMs: number;
  readonly binaries: TestbedBinaries;
  kubectl(args: readonly string[], opts?: CommandOptions): Promise<CommandResult>;
  helm(args: readonly string[], opts?: CommandOptions): Promise<CommandResult>;
  /** `kubectl apply -f -` with the given YAML; throws with kubectl's stderr when it fails. */
  apply(yaml: string, opts?: CommandOptions): Promise<CommandResult>;
  /** A token for an existing ServiceAccount, via `kubectl create token` (TokenRequest API). */
  mintToken(namespace: string, serviceAccount: string, opts?: { duration?: string }): Promise<string>;
  /** Writes a kubeconfig that authenticates with `token` against this apiserver; returns its path. */
  kubeconfigFor(token: string): Promise<string>;
  /**
   * Starts kube-controller-manager with only the named controllers (e.g. `['namespace']`, so that
   * deleting a Namespace deletes what is in it and then the Namespace); stopped with the plane.
   * It gets the apiserver's CA as `--root-ca-file` (the `root-ca-cert-publisher` controller's
   * kube-root-ca.crt) and the service-account signing key. Resolves when it has answered /healthz.
   */
  startControllerManager(controllers: readonly string[]): Promise<void>;
  /** A kubeconfig for a node identity given in `ControlPlaneOptions.nodes`. */
  nodeKubeconfig(node: string): Promise<string>;
  /**
   * Starts kube-scheduler (binary from build-node.sh: `nodeBinaries().kubeScheduler`); stopped with
   * the plane. Resolves when it has answered /healthz.
   */
  startScheduler(binary: string): Promise<void>;
  /** Stops the apiserver only (etcd keeps running), waiting until the process has exited. */
  stopApiServer(): Promise<void>;
  /** Starts the apiserver again on the same port, with the same etcd and keys; waits for /readyz. */
  startApiServer(): Promise<void>;
  /** Stops everything and removes the temp files; also run by the test's teardown. */
  stop(): Promise<void>;
}

/** Test bed versions as pinned in versions.env. */
export interface TestbedVersions {
  readonly kubernetes: string;
  readonly etcd: string;
  readonly helm: string;
}

const DEFAULT_READY_TIMEOUT_MS = 90_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;

/** The repository root: the nearest ancestor holding tests/testbed/build.sh. */
export const repoRoot: string = findRepoRoot(dirname(fileURLToPath(import.meta.url)));

function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'tests', 'testbed', 'build.sh'))) return dir;
    if (dirname(dir) === dir) {
      throw new Error(`test bed: no tests/testbed/build.sh above ${from}`);
    }
  }
}

/** Reads versions.env (the one place versions are pinned). */
export function testbedVersions(): TestbedVersions {
  const file = join(repoRoot, 'tests', 'testbed', 'versions.env');
  const vars = new Map<string, string>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)=(.*?)\s*$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) vars.set(m[1], m[2].replace(/^["']|["']$/g, ''));
  }
  const get = (k: string): string => {
    const v = vars.get(k);
    if (v === undefined || v === '') throw new Error(`test bed: ${k} missing from ${file}`);
    return v;
  };
  return { kubernetes: get('KUBERNETES_VERSION'), etcd: get('ETCD_VERSION'), helm: get('HELM_VERSION') };
}

let binariesPromise: Promise<TestbedBinaries> | undefined;

/**
 * Runs build.sh (fast when its cache is warm) and returns the binaries' paths. Build output goes
 * to this process's stderr; a failed or cold-and-slow build fails the caller, it never skips.
 */
export function testbedBinaries(): Promise<TestbedBinaries> {
  binariesPromise ??= buildBinaries();
  return binariesPromise;
}

/**
 * Runs one of the test bed's build scripts (tests/testbed/<name>) and returns the bin directory it
 * prints on its last line. Build output goes to this process's stderr; a failed build throws.
 */
export async function runBuildScript(name: string): Promise<string> {
  const script = join(repoRoot, 'tests', 'testbed', name);
  const child = spawn('bash', [script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => (stdout += d));
  const code = await exited(child);
  if (code !== 0) throw new Error(`test bed: ${script} exited with ${String(code)} (its log is on stderr above)`);
  const binDir = stdout.trim().split('\n').at(-1)?.trim() ?? '';
  if (binDir === '') throw new Error(`test bed: ${script} printed no bin directory`);
  return binDir;
}

/** Throws naming `script` unless every path is an executable file. */
export async function checkExecutables(script: string, paths: readonly string[]): Promise<void> {
  for (const p of paths) {
    try {
      await access(p, constants.X_OK);
    } catch (e: unknown) {
      throw new Error(`test bed: ${script} finished but ${p} is not executable`, { cause: e });
    }
  }
}

async function buildBinaries(): Promise<TestbedBinaries> {
  const binDir = await runBuildScript('build.sh').catch((e: unknown) => {
    binariesPromise = undefined;
    throw e;
  });
  const bins: TestbedBinaries = {
    binDir,
    etcd: join(binDir, 'etcd'),
    kubeApiserver: join(binDir, 'kube-apiserver'),
    kubeControllerManager: join(binDir, 'kube-controller-manager'),
    kubectl: join(binDir, 'kubectl'),
    helm: join(binDir, 'helm'),
  };
  await checkExecutables('build.sh', [
    bins.etcd,
    bins.kubeApiserver,
    bins.kubeControllerManager,
    bins.kubectl,
    bins.helm,
  ]);
  return bins;
}

// Process groups and temp dirs still alive; killed and removed synchronously if this process
// exits without running teardowns (a tap timeout, an uncaught error), so nothing outlives a test.
const liveGroups = new Set<number>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of liveGroups) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/**
 * Starts etcd and kube-apiserver on free loopback ports, with RBAC, a system:masters admin token,
 * service-account token signing and an admin kubeconfig, and registers their teardown on `t`.
 * Prints the start time as a tap comment.
 */
export async function startControlPlane(t: TestLike, opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const binaries = await testbedBinaries();
  installExitHook();
  const readyTimeoutMs = opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;

  const dir = mkdtempSync(join(tmpdir(), 'seccomp-agent-cp-'));
  liveDirs.add(dir);
  let etcd: ChildProcess | undefined;
  let apiserver: ChildProcess | undefined;
  let controllerManager: ChildProcess | undefined;
  let scheduler: ChildProcess | undefined;
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await stopChild(scheduler);
    await stopChild(controllerManager);
    await stopChild(apiserver);
    await stopChild(etcd);
    rmSync(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
  };
  t.teardown(stop);

  try {
    const [etcdPort, etcdPeerPort, apiPort] = await freePorts(3);
    const server = `https://127.0.0.1:${apiPort}`;
    const home = join(dir, 'home');
    const certDir = join(dir, 'apiserver-certs');
    await mkdir(home, { recursive: true });
    await mkdir(certDir, { recursive: true });

    const token = randomBytes(24).toString('hex');
    const tokenFile = join(dir, 'tokens.csv');
    const nodeTokens = new Map((opts.nodes ?? []).map((n) => [n, randomBytes(24).toString('hex')]));
    const tokenLines = [
      `${token},admin,admin,"system:masters"`,
      ...[...nodeTokens].map(([n, tok]) => `${tok},system:node:${n},system:node:${n},"system:nodes"`),
    ];
    await writeFile(tokenFile, `${tokenLines.join('\n')}\n`, { mode: 0o600 });
    const { publicKey, privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const saPub = join(dir, 'sa.pub');
    const saKey = join(dir, 'sa.key');
    await writeFile(saPub, publicKey);
    await writeFile(saKey, privateKey, { mode: 0o600 });

    const started = performance.now();
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcdPeer = `http://127.0.0.1:${etcdPeerPort}`;
    const etcdLog = join(dir, 'etcd.log');
    etcd = spawnLogged(
      binaries.etcd,
      [
        '--name=testbed',
        `--data-dir=${join(dir, 'etcd-data')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${etcdPeer}`,
        `--initial-advertise-peer-urls=${etcdPeer}`,
        `--initial-cluster=testbed=${etcdPeer}`,
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ],
      etcdLog,
      dir,
    );
    await waitReady('etcd', etcd, etcdLog, readyTimeoutMs, async () => {
      const r = await httpGet(`${etcdUrl}/health`);
      return r.status === 200 && /"health":\s*"true"/.test(r.body);
    });

    const issuer = server;
    const apiLog = join(dir, 'kube-apiserver.log');
    const apiArgs = [
      `--etcd-servers=${etcdUrl}`,
      `--cert-dir=${certDir}`,
      `--secure-port=${apiPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      nodeTokens.size > 0 ? '--authorization-mode=Node,RBAC' : '--authorization-mode=RBAC',
      `--token-auth-file=${tokenFile}`,
      ...(opts.serviceAccountAdmission === true ? [] : ['--disable-admission-plugins=ServiceAccount']),
      ...(nodeTokens.size > 0 ? ['--enable-admission-plugins=NodeRestriction'] : []),
      `--service-account-issuer=${issuer}`,
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      `--api-audiences=${issuer}`,
      '--v=1',
      ...(opts.apiServerArgs ?? []),
    ];
    const readyz = async (): Promise<boolean> => {
      const r = await httpsGet(`${server}/readyz`, token);
      return r.status === 200;
    };
    const startApi = async (): Promise<void> => {
      apiserver = spawnLogged(binaries.kubeApiserver, apiArgs, apiLog, dir);
      await waitReady('kube-apiserver', apiserver, apiLog, readyTimeoutMs, readyz);
    };
    await startApi();
    const startupMs = Math.round(performance.now() - started);

    // The apiserver wrote a self-signed CA and serving cert into certDir; it reuses them on restart.
    const caFile = join(certDir, 'apiserver.crt');
    await access(caFile).catch((e: unknown) => {
      throw new Error(`test bed: kube-apiserver wrote no ${caFile}`, { cause: e });
    });

    let kubeconfigs = 0;
    const kubeconfigFor = async (tok: string): Promise<string> => {
      const path = join(dir, `kubeconfig-${kubeconfigs++}`);
      await writeFile(path, kubeconfigYaml(server, caFile, tok), { mode: 0o600 });
      return path;
    };
    const kubeconfig = await kubeconfigFor(token);

    const env = (cfg: string): NodeJS.ProcessEnv => ({
      PATH: `${binaries.binDir}:${process.env['PATH'] ?? '/usr/bin:/bin'}`,
      HOME: home,
      KUBECONFIG: cfg,
      HELM_CACHE_HOME: join(home, '.cache', 'helm'),
      HELM_CONFIG_HOME: join(home, '.config', 'helm'),
      HELM_DATA_HOME: join(home, '.local', 'share', 'helm'),
      TMPDIR: dir,
      LANG: 'C',
    });
    const runTool =
      (bin: string) =>
      (args: readonly string[], o: CommandOptions = {}) =>
        run(bin, args, {
          env: env(o.kubeconfig ?? kubeconfig),
          cwd: o.cwd ?? repoRoot,
          timeoutMs: o.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
          input: o.input,
        });
    const kubectl = runTool(binaries.kubectl);
    const helm = runTool(binaries.helm);

    const plane: ControlPlane = {
      kubeconfig,
      server,
      etcdUrl,
      dataDir: dir,
      token,
      caFile,
      startupMs,
      binaries,
      kubectl,
      helm,
      async apply(yaml, o = {}) {
        const r = await kubectl(['apply', '-f', '-'], { ...o, input: yaml });
        if (r.code !== 0) throw new Error(`kubectl apply failed (${String(r.code)}): ${r.stderr.trim()}`);
        return r;
      },
      async mintToken(namespace, serviceAccount, o = {}) {
        const args = ['create', 'token', serviceAccount, '-n', namespace];
        if (o.duration !== undefined) args.push(`--duration=${o.duration}`);
        const r = await kubectl(args);
        const tok = r.stdout.trim();
        if (r.code !== 0 || tok === '') {
          throw new Error(`kubectl create token ${namespace}/${serviceAccount} failed: ${r.stderr.trim()}`);
        }
        return tok;
      },
      kubeconfigFor,
      async startControllerManager(controllers) {
        if (controllerManager !== undefined) throw new Error('test bed: kube-controller-manager already started');
        const [port] = await freePorts(1);
        const kcmLog = join(dir, 'kube-controller-manager.log');
        const kcmStarted = performance.now();
        controllerManager = spawnLogged(
          binaries.kubeControllerManager,
          [
            `--kubeconfig=${kubeconfig}`,
            `--authentication-kubeconfig=${kubeconfig}`,
            `--authorization-kubeconfig=${kubeconfig}`,
            `--controllers=${controllers.join(',')}`,
            '--leader-elect=false',
            '--bind-address=127.0.0.1',
            `--secure-port=${String(port)}`,
            `--cert-dir=${join(dir, 'kcm-certs')}`,
            '--authorization-always-allow-paths=/healthz',
            `--root-ca-file=${caFile}`,
            `--service-account-private-key-file=${saKey}`,
            '--v=1',
          ],
          kcmLog,
          dir,
        );
        await waitReady('kube-controller-manager', controllerManager, kcmLog, readyTimeoutMs, async () => {
          const r = await httpsGet(`https://127.0.0.1:${String(port)}/healthz`, token);
          return r.status === 200;
        });
        t.comment(
          `kube-controller-manager (${controllers.join(',')}) ready in ${Math.round(performance.now() - kcmStarted)} ms`,
        );
      },
      async nodeKubeconfig(name) {
        const tok = nodeTokens.get(name);
        if (tok === undefined) throw new Error(`test bed: node ${name} was not among ControlPlaneOptions.nodes`);
        return kubeconfigFor(tok);
      },
      async startScheduler(binary) {
        if (scheduler !== undefined) throw new Error('test bed: kube-scheduler already started');
        const [port] = await freePorts(1);
        const log = join(dir, 'kube-scheduler.log');
        const started = performance.now();
        scheduler = spawnLogged(
          binary,
          [
            `--kubeconfig=${kubeconfig}`,
            `--authentication-kubeconfig=${kubeconfig}`,
            `--authorization-kubeconfig=${kubeconfig}`,
            '--leader-elect=false',
            '--bind-address=127.0.0.1',
            `--secure-port=${String(port)}`,
            `--cert-dir=${join(dir, 'scheduler-certs')}`,
            '--authorization-always-allow-paths=/healthz',
            '--v=1',
          ],
          log,
          dir,
        );
        await waitReady('kube-scheduler', scheduler, log, readyTimeoutMs, async () => {
          const r = await httpsGet(`https://127.0.0.1:${String(port)}/healthz`, token);
          return r.status === 200;
        });
        t.comment(`kube-scheduler ready in ${Math.round(performance.now() - started)} ms`);
      },
      async stopApiServer() {
        await stopChild(apiserver);
      },
      async startApiServer() {
        if (stopped) throw new Error('test bed: control plane already stopped');
        if (apiserver?.exitCode === null && apiserver.signalCode === null) {
          throw new Error('test bed: kube-apiserver is still running');
        }
        await startApi();
      },
      stop,
    };
    t.comment(`control plane (etcd ${etcdUrl}, kube-apiserver ${server}) ready in ${startupMs} ms`);
    return plane;
  } catch (e: unknown) {
    await stop();
    throw e;
  }
}

/**
 * Stops a child started with {@link spawnLogged}: SIGTERM to its group, SIGKILL after 10 s, then
 * SIGKILL to whatever is left in the group (the watchdog), and closes the watchdog's pipe.
 */
export async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child?.pid === undefined) return;
  const pid = child.pid;
  if (child.exitCode === null && child.signalCode === null) {
    const done = exited(child);
    signalGroup(pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(pid, 'SIGKILL'), STOP_GRACE_MS);
    await done;
    clearTimeout(timer);
  }
  signalGroup(pid, 'SIGKILL');
  liveGroups.delete(pid);
  child.stdio[3]?.destroy();
}

function kubeconfigYaml(server: string, caFile: string, token: string): string {
  // JSON is YAML; no quoting surprises.
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'testbed', cluster: { server, 'certificate-authority': caFile } }],
      users: [{ name: 'testbed-user', user: { token } }],
      contexts: [{ name: 'testbed', context: { cluster: 'testbed', user: 'testbed-user' } }],
      'current-context': 'testbed',
    },
    null,
    2,
  );
}

// Runs "$@" as the process-group leader with a watchdog beside it: the watchdog reads fd 3, a pipe
// whose other end only this Node process holds (Node closes a child's stdin when the child exits,
// so stdin would not do). When this process dies without a teardown (a tap timeout ends in
// SIGKILL) the pipe closes, and the watchdog removes the temp dir and kills the whole group, so no
// etcd or kube-apiserver outlives its test.
const WATCHDOG = 'd=$1; shift; (cat <&3 >/dev/null; rm -rf -- "$d"; kill -KILL 0) & exec "$@" 3<&-';

/** Spawns `bin` as the leader of its own process group with stdout+stderr appended to `log`. */
export function spawnLogged(bin: string, args: readonly string[], log: string, dir: string): ChildProcess {
  const fd = openSync(log, 'a');
  try {
    const child = spawn('/bin/sh', ['-c', WATCHDOG, 'testbed-watchdog', dir, bin, ...args], {
      detached: true,
      stdio: ['ignore', fd, fd, 'pipe'],
    });
    if (child.pid !== undefined) liveGroups.add(child.pid);
    // A spawn failure surfaces through waitReady as an early exit (sh exits 127 for a bad bin).
    child.on('error', () => {});
    child.stdio[3]?.on('error', () => {});
    return child;
  } finally {
    closeSync(fd);
  }
}

export function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // the group is already gone
  }
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((res) => {
    child.once('exit', (code) => res(code));
    child.once('error', () => res(null));
  });
}

export async function tail(file: string, lines = 40): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Polls `probe` until it answers true; fails early if the process exits, with its log's tail. */
export async function waitReady(
  name: string,
  child: ChildProcess,
  log: string,
  timeoutMs: number,
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
      const how = child.signalCode ?? `code ${String(child.exitCode)}`;
      throw new Error(`test bed: ${name} exited (${how}) before it was ready; tail of ${log}:\n${await tail(log)}`);
    }
    try {
      if (await probe()) return;
      last = 'not ready';
    } catch (e: unknown) {
      last = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `test bed: ${name} not ready after ${timeoutMs} ms (last probe: ${last}); tail of ${log}:\n${await tail(log)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface HttpAnswer {
  status: number;
  body: string;
}

function httpGet(url: string): Promise<HttpAnswer> {
  return new Promise((res, rej) => {
    const req = httpRequest(url, { timeout: 2000 }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (d: string) => (body += d));
      r.on('end', () => res({ status: r.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end();
  });
}

// Readiness only; the kubeconfigs verify the serving certificate against the apiserver's CA.
export function httpsGet(url: string, token: string): Promise<HttpAnswer> {
  return new Promise((res, rej) => {
    const req = httpsRequest(
      url,
      { timeout: 2000, rejectUnauthorized: false, headers: { authorization: `Bearer ${token}` } },
      (r) => {
        let body = '';
        r.setEncoding('utf8');
        r.on('data', (d: string) => (body += d));
        r.on('end', () => res({ status: r.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end();
  });
}

/** Distinct free loopback ports, held open together so none is handed out twice. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((res, rej) => {
          const s = createServer();
          s.once('error', rej);
          s.listen(0, '127.0.0.1', () => res(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
  return ports;
}

async function run(
  bin: string,
  args: readonly string[],
  o: { env: NodeJS.ProcessEnv; cwd: string; timeoutMs: number; input: string | undefined },
): Promise<CommandResult> {
  const child = spawn(bin, args, { env: o.env, cwd: o.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d: string) => (stdout += d));
  child.stderr.on('data', (d: string) => (stderr += d));
  child.stdin.on('error', () => {}); // the tool may exit before reading all of stdin
  child.stdin.end(o.input ?? '');
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, o.timeoutMs);
  const code = await exited(child);
  clearTimeout(timer);
  if (timedOut) stderr += `\n[test bed] ${bin} ${args.join(' ')} killed after ${o.timeoutMs} ms`;
  return { stdout, stderr, code };
}

/** One object's Events with `reason`, as `type|source|message` lines; [] while there are none. */
export async function eventLines(cp: ControlPlane, namespace: string, name: string, reason: string): Promise<string[]> {
  const r = await cp.kubectl([
    '-n',
    namespace,
    'get',
    'events',
    '--field-selector',
    `involvedObject.name=${name},reason=${reason}`,
    '-o',
    'jsonpath={range .items[*]}{.type}|{.source.component}|{.message}{"\\n"}{end}',
  ]);
  return r.stdout.trim() === '' ? [] : r.stdout.trim().split('\n');
}

/** Resolves a repository-relative path (manifests, profiles) to an absolute one. */
export function repoPath(...parts: string[]): string {
  return resolve(repoRoot, ...parts);
}
