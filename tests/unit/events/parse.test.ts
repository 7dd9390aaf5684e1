import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { resolveAuditSyscall } from '../../../shared/syscalls/index.js';
import {
  decodeCode,
  decodeUntrusted,
  parseLine,
  type ParsedLine,
  type SeccompRecord,
} from '../../../agent/src/events/parse.js';

const here = dirname(fileURLToPath(import.meta.url));
const corpusDir = join(here, '..', '..', '..', '..', 'shared', 'node-facts', 'corpus');
const corpus = (name: string): string[] => {
  const lines = readFileSync(join(corpusDir, name), 'latin1').split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
};
const opts = { resolve: resolveAuditSyscall };
const strict = { resolve: resolveAuditSyscall, strict: true };

function rec(p: ParsedLine): SeccompRecord {
  if (p.kind !== 'seccomp') throw new Error(`expected a seccomp record, got ${JSON.stringify(p)}`);
  return p.record;
}

// Names from scmp_sys_resolver 2.5.4 (`-a x86_64 N`, `-a x86 N`, `-a x32 N`), the oracle the
// corpus README names. Every (arch, nr) pair of the corpus is here.
const EXPECTED_NAMES: Record<string, string> = {
  'x86_64:0': 'read',
  'x86_64:1': 'write',
  'x86_64:3': 'close',
  'x86_64:9': 'mmap',
  'x86_64:10': 'mprotect',
  'x86_64:11': 'munmap',
  'x86_64:12': 'brk',
  'x86_64:13': 'rt_sigaction',
  'x86_64:15': 'rt_sigreturn',
  'x86_64:33': 'dup2',
  'x86_64:39': 'getpid',
  'x86_64:40': 'sendfile',
  'x86_64:56': 'clone',
  'x86_64:59': 'execve',
  'x86_64:61': 'wait4',
  'x86_64:63': 'uname',
  'x86_64:79': 'getcwd',
  'x86_64:83': 'mkdir',
  'x86_64:89': 'readlink',
  'x86_64:102': 'getuid',
  'x86_64:110': 'getppid',
  'x86_64:138': 'fstatfs',
  'x86_64:157': 'prctl',
  'x86_64:158': 'arch_prctl',
  'x86_64:202': 'futex',
  'x86_64:217': 'getdents64',
  'x86_64:218': 'set_tid_address',
  'x86_64:230': 'clock_nanosleep',
  'x86_64:231': 'exit_group',
  'x86_64:233': 'epoll_ctl',
  'x86_64:257': 'openat',
  'x86_64:258': 'mkdirat',
  'x86_64:262': 'newfstatat',
  'x86_64:273': 'set_robust_list',
  'x86_64:293': 'pipe2',
  'x86_64:302': 'prlimit64',
  'x86_64:318': 'getrandom',
  'x86_64:334': 'rseq',
  'x86:20': 'getpid',
  'x86:39': 'mkdir',
  'x86:122': 'uname',
  'x32:1073741863': 'getpid',
};

function checkEveryLine(t: Test, name: string, expectSeccomp: number, strictMode: boolean): SeccompRecord[] {
  const lines = corpus(name);
  const out: SeccompRecord[] = [];
  let other = 0;
  lines.forEach((line, i) => {
    const p = parseLine(line, strictMode ? strict : opts);
    const isSeccomp = /type=(SECCOMP|1326) /.test(line);
    if (isSeccomp) {
      const r = rec(p);
      const key = `${r.arch}:${r.syscallNr}`;
      const want = EXPECTED_NAMES[key];
      if (want === undefined || r.syscall !== want) t.fail(`${name}:${i + 1} ${key} -> ${r.syscall}, want ${want}`);
      out.push(r);
    } else if (p.kind === 'other' || p.kind === 'lost') {
      other++;
    } else {
      t.fail(`${name}:${i + 1} parsed as ${p.kind}: ${line.slice(0, 80)}`);
    }
  });
  t.equal(out.length, expectSeccomp, `${name}: ${expectSeccomp} SECCOMP records`);
  t.equal(out.length + other, lines.length, `${name}: every line accounted for`);
  return out;
}

