// Issue 6 on the real kernel: the chart's privileges are enough, and the image's runtime tree runs.
// The image tree is built as Dockerfile.agent builds it (package.json + production node_modules +
// dist/agent + dist/shared, nothing else), laid out as the image has it under a fresh root in the
// temp directory: <root>/app and the Node 24 binary at <root>/usr/local/bin/node (the base image's
// place), with the workshop profiles beside them. Nothing the agent's user runs or reads is under the
// checkout, which may sit in a directory that user cannot enter (a clone in a 0700 `mktemp -d`
// directory, or under /root): the image does not have the checkout either. The chart is rendered with helm; its init container's
// script and the agent are run with exactly the user, groups and capabilities the rendered
// securityContexts give them (setpriv: uid/gid, supplementalGroups, bounding set = capabilities.add,
// no inheritable or ambient capabilities, no_new_privs). Then: the init step prepares the
// operator directory; the agent writes every workshop profile owned by 65535 with no capability; it
// reads the real audit.log and /proc of other users' processes and names a runc container's calls.
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { chmod, cp as copy, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { repoPath } from '../testbed/cluster.js';
import { renderedAgentPod, type Obj } from '../cluster/chart-helpers.js';
import { ensureAuditd, runContainer } from '../testbed/node.js';
import { ensureBusyboxRootfs } from '../testbed/rootfs.js';

const execFileP = promisify(execFile);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

// The agent's own environment, without tap's hooks (NODE_OPTIONS) and without root's HOME.
const baseEnv = (): NodeJS.ProcessEnv => ({ PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NODE_ENV: 'production', LANG: 'C' });

/** setpriv arguments for a rendered container securityContext (+ the pod's supplementalGroups). */
function setprivArgs(sc: Obj, groups: readonly number[]): string[] {
  const caps = ((sc['capabilities'] as { add?: string[] } | undefined)?.add ?? []).map((c) => `+${c.toLowerCase()}`);
  const uid = Number(sc['runAsUser']);
  const gid = Number(sc['runAsGroup']);
  return [
    '--reuid',
    String(uid),
    '--regid',
    String(gid),
    ...(groups.length > 0 ? ['--groups', groups.join(',')] : ['--clear-groups']),
    '--inh-caps',
    '-all',
    '--ambient-caps',
    '-all',
    '--bounding-set',
    ['-all', ...caps].join(','),
    ...(sc['allowPrivilegeEscalation'] === false ? ['--no-new-privs'] : []),
    '--',
  ];
}

// tap's processinfo adds its --import to NODE_OPTIONS of every child it sees spawned; the agent
// must run without it (it would also write under .tap/ as root's files).
const CLEAN = ['/usr/bin/env', '-u', 'NODE_OPTIONS'];

function runAs(priv: readonly string[], cmd: readonly string[], env: NodeJS.ProcessEnv, cwd: string): Promise<Run> {
  return new Promise((res) => {
    const p = spawn('setpriv', [...priv, ...CLEAN, ...cmd], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => res({ code, stdout, stderr }));
  });
}

/**
 * The temp directory, when every directory above it lets anyone pass (TMPDIR may point into the
 * user's home); /tmp otherwise. The agent's user must reach the tree laid out below it.
 */
async function traversableTmp(): Promise<string> {
  const passable = async (dir: string): Promise<boolean> => {
    for (let d = resolve(dir); ; d = dirname(d)) {
      if (((await stat(d)).mode & 0o001) === 0) return false;
      if (dirname(d) === d) return true;
    }
  };
  return (await passable(tmpdir())) ? tmpdir() : '/tmp';
}

// ---- the image tree ---------------------------------------------------------------------------
const work = await mkdtemp(join(await traversableTmp(), 'seccomp-agent-priv-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
await chmod(work, 0o755);
const app = join(work, 'app');
await mkdir(app, { mode: 0o755 });
for (const f of ['package.json', 'package-lock.json']) await copy(repoPath(f), join(app, f));
await copy(repoPath('node_modules'), join(app, 'node_modules'), { recursive: true, verbatimSymlinks: true });
await execFileP('npm', ['prune', '--omit=dev', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], {
  cwd: app,
  env: { ...process.env, NODE_OPTIONS: '' },
});
await rm(join(app, 'package-lock.json'));
for (const d of ['agent', 'shared']) await copy(repoPath('dist', d), join(app, 'dist', d), { recursive: true });
const MAIN = join(app, 'dist', 'agent', 'src', 'main.js');
// Node 24, where the base image has it (the devDependency's binary, which runs this test).
const NODE = join(work, 'usr', 'local', 'bin', 'node');
await mkdir(join(work, 'usr', 'local', 'bin'), { recursive: true, mode: 0o755 });
await copy(process.execPath, NODE);
await chmod(NODE, 0o755);
// The workshop profiles the agent installs (the chart mounts them from a ConfigMap; here a copy).
const PROFILES = join(work, 'profiles');
await copy(repoPath('profiles'), PROFILES, { recursive: true });
// Readable by anyone, as the image's layers are, whatever umask the checkout was made with.
await execFileP('chmod', ['-R', 'a+rX', app, PROFILES]);

// ---- the chart, rendered -----------------------------------------------------------------------
const kubeletRoot = join(work, 'kubelet');
await mkdir(join(kubeletRoot, 'seccomp'), { recursive: true, mode: 0o755 });
const { pod, init, agent } = await renderedAgentPod([`kubeletRoot=${kubeletRoot}`]);
const groups = ((pod['securityContext'] as Obj | undefined)?.['supplementalGroups'] as number[] | undefined) ?? [];
const initPriv = setprivArgs(init['securityContext'] as Obj, groups);
const agentPriv = setprivArgs(agent['securityContext'] as Obj, groups);
const agentEnv: NodeJS.ProcessEnv = { ...baseEnv() };
for (const e of agent['env'] as { name: string; value?: string }[])
  if (e.value !== undefined) agentEnv[e.name] = e.value;
agentEnv['SECCOMP_AGENT_NODE_NAME'] = 'node1'; // the downward API's values
agentEnv['SECCOMP_AGENT_NAMESPACE'] = 'seccomp-agent';
t.comment(`init: setpriv ${initPriv.join(' ')}`);
t.comment(`agent: setpriv ${agentPriv.join(' ')}`);

t.test('the image tree holds production dependencies only and runs', async (t) => {
  const pkg = JSON.parse(await readFile(repoPath('package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  const mods = new Set(await readdir(join(app, 'node_modules')));
  for (const d of Object.keys(pkg.dependencies)) t.ok(mods.has(d.split('/')[0] ?? d), `dependency ${d} is there`);
  for (const d of Object.keys(pkg.devDependencies)) {
    if (d.startsWith('@types/')) continue; // scoped dir may stay for a production package's types
    t.notOk(mods.has(d), `devDependency ${d} is not`);
  }
  t.same(
    (await readdir(join(app, 'dist'))).sort(),
    ['agent', 'shared'],
    'dist/agent and dist/shared only, as the image copies',
  );
  const help = await runAs(agentPriv, [NODE, MAIN, '--help'], baseEnv(), app);
  t.equal(help.code, 0, help.stderr);
  t.match(help.stdout, /^Usage: seccomp-agent/, "--help as the chart's user");
});

t.test("the init container's script, with CHOWN only, prepares the operator directory", async (t) => {
  const script = (init['command'] as string[]).slice(-1)[0] ?? '';
  const operator = join(kubeletRoot, 'seccomp', 'operator');
  const first = await runAs(initPriv, ['/bin/sh', '-c', script], baseEnv(), '/');
  t.equal(first.code, 0, `first run: ${first.stderr}`);
  let st = await stat(operator);
  t.same([st.uid, st.gid, st.mode & 0o7777], [65535, 65535, 0o744], 'operator/ is 65535:65535 0744');
  const again = await runAs(initPriv, ['/bin/sh', '-c', script], baseEnv(), '/');
  t.equal(again.code, 0, `a restart of the pod: ${again.stderr}`);
  // A directory someone else left (another owner, another mode) is taken over with CHOWN alone.
  await execFileP('chown', ['1234:1234', operator]);
  await chmod(operator, 0o700);
  const fix = await runAs(initPriv, ['/bin/sh', '-c', script], baseEnv(), '/');
  t.equal(fix.code, 0, `a foreign directory: ${fix.stderr}`);
  st = await stat(operator);
  t.same([st.uid, st.gid, st.mode & 0o7777], [65535, 65535, 0o744], 'taken over: 65535:65535 0744');
});

t.test('the agent, as 65535 with no capability, writes every workshop profile owned by 65535', async (t) => {
  const r = await runAs(agentPriv, [NODE, MAIN, '--profiles-dir', PROFILES, '--once'], agentEnv, app);
  t.equal(r.code, 0, '--once exits 0', { stderr: r.stderr });
  t.match(r.stdout, '7 profile(s) installed');
  t.notMatch(r.stderr, /EACCES|EPERM/, 'no permission error');
  const dir = join(kubeletRoot, 'seccomp', 'operator', 'seccomp-test');
  const d = await stat(dir);
  t.same([d.uid, d.gid, d.mode & 0o7777], [65535, 65535, 0o744], 'seccomp-test/ 65535:65535 0744');
  const files = await readdir(dir);
  t.equal(files.length, 7);
  for (const f of files) {
    const s = await stat(join(dir, f));
    t.same([s.uid, s.gid, s.mode & 0o7777], [65535, 65535, 0o644], `${f} 65535:65535 0644`);
  }
  // A second run over existing files (restart): nothing to chown, nothing refused.
  const again = await runAs(agentPriv, [NODE, MAIN, '--profiles-dir', PROFILES, '--once'], agentEnv, app);
  t.equal(again.code, 0, 'a restart exits 0 too', { stderr: again.stderr });
});

t.test("the agent's user reads the real audit.log and /proc, and names a container's calls", async (t) => {
  const audit = await ensureAuditd(t);
  t.equal(audit.logPath, agentEnv['SECCOMP_AGENT_AUDIT_LOG'], "auditd writes where the chart's default points");
  const logDir = await stat(join(audit.logPath, '..'));
  t.comment(
    `audit log dir ${String(logDir.uid)}:${String(logDir.gid)} ${(logDir.mode & 0o7777).toString(8)}; agent groups ${groups.join(',')}`,
  );
  // The event path from the image tree, under the agent's privileges (main.ts does not start it in
  // --once mode): it prints `event <containerId> <pid>` for each event it attributes.
  const harness = `
    import { pino } from 'pino';
    import { startEventPipeline } from ${JSON.stringify(join(app, 'dist', 'agent', 'src', 'events', 'pipeline.js'))};
    const env = process.env;
    const p = await startEventPipeline({ node: 'node1', logger: pino({ level: 'warn' }, pino.destination(2)), source: env.SECCOMP_AGENT_AUDIT_SOURCE, auditLog: env.SECCOMP_AGENT_AUDIT_LOG, from: 'end' });
    let last = -1;
    process.stdout.write('ready ' + p.source.path + '\\n');
    setInterval(() => {
      for (const e of p.store.events({}, 10000)) if (e.seq > last) { last = e.seq; process.stdout.write('event ' + e.containerId + ' ' + e.pid + ' ' + (e.syscall ?? e.syscallNr) + '\\n'); }
    }, 50);
  `;
  const proc = spawn('setpriv', [...agentPriv, ...CLEAN, NODE, '--input-type=module', '-e', harness], {
    env: agentEnv,
    cwd: app,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => proc.kill('SIGKILL'));
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const until = async (what: string, ok: () => boolean): Promise<void> => {
    const end = Date.now() + 30_000;
    while (!ok()) {
      if (proc.exitCode !== null)
        throw new Error(`the event harness exited (${String(proc.exitCode)}) waiting for ${what}: ${err}`);
      if (Date.now() > end)
        throw new Error(`timed out waiting for ${what}; stdout: ${out.slice(-2000)} stderr: ${err.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await until('the audit log open', () => out.includes('ready '));
  t.match(out, `ready ${audit.logPath}`);
  const rootfs = await ensureBusyboxRootfs();
  const id = randomBytes(32).toString('hex');
  const c = await runContainer(t, {
    rootfs,
    profile: '{"defaultAction":"SCMP_ACT_LOG"}',
    args: ['/bin/sh', '-c', 'echo hi; sleep 1'],
    id,
  });
  t.equal(c.exitCode, 0, c.stderr);
  await until(`an event of container ${id.slice(0, 12)}`, () => out.includes(`event ${id} `));
  t.pass("the container's calls, attributed through /proc/<pid>/cgroup of a root process, by an unprivileged reader");
  t.notMatch(err, /EACCES|EPERM/, 'no permission error');
});

t.test('the same user without the audit group cannot read the log: the group is what grants it', async (t) => {
  const noGroup = agentPriv.map((a) => a).filter((_a, i, all) => !(all[i - 1] === '--groups' || all[i] === '--groups'));
  noGroup.unshift('--clear-groups');
  const logPath = agentEnv['SECCOMP_AGENT_AUDIT_LOG'] ?? '';
  const r = await runAs(noGroup, ['/bin/sh', '-c', `head -c 1 ${logPath}`], baseEnv(), '/');
  t.not(r.code, 0, 'refused');
  t.match(r.stderr, /Permission denied/);
  const ok = await runAs(agentPriv, ['/bin/sh', '-c', `head -c 1 ${logPath} >/dev/null`], baseEnv(), '/');
  t.equal(ok.code, 0, `with the chart's group: ${ok.stderr}`);
  await writeFile(join(work, 'done'), '');
});
