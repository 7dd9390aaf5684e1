// Issue 15 on a real node: /v1/check's verdicts (shared/profile/check.ts) are what runc 1.1.5 with
// libseccomp 2.5.4 and the kernel really do. Each profile runs a static program that makes each
// call by number (tests/fixtures/bin/callnr.c), one process per call; the verdict predicts the
// result: allow or log → what the call returns with no profile; deny → that errno; kill or trap →
// the process dies of SIGSYS.
import path from 'node:path';
import t from 'tap';
import { compileProfile, verdictFor, type Would } from '../../shared/profile/check.js';
import { renderSpec } from '../../shared/profile/render.js';
import type { SeccompProfileSpec } from '../../shared/profile/schema.js';
import { SYSCALL_TABLES } from '../../shared/syscalls/tables.generated.js';
import { syscallName, X32_SYSCALL_BIT, type Arch } from '../../shared/syscalls/index.js';
import { repoRoot } from '../helpers/shared.js';
import { RUNC_SPEC_CAPABILITIES, runContainer } from '../testbed/node.js';
import { ensureBusyboxRootfs, ensureStaticProgram } from '../testbed/rootfs.js';

const busybox = await ensureBusyboxRootfs();
const callnr = await ensureStaticProgram(path.join(repoRoot, 'tests/fixtures/bin/callnr.c'));
const SIGSYS_EXIT = 128 + 31;

// sched_yield and getcpu: calls neither busybox's sh nor the program's start-up makes, to kill and trap.
const NR = {
  sched_yield: 24,
  getpid: 39,
  mkdir: 83,
  getcpu: 309,
  rseq: 334,
  faccessat2: 439,
  mseal: 462,
  unnamed: 1000,
} as const;
const X32_GETPID = X32_SYSCALL_BIT + 39;
const CALLS: readonly number[] = [...Object.values(NR), X32_GETPID];

/** Every x86_64 name up to `max`, but `except`: enough for busybox and runc's init to start. */
const allUpTo = (max: number, except: readonly string[]): string[] =>
  SYSCALL_TABLES.x86_64.filter(([nr, name]) => nr <= max && !except.includes(name)).map(([, name]) => name);

/** What each call did in a container under `profile`: `ok`, `errno=N`, or `SIGSYS`. */
async function results(profile: string | undefined): Promise<Map<number, string>> {
  const script = CALLS.map((n) => `/usr/local/bin/callnr ${n} || echo "${n} rc=$?"`).join('; ');
  const ran = await runContainer(t, {
    rootfs: busybox,
    args: ['/bin/sh', '-c', script],
    profile,
    capabilities: RUNC_SPEC_CAPABILITIES,
    noNewPrivileges: true,
    binds: [{ source: callnr, destination: '/usr/local/bin/callnr' }],
    timeoutMs: 20_000,
  });
  if (ran.exitCode !== 0) throw new Error(`the container failed (${ran.exitCode}): ${ran.stderr.trim()}`);
  const out = new Map<number, string>();
  for (const line of ran.stdout.trim().split('\n')) {
    const [nr, what] = line.split(' ');
    out.set(Number(nr), what === `rc=${SIGSYS_EXIT}` ? 'SIGSYS' : (what ?? ''));
  }
  return out;
}

const baseline = await results(undefined);

interface Case {
  readonly title: string;
  readonly spec: SeccompProfileSpec;
  /** Verdicts the case is there to show (the test checks every call either way). */
  readonly shows: Partial<Record<number, Would | `deny ${number}`>>;
}

