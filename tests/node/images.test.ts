// Issue 13: the test bed's images, built by BuildKit from Dockerfiles without a registry, a Docker
// engine or any network for the build steps (tests/testbed/images.ts), then read back and run.
// Each image's OCI config is what the kubelet and containerd will use (user, entrypoint/cmd, env,
// stop signal, port); its layers are unpacked as a runtime does and run with runc under that
// config: the pause binary as 65535, nginx serving in a network namespace of its own with workers
// as nginx, and the agent image, built from Dockerfile.agent itself, running the chart's init script
// (root with CHOWN only) and the agent as 65535 with no capability on the workshop's profiles.
// The builder itself: a build step's network namespace has only lo and does not reach the host's
// loopback, and without the npm-cache context Dockerfile.agent's npm ci is the online one (it fails
// here, having no network). Last, a second round finds every image cached and starts no buildkitd.
import t from 'tap';
import { createServer, type AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoPath } from '../testbed/cluster.js';
import { exec, mustExec, pollUntil } from '../testbed/exec.js';
import {
  AGENT_IMAGE_REPOSITORY,
  NGINX_IMAGE,
  PAUSE_IMAGE,
  buildOneOff,
  ensureAgentImage,
  ensureNginxImage,
  ensureNodeBaseImage,
  ensurePauseImage,
  type BuiltImage,
} from '../testbed/images.js';
import { buildkitdStarts } from '../testbed/buildkit.js';
import { readOciImage, unpackOciImage, type OciImage } from '../testbed/oci.js';
import { renderedAgentPod } from '../cluster/chart-helpers.js';
import { runContainer, startContainer } from '../testbed/node.js';
import { NGINX_INDEX_HTML, NGINX_UID } from '../testbed/rootfs.js';

const work = await mkdtemp(join(tmpdir(), 'seccomp-agent-images-'));
await chmod(work, 0o755);
t.teardown(() => rm(work, { recursive: true, force: true }));

/** The image's root file system, unpacked under the test's temp dir. */
async function unpacked(img: BuiltImage, name: string): Promise<string> {
  const dir = join(work, name);
  await unpackOciImage(img.archive, dir);
  return dir;
}

