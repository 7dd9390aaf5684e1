// Issue 3 on a real node: a runc container under {"defaultAction":"SCMP_ACT_LOG"} makes the kernel
// log its syscalls, and the real auditd writes them as type=SECCOMP lines into audit.log with the
// container's host pid.
import t from 'tap';
import { CODE_LOG, auditFence, auditMark, ensureAuditd, runContainer, seccompRecords } from '../testbed/node.js';
import { ensureBusyboxRootfs } from '../testbed/rootfs.js';

t.test('SCMP_ACT_LOG container: SECCOMP lines with its host pid in audit.log', async (t) => {
  const audit = await ensureAuditd(t);
  const rootfs = await ensureBusyboxRootfs();
  const mark = await auditMark(audit.logPath);

  const c = await runContainer(t, {
    rootfs,
    profile: '{"defaultAction":"SCMP_ACT_LOG"}',
    args: ['/bin/sh', '-c', 'echo hello-from-container; uname -r >/dev/null'],
  });
  t.equal(c.exitCode, 0, `container ran (stderr: ${c.stderr.trim()})`);
  t.equal(c.stdout, 'hello-from-container\n');
  t.ok(c.pid !== undefined && c.pid > 0, 'runc reported a host pid');

  const lines = await auditFence(mark);
  const mine = seccompRecords(lines).filter((r) => r.pid === c.pid);
  t.ok(
    mine.length > 0,
    `audit.log has SECCOMP lines with pid=${c.pid} (${seccompRecords(lines).length} SECCOMP lines in all)`,
  );
  t.ok(
    mine.every((r) => r.code === CODE_LOG),
    'every one carries the LOG action (code=0x7ffc0000)',
  );
  t.ok(
    mine.every((r) => r.arch === 'c000003e'),
    'every one is an x86_64 call',
  );
  const syscalls = new Set(mine.map((r) => r.syscall));
  t.ok(syscalls.has(59), 'the exec of the workload (execve, 59) is logged');
  t.ok(syscalls.has(1), "the shell's write of the echo (write, 1) is logged");
  t.ok(
    mine.some((r) => r.comm === 'sh' && r.exe === '/bin/busybox'),
    'records name the workload (comm="sh" exe="/bin/busybox")',
  );
  t.ok(
    mine.every((r) => r.line.startsWith('type=SECCOMP msg=audit(')),
    'lines are auditd records',
  );
});
