import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { generate, parseMakefileAbis64, parseTable } from '../../scripts/gen-syscalls.js';
import {
  ARCHES,
  X32_SYSCALL_BIT,
  archFromAuditArch,
  archFromSeccomp,
  archesKnowing,
  isKnownSyscall,
  resolveAuditSyscall,
  syscallName,
  syscallNumber,
  type Arch,
} from '../../shared/syscalls/index.js';
import { SYSCALL_TABLES } from '../../shared/syscalls/tables.generated.js';

const execFileP = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const shared = fileURLToPath(new URL('../../../shared/', import.meta.url));
const kernelDir = `${shared}linux-syscalls`;

const ARM_PRIVATE_BASE = 0x0f0000;
/** Numbers we ask libseccomp about: past every table we have (x32's own range ends at 547). */
const SCAN_LIMIT = 600;

/**
 * Where this libseccomp (Debian 12, 2.5.4-1+deb12u1) legitimately differs from our kernel tables.
 * Every entry must still be observed, so a stale one fails too.
 */
const LIBSECCOMP_DIFFERS: readonly {
  arch: Arch;
  nr: number;
  libseccomp: string | undefined;
  ours: string | undefined;
  why: string;
}[] = [
  // Newer than libseccomp's tables, but numbered below calls it does know:
  { arch: 'x86_64', nr: 335, libseccomp: undefined, ours: 'uretprobe', why: 'added in Linux 6.11' },
  {
    arch: 'x32',
    nr: X32_SYSCALL_BIT | 335,
    libseccomp: undefined,
    ours: 'uretprobe',
    why: 'added in Linux 6.11 as a common x86 row',
  },
  {
    arch: 'x32',
    nr: X32_SYSCALL_BIT | 453,
    libseccomp: undefined,
    ours: 'map_shadow_stack',
    why: 'the kernel row is `453 common`, so x32 has it; libseccomp lists it for x86_64 only',
  },
  {
    arch: 'riscv64',
    nr: 258,
    libseccomp: undefined,
    ours: 'riscv_hwprobe',
    why: 'added in Linux 6.4 (riscv ABI row); libseccomp lacks it',
  },
  // libseccomp keeps asm-generic/unistd.h's old `__NR_nfsservctl 42` (wired to sys_ni_syscall);
  // the kernel's scripts/syscall.tbl (6.11) that replaced that header has no row 42.
  {
    arch: 'aarch64',
    nr: 42,
    libseccomp: 'nfsservctl',
    ours: undefined,
    why: 'no row 42 in the generic table',
  },
  {
    arch: 'riscv64',
    nr: 42,
    libseccomp: 'nfsservctl',
    ours: undefined,
    why: 'no row 42 in the generic table',
  },
  // Our ppc and s390 tables are copies at commit cb8c4312 (≈ v6.7, "futex: Add sys_futex_wait()"),
  // older than 453 being reserved on every arch and than 456 futex_requeue (README of the copy).
  {
    arch: 'ppc64le',
    nr: 453,
    libseccomp: 'map_shadow_stack',
    ours: undefined,
    why: 'copied table predates it',
  },
  {
    arch: 'ppc64le',
    nr: 456,
    libseccomp: 'futex_requeue',
    ours: undefined,
    why: 'copied table predates it',
  },
  {
    arch: 's390x',
    nr: 453,
    libseccomp: 'map_shadow_stack',
    ours: undefined,
    why: 'copied table predates it',
  },
  {
    arch: 's390x',
    nr: 456,
    libseccomp: 'futex_requeue',
    ours: undefined,
    why: 'copied table predates it',
  },
];

const MISSING_RESOLVER =
  'scmp_sys_resolver (libseccomp) is not installed: install the Debian package `seccomp` ' +
  '(apt-get install seccomp); this test compares our tables with it and cannot run without it';

function resolverInstalled(): boolean {
  const r = spawnSync('scmp_sys_resolver', ['-h'], { encoding: 'utf8' });
  return r.error === undefined;
}

/**
 * Asks scmp_sys_resolver about many numbers or names on one arch. It takes one query per run,
 * so one shell loops over all of them: one spawn from node instead of hundreds.
 */
async function resolveMany(arch: Arch, queries: readonly string[]): Promise<Map<string, string>> {
  const script =
    'a=$1; shift; for q in "$@"; do r=$(scmp_sys_resolver -a "$a" "$q") || exit 1; ' +
    'printf "%s %s\\n" "$q" "$r"; done';
  const { stdout } = await execFileP('sh', ['-c', script, 'sh', arch, ...queries], {
    maxBuffer: 16 * 1024 * 1024,
  });
  const out = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    if (line === '') continue;
    const [q, r] = line.split(' ');
    if (q !== undefined && r !== undefined) out.set(q, r);
  }
  const asked = new Set(queries).size;
  if (out.size !== asked) throw new Error(`${arch}: ${out.size} answers for ${asked} queries`);
  return out;
}

