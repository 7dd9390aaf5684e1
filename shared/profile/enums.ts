/**
 * The enumerations of the SeccompProfile v1beta1 API, as the OCI runtime-spec and the reference
 * operator's CRD define them. Everything that checks or documents a value reads these lists.
 */

/** OCI runtime-spec `LinuxSeccompAction` values. */
export const ACTIONS = [
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE',
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_LOG',
  'SCMP_ACT_NOTIFY',
] as const;
export type Action = (typeof ACTIONS)[number];

/** Actions that carry a return value, so `errnoRet` means something for them (runc agrees). */
export const ACTIONS_WITH_ERRNO: readonly Action[] = ['SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE'];

/** The architectures the v1beta1 CRD accepts (the OCI list without LOONGARCH64, M68K, SH). */
export const ARCHITECTURES = [
  'SCMP_ARCH_NATIVE',
  'SCMP_ARCH_X86',
  'SCMP_ARCH_X86_64',
  'SCMP_ARCH_X32',
  'SCMP_ARCH_ARM',
  'SCMP_ARCH_AARCH64',
  'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPS64',
  'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64',
  'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC',
  'SCMP_ARCH_PPC64',
  'SCMP_ARCH_PPC64LE',
  'SCMP_ARCH_S390',
  'SCMP_ARCH_S390X',
  'SCMP_ARCH_PARISC',
  'SCMP_ARCH_PARISC64',
  'SCMP_ARCH_RISCV64',
] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/** OCI runtime-spec `LinuxSeccompOperator` values. */
export const OPERATORS = [
  'SCMP_CMP_NE',
  'SCMP_CMP_LT',
  'SCMP_CMP_LE',
  'SCMP_CMP_EQ',
  'SCMP_CMP_GE',
  'SCMP_CMP_GT',
  'SCMP_CMP_MASKED_EQ',
] as const;
export type Operator = (typeof OPERATORS)[number];

/** OCI runtime-spec `LinuxSeccompFlag` values. */
export const FLAGS = [
  'SECCOMP_FILTER_FLAG_TSYNC',
  'SECCOMP_FILTER_FLAG_LOG',
  'SECCOMP_FILTER_FLAG_SPEC_ALLOW',
  'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV',
] as const;
export type Flag = (typeof FLAGS)[number];

/** The values of `status.status`, as the reference operator shows them. */
export const PROFILE_STATES = ['Pending', 'Installing', 'Installed', 'Terminating', 'Disabled', 'Error'] as const;
export type ProfileState = (typeof PROFILE_STATES)[number];

/** The values of `spec.state` (v1, and served as v1beta1 in the Cluster layout). */
export const SPEC_STATES = ['Enabled', 'Disabled'] as const;
export type SpecState = (typeof SPEC_STATES)[number];

/** API identity of the resource. */
export const API_GROUP = 'security-profiles-operator.x-k8s.io';
export const API_VERSION = 'v1beta1';
/** The reference operator's storage version since v1.0.0 (cluster-scoped profiles). */
export const API_VERSION_V1 = 'v1';
export const KIND = 'SeccompProfile';
export const PLURAL = 'seccompprofiles';
export const SINGULAR = 'seccompprofile';
export const SHORT_NAMES = ['sp'] as const;

/** API identity of the per-node reports (ours, not the reference operator's: cluster-scoped, one per node). */
export const REPORT_GROUP = 'seccomp-agent.security-profiles-operator.x-k8s.io';
export const REPORT_VERSION = 'v1alpha1';
export const REPORT_KIND = 'SeccompNodeReport';
export const REPORT_PLURAL = 'seccompnodereports';
export const REPORT_SINGULAR = 'seccompnodereport';
export const REPORT_SHORT_NAMES = ['snr'] as const;

/** Highest argument index a seccomp rule can test (syscalls take at most six arguments). */
export const MAX_ARG_INDEX = 5;
export const MAX_ARGS = 6;
/** How many base profiles may be chained before we call the chain unreasonable. */
export const MAX_BASE_DEPTH = 8;