t.test('every line of audit-enriched.log parses; SECCOMP lines resolve to the README names', async (t) => {
  const recs = checkEveryLine(t, 'audit-enriched.log', 321, true);
  t.same(
    [...new Set(recs.map((r) => `${r.arch}:${r.syscallNr}`))].sort(),
    Object.keys(EXPECTED_NAMES).sort(),
    'the corpus holds exactly the README pairs',
  );
});

t.test('every line of audit-raw.log parses', async (t) => {
  checkEveryLine(t, 'audit-raw.log', 10, true);
});

t.test('every line of kmsg.log (dmesg form) and kmsg-raw.log (/dev/kmsg form) parses', async (t) => {
  const a = checkEveryLine(t, 'kmsg.log', 23, false);
  const b = checkEveryLine(t, 'kmsg-raw.log', 23, false);
  t.same(a, b, 'both forms give the same records');
  const lost = corpus('kmsg.log')
    .map((l) => parseLine(l, opts))
    .filter((p) => p.kind === 'lost');
  t.same(lost, [{ kind: 'lost', count: 90 }], '"90 callbacks suppressed" is 90 lost records');
  const lostRaw = corpus('kmsg-raw.log')
    .map((l) => parseLine(l, opts))
    .filter((p) => p.kind === 'lost');
  t.same(lostRaw, [{ kind: 'lost', count: 90 }]);
});

t.test('the README lines, field by field', async (t) => {
  const e = corpus('audit-enriched.log');
  const at = (n: number): SeccompRecord => rec(parseLine(e[n - 1] ?? '', strict));

  t.same(
    at(2),
    {
      time: 1795867209801,
      serial: 61933,
      auditId: '1795867209.801:61933',
      auid: 4294967295,
      uid: 0,
      gid: 0,
      ses: 4294967295,
      pid: 18011,
      comm: 'runc:[2:INIT]',
      exe: '/',
      sig: 0,
      auditArch: 'c000003e',
      arch: 'x86_64',
      syscallNr: 3,
      syscall: 'close',
      compat: 0,
      ip: '0x40828e',
      code: 0x7ffc0000,
      action: 'SCMP_ACT_LOG',
      errno: null,
      data: 0,
    },
    'line 2: every field',
  );
  t.match(at(4), { syscall: 'openat', comm: 'runc:[2:INIT]' });
  t.match(at(11), { syscall: 'getdents64' });
  t.match(at(62), { syscall: 'clock_nanosleep', comm: 'sleep' });
  t.match(at(86), { syscall: 'mkdirat', code: 0x50000, action: 'SCMP_ACT_ERRNO', errno: 0 });
  t.match(at(88), { syscall: 'mkdir', code: 0x80000000, action: 'SCMP_ACT_KILL_PROCESS', sig: 31 });
  t.match(at(90), { syscall: 'mkdirat', code: 0x30000, action: 'SCMP_ACT_TRAP', sig: 0, errno: null });
  t.match(at(122), { arch: 'x86', auditArch: '40000003', syscallNr: 20, syscall: 'getpid', compat: 1 });
  t.match(at(123), { arch: 'x86', syscallNr: 39, syscall: 'mkdir', compat: 1 });
  t.match(at(124), { arch: 'x86', syscallNr: 122, syscall: 'uname' });
  t.match(at(125), {
    arch: 'x32',
    syscallNr: 1073741863,
    syscall: 'getpid',
    code: 0,
    action: 'SCMP_ACT_KILL_THREAD',
    sig: 31,
  });
  t.match(at(127), { syscall: 'mkdir', action: 'SCMP_ACT_KILL_THREAD' });
  t.match(at(384), { syscall: 'uname', serial: 62277 });
  t.equal(parseLine(e[384] ?? '', strict).kind, 'other', "line 385: the rule's SYSCALL record is not a seccomp event");
  t.equal(parseLine(e[86] ?? '', strict).kind, 'other', 'line 87: DAEMON_ROTATE');

  const k = corpus('kmsg.log');
  const kat = (n: number): SeccompRecord => rec(parseLine(k[n - 1] ?? '', opts));
  t.match(kat(3), {
    syscall: 'mkdir',
    code: 0x80000000,
    pid: 14219,
    comm: 'mkdir',
    exe: '/bin/busybox',
    time: 1795867123853,
    serial: 61799,
  });
  t.match(kat(5), { syscall: 'mkdirat', code: 0x50000, action: 'SCMP_ACT_ERRNO' });
  t.match(kat(9), { syscall: 'getdents64' });
  t.same(
    [11, 12, 13].map((n) => kat(n).syscall),
    ['getpid', 'mkdir', 'uname'],
  );
  t.same(
    [11, 12, 13].map((n) => kat(n).arch),
    ['x86', 'x86', 'x86'],
  );
});

