/**
 * The one source of truth for the SeccompProfile v1beta1 schema. The TypeScript types below are
 * derived from it, the validator compiles it, and `scripts/gen-crd.ts` turns it into the CRD in
 * `manifests/crds/` (a unit test fails when the committed CRD drifts).
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  ACTIONS,
  ARCHITECTURES,
  FLAGS,
  MAX_ARG_INDEX,
  MAX_ARGS,
  OPERATORS,
  PROFILE_STATES,
  SPEC_STATES,
} from './enums.js';
import type { Action, Architecture, Flag, Operator, ProfileState, SpecState } from './enums.js';

/** A string enum as a plain `{type: string, enum}` schema, which both Ajv and Kubernetes accept. */
function stringEnum<T extends string>(values: readonly T[], description: string): TSchema & { static: T } {
  return Type.Unsafe<T>({ type: 'string', enum: [...values], description });
}

/** A uint64 argument value. bigint carries values above 2^53 from YAML without losing bits. */
function uint64(description: string): TSchema & { static: number | bigint } {
  return Type.Unsafe<number | bigint>({ type: 'integer', format: 'int64', minimum: 0, description });
}

export const ArgSchema = Type.Object(
  {
    index: Type.Integer({
      minimum: 0,
      maximum: MAX_ARG_INDEX,
      description: `The index of the syscall argument to compare, 0 to ${MAX_ARG_INDEX}.`,
    }),
    value: Type.Optional(uint64('The value the argument is compared with. Zero when left out.')),
    valueTwo: Type.Optional(
      uint64(
        'The second value, used only by SCMP_CMP_MASKED_EQ: the argument masked with value must equal valueTwo. Zero when left out.',
      ),
    ),
    op: stringEnum<Operator>(OPERATORS, `How the argument is compared: ${OPERATORS.join(', ')}.`),
  },
  {
    additionalProperties: false,
    description: 'A condition on one syscall argument; the rule matches only when every condition holds.',
  },
);

export const SyscallSchema = Type.Object(
  {
    names: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description:
        'The syscall names this rule applies to, as the kernel names them (for example openat, clone3). Names unknown on every architecture are rejected.',
    }),
    action: stringEnum<Action>(ACTIONS, `The action taken when one of the syscalls is made: ${ACTIONS.join(', ')}.`),
    errnoRet: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          'The errno returned by SCMP_ACT_ERRNO (or the value passed to the tracer by SCMP_ACT_TRACE). Only valid with those two actions; EPERM (1) when left out.',
      }),
    ),
    args: Type.Optional(
      Type.Array(ArgSchema, {
        maxItems: MAX_ARGS,
        description: `Conditions on the syscall's arguments, at most ${MAX_ARGS}; the rule applies only when all hold.`,
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'A rule: an action for a set of syscalls, optionally only for some argument values.',
  },
);

/** The API server's check (CEL) that the two spellings of "disabled" agree; validate.ts checks the same. */
export const STATE_AGREES_RULE =
  "!has(self.state) || !has(self.disabled) || ((self.state == 'Disabled') == self.disabled)";

export const SpecSchema = Type.Object(
  {
    state: Type.Optional(
      stringEnum<SpecState>(
        SPEC_STATES,
        'Enabled (installed on every node) or Disabled (kept in the API, installed on no node), as the reference operator v1 spells it; Enabled when left out. Must agree with disabled when both are set.',
      ),
    ),
    disabled: Type.Optional(
      Type.Boolean({
        description:
          'The seed-era spelling of state: Disabled. When true the profile is kept in the API but not installed on any node. Must agree with state when both are set.',
      }),
    ),
    baseProfileName: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'The name of another SeccompProfile in the same namespace whose syscall rules this profile extends. Rules of this profile take precedence over the base for the same syscall and argument conditions.',
      }),
    ),
    defaultAction: stringEnum<Action>(ACTIONS, `The action for every syscall no rule matches: ${ACTIONS.join(', ')}.`),
    architectures: Type.Optional(
      Type.Array(stringEnum<Architecture>(ARCHITECTURES, `One of ${ARCHITECTURES.join(', ')}.`), {
        description:
          'The architectures the filter accepts calls from; calls from any other architecture are killed. The native architecture when left out.',
      }),
    ),
    listenerPath: Type.Optional(
      Type.String({
        description:
          'The path of a UNIX socket to which the runtime sends the seccomp notify file descriptor (SCMP_ACT_NOTIFY).',
      }),
    ),
    listenerMetadata: Type.Optional(
      Type.String({ description: 'Opaque data the runtime passes to the seccomp notify listener.' }),
    ),
    syscalls: Type.Optional(
      Type.Array(SyscallSchema, {
        description: 'The rules: which syscalls get which action. Rules are written in the order given.',
      }),
    ),
    flags: Type.Optional(
      Type.Array(stringEnum<Flag>(FLAGS, `One of ${FLAGS.join(', ')}.`), {
        description: `Flags passed to seccomp(2) when the filter is loaded: ${FLAGS.join(', ')}.`,
      }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'The seccomp profile: what the node writes to <kubelet root>/seccomp/operator/<namespace>/<name>.json (namespaced profiles) or operator/<name>.json (cluster-scoped).',
    'x-kubernetes-validations': [
      {
        rule: STATE_AGREES_RULE,
        message:
          'spec.state and spec.disabled disagree: use state: Disabled with disabled: true, state: Enabled with disabled: false, or only one of them',
      },
    ],
  },
);

