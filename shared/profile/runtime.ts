/**
 * What the node's runtime loads: the rules of runc 1.1.5 with libseccomp 2.5 (Debian 12's runc, the
 * runtime our node tests run) that go beyond the CRD's enums. A profile that breaks one of them
 * installs fine and then every pod that uses it fails to start, so each is refused here, with the
 * field and runc's own words. Each rule is shown against the real runc in
 * tests/node/runc-refusals.test.ts. Sources: runc libcontainer/specconv/spec_linux.go
 * (SetupSeccomp), libcontainer/seccomp/{config.go,seccomp_linux.go}, libcontainer/process_linux.go,
 * libseccomp-golang 0.10 and libseccomp 2.5.4 (src/system.c, src/db.c). Pure: no I/O.
 */
import type { Action } from './enums.js';
import { clip, quote, thousands, type Finding } from './findings.js';
import type { Arg, SeccompProfileSpec, SyscallRule } from './schema.js';

/** Byte order of the node's architecture; libseccomp puts the node's own architecture in every filter. */
export type Endianness = 'little' | 'big';

/** The architectures runc 1.1.5 knows (libcontainer/seccomp/config.go `archs`), by byte order. */
const RUNC_ARCHES: ReadonlyMap<string, Endianness> = new Map([
  ['SCMP_ARCH_X86', 'little'],
  ['SCMP_ARCH_X86_64', 'little'],
  ['SCMP_ARCH_X32', 'little'],
  ['SCMP_ARCH_ARM', 'little'],
  ['SCMP_ARCH_AARCH64', 'little'],
  ['SCMP_ARCH_MIPS', 'big'],
  ['SCMP_ARCH_MIPS64', 'big'],
  ['SCMP_ARCH_MIPS64N32', 'big'],
  ['SCMP_ARCH_MIPSEL', 'little'],
  ['SCMP_ARCH_MIPSEL64', 'little'],
  ['SCMP_ARCH_MIPSEL64N32', 'little'],
  ['SCMP_ARCH_PPC', 'big'],
  ['SCMP_ARCH_PPC64', 'big'],
  ['SCMP_ARCH_PPC64LE', 'little'],
  ['SCMP_ARCH_S390', 'big'],
  ['SCMP_ARCH_S390X', 'big'],
]);

/**
 * Names in our tables that libseccomp 2.5.4 cannot resolve on x86_64 (`scmp_sys_resolver -a x86_64
 * NAME` prints -1; tests/node/runc-refusals.test.ts checks the list against it): syscalls newer than
 * its tables, and riscv_hwprobe. runc skips such a name without a word (seccomp_linux.go matchCall:
 * "unknown seccomp syscall ... ignored", at debug level). Other arches differ a little; this is the
 * x86_64 list.
 */
export const LIBSECCOMP_UNKNOWN: ReadonlySet<string> = new Set([
  'file_getattr',
  'file_setattr',
  'getxattrat',
  'listmount',
  'listxattrat',
  'lsm_get_self_attr',
  'lsm_list_modules',
  'lsm_set_self_attr',
  'mseal',
  'open_tree_attr',
  'removexattrat',
  'riscv_hwprobe',
  'setxattrat',
  'statmount',
  'uretprobe',
]);

/** libseccomp refuses SCMP_ACT_ERRNO data >= MAX_ERRNO (4095) with EINVAL (sys_chk_seccomp_action). */
export const MAX_ERRNO_RET = 4094;
/** runc passes errnoRet through int16: above 16 bits it wraps (65536 becomes 0). */
const MAX_TRACE_RET = 0xffff;
/** The kernel loads at most BPF_MAXINSNS (4096) instructions per filter. */
const BPF_MAXINSNS = 4096;
const MAX_UINT64 = 0xffff_ffff_ffff_ffffn;

/**
 * The action as runc hands it to libseccomp: KILL is KILL_THREAD, and ERRNO and TRACE carry their
 * return value (EPERM when errnoRet is left out or 0, which the rendered file leaves out).
 */
function runcAction(action: Action, errnoRet: number | bigint | undefined): string {
  if (action === 'SCMP_ACT_KILL') return 'SCMP_ACT_KILL_THREAD';
  if (action === 'SCMP_ACT_ERRNO' || action === 'SCMP_ACT_TRACE') {
    // 0 is left out of the file, so EPERM; otherwise runc keeps the low 16 bits. A value from YAML
    // above 2^53 stays a bigint, so compute in bigints.
    if (errnoRet === undefined || BigInt(errnoRet) === 0n) return `${action}(1)`;
    return `${action}(${BigInt(errnoRet) & 0xffffn})`;
  }
  return action;
}

const argKey = (a: Arg): string => `${a.index}:${a.op}:${String(a.value ?? 0)}:${String(a.valueTwo ?? 0)}`;

/**
 * The argument conditions of the rules runc adds for one rule: all of them as one rule, or, when an
 * argument is compared twice, one rule per condition (seccomp_linux.go matchCall "revert to old
 * behavior"), so that the rule applies when any one of them holds.
 */