t.test('syslog prefixes around the kernel text', async (t) => {
  const body =
    'audit: type=1326 audit(1795867123.853:61799): auid=4294967295 uid=0 gid=0 ses=4294967295 pid=14219 comm="mkdir" exe="/bin/busybox" sig=31 arch=c000003e syscall=83 compat=0 ip=0x47b567 code=0x80000000';
  for (const prefix of [
    'Nov 28 12:33:01 node1 kernel: [  555.905776] ',
    'Nov 28 12:33:01 node1 kernel: ',
    '2026-11-28T12:33:01.123456+00:00 node1 kernel: [  555.905776] ',
    '<5>Nov 28 12:33:01 kernel: ',
  ]) {
    t.match(parseLine(prefix + body, opts), { kind: 'seccomp', record: { syscall: 'mkdir', serial: 61799 } }, prefix);
  }
  // The audisp syslog plugin writes auditd's own form after the syslog prefix.
  const audisp =
    'Nov 28 12:33:01 node1 audisp-syslog: type=SECCOMP msg=audit(1795867210.269:62015): auid=4294967295 uid=0 gid=0 ses=4294967295 pid=18105 comm="uname" exe="/bin/busybox" sig=0 arch=c000003e syscall=63 compat=0 ip=0x460997 code=0x7ffc0000';
  t.match(parseLine(audisp, opts), { kind: 'seccomp', record: { syscall: 'uname' } });
  t.equal(parseLine('Nov 28 12:33:01 node1 sshd[1]: Accepted publickey for root', opts).kind, 'other');
  t.equal(parseLine('Nov 28 12:33:01 node1 app: type=fancy no header', opts).kind, 'other');
});

t.test('kernel-log records from user space are not audit records', async (t) => {
  // `echo 'audit: type=1326 ...' > /dev/kmsg` arrives with facility user (prio 12), not the kernel's 0.
  const fake =
    '12,900,555905776,-;audit: type=1326 audit(1795867123.853:61799): auid=0 uid=0 gid=0 ses=1 pid=1 comm="x" exe="/x" sig=0 arch=c000003e syscall=83 compat=0 ip=0x1 code=0x7ffc0000';
  t.equal(parseLine(fake, opts).kind, 'other');
  t.equal(parseLine('12,901,555905776,-;kauditd_printk_skb: 5 callbacks suppressed', opts).kind, 'other');
  t.same(parseLine('4,902,555905776,-;kauditd_printk_skb: 5 callbacks suppressed', opts), { kind: 'lost', count: 5 });
  t.equal(
    parseLine('4,903,1,-;net_ratelimit: 5 callbacks suppressed', opts).kind,
    'other',
    'other subsystems are not audit loss',
  );
});

t.test('comm and exe: quoted, hex-encoded, (null)', async (t) => {
  t.equal(decodeUntrusted('"sleep"'), 'sleep');
  t.equal(decodeUntrusted('6D7920617070'), 'my app');
  t.equal(decodeUntrusted('2F746D702F612062'), '/tmp/a b');
  t.equal(decodeUntrusted('(null)'), null);
  const line =
    'type=SECCOMP msg=audit(1795867210.269:62015): auid=1000 uid=1000 gid=1000 ses=3 pid=42 comm=6D7920617070 exe=2F7573722F62696E2F6D7920617070 sig=0 arch=c000003e syscall=63 compat=0 ip=0x460997 code=0x7ffc0000\x1dAUID="u" UID="u"';
  t.match(rec(parseLine(line, strict)), { comm: 'my app', exe: '/usr/bin/my app', auid: 1000, uid: 1000, ses: 3 });
});

