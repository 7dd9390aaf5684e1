/**
 * Root filesystems for the node test bed's runc containers, assembled from Debian packages only and
 * cached outside the repo under `${SECCOMP_AGENT_TESTBED_CACHE:-/var/cache/seccomp-agent-testbed}/rootfs/`.
 *
 * - busybox: the host's busybox-static binary plus one symlink per applet.
 * - nginx: Debian's nginx (`apt-get download nginx nginx-common`, never installed on the host), the
 *   shared libraries it links (copied from the host, or downloaded from Debian when the host lacks
 *   them), the dynamic loader, and a config of ours that mirrors the official nginx image: a root
 *   master with worker processes running as user nginx (101:101), logs to stdout/stderr.
 *
 * Debian packages the assembly needs on the host: busybox-static, apt, dpkg, libc-bin (ldd),
 * coreutils (chroot); for the static test programs, gcc and libc6-dev.
 *
 * Each rootfs is built in a temporary directory next to its final place, checked by running it with
 * chroot, and renamed into place, so a half-built tree is never reused.
 */
import { createHash } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { exec, missingTool, mustExec } from './exec.js';

/** Bump when the assembly recipe changes: cached trees with another revision are rebuilt. */
const RECIPE_REVISION = 1;
const MARKER = '.seccomp-agent-testbed-rootfs.json';

/** The cache root (env SECCOMP_AGENT_TESTBED_CACHE, default /var/cache/seccomp-agent-testbed). */
export function testbedCacheDir(): string {
  return process.env['SECCOMP_AGENT_TESTBED_CACHE'] || '/var/cache/seccomp-agent-testbed';
}

/** The nginx user of the official nginx image (workers run as this uid/gid). */
export const NGINX_UID = 101;
/** The static page every test nginx serves. */
export const NGINX_INDEX_HTML = 'seccomp-agent test bed: nginx is serving\n';

async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Version of an installed Debian package, or undefined. */
async function installedVersion(pkg: string): Promise<string | undefined> {
  const r = await exec('dpkg-query', ['-W', '-f=${Status}\t${Version}', pkg]);
  if (r.code !== 0) return undefined;
  const [status, version] = r.stdout.split('\t');
  return status?.endsWith(' installed') && version ? version : undefined;
}

/** The version `apt-get download PKG` would fetch. */
async function candidateVersion(pkg: string): Promise<string> {
  const r = await mustExec('apt-cache', ['policy', pkg]);
  const m = /^\s*Candidate:\s*(\S+)/m.exec(r.stdout);
  if (!m?.[1] || m[1] === '(none)') {
    throw new Error(
      `node test bed: Debian package ${pkg} has no candidate version; run 'apt-get update' so the ` +
        `nginx rootfs can be assembled from Debian's repositories`,
    );
  }
  return m[1];
}

/** A path-safe version string: the epoch (`1:`) is dropped. */
function dirVersion(v: string): string {
  return v.replace(/^\d+:/, '').replace(/[^A-Za-z0-9.+~_-]/g, '_');
}

/**
 * Returns `final` if it holds a complete tree of this recipe; otherwise builds one with `build(tmp)`
 * in a sibling temp directory, then renames it into place.
 */
async function cached(final: string, build: (dir: string) => Promise<void>): Promise<string> {
  const marker = path.join(final, MARKER);
  try {
    const m = JSON.parse(await fs.readFile(marker, 'utf8')) as { revision?: unknown };
    if (m.revision === RECIPE_REVISION) return final;
  } catch {
    // missing or unreadable: (re)build
  }
  await fs.mkdir(path.dirname(final), { recursive: true });
  const tmp = await fs.mkdtemp(`${final}.build-`);
  try {
    await fs.chmod(tmp, 0o755); // it becomes the container's /, which non-root users must traverse
    await build(tmp);
    await fs.writeFile(
      path.join(tmp, MARKER),
      JSON.stringify({ revision: RECIPE_REVISION, built: new Date().toISOString() }) + '\n',
    );
    await fs.rm(final, { recursive: true, force: true });
    await fs.rename(tmp, final);
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true });
    // Another process may have finished the same tree meanwhile.
    if (await exists(marker)) return final;
    throw e;
  }
  return final;
}