function runcConditionSets(rule: SyscallRule): string[] {
  const args = rule.args ?? [];
  const repeated = new Set(args.map((a) => a.index)).size < args.length;
  if (repeated) return args.map((a) => argKey(a));
  return [args.map(argKey).sort().join(',')];
}

const arches = (endian: Endianness): string =>
  [...RUNC_ARCHES]
    .filter(([, e]) => e === endian)
    .map(([a]) => a)
    .join(', ');

function architectureFindings(spec: SeccompProfileSpec, node: Endianness): Finding[] {
  const out: Finding[] = [];
  const otherEndian: string[] = [];
  (spec.architectures ?? []).forEach((arch, i) => {
    const path = `spec.architectures[${i}]`;
    const endian = RUNC_ARCHES.get(arch);
    if (endian === undefined) {
      out.push({
        severity: 'error',
        reason: 'ArchitectureNotSupported',
        path,
        message:
          arch === 'SCMP_ARCH_NATIVE'
            ? 'runc 1.1.5 does not take SCMP_ARCH_NATIVE ("string SCMP_ARCH_NATIVE is not a valid arch for seccomp") and no pod could start; leave spec.architectures out for the node\'s own architecture'
            : `runc 1.1.5 does not know ${arch} ("string ${arch} is not a valid arch for seccomp") and no pod could start; leave it out (runc 1.1.5 knows the x86, ARM, MIPS, PowerPC and s390 architectures)`,
      });
    } else if (endian !== node) {
      otherEndian.push(arch);
    }
  });
  if (otherEndian.length > 0) {
    const first = (spec.architectures ?? []).findIndex((a) => a === otherEndian[0]);
    out.push({
      severity: 'error',
      reason: 'ArchitectureEndianness',
      path: `spec.architectures[${first}]`,
      message: `${otherEndian.join(', ')} ${otherEndian.length === 1 ? 'is' : 'are'} ${node === 'little' ? 'big' : 'little'}-endian and this node is ${node}-endian: libseccomp cannot add ${otherEndian.length === 1 ? 'it' : 'them'} to the node's filter ("error adding architecture to seccomp filter: numerical argument out of domain"), so runc would start no pod with this profile; list only ${node}-endian architectures (${arches(node)})`,
    });
  }
  return out;
}

/** What the runtime check needs to know about the node. */
export interface RuntimeTarget {
  /** The node's byte order. */
  readonly endianness: Endianness;
  /** Whether a name is a syscall at all; the others are refused elsewhere and skipped here. */
  isKnown(name: string): boolean;
}