/** The numbers to scan on an arch, as seccomp and audit see them. */
function scanNumbers(arch: Arch): number[] {
  const base = arch === 'x32' ? X32_SYSCALL_BIT : 0;
  const nrs = Array.from({ length: SCAN_LIMIT + 1 }, (_, i) => base + i);
  if (arch === 'arm') for (let i = 0; i <= 0x10; i++) nrs.push(ARM_PRIVATE_BASE + i);
  return nrs;
}

t.test('our tables agree with libseccomp for every number it knows', async (t) => {
  if (!resolverInstalled()) {
    t.fail(MISSING_RESOLVER);
    return;
  }
  const seen = new Set<(typeof LIBSECCOMP_DIFFERS)[number]>();
  const expected = (arch: Arch, nr: number) => LIBSECCOMP_DIFFERS.find((e) => e.arch === arch && e.nr === nr);

  const results = await Promise.all(
    ARCHES.map(async (arch) => {
      const nrs = scanNumbers(arch);
      const ourNames = SYSCALL_TABLES[arch].map(([, name]) => name);
      const [byNr, byName] = await Promise.all([resolveMany(arch, nrs.map(String)), resolveMany(arch, ourNames)]);
      return { arch, nrs, byNr, byName };
    }),
  );

  for (const { arch, nrs, byNr, byName } of results) {
    await t.test(arch, async (t) => {
      const lib = new Map<number, string>();
      for (const nr of nrs) {
        const r = byNr.get(String(nr));
        if (r !== undefined && r !== 'UNKNOWN') lib.set(nr, r);
      }
      t.ok(lib.size > 250, `libseccomp knows ${arch} (${lib.size} numbers)`);
      // The newest number libseccomp knows in the main range (x32's own 512.. and arm's private
      // range excluded): ours-only numbers above it are simply newer than this libseccomp.
      const libNewest = Math.max(...[...lib.keys()].map((nr) => nr & ~X32_SYSCALL_BIT).filter((nr) => nr < 512));
      const mismatches: string[] = [];
      for (const nr of nrs) {
        const ours = syscallName(arch, nr);
        const theirs = lib.get(nr);
        if (ours === theirs) continue;
        const exc = expected(arch, nr);
        if (exc !== undefined && exc.ours === ours && exc.libseccomp === theirs) {
          seen.add(exc);
          continue;
        }
        if (theirs === undefined && (nr & ~X32_SYSCALL_BIT) > libNewest) continue;
        mismatches.push(`${nr}: ours ${ours ?? '(none)'}, libseccomp ${theirs ?? '(none)'}`);
      }
      t.same(mismatches, [], `${arch}: number -> name agrees with libseccomp up to ${libNewest}`);

      // name -> number, both ways.
      const nameMismatches: string[] = [];
      for (const [nr, name] of lib) {
        if (syscallNumber(arch, name) !== nr && expected(arch, nr) === undefined) {
          nameMismatches.push(`libseccomp ${name}=${nr}, ours ${syscallNumber(arch, name) ?? '(none)'}`);
        }
      }
      for (const [nr, name] of SYSCALL_TABLES[arch]) {
        const theirs = Number(byName.get(name));
        if (theirs === nr) continue;
        // Negative: a name libseccomp has no direct number for here. Fine if it does not know
        // the number either (newer call or listed above), or if its number scan gave this very
        // name (x86's socket and ipc calls: libseccomp answers a pseudo number so that a filter
        // matches both the direct call and the socketcall/ipc multiplexer).
        if (theirs < 0 && (lib.get(nr) === undefined || lib.get(nr) === name)) continue;
        nameMismatches.push(`ours ${name}=${nr}, libseccomp ${byName.get(name) ?? '(none)'}`);
      }
      t.same(nameMismatches, [], `${arch}: name -> number agrees with libseccomp`);
    });
  }
  await t.test('every listed difference was observed', async (t) => {
    const stale = LIBSECCOMP_DIFFERS.filter((e) => !seen.has(e));
    t.same(
      stale.map((e) => `${e.arch} ${e.nr}`),
      [],
      'no stale exceptions',
    );
  });
});