function userOf(img: OciImage): { uid: number; gid: number } {
  const m = /^(\d+):(\d+)$/.exec(img.config.config.User ?? '');
  if (!m) throw new Error(`image user ${img.config.config.User ?? '(none)'} is not uid:gid`);
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

/** Uid, gid and capability sets of a running process, from /proc/<pid>/status. */
async function procStatus(pid: number): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const line of (await readFile(`/proc/${pid}/status`, 'utf8')).split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

const images: Record<string, BuiltImage> = {};

t.test('pause: one static binary, run as 65535', async (t) => {
  const img = await ensurePauseImage();
  images['pause'] = img;
  t.equal(img.ref, PAUSE_IMAGE);
  const oci = await readOciImage(img.archive);
  t.equal(oci.name, PAUSE_IMAGE, 'the index names the image (io.containerd.image.name)');
  t.equal(oci.manifestDigest, img.digest);
  t.same([oci.config.os, oci.config.architecture], ['linux', 'amd64']);
  t.equal(oci.config.config.User, '65535:65535');
  t.same(oci.config.config.Entrypoint, ['/pause']);
  t.notOk(oci.config.config.Cmd, 'no Cmd');
  t.equal(oci.layers.length, 1, 'one layer');
  const root = await unpacked(img, 'pause');
  t.same((await readdir(root)).sort(), ['pause'], 'the layer holds /pause only');
  const file = await mustExec('file', [join(root, 'pause')]);
  t.match(file.stdout, /statically linked/);

  const user = userOf(oci);
  const v = await runContainer(t, { rootfs: root, args: ['/pause', '-v'], user, capabilities: [] });
  t.equal(v.exitCode, 0, v.stderr);
  t.match(v.stdout, /^pause /);
  const c = await startContainer(t, { rootfs: root, args: oci.config.config.Entrypoint ?? [], user, capabilities: [] });
  const st = await procStatus(c.pid);
  t.match(st['Uid'], /^65535\s+65535\s+65535\s+65535$/, 'runs as 65535');
  // Just started, it may still be on its way to pause(): wait for it to sleep there.
  const sleeping = await pollUntil(
    async () => ((await procStatus(c.pid))['State']?.[0] === 'S' ? true : undefined),
    10_000,
  );
  t.equal(sleeping, true, 'sleeps in pause()');
  await c.stop();
});

t.test('nginx: nginx:1.27 from Debian, started as the official image starts it', async (t) => {
  const img = await ensureNginxImage();
  images['nginx'] = img;
  t.equal(img.ref, NGINX_IMAGE);
  const oci = await readOciImage(img.archive);
  const cfg = oci.config.config;
  t.equal(oci.name, NGINX_IMAGE);
  t.same(cfg.Cmd, ['nginx', '-g', 'daemon off;'], "CMD nginx -g 'daemon off;'");
  t.notOk(cfg.Entrypoint, 'no entrypoint script');
  t.equal(cfg.StopSignal, 'SIGQUIT');
  t.same(Object.keys(cfg.ExposedPorts ?? {}), ['80/tcp']);
  t.notOk(cfg.User, 'the master starts as root, as in the official image');
  const env = cfg.Env ?? [];
  t.ok(
    env.some((e) => /^PATH=.*\/usr\/sbin/.test(e)),
    'PATH finds /usr/sbin/nginx',
  );

  const root = await unpacked(img, 'nginx');
  const conf = await readFile(join(root, 'etc/nginx/nginx.conf'), 'utf8');
  t.match(conf, /^user\s+nginx;/m, 'workers as user nginx');
  t.notMatch(conf, /^\s*daemon\s/m, 'daemon is left to the command line (a second one is an error)');
  t.match(await readFile(join(root, 'etc/nginx/conf.d/default.conf'), 'utf8'), /listen\s+80;/);
  t.match(await readFile(join(root, 'etc/passwd'), 'utf8'), new RegExp(`^nginx:x:${NGINX_UID}:${NGINX_UID}:`, 'm'));

  // The image's command and environment, in a network namespace of the container's own.
  const c = await startContainer(t, {
    rootfs: root,
    args: cfg.Cmd ?? [],
    env,
    tmpfs: ['/tmp', '/run', '/var/lib/nginx', '/var/cache/nginx'],
  });
  // lo up, as the CNI loopback plugin does for a pod.
  await mustExec('nsenter', ['-n', '-t', String(c.pid), 'ip', 'link', 'set', 'lo', 'up']);
  const body = await pollUntil(
    async () => {
      const r = await exec('nsenter', [
        '-n',
        '-t',
        String(c.pid),
        'curl',
        '-sS',
        '--max-time',
        '2',
        'http://127.0.0.1:80/',
      ]);
      return r.code === 0 ? r.stdout : undefined;
    },
    20_000,
    100,
  );
  t.equal(body, NGINX_INDEX_HTML, `serves on port 80 of its own network namespace: ${await c.output()}`);
  const master = await procStatus(c.pid);
  t.match(master['Name'], 'nginx');
  t.match(master['Uid'], /^0\s/, 'master as root');
  const children = (await readFile(`/proc/${c.pid}/task/${c.pid}/children`, 'utf8')).trim().split(/\s+/).map(Number);
  t.ok(children.length > 0, 'worker processes');
  for (const pid of children) {
    t.match((await procStatus(pid))['Uid'], new RegExp(`^${NGINX_UID}\\s`), `worker ${pid} as nginx (${NGINX_UID})`);
  }
  await c.stop();
});

t.test('agent: Dockerfile.agent built offline, run as the chart runs it', async (t) => {
  const base = await ensureNodeBaseImage();
  const baseOci = await readOciImage(base.layout);
  t.match(base.name, /^node:\d+\.\d+\.\d+-bookworm-slim$/);
  t.ok(
    (baseOci.config.config.Env ?? []).includes(`NODE_VERSION=${base.nodeVersion}`),
    'the base says its Node version',
  );
  t.same(baseOci.config.config.Cmd, ['node']);

  const img = await ensureAgentImage();
  images['agent'] = img;
  const version = (JSON.parse(await readFile(repoPath('package.json'), 'utf8')) as { version: string }).version;
  t.equal(img.ref, `${AGENT_IMAGE_REPOSITORY}:${version}`);
  const oci = await readOciImage(img.archive);
  const cfg = oci.config.config;
  const dockerfile = await readFile(repoPath('Dockerfile.agent'), 'utf8');
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? 'null') as string[] | null;
  t.ok(entrypoint, 'Dockerfile.agent has an exec-form ENTRYPOINT');
  t.same(cfg.Entrypoint, entrypoint, "the image's entrypoint is Dockerfile.agent's");
  t.notOk(cfg.Cmd, "no Cmd (the base's CMD node is reset by ENTRYPOINT)");
  t.equal(cfg.User, '65535:65535');
  t.equal(cfg.WorkingDir, '/app');
  t.same(Object.keys(cfg.ExposedPorts ?? {}), ['8686/tcp']);
  const env = cfg.Env ?? [];
  for (const e of ['NODE_ENV=production', 'MALLOC_ARENA_MAX=2', `NODE_VERSION=${base.nodeVersion}`]) {
    t.ok(env.includes(e), e);
  }
  t.same(
    oci.layers.slice(0, baseOci.layers.length).map((l) => l.digest),
    baseOci.layers.map((l) => l.digest),
    'built on the local base',
  );

  const root = await unpacked(img, 'agent');
  t.same((await readdir(join(root, 'app'))).sort(), ['dist', 'node_modules', 'package.json']);
  t.same((await readdir(join(root, 'app', 'dist'))).sort(), ['agent', 'shared']);
  const pkg = JSON.parse(await readFile(repoPath('package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  const mods = new Set(await readdir(join(root, 'app', 'node_modules')));
  for (const d of Object.keys(pkg.dependencies)) t.ok(mods.has(d.split('/')[0] ?? d), `dependency ${d} is there`);
  for (const d of Object.keys(pkg.devDependencies)) {
    if (d.startsWith('@types/')) continue; // a production package's types keep the scope directory
    t.notOk(mods.has(d), `devDependency ${d} is not`);
  }
  // Nothing of the build's npm cache or of the host's npm configuration is in the image.
  for (const p of ['npm-cache', 'root/.npm', 'root/.npmrc', 'app/.npmrc', 'usr/local/etc/npmrc', 'src']) {
    t.notOk(
      await stat(join(root, p)).then(
        () => true,
        () => false,
      ),
      `no /${p}`,
    );
  }
  const cafile = (await exec('npm', ['config', 'get', 'cafile'])).stdout.trim();
  if (cafile && cafile !== 'null' && cafile !== 'undefined') {
    const want = createHash('sha256')
      .update(await readFile(cafile))
      .digest('hex');
    const found = await exec('sh', [
      '-c',
      `find "$1" -xdev -type f \\( -name '*.pem' -o -name '*.crt' \\) -exec sha256sum {} +`,
      'sh',
      root,
    ]);
    t.notMatch(found.stdout, want, "the host's npm CA file is not in the image");
  }
  // What the chart's init container runs: /bin/sh, mkdir, stat, chown, chmod from the base.
  for (const p of ['bin/sh', 'bin/mkdir', 'bin/stat', 'bin/chown', 'bin/chmod', 'usr/local/bin/node']) {
    t.ok(
      await stat(join(root, p)).then(
        (s) => s.isFile() && (s.mode & 0o111) !== 0,
        () => false,
      ),
      `/${p} is an executable file`,
    );
  }

  const user = userOf(oci);
  const help = await runContainer(t, {
    rootfs: root,
    args: [...(cfg.Entrypoint ?? []), '--help'],
    env,
    user,
    cwd: cfg.WorkingDir ?? '/',
    capabilities: [],
    noNewPrivileges: true,
  });
  t.equal(help.exitCode, 0, help.stderr);
  t.match(help.stdout, /^Usage: seccomp-agent/, '--help as 65535 with no capability');

  // The chart, rendered: its init script (root, CHOWN only) and the agent (65535, nothing) on a
  // kubelet root of the test's, with the workshop's profiles.
  const kubeletRoot = join(work, 'kubelet');
  const seccompDir = join(kubeletRoot, 'seccomp');
  await mkdir(seccompDir, { recursive: true, mode: 0o755 });
  const { init, agent } = await renderedAgentPod([`kubeletRoot=${kubeletRoot}`, 'audit.source=none']);
  const bind = { source: seccompDir, destination: seccompDir, writable: true };
  const initRun = await runContainer(t, {
    rootfs: root,
    args: init['command'] as string[],
    env,
    binds: [bind],
    capabilities: ['CAP_CHOWN'],
    noNewPrivileges: true,
  });
  t.equal(initRun.exitCode, 0, `the init script runs in the image: ${initRun.stderr}`);
  const op = await stat(join(seccompDir, 'operator'));
  t.same([op.uid, op.gid, op.mode & 0o7777], [65535, 65535, 0o744], 'operator/ 65535:65535 0744');

  const chartEnv = (agent['env'] as { name: string; value?: string }[])
    .filter((e) => e.value !== undefined)
    .map((e) => `${e.name}=${e.value ?? ''}`);
  const profiles = join(work, 'profiles');
  await mustExec('cp', ['-r', repoPath('profiles'), profiles]);
  await mustExec('chmod', ['-R', 'a+rX', profiles]);
  const once = await runContainer(t, {
    rootfs: root,
    args: [...(cfg.Entrypoint ?? []), '--profiles-dir', '/profiles', '--once'],
    env: [...env, ...chartEnv, 'SECCOMP_AGENT_NODE_NAME=node1', 'SECCOMP_AGENT_NAMESPACE=seccomp-agent'],
    user,
    cwd: cfg.WorkingDir ?? '/',
    binds: [bind, { source: profiles, destination: '/profiles' }],
    capabilities: [],
    noNewPrivileges: true,
  });
  t.equal(once.exitCode, 0, `--once in the image: ${once.stderr}`);
  t.match(once.stdout, '7 profile(s) installed');
  const dir = join(seccompDir, 'operator', 'seccomp-test');
  const files = await readdir(dir);
  t.equal(files.length, 7);
  for (const f of files) {
    const s = await stat(join(dir, f));
    t.same([s.uid, s.gid, s.mode & 0o7777], [65535, 65535, 0o644], `${f} 65535:65535 0644`);
  }
});

t.test('a build step reaches nothing: its network namespace has only lo', async (t) => {
  let connections = 0;
  const server = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as AddressInfo).port;
  const probe = `exec 3<>/dev/tcp/127.0.0.1/${port}`;
  // The probe can see the server: from the host's network namespace it connects.
  const host = await exec('bash', ['-c', probe]);
  t.equal(host.code, 0, 'the probe connects from the host');
  t.equal(connections, 1);

  const ctx = join(work, 'netcheck');
  await mkdir(ctx);
  const base = await ensureNodeBaseImage();
  await writeFile(
    join(ctx, 'Dockerfile'),
    `FROM ${base.name}\nARG PROBE\n` +
      `RUN echo "interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')"\n` +
      `RUN if bash -c "$PROBE"; then echo REACHED; exit 1; fi; echo UNREACHABLE\n`,
  );
  const r = await buildOneOff({
    context: ctx,
    ref: 'localhost/netcheck:1',
    dest: join(work, 'netcheck.oci.tar'),
    buildArgs: { PROBE: probe },
  });
  t.ok(r.ok, 'the build ran');
  t.match(r.log, /interfaces: lo $/m, 'only lo');
  t.match(r.log, /UNREACHABLE/, "the host's loopback server is out of reach");
  t.equal(connections, 1, 'no connection came from the build');
});

t.test(
  'without the npm-cache context, Dockerfile.agent runs the online npm ci, which reaches nothing here',
  async (t) => {
    const r = await buildOneOff({
      context: repoPath(),
      dockerfile: repoPath('Dockerfile.agent'),
      ref: 'localhost/agent-online:1',
      dest: join(work, 'agent-online.oci.tar'),
    });
    t.notOk(r.ok, 'the build fails');
    t.match(r.log, /RUN --mount=type=bind,from=npm-cache/, 'at the npm ci step');
    t.match(
      r.log,
      /npm error code (EAI_AGAIN|ENOTFOUND|ENETUNREACH|ECONNREFUSED)/,
      'npm tried the registry: no network',
    );
    t.notMatch(r.log, /EOFFLINE|ENOTCACHED/, 'not the offline branch');
  },
);

t.test('a second round is cached: same archives, no buildkitd', async (t) => {
  t.ok(images['pause'] && images['nginx'] && images['agent'], 'the images above were built');
  const before = buildkitdStarts();
  const mtimes = new Map<string, number>();
  for (const img of Object.values(images)) mtimes.set(img.archive, (await stat(img.archive)).mtimeMs);
  const again = { pause: await ensurePauseImage(), nginx: await ensureNginxImage(), agent: await ensureAgentImage() };
  for (const [k, img] of Object.entries(again)) {
    t.same(img, images[k], `${k}: the same archive and digest`);
    t.equal((await stat(img.archive)).mtimeMs, mtimes.get(img.archive), `${k}: not rewritten`);
  }
  t.equal(buildkitdStarts(), before, 'no buildkitd was started');
});
