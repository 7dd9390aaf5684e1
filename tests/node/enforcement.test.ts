// Issue 2 on a real node: every workshop profile our agent renders is loaded by runc for a real
// container and does what the workshop says: block-all cannot start, the complain profiles run and
// auditd logs the container's calls, block-high-risk makes unshare/mount/ptrace fail with EPERM, and
// the two confine profiles let a real nginx serve HTTP.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import t from 'tap';
import { REPO_ROOT, operatorDir, renderWorkshop } from '../testbed/agent-cli.js';
import {
  CODE_LOG,
  auditFence,
  auditMark,
  ensureAuditd,
  runContainer,
  seccompRecords,
  startNginx,
  type SeccompRecord,
} from '../testbed/node.js';
import { NGINX_INDEX_HTML, ensureBusyboxRootfs, ensureNginxRootfs, ensureStaticProgram } from '../testbed/rootfs.js';

const WORKSHOP_FILES = [
  'complainer',
  'profile-block-all',
  'profile-complain-unsafe',
  'profile-allow-unsafe',
  'profile-complain-block-high-risk',
  'confine-nginx-explicit-deny',
  'confine-nginx-explicit-allow',
] as const;
type WorkshopFile = (typeof WORKSHOP_FILES)[number];

// x86_64 numbers of the calls the high-risk profile blocks and the test program makes.
const NR = { write: 1, ptrace: 101, mount: 165, unshare: 272, accept4: 288 } as const;
const BLOCKED: readonly number[] = [NR.unshare, NR.mount, NR.ptrace];

const audit = await ensureAuditd(t);
const busybox = await ensureBusyboxRootfs();
const nginxRootfs = await ensureNginxRootfs();
const highrisk = await ensureStaticProgram(path.join(REPO_ROOT, 'tests/fixtures/bin/highrisk.c'));
const kubeletRoot = await renderWorkshop(t);
const dir = operatorDir(kubeletRoot, 'seccomp-test');

const profiles = {} as Record<WorkshopFile, string>;
t.test('the agent wrote every workshop profile the pods reference', async (t) => {
  for (const name of WORKSHOP_FILES) {
    const text = await fs.readFile(path.join(dir, `${name}.json`), 'utf8').catch(() => undefined);
    t.ok(text !== undefined, `${name}.json exists under <kubelet root>/seccomp/operator/seccomp-test/`);
    if (text !== undefined) profiles[name] = text;
  }
});

/** The profile text; fails the test (not skips) when the agent did not write it. */
function profile(name: WorkshopFile): string {
  const text = profiles[name];
  if (text === undefined) throw new Error(`${name}.json was not rendered`);
  return text;
}

const highriskBind = [{ source: highrisk, destination: '/usr/local/bin/highrisk' }];
const withSysAdmin = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_KILL',
  'CAP_SYS_ADMIN',
];

function syscallsOf(records: readonly SeccompRecord[]): Set<number> {
  return new Set(records.map((r) => r.syscall));
}

t.test('profile-block-all: the nginx container cannot start', async (t) => {
  for (const args of [['/usr/sbin/nginx', '-e', 'stderr'], ['/bin/true']]) {
    const c = await runContainer(t, {
      rootfs: args[0] === '/bin/true' ? busybox : nginxRootfs,
      args,
      profile: profile('profile-block-all'),
      timeoutMs: 15_000,
    });
    t.equal(c.exitCode, 1, `${args[0]}: runc run fails`);
    t.match(c.stderr, 'runc run failed: container process is already dead', `${args[0]}: runc says why`);
    t.equal(c.stdout, '', `${args[0]}: the workload never ran`);
  }
});

t.test('complainer: nginx runs and serves, auditd logs its calls with its pids', async (t) => {
  const mark = await auditMark(audit.logPath);
  const n = await startNginx(t, { profile: profile('complainer') });
  const res = await fetch(n.url);
  t.equal(res.status, 200, 'GET / answers 200');
  t.equal(await res.text(), NGINX_INDEX_HTML, 'with the page');
  const workers = await n.workerPids();
  t.ok(workers.length > 0, `nginx master ${n.container.pid} has workers ${workers.join(',')}`);
  await n.container.stop();

  const records = seccompRecords(await auditFence(mark));
  const master = records.filter((r) => r.pid === n.container.pid && r.comm === 'nginx');
  t.ok(master.length > 0, `SECCOMP lines with the master's pid ${n.container.pid} and comm="nginx"`);
  t.ok(
    master.every((r) => r.exe === '/usr/sbin/nginx' && r.code === CODE_LOG),
    'exe="/usr/sbin/nginx", code=0x7ffc0000 (LOG)',
  );
  const fromWorkers = records.filter((r) => workers.includes(r.pid));
  t.ok(fromWorkers.length > 0, 'SECCOMP lines from the worker pids');
  t.ok(syscallsOf(fromWorkers).has(NR.accept4), 'a worker logged accept4 (288) for our request');
});