t.test('spot checks from the captured audit corpus', async (t) => {
  const cases: [Arch, number, string][] = [
    ['x86_64', 257, 'openat'],
    ['x86_64', 217, 'getdents64'],
    ['x86_64', 230, 'clock_nanosleep'],
    ['x86_64', 258, 'mkdirat'],
    ['x86_64', 83, 'mkdir'],
    ['x86_64', 63, 'uname'],
    ['x86_64', 39, 'getpid'],
    ['x86', 20, 'getpid'],
    ['x86', 39, 'mkdir'],
    ['x86', 122, 'uname'],
    ['x32', 0x40000027, 'getpid'],
    ['x32', X32_SYSCALL_BIT | 512, 'rt_sigaction'],
    ['aarch64', 56, 'openat'],
    ['riscv64', 56, 'openat'],
    ['riscv64', 259, 'riscv_flush_icache'],
    ['arm', 0x0f0002, 'cacheflush'],
    ['arm', 0x0f0005, 'set_tls'],
    ['ppc64le', 20, 'getpid'],
    ['s390x', 20, 'getpid'],
  ];
  for (const [arch, nr, name] of cases) {
    t.equal(syscallName(arch, nr), name, `${arch} ${nr} is ${name}`);
    t.equal(syscallNumber(arch, name), nr, `${arch} ${name} is ${nr}`);
  }
  t.equal(syscallName('x32', 39), undefined, 'x32 numbers need the x32 bit');
  t.equal(syscallName('x86_64', 512), undefined, 'x32-only rows are not x86_64');
  t.equal(syscallNumber('aarch64', 'open'), undefined, 'the generic table has no open');
  t.equal(syscallNumber('riscv64', 'renameat'), undefined, 'riscv64 lacks the renameat ABI');
  t.equal(syscallNumber('aarch64', 'renameat'), 38, 'arm64 has the renameat ABI');
  t.equal(syscallNumber('ppc64le', 'spu_run'), 278, 'ppc64le keeps common rows');
  t.equal(syscallNumber('x86_64', 'afs_syscall'), 183, 'rows without an entry point are kept');

  t.same(resolveAuditSyscall('c000003e', 1073741863), { arch: 'x32', name: 'getpid' });
  t.same(resolveAuditSyscall('C000003E', 257), { arch: 'x86_64', name: 'openat' });
  t.same(resolveAuditSyscall('40000003', 39), { arch: 'x86', name: 'mkdir' });
  t.same(resolveAuditSyscall('c000003e', 999), { arch: 'x86_64', name: undefined });
  t.same(resolveAuditSyscall('c000003e', -1), { arch: 'x86_64', name: undefined });
  t.equal(resolveAuditSyscall('deadbeef', 1), undefined, 'unknown audit arch');
});

t.test('every SECCOMP record of the corpus resolves as ausearch -i does', async (t) => {
  const log = `${shared}node-facts/corpus/audit-enriched.log`;
  const raw = new Map<string, { arch: string; nr: number }>();
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    const m = /^type=SECCOMP msg=audit\([\d.]+:(\d+)\):.* arch=([0-9a-f]+) syscall=(\d+)/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined && m[3] !== undefined) {
      raw.set(m[1], { arch: m[2], nr: Number(m[3]) });
    }
  }
  t.ok(raw.size > 300, `${raw.size} SECCOMP records`);
  const ausearch = spawnSync('ausearch', ['-i', '-if', log, '-m', 'SECCOMP'], { encoding: 'utf8' });
  if (ausearch.error !== undefined) {
    t.fail('ausearch is not installed: install the Debian package `auditd`');
    return;
  }
  const names = { x86_64: 'x86_64', i386: 'x86' } as const;
  let checked = 0;
  for (const line of ausearch.stdout.split('\n')) {
    const m = /msg=audit\([^)]*:(\d+)\).* arch=(\w+) syscall=(\S+)/.exec(line);
    if (m?.[1] === undefined || m[2] === undefined || m[3] === undefined) continue;
    const rec = raw.get(m[1]);
    if (rec === undefined) continue;
    const got = resolveAuditSyscall(rec.arch, rec.nr);
    if (m[3].startsWith('unknown-syscall')) {
      // ausearch does not know x32; the corpus README says this record is x32 getpid.
      t.same(got, { arch: 'x32', name: 'getpid' }, `serial ${m[1]} (x32, unknown to ausearch)`);
    } else {
      t.same(got, { arch: names[m[2] as keyof typeof names], name: m[3] }, `serial ${m[1]}`);
    }
    checked++;
  }
  t.equal(checked, raw.size, 'ausearch interpreted every record');
});

/** Every syscall name in the real profiles (CRs) and in the workshop's printed profiles. */
function profileNames(): Map<string, string> {
  const names = new Map<string, string>();
  const dir = `${shared}real-profiles`;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(readFileSync(`${dir}/${file}`, 'utf8'))) {
      const spec = (doc.toJS() as { spec?: { syscalls?: { names?: string[] }[] } } | null)?.spec;
      for (const rule of spec?.syscalls ?? []) for (const n of rule.names ?? []) names.set(n, file);
    }
  }
  const workshop = readFileSync(`${shared}seed/workshop-security-profiles-operator.md`, 'utf8');
  for (const line of workshop.split('\n')) {
    if (!line.startsWith('{"defaultAction"')) continue;
    const profile = JSON.parse(line) as { syscalls?: { names: string[] }[] };
    for (const rule of profile.syscalls ?? []) for (const n of rule.names) names.set(n, 'workshop');
  }
  return names;
}

