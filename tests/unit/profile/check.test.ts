// Issue 15: what a candidate profile would do to calls that were really made, with seccomp's
// semantics as runc 1.1.5 and libseccomp 2.5.4 load a profile (shared/profile/check.ts).
import t from 'tap';
import {
  compileProfile,
  describeVerdict,
  ENOSYS,
  verdictFor,
  type ObservedCall,
  type Would,
} from '../../../shared/profile/check.js';
import type { SeccompProfileSpec } from '../../../shared/profile/schema.js';
import { syscallNumber, type Arch } from '../../../shared/syscalls/index.js';

/** A call by name on `arch`, its number from our tables. */
function call(arch: Arch, name: string): ObservedCall {
  const nr = syscallNumber(arch, name);
  if (nr === undefined) throw new Error(`${name} is not a syscall on ${arch}`);
  return { arch, nr, name };
}

interface Case {
  readonly title: string;
  readonly spec: SeccompProfileSpec;
  readonly call: ObservedCall;
  readonly would: Would;
  readonly said: string;
  readonly because?: string;
  readonly rules?: readonly number[];
  readonly native?: Arch;
}

const ALLOW = 'SCMP_ACT_ALLOW';
const ERRNO = 'SCMP_ACT_ERRNO';
const LOG = 'SCMP_ACT_LOG';
const mode = (value: number): { index: number; value: number; op: 'SCMP_CMP_EQ' } => ({
  index: 1,
  value,
  op: 'SCMP_CMP_EQ',
});

