/**
 * A SeccompProfile's status, computed without any I/O from what the nodes report.
 *
 * Each node's agent writes one small SeccompNodeReport: a watermark (`appliedRevision`, the
 * profile resourceVersion its files reflect) plus only its exceptions (failures, profiles in use).
 * The elected aggregator turns the reports of the live nodes into each profile's top-level status.
 * A node counts as having installed a profile's current spec once its watermark reaches the
 * revision at which that spec was first seen (`specRevision`), unless it lists the profile as
 * failed for that generation.
 */
import type { ProfileState } from './enums.js';
import { localhostProfile, profileKey } from './layout.js';
import type { NodeReportBody, ProfileCondition, SeccompProfileStatus } from './schema.js';

/** Condition and event reasons (CamelCase, as Kubernetes writes them). */
export const Reasons = {
  Installed: 'Installed',
  Pending: 'Pending',
  Terminating: 'Terminating',
  Disabled: 'Disabled',
  ProfileInvalid: 'ProfileInvalid',
  InstallFailed: 'InstallFailed',
  ProfileRemoved: 'ProfileRemoved',
  ProfileInUse: 'ProfileInUse',
  CallsLogged: 'CallsLogged',
  NoCallsLogged: 'NoCallsLogged',
} as const;

/** status.wouldBlock.syscalls lists at most this many names. */
export const MAX_WOULD_BLOCK_NAMES = 100;

/** How many names a message lists before "and N more". */
export const MAX_NAMED = 10;
/** activeWorkloads lists at most this many pods, so a widely used profile does not grow with the nodes. */
export const MAX_ACTIVE_WORKLOADS = 100;

export const nameList = (xs: readonly string[]): string =>
  xs.length <= MAX_NAMED ? xs.join(', ') : `${xs.slice(0, MAX_NAMED).join(', ')} and ${xs.length - MAX_NAMED} more`;

/** resourceVersions are etcd revisions: compared as numbers (NaN when unknown never reaches). */
export const revision = (rv: string | undefined): number => {
  const n = rv === undefined || rv === '' ? NaN : Number(rv);
  return Number.isFinite(n) ? n : NaN;
};

/** What the aggregator needs of one node's report, indexed for lookups by profile key. */
export interface NodeView {
  node: string;
  appliedRevision: number;
  failed: ReadonlyMap<string, { generation: number; reason: string; message: string }>;
  inUse: ReadonlyMap<string, readonly string[]>;
  /** Per profile in use: the syscall names it logged here, and the pods that made them. */
  logged: ReadonlyMap<string, { names: readonly string[]; pods: readonly string[] }>;
}

export function nodeView(r: NodeReportBody): NodeView {
  const logged = new Map<string, { names: readonly string[]; pods: readonly string[] }>();
  for (const u of r.inUse) {
    if ((u.logged ?? []).length > 0) logged.set(u.profile, { names: u.logged ?? [], pods: u.loggedPods ?? [] });
  }
  return {
    node: r.nodeName,
    appliedRevision: revision(r.appliedRevision),
    failed: new Map(r.failed.map((f) => [f.profile, f])),
    inUse: new Map(r.inUse.map((u) => [u.profile, u.pods])),
    logged,
  };
}

export interface ProfileStatusInput {
  /** '' when cluster-scoped. */
  namespace: string;
  name: string;
  generation: number;
  /** The revision at which the current spec (and deletion state) was first seen. */
  specRevision: number;
  deleting: boolean;
  disabled: boolean;
  /** Its defaultAction is SCMP_ACT_LOG: the status says what an enforcing version would block. */
  complain?: boolean;
  /** The aggregator's own validation refused it (validation is the same on every node). */
  invalid: { message: string } | undefined;
  /** Names of the live nodes, sorted. */
  liveNodes: readonly string[];
  /** Reports by node name (only those of live nodes are read). */
  reports: ReadonlyMap<string, NodeView>;
  /** The status on the object, for lastTransitionTime. */
  previous: SeccompProfileStatus | undefined;
  now: string;
  /** The kubelet root of the nodes (the DaemonSet gives every node the same), for status.path. */
  kubeletRoot: string;
}

/** Where each live node stands with one profile. */
export interface NodeTally {
  installed: string[];
  pending: string[];
  failed: { node: string; reason: string; message: string }[];
  users: string[];
  /** Syscall names logged under it on live nodes, sorted, and the pods that made them. */
  logged: string[];
  loggedPods: string[];
}

export function tally(i: ProfileStatusInput): NodeTally {
  const key = profileKey(i.namespace, i.name);
  const out: NodeTally = { installed: [], pending: [], failed: [], users: [], logged: [], loggedPods: [] };
  const users = new Set<string>();
  const logged = new Set<string>();
  const loggedPods = new Set<string>();
  for (const node of i.liveNodes) {
    const r = i.reports.get(node);
    for (const pod of r?.inUse.get(key) ?? []) users.add(pod);
    const l = r?.logged.get(key);
    for (const n of l?.names ?? []) logged.add(n);
    for (const pod of l?.pods ?? []) loggedPods.add(pod);
    const f = r?.failed.get(key);
    if (r !== undefined && f !== undefined && f.generation === i.generation) {
      out.failed.push({ node, reason: f.reason, message: f.message });
    } else if (r !== undefined && Number.isFinite(i.specRevision) && r.appliedRevision >= i.specRevision) {
      out.installed.push(node);
    } else {
      out.pending.push(node);
    }
  }
  out.users = [...users].sort();
  out.logged = [...logged].sort();
  out.loggedPods = [...loggedPods].sort();
  return out;
}