async function mkdirs(root: string, dirs: readonly string[], mode = 0o755): Promise<void> {
  for (const d of dirs) {
    await fs.mkdir(path.join(root, d), { recursive: true, mode });
    await fs.chmod(path.join(root, d), mode);
  }
}

async function writeFile(root: string, rel: string, text: string, mode = 0o644): Promise<void> {
  const p = path.join(root, rel);
  await fs.mkdir(path.dirname(p), { recursive: true });
  await fs.writeFile(p, text, { mode });
  await fs.chmod(p, mode);
}

/** Copies the bytes behind `src` (symlinks followed) to `root/rel`. */
async function copyInto(root: string, src: string, rel: string, mode?: number): Promise<void> {
  const p = path.join(root, rel);
  await fs.mkdir(path.dirname(p), { recursive: true });
  await fs.copyFile(await fs.realpath(src), p);
  if (mode !== undefined) await fs.chmod(p, mode);
}

const BASE_DIRS = ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'mnt', 'root', 'run', 'var/tmp'];

/**
 * The busybox-static rootfs: `/bin/busybox` plus a symlink per applet in /bin. Throws (naming the
 * Debian package) when busybox-static is not installed.
 */
export async function ensureBusyboxRootfs(): Promise<string> {
  const version = await installedVersion('busybox-static');
  if (!version) throw missingTool('busybox', 'the Debian package busybox-static is not installed');
  const bin = '/bin/busybox';
  if (!(await exists(bin))) throw missingTool('busybox', `${bin} is missing`);
  const final = path.join(testbedCacheDir(), 'rootfs', `busybox-${dirVersion(version)}`);
  return cached(final, async (dir) => {
    await mkdirs(dir, BASE_DIRS);
    await fs.chmod(path.join(dir, 'tmp'), 0o1777);
    await copyInto(dir, bin, 'bin/busybox', 0o755);
    const list = await mustExec(bin, ['--list']);
    for (const applet of list.stdout.split('\n').map((s) => s.trim())) {
      if (!applet || applet === 'busybox' || applet.includes('/')) continue;
      await fs.symlink('busybox', path.join(dir, 'bin', applet));
    }
    await writeFile(
      dir,
      'etc/passwd',
      'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
    );
    await writeFile(dir, 'etc/group', 'root:x:0:\nnogroup:x:65534:\n');
    const check = await exec('chroot', [dir, '/bin/sh', '-c', 'echo rootfs-ok']);
    if (check.code !== 0 || check.stdout.trim() !== 'rootfs-ok') {
      throw new Error(`node test bed: busybox rootfs check failed: ${check.stderr || check.stdout}`);
    }
  });
}

/** Debian packages that ship the libraries nginx links, for hosts that lack one of them. */
const LIB_PACKAGES: Readonly<Record<string, string>> = {
  'libc.so.6': 'libc6',
  'libcrypt.so.1': 'libcrypt1',
  'libpcre2-8.so.0': 'libpcre2-8-0',
  'libssl.so.3': 'libssl3',
  'libcrypto.so.3': 'libssl3',
  'libz.so.1': 'zlib1g',
};

/** Parsed `ldd` output: libraries found on the host (path as named) and sonames not found. */
interface LddResult {
  found: string[];
  missing: string[];
}

function parseLdd(text: string): LddResult {
  const found: string[] = [];
  const missing: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    let m = /^(\S+) => not found$/.exec(line);
    if (m?.[1]) {
      missing.push(m[1]);
      continue;
    }
    m = /^\S+ => (\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (m?.[1]) {
      found.push(m[1]);
      continue;
    }
    m = /^(\/\S+) \(0x[0-9a-f]+\)$/.exec(line); // the dynamic loader
    if (m?.[1]) found.push(m[1]);
  }
  return { found, missing };
}