t.test('decodeCode: every action, errno from the low bits', async (t) => {
  t.same(decodeCode(0x80000000), { action: 'SCMP_ACT_KILL_PROCESS', data: 0, errno: null });
  t.same(decodeCode(0), { action: 'SCMP_ACT_KILL_THREAD', data: 0, errno: null });
  t.same(decodeCode(0x30000), { action: 'SCMP_ACT_TRAP', data: 0, errno: null });
  t.same(decodeCode(0x50026), { action: 'SCMP_ACT_ERRNO', data: 38, errno: 38 });
  t.same(decodeCode(0x7fc00000), { action: 'SCMP_ACT_NOTIFY', data: 0, errno: null });
  t.same(decodeCode(0x7ff00007), { action: 'SCMP_ACT_TRACE', data: 7, errno: null });
  t.same(decodeCode(0x7ffc0000), { action: 'SCMP_ACT_LOG', data: 0, errno: null });
  t.same(decodeCode(0x7fff0000), { action: 'SCMP_ACT_ALLOW', data: 0, errno: null });
  t.equal(decodeCode(0x12340000).action, 'UNKNOWN');
});

t.test('arches and numbers the tables do not know', async (t) => {
  const base = (arch: string, nr: string): string =>
    `type=SECCOMP msg=audit(1.000:1): pid=1 comm="a" exe="/a" sig=0 arch=${arch} syscall=${nr} compat=0 ip=0x1 code=0x7ffc0000`;
  t.match(rec(parseLine(base('c00000b7', '56'), strict)), { arch: 'aarch64', syscall: 'openat' });
  t.match(rec(parseLine(base('c000003e', '99999'), strict)), { arch: 'x86_64', syscall: null, syscallNr: 99999 });
  t.match(rec(parseLine(base('deadbeef', '1'), strict)), { arch: null, syscall: null, auditArch: 'deadbeef' });
});

t.test('malformed lines are reported, never thrown', async (t) => {
  const good = corpus('audit-raw.log')[6] ?? '';
  t.equal(rec(parseLine(good, strict)).syscall, 'mkdir');
  const cases: [string, string][] = [
    [good.slice(0, 60), 'cut in the header or fields'],
    [good.replace(/pid=\d+/, 'pid=x'), 'bad pid'],
    [good.replace(/ arch=\S+/, ''), 'no arch'],
    [good.replace(/syscall=\d+/, 'syscall='), 'empty syscall'],
    [good.replace(/code=\S+/, 'code=7ffc0000'), 'code without 0x'],
    [good.replace('audit(1795867156.705:61917)', 'audit(abc:61917)'), 'bad audit id'],
    ['garbage line', 'not an audit record'],
    ['type=SECCOMP', 'no header'],
  ];
  for (const [line, why] of cases) t.equal(parseLine(line, strict).kind, 'malformed', why);
  t.equal(parseLine('garbage line', opts).kind, 'other', 'outside strict mode other text is just other');
  t.equal(parseLine('', strict).kind, 'other', 'an empty line is not an error');
});

t.test('item 3: an out-of-range audit time is one malformed line', async (t) => {
  const good = corpus('audit-raw.log')[6] ?? '';
  for (const id of ['99999999999999999.999:2', '9000000000000.000:2', '8640000000000.001:2']) {
    const line = good.replace(/audit\([^)]*\)/, `audit(${id})`);
    const p = parseLine(line, strict);
    t.match(p, { kind: 'malformed', reason: /time/ }, `audit(${id}) is malformed`);
  }
  // The last millisecond a JavaScript Date can hold is still a time.
  const edge = rec(parseLine(good.replace(/audit\([^)]*\)/, 'audit(8640000000000.000:2)'), strict));
  t.equal(new Date(edge.time).toISOString(), '+275760-09-13T00:00:00.000Z');
});

t.test('R4 found: a negative "callbacks suppressed" count is no loss', async (t) => {
  t.equal(parseLine('audit: kauditd_printk_skb: -1 callbacks suppressed', opts).kind, 'other');
  t.match(parseLine('audit: kauditd_printk_skb: 7 callbacks suppressed', opts), { kind: 'lost', count: 7 });
});