/** What runc 1.1.5 and libseccomp 2.5 refuse in a spec that passed the schema, on `node`. */
export function runtimeFindings(spec: SeccompProfileSpec, node: RuntimeTarget): Finding[] {
  const out: Finding[] = [];
  if (spec.flags !== undefined && spec.flags.length > 0) {
    out.push({
      severity: 'error',
      reason: 'FlagsNotSupported',
      path: 'spec.flags',
      message:
        'runc 1.1.5 refuses every seccomp flag ("seccomp flags are not yet supported by runc"), so no pod could start; leave spec.flags out',
    });
  }
  out.push(...architectureFindings(spec, node.endianness));
  const defaultAction = runcAction(spec.defaultAction, undefined);
  if (spec.defaultAction === 'SCMP_ACT_NOTIFY') {
    out.push({
      severity: 'error',
      reason: 'NotifyNotAllowed',
      path: 'spec.defaultAction',
      message:
        'runc refuses SCMP_ACT_NOTIFY as the default action ("SCMP_ACT_NOTIFY cannot be used as default action"): runc itself must write to report the notify fd; use it on a rule instead',
    });
  }
  const hasListener = spec.listenerPath !== undefined && spec.listenerPath !== '';
  let notifyWithoutListener = false;
  // Per (syscall, argument conditions): the first rule written, and the first rule runc adds.
  type Entry = { action: string; shown: string; at: string };
  const written = new Map<string, Entry>();
  const added = new Map<string, Entry>();
  (spec.syscalls ?? []).forEach((rule, i) => {
    const at = `spec.syscalls[${i}]`;
    const errnoRet = rule.errnoRet === undefined ? undefined : Number(rule.errnoRet);
    if (rule.action === 'SCMP_ACT_ERRNO' && errnoRet !== undefined && errnoRet > MAX_ERRNO_RET) {
      out.push({
        severity: 'error',
        reason: 'ErrnoRetOutOfRange',
        path: `${at}.errnoRet`,
        message: `${String(rule.errnoRet)} is out of range: SCMP_ACT_ERRNO takes 0 to ${MAX_ERRNO_RET}; libseccomp refuses 4095 to 65535 (runc then starts no pod) and runc cuts larger values to 16 bits (65536 would return 0, so the call would seem to succeed)`,
      });
    }
    if (rule.action === 'SCMP_ACT_TRACE' && errnoRet !== undefined && errnoRet > MAX_TRACE_RET) {
      out.push({
        severity: 'error',
        reason: 'ErrnoRetOutOfRange',
        path: `${at}.errnoRet`,
        message: `${String(rule.errnoRet)} is out of range: SCMP_ACT_TRACE passes 0 to ${MAX_TRACE_RET} to the tracer; runc cuts larger values to 16 bits`,
      });
    }
    (rule.args ?? []).forEach((arg, j) => {
      for (const field of ['value', 'valueTwo'] as const) {
        const v = arg[field];
        if (v !== undefined && BigInt(v) > MAX_UINT64) {
          out.push({
            severity: 'error',
            reason: 'OutOfRange',
            path: `${at}.args[${j}].${field}`,
            message: `${String(v)} does not fit 64 bits (at most ${MAX_UINT64}); runc cannot read the profile`,
          });
        }
      }
    });
    const action = runcAction(rule.action, rule.errnoRet);
    if (rule.action === 'SCMP_ACT_NOTIFY') {
      if (!hasListener) notifyWithoutListener = true;
      rule.names.forEach((name, j) => {
        if (name === 'write') {
          out.push({
            severity: 'error',
            reason: 'NotifyNotAllowed',
            path: `${at}.names[${j}]`,
            message:
              'runc refuses SCMP_ACT_NOTIFY for write ("SCMP_ACT_NOTIFY cannot be used for the write syscall"): runc must write to hand over the notify fd; give write another action',
          });
        }
      });
    }
    // runc skips a rule whose action is the default action, before libseccomp sees it.
    const skipped = action === defaultAction;
    const sets = runcConditionSets(rule);
    rule.names.forEach((name, j) => {
      // A name no architecture knows is refused on its own (validate.ts), and runc would skip it.
      if (!node.isKnown(name)) return;
      const here = { action, shown: rule.action, at: `${at}.names[${j}]` };
      if (!skipped && LIBSECCOMP_UNKNOWN.has(name)) {
        out.push({
          severity: 'warning',
          reason: 'SyscallUnknownToLibseccomp',
          path: here.at,
          message: `${quote(name)} is not in libseccomp 2.5.4's table (it is newer): runc 1.1.5 skips it without a word, so this rule does not apply to it and the default action ${spec.defaultAction} does`,
        });
      }
      for (const set of sets) {
        const key = `${name}\u0000${set}`;
        const first = written.get(key);
        if (first === undefined) written.set(key, here);
        if (!skipped && !LIBSECCOMP_UNKNOWN.has(name)) {
          const loaded = added.get(key);
          if (loaded === undefined) added.set(key, here);
          else if (loaded.action !== action) {
            out.push(
              set === ''
                ? {
                    severity: 'warning',
                    reason: 'ConflictingRules',
                    path: here.at,
                    message: `${quote(name)} already has action ${loaded.shown} at ${loaded.at} with the same argument conditions; libseccomp keeps the first (${loaded.shown}), so the action here is never taken`,
                  }
                : {
                    severity: 'error',
                    reason: 'ConflictingRules',
                    path: here.at,
                    message: `${quote(name)} already has action ${loaded.shown} at ${loaded.at} with the same argument conditions; with conditions libseccomp refuses a second action ("error adding seccomp rule for syscall ${clip(name)}: file exists") and runc starts no pod; keep one rule`,
                  },
            );
            continue;
          } else continue;
        }
        if (first === undefined || first.action === action) continue;
        const which = skipped
          ? `runc skips this rule, whose action is the default action, so ${(added.get(key) ?? first).shown} applies`
          : `that rule has the default action and runc skips it, so ${rule.action} here applies`;
        out.push({
          severity: 'warning',
          reason: 'ConflictingRules',
          path: here.at,
          message: `${quote(name)} already has action ${first.shown} at ${first.at} with the same argument conditions; ${which}`,
        });
      }
    });
  });
  if (notifyWithoutListener) {
    const i = (spec.syscalls ?? []).findIndex((r) => r.action === 'SCMP_ACT_NOTIFY');
    out.push({
      severity: 'error',
      reason: 'ListenerPathMissing',
      path: `spec.syscalls[${i}].action`,
      message:
        'SCMP_ACT_NOTIFY needs spec.listenerPath (the UNIX socket of the seccomp agent that answers the calls); without it runc starts no pod ("listenerPath is not set")',
    });
  }
  if (added.size >= BPF_MAXINSNS) {
    out.push({
      severity: 'error',
      reason: 'TooManyRules',
      path: 'spec.syscalls',
      message: `makes runc add ${thousands(added.size)} syscall rules; a seccomp filter holds at most ${thousands(BPF_MAXINSNS)} BPF instructions (BPF_MAXINSNS) and each rule takes at least one besides the default action's, so at most ${thousands(BPF_MAXINSNS - 1)} can load`,
    });
  }
  return out;
}