const ConditionSchema = Type.Object(
  {
    type: Type.String({ description: 'The condition type, for example Ready.' }),
    status: stringEnum<'True' | 'False' | 'Unknown'>(['True', 'False', 'Unknown'], 'True, False or Unknown.'),
    reason: Type.Optional(Type.String({ description: 'A CamelCase reason for the last transition.' })),
    message: Type.Optional(Type.String({ description: 'A human readable message about the last transition.' })),
    lastTransitionTime: Type.Optional(
      Type.String({ format: 'date-time', description: 'When the condition last changed status.' }),
    ),
    observedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, description: 'The generation of the spec the condition was computed for.' }),
    ),
  },
  { description: 'A condition of the profile, in the Kubernetes style.' },
);

export const StatusSchema = Type.Object(
  {
    status: Type.Optional(stringEnum<ProfileState>(PROFILE_STATES, `The overall state: ${PROFILE_STATES.join(', ')}.`)),
    localhostProfile: Type.Optional(
      Type.String({
        description:
          "The value for a pod's securityContext.seccompProfile.localhostProfile: operator/<namespace>/<name>.json, or operator/<name>.json for a cluster-scoped profile.",
      }),
    ),
    path: Type.Optional(
      Type.String({
        description: 'The file path of the installed profile on the nodes, as the reference operator fills it.',
      }),
    ),
    conditions: Type.Optional(
      Type.Array(ConditionSchema, {
        description: 'Conditions of the profile; Ready tells whether it is installed everywhere.',
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
      }),
    ),
    observedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, description: 'The generation of the spec the status describes.' }),
    ),
    activeWorkloads: Type.Optional(
      Type.Array(Type.String(), { description: 'namespace/pod of the pods that use the profile, on any node.' }),
    ),
    installedNodes: Type.Optional(
      Type.String({
        description:
          'How many of the live nodes that run the agent have the current generation installed, as installed/live (for example 20/20); kubectl prints it as NODES. Per-node detail: kubectl get seccompnodereports.',
      }),
    ),
    specRevision: Type.Optional(
      Type.String({
        description:
          "The resourceVersion at which the aggregator first saw this generation of the spec. A node counts as having installed it once its SeccompNodeReport's appliedRevision reaches this value.",
      }),
    ),
    wouldBlock: Type.Optional(
      Type.Object(
        {
          calls: Type.Integer({ minimum: 0, description: 'How many distinct syscalls were logged.' }),
          pods: Type.Integer({ minimum: 0, description: 'How many pods made at least one of them.' }),
          syscalls: Type.Array(Type.String(), {
            description: 'The syscall names, sorted (at most 100).',
            'x-kubernetes-list-type': 'atomic',
          }),
        },
        {
          description:
            'For a complain profile (defaultAction SCMP_ACT_LOG) that pods use: the calls its pods made that it logged, on every live node; an enforcing version (SCMP_ACT_ERRNO) would block them.',
        },
      ),
    ),
  },
  { description: "What the elected aggregator reports about the profile, from the nodes' reports." },
);