t.test('profile-complain-unsafe: runs, and its calls are logged', async (t) => {
  const mark = await auditMark(audit.logPath);
  const c = await runContainer(t, {
    rootfs: busybox,
    args: ['/bin/sh', '-c', 'echo complain-unsafe'],
    profile: profile('profile-complain-unsafe'),
  });
  t.equal(c.exitCode, 0, `runs (stderr: ${c.stderr.trim()})`);
  t.equal(c.stdout, 'complain-unsafe\n');
  const mine = seccompRecords(await auditFence(mark)).filter((r) => r.pid === c.pid);
  t.ok(mine.length > 0, `SECCOMP lines with pid ${c.pid}`);
  t.ok(syscallsOf(mine).has(NR.write), 'the echo (write) is among them');
});

t.test('profile-allow-unsafe: runs, and nothing is logged', async (t) => {
  const mark = await auditMark(audit.logPath);
  const c = await runContainer(t, {
    rootfs: busybox,
    args: ['/bin/sh', '-c', 'echo allow-unsafe'],
    profile: profile('profile-allow-unsafe'),
  });
  t.equal(c.exitCode, 0, `runs (stderr: ${c.stderr.trim()})`);
  t.equal(c.stdout, 'allow-unsafe\n');
  const lines = await auditFence(mark);
  t.same(
    seccompRecords(lines).filter((r) => r.pid === c.pid),
    [],
    `no SECCOMP line with pid ${c.pid}`,
  );
});

t.test('profile-complain-block-high-risk', async (t) => {
  t.test('control: without the profile (allow-unsafe) and with CAP_SYS_ADMIN, the calls succeed', async (t) => {
    const c = await runContainer(t, {
      rootfs: busybox,
      args: ['/usr/local/bin/highrisk'],
      profile: profile('profile-allow-unsafe'),
      capabilities: withSysAdmin,
      binds: highriskBind,
    });
    t.equal(c.exitCode, 0, `runs (stderr: ${c.stderr.trim()})`);
    t.equal(c.stdout, 'unshare ok\nmount ok\nptrace ok\n');
    const bb = await runContainer(t, {
      rootfs: busybox,
      args: ['/bin/sh', '-c', 'unshare -m true && echo unshare-ok; mount -t tmpfs none /mnt && echo mount-ok'],
      profile: profile('profile-allow-unsafe'),
      capabilities: withSysAdmin,
    });
    t.equal(bb.stdout, 'unshare-ok\nmount-ok\n', `busybox unshare and mount work (stderr: ${bb.stderr.trim()})`);
  });

  t.test('unshare, mount and ptrace fail with EPERM; the rest is logged', async (t) => {
    const mark = await auditMark(audit.logPath);
    const c = await runContainer(t, {
      rootfs: busybox,
      args: ['/usr/local/bin/highrisk'],
      profile: profile('profile-complain-block-high-risk'),
      capabilities: withSysAdmin,
      binds: highriskBind,
    });
    t.equal(c.exitCode, 0, `runs (stderr: ${c.stderr.trim()})`);
    t.equal(c.stdout, 'unshare EPERM\nmount EPERM\nptrace EPERM\n');
    const records = seccompRecords(await auditFence(mark));
    const mine = records.filter((r) => r.comm === 'highrisk');
    t.ok(
      mine.some((r) => r.pid === c.pid && r.syscall === NR.write),
      `its writes are logged (pid ${c.pid})`,
    );
    const blocked = mine.filter((r) => BLOCKED.includes(r.syscall));
    t.same(blocked, [], 'the blocked calls are not logged (ERRNO is not logged without SECCOMP_FILTER_FLAG_LOG)');
  });

  t.test("busybox's unshare and mount applets report the error", async (t) => {
    const c = await runContainer(t, {
      rootfs: busybox,
      args: ['/bin/sh', '-c', 'unshare -m true; echo unshare=$?; mount -t tmpfs none /mnt; echo mount=$?'],
      profile: profile('profile-complain-block-high-risk'),
      capabilities: withSysAdmin,
    });
    t.equal(c.exitCode, 0, 'the container runs');
    t.equal(c.stdout, 'unshare=1\nmount=1\n', 'both applets fail');
    t.match(c.stderr, /unshare: unshare\(0x20000\): Operation not permitted/, 'unshare: EPERM');
    t.match(c.stderr, /mount: permission denied \(are you root\?\)/, "mount: EPERM (busybox's wording)");
  });

  t.test('nginx runs and serves under it (the workshop pod)', async (t) => {
    const n = await startNginx(t, { profile: profile('profile-complain-block-high-risk') });
    const res = await fetch(n.url);
    t.equal(res.status, 200);
    t.equal(await res.text(), NGINX_INDEX_HTML);
  });
});

for (const name of ['confine-nginx-explicit-deny', 'confine-nginx-explicit-allow'] as const) {
  t.test(`${name}: a real nginx serves HTTP`, async (t) => {
    const n = await startNginx(t, { profile: profile(name) });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(n.url);
      t.equal(res.status, 200, `GET / #${i + 1} answers 200`);
      t.equal(await res.text(), NGINX_INDEX_HTML);
    }
    t.equal(await n.container.status(), 'running', 'nginx keeps running');
    t.ok((await n.workerPids()).length > 0, 'with its workers');
  });
}