const ALLOW = 'SCMP_ACT_ALLOW';
const ERRNO = 'SCMP_ACT_ERRNO';
const CASES: readonly Case[] = [
  {
    title: 'actions and errnoRet',
    spec: {
      defaultAction: ALLOW,
      syscalls: [
        { names: ['mkdir'], action: ERRNO, errnoRet: 13 },
        { names: ['sched_yield'], action: 'SCMP_ACT_KILL_PROCESS' },
        { names: ['getcpu'], action: 'SCMP_ACT_TRAP' },
        { names: ['faccessat2'], action: 'SCMP_ACT_KILL' },
      ],
    },
    shows: { [NR.mkdir]: 'deny 13', [NR.sched_yield]: 'kill', [NR.getcpu]: 'trap', [NR.faccessat2]: 'kill' },
  },
  {
    title: 'two rules without conditions: the first is taken',
    spec: {
      defaultAction: ALLOW,
      syscalls: [
        { names: ['mkdir'], action: ERRNO },
        { names: ['mkdir'], action: 'SCMP_ACT_KILL' },
      ],
    },
    shows: { [NR.mkdir]: 'deny 1' },
  },
  {
    title: 'a rule with the default action is left out',
    spec: {
      defaultAction: ALLOW,
      syscalls: [
        { names: ['mkdir'], action: ALLOW },
        { names: ['mkdir'], action: ERRNO, errnoRet: 5 },
      ],
    },
    shows: { [NR.mkdir]: 'deny 5' },
  },
  {
    title: 'ENOSYS above the highest number named, on a listed architecture',
    spec: {
      defaultAction: ERRNO,
      architectures: ['SCMP_ARCH_X86_64'],
      syscalls: [{ names: allUpTo(400, ['mkdir']), action: ALLOW }],
    },
    shows: { [NR.mkdir]: 'deny 1', [NR.faccessat2]: 'deny 38', [NR.rseq]: 'allow', [NR.getpid]: 'allow' },
  },
  {
    title: 'no ENOSYS stub without architectures: the default errno',
    spec: { defaultAction: ERRNO, syscalls: [{ names: allUpTo(400, ['mkdir']), action: ALLOW }] },
    shows: { [NR.faccessat2]: 'deny 1', [NR.unnamed]: 'deny 1' },
  },
  {
    title: 'x32 calls are killed unless SCMP_ARCH_X32 is listed',
    spec: { defaultAction: ALLOW, architectures: ['SCMP_ARCH_X86_64'] },
    shows: { [X32_GETPID]: 'kill' },
  },
  {
    title: 'x32 listed: x32 calls reach the kernel',
    spec: { defaultAction: ALLOW, architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X32'] },
    shows: { [X32_GETPID]: 'allow' },
  },
  {
    title: 'a name libseccomp 2.5.4 does not know is skipped (mseal)',
    spec: { defaultAction: ALLOW, syscalls: [{ names: ['mseal'], action: ERRNO }] },
    shows: { [NR.mseal]: 'allow' },
  },
  {
    title: 'a complain profile logs and allows',
    spec: { defaultAction: 'SCMP_ACT_LOG', syscalls: [{ names: ['getpid'], action: ALLOW }] },
    shows: { [NR.mkdir]: 'log', [NR.getpid]: 'allow' },
  },
];

const archOf = (nr: number): Arch => (nr >= X32_SYSCALL_BIT ? 'x32' : 'x86_64');

for (const c of CASES) {
  t.test(c.title, async (t) => {
    const got = await results(renderSpec(c.spec));
    const profile = compileProfile(c.spec, 'x86_64');
    for (const nr of CALLS) {
      const arch = archOf(nr);
      const v = verdictFor(profile, { arch, nr, name: syscallName(arch, nr) });
      const expected =
        v.would === 'deny'
          ? `errno=${v.outcome.ret ?? 1}`
          : v.would === 'kill' || v.would === 'trap'
            ? 'SIGSYS'
            : baseline.get(nr);
      const label = v.would === 'deny' ? `deny ${v.outcome.ret ?? 1}` : v.would;
      const shown = c.shows[nr];
      if (shown !== undefined) t.equal(label, shown, `${arch}:${nr}: the verdict is ${shown}`);
      t.equal(
        got.get(nr),
        expected,
        `${arch}:${nr} (${syscallName(arch, nr) ?? 'unnamed'}): ${label} → ${expected} on the real runc`,
      );
    }
  });
}

t.test('the baseline: every call returns without a profile', async (t) => {
  t.equal(baseline.size, CALLS.length);
  t.equal(baseline.get(NR.getpid), 'ok');
  t.equal(baseline.get(NR.mkdir), 'errno=14', 'mkdir(NULL) is EFAULT: allowed calls are told apart from denied ones');
});