export type Arg = Static<typeof ArgSchema>;
export type SyscallRule = Static<typeof SyscallSchema>;
export type SeccompProfileSpec = Static<typeof SpecSchema>;
export type SeccompProfileStatus = Static<typeof StatusSchema>;
export type ProfileCondition = Static<typeof ConditionSchema>;

/** The parts of object metadata the agent uses. */
export interface ProfileMeta {
  name: string;
  /** '' for a cluster-scoped profile (layout.ts). */
  namespace: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
}

/** A SeccompProfile as the agent holds it, from a file or from the API server. */
export interface SeccompProfile {
  apiVersion: string;
  kind: 'SeccompProfile';
  metadata: ProfileMeta;
  spec: SeccompProfileSpec;
  status?: SeccompProfileStatus;
}

/** A node lists at most this many logged names per profile (more than any table has). */
export const MAX_LOGGED_NAMES = 1024;

/** One profile that failed on a node: what the node's plan or its write of the file said. */
const ReportFailureSchema = Type.Object(
  {
    profile: Type.String({ description: 'namespace/name of the profile (name alone when cluster-scoped).' }),
    generation: Type.Integer({ minimum: 0, description: 'The generation of the spec that failed.' }),
    reason: stringEnum<'ProfileInvalid' | 'InstallFailed'>(
      ['ProfileInvalid', 'InstallFailed'],
      'ProfileInvalid (validation refused it) or InstallFailed (the file could not be written).',
    ),
    message: Type.String({ description: 'What went wrong, as the node saw it.' }),
  },
  { description: 'A profile this node could not install.' },
);

/** One profile that pods on the node use. */
const ReportUseSchema = Type.Object(
  {
    profile: Type.String({ description: 'namespace/name of the profile (name alone when cluster-scoped).' }),
    pods: Type.Array(Type.String(), {
      description: 'namespace/pod of the pods on this node that use it.',
      'x-kubernetes-list-type': 'atomic',
    }),
    logged: Type.Optional(
      Type.Array(Type.String(), {
        description:
          'Syscall names the containers running under it on this node made that it logged (SCMP_ACT_LOG), sorted: under a complain profile, the calls an enforcing version would block.',
        maxItems: MAX_LOGGED_NAMES,
        'x-kubernetes-list-type': 'atomic',
      }),
    ),
    loggedPods: Type.Optional(
      Type.Array(Type.String(), {
        description: 'namespace/pod of the pods on this node with at least one logged call under it.',
        'x-kubernetes-list-type': 'atomic',
      }),
    ),
  },
  { description: 'A profile in use on this node.' },
);

/**
 * A node's report (kind SeccompNodeReport, cluster-scoped, named after the node): a watermark of
 * the profiles it has processed plus only its exceptions, so it does not grow with the profiles
 * installed cleanly. Written by that node's agent, read by the elected aggregator only.
 */
export const NodeReportSchema = Type.Object(
  {
    nodeName: Type.String({ description: 'The node this report is about (also the object name).' }),
    appliedRevision: Type.String({
      description:
        "The SeccompProfile resourceVersion this node's files reflect: every profile change up to it is installed, except the failures listed.",
    }),
    installed: Type.Integer({ minimum: 0, description: 'How many profile files this node has installed.' }),
    failedCount: Type.Integer({ minimum: 0, description: 'How many profiles failed on this node.' }),
    inUseCount: Type.Integer({ minimum: 0, description: 'How many profiles pods on this node use.' }),
    failed: Type.Array(ReportFailureSchema, {
      description: 'The profiles this node could not install.',
      'x-kubernetes-list-type': 'atomic',
    }),
    inUse: Type.Array(ReportUseSchema, {
      description: 'The profiles pods on this node use, with the pods.',
      'x-kubernetes-list-type': 'atomic',
    }),
  },
  { description: "What one node's agent has installed: a watermark and its exceptions." },
);

export type NodeReportBody = Static<typeof NodeReportSchema>;
export type ReportFailure = Static<typeof ReportFailureSchema>;
export type ReportUse = Static<typeof ReportUseSchema>;
