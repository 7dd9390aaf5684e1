/**
 * What a candidate profile would do to calls that were really made: for each observed call
 * (architecture, number, name), the action the filter runc 1.1.5 and libseccomp 2.5.4 build from the
 * profile would take. Pure: a rendered profile and calls in, verdicts out.
 *
 * The semantics, each shown in tests/unit/profile/check.test.ts:
 * - An architecture that is neither the node's own nor listed gets libseccomp's bad-arch action,
 *   KILL_THREAD (node-facts: "killed (`code=0x0 sig=31`)"). x32 is an architecture of its own.
 * - runc's -ENOSYS stub (libcontainer/seccomp/patchbpf): when the default action is not ALLOW, LOG
 *   or TRACE, a call on a *listed* architecture whose number is above every number the profile names
 *   on that architecture returns ENOSYS before the filter runs.
 * - Rules are looked up by name in the call's architecture's table. runc skips a rule whose action
 *   is the default action, and libseccomp a name it cannot resolve (runtime.ts LIBSECCOMP_UNKNOWN).
 * - Of several rules without conditions, the first one loaded is taken (libseccomp keeps the first:
 *   tests/fixtures/runc-cases.ts shows it against the real runc). This is not "the most
 *   restrictive": that is the kernel's rule across stacked filters, and a profile is one filter.
 * - Rules with argument conditions: an audit record carries no arguments, so the verdict is
 *   "depends on arguments", with each possible outcome; when every outcome is the same action, that
 *   action.
 * - A number no table names matches no rule: the default action (or the ENOSYS stub).
 */
import type { Action } from './enums.js';
import { LIBSECCOMP_UNKNOWN } from './runtime.js';
import type { Arg, SeccompProfileSpec } from './schema.js';
import { archFromSeccomp, syscallNumber, type Arch } from '../syscalls/index.js';

/** What a verdict groups calls by. */
export type Would = 'allow' | 'deny' | 'kill' | 'trap' | 'log' | 'notify' | 'trace' | 'depends';

/** One action as the kernel takes it: KILL is KILL_THREAD, ERRNO and TRACE carry their value. */
export interface Outcome {
  readonly would: Exclude<Would, 'depends'>;
  /** The action runc hands libseccomp: `SCMP_ACT_ERRNO`, `SCMP_ACT_KILL_THREAD`, ... */
  readonly action: string;
  /** ERRNO's errno (1 = EPERM when errnoRet is left out), TRACE's message. */
  readonly ret?: number;
}

/** Why a call gets its verdict. */
export type Because =
  | 'architecture not in the profile'
  | 'newer than every call the profile names (runc returns ENOSYS)'
  | 'rule'
  | 'several rules'
  | 'rules with argument conditions'
  | 'default action'
  | 'unnamed syscall';

export interface Verdict {
  readonly would: Would;
  /** The outcome; for `depends`, the default or unconditional rule's ("otherwise"). */
  readonly outcome: Outcome;
  readonly because: Because;
  /** Indexes in `syscalls` of the rules that name the call and are loaded (first taken first). */
  readonly rules: readonly number[];
  /** For `depends`: each conditional rule's outcome and conditions. */
  readonly conditional?: readonly { rule: number; outcome: Outcome; args: readonly Arg[] }[];
}

/** A call as the events name it. `name` undefined: the architecture's table has no such number. */
export interface ObservedCall {
  readonly arch: Arch;
  readonly nr: number;
  readonly name: string | undefined;
}

const WOULD: ReadonlyMap<string, Exclude<Would, 'depends'>> = new Map([
  ['SCMP_ACT_ALLOW', 'allow'],
  ['SCMP_ACT_ERRNO', 'deny'],
  ['SCMP_ACT_KILL', 'kill'],
  ['SCMP_ACT_KILL_THREAD', 'kill'],
  ['SCMP_ACT_KILL_PROCESS', 'kill'],
  ['SCMP_ACT_TRAP', 'trap'],
  ['SCMP_ACT_LOG', 'log'],
  ['SCMP_ACT_NOTIFY', 'notify'],
  ['SCMP_ACT_TRACE', 'trace'],
]);

/** errno 38, what runc's stub returns. */
export const ENOSYS = 38;
const EPERM = 1;

/** The action as runc hands it to libseccomp (runtime.ts runcAction, as an object). */
export function outcomeOf(action: Action, errnoRet?: number | bigint): Outcome {
  const would = WOULD.get(action) ?? 'kill';
  if (action === 'SCMP_ACT_KILL') return { would, action: 'SCMP_ACT_KILL_THREAD' };
  if (action === 'SCMP_ACT_ERRNO' || action === 'SCMP_ACT_TRACE') {
    const v = errnoRet === undefined ? 0n : BigInt(errnoRet) & 0xffffn;
    return { would, action, ret: v === 0n ? EPERM : Number(v) };
  }
  return { would, action };
}

const sameOutcome = (a: Outcome, b: Outcome): boolean => a.action === b.action && a.ret === b.ret;