const CASES: readonly Case[] = [
  // Actions, one rule each.
  ...(
    [
      ['SCMP_ACT_ALLOW', 'allow', 'allow'],
      ['SCMP_ACT_ERRNO', 'deny', 'deny (EPERM)'],
      ['SCMP_ACT_KILL', 'kill', 'kill'],
      ['SCMP_ACT_KILL_THREAD', 'kill', 'kill'],
      ['SCMP_ACT_KILL_PROCESS', 'kill', 'kill (process)'],
      ['SCMP_ACT_TRAP', 'trap', 'trap'],
      ['SCMP_ACT_LOG', 'log', 'log'],
      ['SCMP_ACT_TRACE', 'trace', 'trace'],
      ['SCMP_ACT_NOTIFY', 'notify', 'notify'],
    ] as const
  ).map(([action, would, said]): Case => ({
    title: `a rule with ${action}`,
    spec: {
      defaultAction: action === 'SCMP_ACT_ALLOW' ? LOG : ALLOW,
      syscalls: [{ names: ['mkdir'], action }],
    },
    call: call('x86_64', 'mkdir'),
    would,
    said,
    because: 'rule',
    rules: [0],
  })),
  {
    title: 'errnoRet is the errno',
    spec: { defaultAction: ALLOW, syscalls: [{ names: ['mkdir'], action: ERRNO, errnoRet: 13 }] },
    call: call('x86_64', 'mkdir'),
    would: 'deny',
    said: 'deny (EACCES)',
  },
  {
    title: 'errnoRet 0 is EPERM (the rendered file leaves it out, runc returns EPERM)',
    spec: { defaultAction: ALLOW, syscalls: [{ names: ['mkdir'], action: ERRNO, errnoRet: 0 }] },
    call: call('x86_64', 'mkdir'),
    would: 'deny',
    said: 'deny (EPERM)',
  },
  {
    title: 'an errno without a name here',
    spec: { defaultAction: ALLOW, syscalls: [{ names: ['mkdir'], action: ERRNO, errnoRet: 123 }] },
    call: call('x86_64', 'mkdir'),
    would: 'deny',
    said: 'deny (errno 123)',
  },
  // The default action.
  {
    title: 'no rule names the call: the default action',
    spec: { defaultAction: LOG, syscalls: [{ names: ['getpid'], action: ALLOW }] },
    call: call('x86_64', 'mkdir'),
    would: 'log',
    said: 'log',
    because: 'default action',
    rules: [],
  },
  {
    title: 'a rule whose action is the default action is skipped by runc',
    spec: {
      defaultAction: ALLOW,
      syscalls: [
        { names: ['mkdir'], action: ALLOW },
        { names: ['mkdir'], action: ERRNO },
      ],
    },
    call: call('x86_64', 'mkdir'),
    would: 'deny',
    said: 'deny (EPERM)',
    because: 'rule',
    rules: [1],
  },
  // Several rules.
  {
    title: 'two unconditional rules: the first one is taken (libseccomp keeps it; runc-cases shows it)',
    spec: {
      defaultAction: ALLOW,
      syscalls: [
        { names: ['mkdir'], action: ERRNO },
        { names: ['mkdir'], action: 'SCMP_ACT_KILL' },
      ],
    },
    call: call('x86_64', 'mkdir'),
    would: 'deny',
    said: 'deny (EPERM)',
    because: 'several rules',
    rules: [0, 1],
  },
  // Argument conditions.
  {
    title: 'only a rule with conditions names it: depends on arguments',
    spec: { defaultAction: ALLOW, syscalls: [{ names: ['mkdir'], action: ERRNO, args: [mode(511)] }] },
    call: call('x86_64', 'mkdir'),
    would: 'depends',
    said: 'depends on arguments',
    because: 'rules with argument conditions',
    rules: [0],
  },
  {
    title: 'conditional rules whose outcome is the default action either way',
    spec: {
      defaultAction: ERRNO,
      syscalls: [
        { names: ['getpid'], action: ALLOW },
        { names: ['mkdir'], action: ERRNO, errnoRet: 1, args: [mode(511)] },
      ],
    },
    call: call('x86_64', 'mkdir'),
    would: 'deny',
    said: 'deny (EPERM)',
    because: 'default action',
  },
  {
    title: 'a conditional and an unconditional rule with other actions: depends',
    spec: {
      defaultAction: ALLOW,
      syscalls: [
        { names: ['mkdir'], action: 'SCMP_ACT_KILL', args: [mode(7)] },
        { names: ['mkdir'], action: ERRNO },
      ],
    },
    call: call('x86_64', 'mkdir'),
    would: 'depends',
    said: 'depends on arguments',
    rules: [0, 1],
  },
  {
    title: 'conditional rules that all take the same action: that action',
    spec: {
      defaultAction: ALLOW,
      syscalls: [
        { names: ['mkdir'], action: ERRNO, args: [mode(7)] },
        { names: ['mkdir'], action: ERRNO },
      ],
    },
    call: call('x86_64', 'mkdir'),
    would: 'deny',
    said: 'deny (EPERM)',
    because: 'rules with argument conditions',
  },
  // Architectures.
  {
    title: 'an i386 call on an x86_64 node, x86 not listed: killed (bad arch)',
    spec: { defaultAction: ALLOW },
    call: call('x86', 'getpid'),
    would: 'kill',
    said: 'kill',
    because: 'architecture not in the profile',
  },
  {
    title: 'an i386 call with SCMP_ARCH_X86 listed: its table, its rules',
    spec: {
      defaultAction: ALLOW,
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'],
      syscalls: [{ names: ['mkdir'], action: ERRNO }],
    },
    // 39 is mkdir on i386 and getpid on x86_64: the number is read in the call's own table.
    call: { arch: 'x86', nr: 39, name: 'mkdir' },
    would: 'deny',
    said: 'deny (EPERM)',
    because: 'rule',
  },
  {
    title: 'x32 is an architecture of its own: killed unless SCMP_ARCH_X32 is listed',
    spec: { defaultAction: ALLOW, architectures: ['SCMP_ARCH_X86_64'] },
    call: call('x32', 'getpid'),
    would: 'kill',
    said: 'kill',
    because: 'architecture not in the profile',
  },
  {
    title: 'x32 listed: the x32 table',
    spec: {
      defaultAction: ALLOW,
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X32'],
      syscalls: [{ names: ['getpid'], action: ERRNO }],
    },
    call: call('x32', 'getpid'),
    would: 'deny',
    said: 'deny (EPERM)',
  },
  {
    title: 'the node’s own arch is in every filter, listed or not (aarch64 node)',
    native: 'aarch64',
    spec: { defaultAction: ALLOW, architectures: ['SCMP_ARCH_ARM'], syscalls: [{ names: ['getpid'], action: ERRNO }] },
    call: call('aarch64', 'getpid'),
    would: 'deny',
    said: 'deny (EPERM)',
  },
  // runc's -ENOSYS stub.
  {
    title: 'ENOSYS above the highest listed number, when the default is ERRNO and arches are listed',
    spec: {
      defaultAction: ERRNO,
      architectures: ['SCMP_ARCH_X86_64'],
      syscalls: [{ names: ['read', 'mkdir'], action: ALLOW }],
    },
    call: call('x86_64', 'rseq'),
    would: 'deny',
    said: 'deny (ENOSYS)',
    because: 'newer than every call the profile names (runc returns ENOSYS)',
  },
  {
    title: 'no ENOSYS stub without listed architectures (runc only stubs the listed ones)',
    spec: { defaultAction: ERRNO, syscalls: [{ names: ['read', 'mkdir'], action: ALLOW }] },
    call: call('x86_64', 'rseq'),
    would: 'deny',
    said: 'deny (EPERM)',
    because: 'default action',
  },
  {
    title: 'no ENOSYS stub under a LOG default',
    spec: { defaultAction: LOG, architectures: ['SCMP_ARCH_X86_64'], syscalls: [{ names: ['read'], action: ALLOW }] },
    call: call('x86_64', 'rseq'),
    would: 'log',
    said: 'log',
  },
  {
    title: 'below the highest listed number the default applies',
    spec: {
      defaultAction: 'SCMP_ACT_KILL_PROCESS',
      architectures: ['SCMP_ARCH_X86_64'],
      syscalls: [{ names: ['faccessat2'], action: ALLOW }],
    },
    call: call('x86_64', 'rseq'),
    would: 'kill',
    said: 'kill (process)',
    because: 'default action',
  },
  {
    title: 'names libseccomp 2.5.4 does not know set no ENOSYS bound and match nothing',
    spec: {
      defaultAction: ERRNO,
      architectures: ['SCMP_ARCH_X86_64'],
      syscalls: [{ names: ['mkdir', 'mseal'], action: ALLOW }],
    },
    call: call('x86_64', 'mseal'),
    would: 'deny',
    said: 'deny (ENOSYS)',
  },
  {
    title: 'a profile whose highest number is 0 (read) gets no stub: runc skips a largest number of 0',
    spec: { defaultAction: ERRNO, architectures: ['SCMP_ARCH_X86_64'], syscalls: [{ names: ['read'], action: ALLOW }] },
    call: call('x86_64', 'rseq'),
    would: 'deny',
    said: 'deny (EPERM)',
    because: 'default action',
  },
  // Unnamed numbers.
  {
    title: 'a number no table names: the default action',
    spec: { defaultAction: LOG, syscalls: [{ names: ['mkdir'], action: ALLOW }] },
    call: { arch: 'x86_64', nr: 9999, name: undefined },
    would: 'log',
    said: 'log',
    because: 'unnamed syscall',
  },
];