t.test('every name used by the real and workshop profiles is known', async (t) => {
  const names = profileNames();
  t.ok(names.size > 400, `${names.size} distinct names`);
  const unknown = [...names].filter(([n]) => !isKnownSyscall(n)).map(([n, f]) => `${n} (${f})`);
  t.same(unknown, [], 'no unknown names');
  for (const n of [
    '_sysctl',
    'stime',
    'vm86old',
    'vm86',
    'umount',
    'afs_syscall',
    'tuxcall',
    'vserver',
    'security',
    'epoll_ctl_old',
    'getpmsg',
    'putpmsg',
    'create_module',
    'get_kernel_syms',
    'query_module',
    'nfsservctl',
    'uselib',
    'sysfs',
    'ustat',
    'socketcall',
    'ipc',
  ]) {
    t.ok(archesKnowing(n).length > 0, `${n} is in a kernel table (${archesKnowing(n).join(',')})`);
  }
  // `syscall` (podman) is in none of our tables: libseccomp knows it only as mips o32's 4000.
  t.ok(isKnownSyscall('syscall'));
  t.same(archesKnowing('syscall'), []);
  if (resolverInstalled()) {
    t.equal(spawnSync('scmp_sys_resolver', ['-a', 'mips', 'syscall'], { encoding: 'utf8' }).stdout.trim(), '4000');
  } else {
    t.fail(MISSING_RESOLVER);
  }
  t.notOk(isKnownSyscall('no_such_call'));
  t.notOk(isKnownSyscall(''));
  t.same(archesKnowing('open'), ['x86_64', 'x86', 'x32', 'arm', 'ppc64le', 's390x']);
});

t.test('arch names', async (t) => {
  const seccomp: [string, Arch | undefined][] = [
    ['SCMP_ARCH_X86_64', 'x86_64'],
    ['SCMP_ARCH_X86', 'x86'],
    ['SCMP_ARCH_X32', 'x32'],
    ['SCMP_ARCH_AARCH64', 'aarch64'],
    ['SCMP_ARCH_ARM', 'arm'],
    ['SCMP_ARCH_RISCV64', 'riscv64'],
    ['SCMP_ARCH_PPC64LE', 'ppc64le'],
    ['SCMP_ARCH_S390X', 's390x'],
    ['SCMP_ARCH_MIPS', undefined],
    ['SCMP_ARCH_PPC64', undefined],
    ['SCMP_ARCH_S390', undefined],
    ['scmp_arch_x86_64', undefined],
  ];
  for (const [s, arch] of seccomp) t.equal(archFromSeccomp(s), arch, s);
  const audit: [string, Arch | undefined][] = [
    ['c000003e', 'x86_64'],
    ['C000003E', 'x86_64'],
    ['40000003', 'x86'],
    ['c00000b7', 'aarch64'],
    ['40000028', 'arm'],
    ['c00000f3', 'riscv64'],
    ['c0000015', 'ppc64le'],
    ['80000016', 's390x'],
    ['00000016', undefined],
    ['', undefined],
  ];
  for (const [hex, arch] of audit) t.equal(archFromAuditArch(hex), arch, hex);
  t.same([...ARCHES].sort(), Object.keys(SYSCALL_TABLES).sort(), 'ARCHES covers the tables');
});

t.test('generator', async (t) => {
  t.test('the committed tables are what the generator makes', async (t) => {
    const committed = readFileSync(`${root}shared/syscalls/tables.generated.ts`, 'utf8');
    t.ok(generate(kernelDir) === committed, 'regenerate with: npx node scripts/gen-syscalls.ts');
  });
  t.test('parses rows and ABIs', async (t) => {
    t.same(parseTable('# c\n\n42\tcommon\tfoo\tsys_foo # x\n7 64 bar\n', 'f'), [
      { nr: 42, abi: 'common', name: 'foo' },
      { nr: 7, abi: '64', name: 'bar' },
    ]);
    t.throws(() => parseTable('x common foo\n', 'f.tbl'), /f\.tbl:1: not a syscall table row/);
    t.throws(() => parseTable("1 common fo'o\n", 'f.tbl'), /f\.tbl:1: not a syscall name/);
    t.same(parseMakefileAbis64('syscall_abis_32 += a\nsyscall_abis_64 += renameat rlimit\n'), ['renameat', 'rlimit']);
  });
  t.test('per-arch counts stay plausible', async (t) => {
    for (const arch of ARCHES) t.ok(SYSCALL_TABLES[arch].length > 300, `${arch}: ${SYSCALL_TABLES[arch].length}`);
  });
});