/** ALLOW, LOG and TRACE defaults get no -ENOSYS stub (patchbpf isAllowAction). */
const PERMISSIVE: ReadonlySet<string> = new Set(['SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE']);

/** A profile made ready to answer for many calls. */
export interface CompiledProfile {
  readonly native: Arch;
  readonly defaultOutcome: Outcome;
  /** The arches whose calls reach the filter: the node's and the listed ones we have tables for. */
  readonly arches: ReadonlySet<Arch>;
  /** Per listed arch with a stub: the highest number the profile names there. */
  readonly enosysAbove: ReadonlyMap<Arch, number>;
  readonly spec: SeccompProfileSpec;
}

/** Compiles `spec` (a rendered profile, base profiles merged) for a node of arch `native`. */
export function compileProfile(spec: SeccompProfileSpec, native: Arch): CompiledProfile {
  const listed: Arch[] = [];
  for (const a of spec.architectures ?? []) {
    const arch = archFromSeccomp(a);
    if (arch !== undefined) listed.push(arch);
  }
  const enosysAbove = new Map<Arch, number>();
  if (!PERMISSIVE.has(spec.defaultAction)) {
    for (const arch of listed) {
      let max = 0;
      for (const rule of spec.syscalls ?? []) {
        for (const name of rule.names) {
          if (LIBSECCOMP_UNKNOWN.has(name)) continue;
          const nr = syscallNumber(arch, name);
          if (nr !== undefined && nr > max) max = nr;
        }
      }
      if (max > 0) enosysAbove.set(arch, max);
    }
  }
  return {
    native,
    defaultOutcome: outcomeOf(spec.defaultAction),
    arches: new Set<Arch>([native, ...listed]),
    enosysAbove,
    spec,
  };
}

/** The verdict of the compiled profile on one call. */
export function verdictFor(p: CompiledProfile, call: ObservedCall): Verdict {
  if (!p.arches.has(call.arch)) {
    return {
      would: 'kill',
      outcome: { would: 'kill', action: 'SCMP_ACT_KILL_THREAD' },
      because: 'architecture not in the profile',
      rules: [],
    };
  }
  const above = p.enosysAbove.get(call.arch);
  if (above !== undefined && call.nr > above) {
    return {
      would: 'deny',
      outcome: { would: 'deny', action: 'SCMP_ACT_ERRNO', ret: ENOSYS },
      because: 'newer than every call the profile names (runc returns ENOSYS)',
      rules: [],
    };
  }
  const fallback = (because: Because): Verdict => ({
    would: p.defaultOutcome.would,
    outcome: p.defaultOutcome,
    because,
    rules: [],
  });
  if (call.name === undefined) return fallback('unnamed syscall');
  const unconditional: { rule: number; outcome: Outcome }[] = [];
  const conditional: { rule: number; outcome: Outcome; args: readonly Arg[] }[] = [];
  (p.spec.syscalls ?? []).forEach((rule, i) => {
    if (!rule.names.includes(call.name as string) || LIBSECCOMP_UNKNOWN.has(call.name as string)) return;
    const outcome = outcomeOf(rule.action, rule.errnoRet);
    // runc leaves out a rule whose action is the default action before libseccomp sees it.
    if (sameOutcome(outcome, p.defaultOutcome)) return;
    if ((rule.args ?? []).length === 0) unconditional.push({ rule: i, outcome });
    else conditional.push({ rule: i, outcome, args: rule.args ?? [] });
  });
  const first = unconditional[0];
  const otherwise = first?.outcome ?? p.defaultOutcome;
  const rules = [...unconditional, ...conditional].map((r) => r.rule).sort((a, b) => a - b);
  if (conditional.length > 0) {
    const same = conditional.every((c) => sameOutcome(c.outcome, otherwise));
    return same
      ? { would: otherwise.would, outcome: otherwise, because: 'rules with argument conditions', rules, conditional }
      : { would: 'depends', outcome: otherwise, because: 'rules with argument conditions', rules, conditional };
  }
  if (first === undefined) return fallback('default action');
  return {
    would: first.outcome.would,
    outcome: first.outcome,
    because: unconditional.length > 1 ? 'several rules' : 'rule',
    rules,
  };
}

/** `deny (EPERM)`, `kill`, `depends on arguments`: how the table and the status say a verdict. */
export function describeVerdict(v: Verdict): string {
  if (v.would === 'depends') return 'depends on arguments';
  const o = v.outcome;
  if (o.would === 'deny') return `deny (${errnoName(o.ret ?? EPERM)})`;
  if (o.action === 'SCMP_ACT_KILL_PROCESS') return 'kill (process)';
  return o.would;
}

const ERRNO_NAMES: ReadonlyMap<number, string> = new Map([
  [1, 'EPERM'],
  [2, 'ENOENT'],
  [5, 'EIO'],
  [13, 'EACCES'],
  [22, 'EINVAL'],
  [38, 'ENOSYS'],
  [95, 'EOPNOTSUPP'],
]);

/** `EPERM` for 1, `errno 123` for a number without a name here. */
export function errnoName(n: number): string {
  return ERRNO_NAMES.get(n) ?? `errno ${n}`;
}