/** "would block 3 calls seen in 2 pods: faccessat2, mkdirat, rseq" */
export function wouldBlockMessage(calls: readonly string[], pods: number): string {
  return `would block ${calls.length} call${calls.length === 1 ? '' : 's'} seen in ${pods} pod${pods === 1 ? '' : 's'}: ${nameList(calls)}`;
}

/** The WouldBlock condition and status.wouldBlock of a complain profile pods use; none otherwise. */
function wouldBlock(
  i: ProfileStatusInput,
  t: NodeTally,
): { condition: ProfileCondition; field: SeccompProfileStatus['wouldBlock'] } | undefined {
  if (i.complain !== true || i.deleting || t.users.length === 0) return undefined;
  const blocking = t.logged.length > 0;
  const prev = i.previous?.conditions?.find((c) => c.type === 'WouldBlock');
  const status = blocking ? 'True' : 'False';
  return {
    condition: {
      type: 'WouldBlock',
      status,
      reason: blocking ? Reasons.CallsLogged : Reasons.NoCallsLogged,
      message: blocking
        ? wouldBlockMessage(t.logged, t.loggedPods.length)
        : `no call logged yet by the ${t.users.length === 1 ? 'pod that uses' : `${t.users.length} pods that use`} it`,
      lastTransitionTime:
        prev !== undefined && prev.status === status && prev.lastTransitionTime !== undefined
          ? prev.lastTransitionTime
          : i.now,
      observedGeneration: i.generation,
    },
    field: blocking
      ? { calls: t.logged.length, pods: t.loggedPods.length, syscalls: t.logged.slice(0, MAX_WOULD_BLOCK_NAMES) }
      : undefined,
  };
}

/** The profile's status, as the aggregator writes it (every field, always: see docs/cluster.md). */
export function profileStatus(
  i: ProfileStatusInput,
): Required<
  Pick<
    SeccompProfileStatus,
    | 'status'
    | 'localhostProfile'
    | 'path'
    | 'conditions'
    | 'observedGeneration'
    | 'activeWorkloads'
    | 'installedNodes'
    | 'specRevision'
  >
> &
  Pick<SeccompProfileStatus, 'wouldBlock'> {
  const t = tally(i);
  const live = i.liveNodes.length;
  let status: ProfileState;
  let ready: 'True' | 'False';
  let reason: string;
  let message: string;
  if (i.deleting) {
    status = 'Terminating';
    ready = 'False';
    reason = Reasons.Terminating;
    message =
      t.users.length > 0
        ? `deletion waits for the pods that use it: ${nameList(t.users)}`
        : 'being removed from every node';
  } else if (i.invalid !== undefined) {
    status = 'Error';
    ready = 'False';
    reason = Reasons.ProfileInvalid;
    message = i.invalid.message;
  } else if (t.failed.length > 0) {
    status = 'Error';
    ready = 'False';
    const first = t.failed[0];
    reason = t.failed.every((f) => f.reason === Reasons.ProfileInvalid)
      ? Reasons.ProfileInvalid
      : Reasons.InstallFailed;
    message =
      `failed on ${t.failed.length} of ${live} nodes: ${nameList(t.failed.map((f) => f.node))}` +
      (first === undefined ? '' : `; ${first.node}: ${first.message}`);
  } else if (i.disabled) {
    status = 'Disabled';
    ready = 'False';
    reason = Reasons.Disabled;
    message = 'disabled (spec.state: Disabled or spec.disabled: true): not installed on any node';
  } else if (live > 0 && t.pending.length === 0) {
    status = 'Installed';
    ready = 'True';
    reason = Reasons.Installed;
    message = `installed on every node running the agent (${live})`;
  } else {
    status = 'Pending';
    ready = 'False';
    reason = Reasons.Pending;
    message = `waiting for ${t.pending.length} of ${live} nodes: ${nameList(t.pending)}`;
  }
  const prev = i.previous?.conditions?.find((c) => c.type === 'Ready');
  const lastTransitionTime =
    prev !== undefined && prev.status === ready && prev.lastTransitionTime !== undefined
      ? prev.lastTransitionTime
      : i.now;
  const condition: ProfileCondition = {
    type: 'Ready',
    status: ready,
    reason,
    message,
    lastTransitionTime,
    observedGeneration: i.generation,
  };
  const wb = wouldBlock(i, t);
  return {
    status,
    localhostProfile: localhostProfile(i.namespace, i.name),
    // As the reference operator fills it: the file's absolute path on the nodes.
    path: `${i.kubeletRoot.replace(/\/+$/, '')}/seccomp/${localhostProfile(i.namespace, i.name)}`,
    conditions: wb === undefined ? [condition] : [condition, wb.condition],
    observedGeneration: i.generation,
    activeWorkloads: t.users.slice(0, MAX_ACTIVE_WORKLOADS),
    installedNodes: `${t.installed.length}/${live}`,
    specRevision: Number.isFinite(i.specRevision) ? String(i.specRevision) : '',
    ...(wb?.field === undefined ? {} : { wouldBlock: wb.field }),
  };
}

/** Whether some live node's report says pods there use the profile (the in-use finalizer's rule). */
export function inUseOnLiveNodes(
  key: string,
  liveNodes: readonly string[],
  reports: ReadonlyMap<string, NodeView>,
): boolean {
  return liveNodes.some((n) => (reports.get(n)?.inUse.get(key)?.length ?? 0) > 0);
}