for (const c of CASES) {
  t.test(c.title, async (t) => {
    const v = verdictFor(compileProfile(c.spec, c.native ?? 'x86_64'), c.call);
    t.equal(v.would, c.would, `would ${c.would}`);
    t.equal(describeVerdict(v), c.said, `said "${c.said}"`);
    if (c.because !== undefined) t.equal(v.because, c.because, `because ${c.because}`);
    if (c.rules !== undefined) t.same(v.rules, c.rules, `rules ${c.rules.join(',')}`);
  });
}

t.test('depends on arguments lists each conditional outcome and what happens otherwise', async (t) => {
  const v = verdictFor(
    compileProfile(
      {
        defaultAction: ALLOW,
        syscalls: [
          { names: ['mkdir'], action: ERRNO, errnoRet: 2, args: [mode(7)] },
          { names: ['mkdir'], action: 'SCMP_ACT_KILL', args: [mode(511)] },
        ],
      },
      'x86_64',
    ),
    call('x86_64', 'mkdir'),
  );
  t.equal(v.would, 'depends');
  t.match(v.conditional, [
    { rule: 0, outcome: { would: 'deny', ret: 2 }, args: [{ value: 7 }] },
    { rule: 1, outcome: { would: 'kill', action: 'SCMP_ACT_KILL_THREAD' } },
  ]);
  t.match(v.outcome, { would: 'allow' }, 'otherwise the default');
});

t.test('ENOSYS is 38', async (t) => {
  t.equal(ENOSYS, 38);
});