/** Downloads Debian packages (exact versions allowed: `name=version`) into `dir`, returns the .deb paths. */
async function aptDownload(dir: string, pkgs: readonly string[]): Promise<string[]> {
  // apt drops privileges to _apt for downloads; let it write here to avoid the unsandboxed warning.
  await fs.chmod(dir, 0o777);
  await mustExec('apt-get', ['download', '-q', ...pkgs], { cwd: dir, timeoutMs: 300_000 });
  const debs = (await fs.readdir(dir)).filter((f) => f.endsWith('.deb')).map((f) => path.join(dir, f));
  for (const p of pkgs) {
    const name = p.split('=')[0] ?? p;
    if (!debs.some((d) => path.basename(d).startsWith(`${name}_`))) {
      throw new Error(`node test bed: apt-get download did not produce ${name}_*.deb in ${dir}`);
    }
  }
  return debs;
}

/**
 * Finds `name` in an extracted package tree and returns the regular file behind it. Symlinks are
 * resolved inside `root` (a package's absolute link target means root + target, not the host's).
 */
async function findFile(root: string, name: string): Promise<string | undefined> {
  for (const e of await fs.readdir(root, { recursive: true, withFileTypes: true })) {
    if (e.name !== name || e.isDirectory()) continue;
    let p = path.join(e.parentPath, e.name);
    for (let hops = 0; hops < 10; hops++) {
      const st = await fs.lstat(p).catch(() => undefined);
      if (!st) break;
      if (st.isFile()) return p;
      if (!st.isSymbolicLink()) break;
      const target = await fs.readlink(p);
      p = target.startsWith('/') ? path.join(root, target) : path.join(path.dirname(p), target);
    }
  }
  return undefined;
}

/** Options for {@link ensureNginxRootfs}. */
export interface NginxRootfsOptions {
  /**
   * 'host' (default): copy the libraries from the host when present, download the missing ones.
   * 'debian': download every library package, as on a host that has none of them.
   */
  readonly libs?: 'host' | 'debian';
}

/**
 * A minimal rootfs that runs Debian's nginx: /usr/sbin/nginx, its libraries and loader, our
 * /etc/nginx/nginx.conf (see {@link nginxConf}; tests bind-mount one with their own port),
 * /etc/nginx/mime.types from nginx-common, users root and nginx, and a static index.html.
 * Writable places (/tmp, /run, /var/lib/nginx, /var/log/nginx) are meant to be tmpfs mounts.
 */
