/**
 * A SeccompProfile from what containers were seen doing: default SCMP_ACT_ERRNO (EPERM), every
 * observed syscall allowed, the observed architectures listed, plus (unless asked not to) the calls
 * the container runtime itself may make under the filter. Pure.
 */
import { Document } from 'yaml';
import { API_GROUP, API_VERSION, KIND } from '../../../shared/profile/enums.js';
import type { ContainerAggregate } from './store.js';

const SCMP_ARCH: Readonly<Record<string, string>> = {
  x86_64: 'SCMP_ARCH_X86_64',
  x86: 'SCMP_ARCH_X86',
  x32: 'SCMP_ARCH_X32',
  aarch64: 'SCMP_ARCH_AARCH64',
  arm: 'SCMP_ARCH_ARM',
  riscv64: 'SCMP_ARCH_RISCV64',
  ppc64le: 'SCMP_ARCH_PPC64LE',
  s390x: 'SCMP_ARCH_S390X',
};

/**
 * What runc's init may call after it has loaded the container's filter and before it execs the
 * workload. The filter applies to runc's own Go code there, and which of these it makes depends on
 * timing (a futex wake, a yield, a preemption signal, a new OS thread, the heap scavenger), so a
 * logging run does not always record them; a profile without them then fails to start containers
 * now and then (seen here: runc init died in futexwakeup under a suggestion that lacked futex).
 * The first 37 are the reference operator's base profile for runc (examples/baseprofile-runc.yaml,
 * runc v1.2.3); the rest are the Go runtime's thread, signal and memory calls.
 */
export const RUNC_BASELINE: readonly string[] = [
  'arch_prctl',
  'brk',
  'capget',
  'capset',
  'chdir',
  'close',
  'close_range',
  'epoll_ctl',
  'epoll_pwait',
  'execve',
  'exit_group',
  'faccessat2',
  'fcntl',
  'fstat',
  'fstatfs',
  'futex',
  'getcwd',
  'getdents64',
  'getpid',
  'getppid',
  'getuid',
  'mmap',
  'mprotect',
  'nanosleep',
  'newfstatat',
  'openat',
  'prctl',
  'read',
  'recvfrom',
  'rt_sigreturn',
  'sched_yield',
  'set_tid_address',
  'setgid',
  'setgroups',
  'setuid',
  'tgkill',
  'write',
  // Go runtime: new threads (clone, gettid, sigaltstack, rt_sigprocmask), thread exit, heap
  'clone',
  'exit',
  'gettid',
  'madvise',
  'munmap',
  'rt_sigaction',
  'rt_sigprocmask',
  'sigaltstack',
];

/** Whose start-up calls to add: the container runtime's (`runc`) or none. */
export type RuntimeBaseline = 'runc' | 'none';

/** The SeccompProfile object (apiVersion, kind, metadata, spec). */
export interface SuggestedProfile {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations: Record<string, string> };
  spec: {
    defaultAction: 'SCMP_ACT_ERRNO';
    architectures: string[];
    syscalls: { action: 'SCMP_ACT_ALLOW'; names: string[] }[];
  };
}

/** A DNS-1123 subdomain made from parts (lower case, [a-z0-9.-], at most 253 characters). */
export function profileNameFrom(parts: readonly (string | null)[]): string {
  const raw = parts
    .filter((p): p is string => p !== null && p !== '')
    .join('-')
    .toLowerCase();
  const cleaned = raw
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '')
    .slice(0, 253);
  return cleaned.replace(/[^a-z0-9]+$/, '') || 'suggested';
}

/**
 * Builds the profile for one or more containers' aggregates (a pod's containers are merged). `name`
 * and `namespace` default to the (single) pod's and its container's names.
 */
export function suggestProfile(
  aggs: readonly ContainerAggregate[],
  opts: {
    name?: string | undefined;
    namespace?: string | undefined;
    node: string;
    now: Date;
    /** Default `runc`: also allow {@link RUNC_BASELINE} (as a second rule). */
    runtime?: RuntimeBaseline | undefined;
  },
): { profile: SuggestedProfile; yaml: string } {
  const names = new Set<string>();
  const arches = new Set<string>();
  const unresolved = new Map<string, number>();
  for (const a of aggs) {
    for (const n of a.syscalls.keys()) names.add(n);
    for (const ar of a.arches) arches.add(ar);
    for (const [k, c] of a.unresolved) unresolved.set(k, (unresolved.get(k) ?? 0) + c);
  }
  const pods = new Set(aggs.map((a) => `${a.namespace ?? ''}/${a.pod ?? ''}`));
  const one = aggs.length === 1 ? aggs[0] : undefined;
  const firstPod = aggs[0];
  const defaultName =
    one !== undefined
      ? profileNameFrom(one.pod === null ? [one.containerId?.slice(0, 12) ?? 'host'] : [one.pod, one.container])
      : pods.size === 1 && firstPod !== undefined
        ? profileNameFrom([firstPod.pod])
        : 'suggested';
  const namespace = opts.namespace ?? (pods.size === 1 ? (firstPod?.namespace ?? undefined) : undefined);
  const who = aggs
    .map((a) =>
      a.pod === null ? `container ${a.containerId ?? '(host)'}` : `${a.namespace}/${a.pod}/${a.container ?? '?'}`,
    )
    .join(', ');
  const metadata: SuggestedProfile['metadata'] = {
    name: opts.name ?? defaultName,
    ...(namespace === undefined || namespace === null ? {} : { namespace }),
    annotations: {
      description: `Suggested by seccomp-agent on node ${opts.node} from the syscalls of ${who} seen up to ${opts.now.toISOString()}.`,
    },
  };
  const archList = [...arches]
    .map((a) => SCMP_ARCH[a])
    .filter((a): a is string => a !== undefined)
    .sort();
  const profile: SuggestedProfile = {
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: KIND,
    metadata,
    spec: {
      defaultAction: 'SCMP_ACT_ERRNO',
      architectures: archList,
      syscalls: [{ action: 'SCMP_ACT_ALLOW', names: [...names].sort() }],
    },
  };
  const runtimeOnly = (opts.runtime ?? 'runc') === 'runc' ? RUNC_BASELINE.filter((n) => !names.has(n)).sort() : [];
  if (runtimeOnly.length > 0) profile.spec.syscalls.push({ action: 'SCMP_ACT_ALLOW', names: runtimeOnly });
  const doc = new Document(profile);
  const notes = [
    'Every syscall seen is allowed; any other call fails with EPERM.',
    'Only calls the kernel logged were seen: run the workload under a logging profile (complainer) through all its paths first.',
  ];
  if (runtimeOnly.length > 0) {
    notes.push(
      'The second rule was not seen but is allowed for the container runtime: runc runs under the filter until it execs',
      'the workload, and whether it makes these calls depends on timing. Leave them out with ?runtime=none.',
    );
  }
  if (unresolved.size > 0) {
    notes.push(
      `Not in the syscall tables, so not listed: ${[...unresolved.entries()].map(([k, c]) => `${k} (${c}x)`).join(', ')}.`,
    );
  }
  doc.commentBefore = notes.map((n) => ` ${n}`).join('\n');
  return { profile, yaml: doc.toString({ lineWidth: 0 }) };
}