export async function ensureNginxRootfs(opts: NginxRootfsOptions = {}): Promise<string> {
  const version = await candidateVersion('nginx');
  const libsFrom = opts.libs ?? 'host';
  const suffix = libsFrom === 'host' ? '' : '-debianlibs';
  const final = path.join(testbedCacheDir(), 'rootfs', `nginx-${dirVersion(version)}${suffix}`);
  return cached(final, async (dir) => {
    const work = await fs.mkdtemp(`${final}.download-`);
    try {
      const debs = await aptDownload(work, [`nginx=${version}`, `nginx-common=${version}`]);
      const x = path.join(work, 'x');
      for (const d of debs) await mustExec('dpkg-deb', ['-x', d, x]);

      await mkdirs(dir, [
        ...BASE_DIRS,
        'usr/sbin',
        'etc/nginx/conf.d',
        'usr/share/nginx/html',
        'var/log/nginx',
        'var/lib/nginx',
        'var/cache/nginx',
      ]);
      await fs.chmod(path.join(dir, 'tmp'), 0o1777);
      await copyInto(dir, path.join(x, 'usr/sbin/nginx'), 'usr/sbin/nginx', 0o755);
      await copyInto(dir, path.join(x, 'etc/nginx/mime.types'), 'etc/nginx/mime.types', 0o644);

      const ldd = parseLdd((await exec('ldd', [path.join(dir, 'usr/sbin/nginx')])).stdout);
      if (ldd.found.length === 0 && ldd.missing.length === 0) {
        throw new Error('node test bed: ldd reported no libraries for nginx');
      }
      const fromDebian = new Set<string>(ldd.missing);
      for (const p of ldd.found) {
        if (libsFrom === 'debian' && LIB_PACKAGES[path.basename(p)]) fromDebian.add(path.basename(p));
        else await copyInto(dir, p, p.slice(1), 0o755);
      }
      if (fromDebian.size > 0) {
        const pkgs = new Set<string>();
        for (const soname of fromDebian) {
          const pkg = LIB_PACKAGES[soname];
          if (!pkg)
            throw new Error(
              `node test bed: nginx needs ${soname}, which the host lacks and no known Debian package provides`,
            );
          pkgs.add(pkg);
        }
        const libWork = path.join(work, 'libs');
        await fs.mkdir(libWork);
        const libDebs = await aptDownload(libWork, [...pkgs]);
        const lx = path.join(libWork, 'x');
        for (const d of libDebs) await mustExec('dpkg-deb', ['-x', d, lx]);
        for (const soname of fromDebian) {
          const f = await findFile(lx, soname);
          if (!f) throw new Error(`node test bed: ${soname} not found in ${[...pkgs].join(', ')}`);
          await copyInto(dir, f, path.join('lib/x86_64-linux-gnu', soname), 0o755);
        }
        // The loader is named by its absolute path in the ELF header, so it lives where ldd said.
        const loader = ldd.found.find((p) => path.basename(p).startsWith('ld-linux'));
        if (libsFrom === 'debian' && loader) {
          const f = await findFile(lx, path.basename(loader));
          if (f) await copyInto(dir, f, loader.slice(1), 0o755);
        }
      }

      await writeFile(
        dir,
        'etc/passwd',
        'root:x:0:0:root:/root:/bin/sh\n' +
          `nginx:x:${NGINX_UID}:${NGINX_UID}:nginx user:/nonexistent:/bin/false\n` +
          'nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
      );
      await writeFile(dir, 'etc/group', `root:x:0:\nnginx:x:${NGINX_UID}:\nnogroup:x:65534:\n`);
      await writeFile(dir, 'etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files\n');
      await writeFile(dir, 'etc/hosts', '127.0.0.1 localhost\n');
      await writeFile(dir, 'etc/nginx/nginx.conf', nginxConf(8080));
      await writeFile(dir, 'usr/share/nginx/html/index.html', NGINX_INDEX_HTML);

      const check = await exec('chroot', [dir, '/usr/sbin/nginx', '-V']);
      if (check.code !== 0 || !/nginx version: nginx\//.test(check.stderr)) {
        throw new Error(`node test bed: nginx rootfs check (chroot ... nginx -V) failed: ${check.stderr}`);
      }
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
}

/**
 * Our nginx.conf, shaped like the official nginx image's (root master + `worker_processes auto`
 * workers as user nginx, sendfile on), but listening on 127.0.0.1:`port` (the container shares the
 * host's network namespace) with every log on stdout/stderr and nothing written to the rootfs.
 */
export function nginxConf(port: number): string {
  return `# Written by the seccomp-agent node test bed (tests/testbed/rootfs.ts).
user  nginx;
worker_processes  auto;
daemon off;
master_process on;

error_log  stderr notice;
pid        /run/nginx.pid;

events {
    worker_connections  1024;
}

http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;
    access_log    /dev/stdout;
    sendfile      on;
    keepalive_timeout  65;

    server {
        listen       127.0.0.1:${port};
        server_name  localhost;
        location / {
            root   /usr/share/nginx/html;
            index  index.html;
        }
    }
}
`;
}

/**
 * Compiles a test program from tests/fixtures/bin/NAME.c with `gcc -static` into the cache (keyed by
 * the source's hash) and returns the binary's path.
 */
export async function ensureStaticProgram(sourcePath: string): Promise<string> {
  const src = await fs.readFile(sourcePath);
  const hash = createHash('sha256').update(src).digest('hex').slice(0, 16);
  const name = path.basename(sourcePath, '.c');
  const out = path.join(testbedCacheDir(), 'bin', `${name}-${hash}`);
  try {
    await fs.access(out, fsc.X_OK);
    return out;
  } catch {
    // build it
  }
  await fs.mkdir(path.dirname(out), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  const r = await exec('gcc', ['-static', '-O2', '-Wall', '-Werror', '-o', tmp, sourcePath]);
  if (r.code !== 0) {
    await fs.rm(tmp, { force: true });
    if (/cannot find -lc|crt1\.o|\.h: No such file or directory/.test(r.stderr)) {
      throw missingTool('gcc', `static linking failed: ${r.stderr.trim()}`);
    }
    throw new Error(`node test bed: gcc -static ${sourcePath} failed: ${r.stderr.trim()}`);
  }
  await fs.rename(tmp, out);
  return out;
}
