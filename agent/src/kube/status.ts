/**
 * Status of a SeccompProfile, computed without any I/O.
 *
 * Each agent owns one entry of `status.nodes` (a list-map keyed by nodeName) through server-side
 * apply with its own field manager, so entries never overwrite each other. The top-level fields
 * (status, localhostProfile, the Ready condition, observedGeneration, activeWorkloads) are an
 * aggregate every agent computes the same way from the entries of the nodes that are alive; every
 * apply carries all of them (never omits one), so whoever writes last owns them all and a value
 * can never be left behind by a manager that stopped sending it.
 */
import type { NodeStatus, ProfileCondition, SeccompProfileStatus } from '../../../shared/profile/schema.js';
import type { ProfileState } from '../../../shared/profile/enums.js';
import type { ProfileReport } from '../profiles/reconciler.js';

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
} as const;

/** The top-level fields every agent computes. */
export interface Aggregate {
  status: ProfileState;
  localhostProfile: string;
  conditions: ProfileCondition[];
  observedGeneration: number;
  activeWorkloads: string[];
}

export interface EntryInput {
  node: string;
  generation: number;
  /** What the reconciler did with the profile; undefined when the file is not (or no longer) here. */
  report: ProfileReport | undefined;
  deleting: boolean;
  /** Pods on this node that use the profile. */
  users: string[];
}

const MAX_NAMED = 10;
const nameList = (xs: readonly string[]): string =>
  xs.length <= MAX_NAMED ? xs.join(', ') : `${xs.slice(0, MAX_NAMED).join(', ')} and ${xs.length - MAX_NAMED} more`;

/** This node's entry of status.nodes (without lastUpdateTime, which is stamped when written). */
export function nodeEntry(i: EntryInput): NodeStatus {
  const e: NodeStatus = { nodeName: i.node, status: 'Pending', observedGeneration: i.generation };
  if (i.deleting) {
    e.status = 'Terminating';
    if (i.users.length > 0) {
      e.message = `kept on this node while pods use it: ${nameList(i.users)}`;
      if (i.report?.sha256 !== undefined) e.sha256 = i.report.sha256;
    } else {
      e.message = 'removed from this node';
    }
  } else if (i.report !== undefined) {
    e.status = i.report.state;
    if (i.report.message !== undefined) e.message = i.report.message;
    if (i.report.sha256 !== undefined) e.sha256 = i.report.sha256;
  }
  if (i.users.length > 0) e.activeWorkloads = [...i.users];
  return e;
}

const entryView = (e: NodeStatus | undefined): string =>
  e === undefined
    ? ''
    : JSON.stringify([
        e.nodeName,
        e.status,
        e.message ?? '',
        e.sha256 ?? '',
        e.observedGeneration ?? -1,
        e.activeWorkloads ?? [],
      ]);

/** Whether two entries say the same thing (the write time does not count). */
export const sameEntry = (a: NodeStatus | undefined, b: NodeStatus | undefined): boolean =>
  entryView(a) === entryView(b);

export interface AggregateInput {
  namespace: string;
  name: string;
  generation: number;
  deleting: boolean;
  disabled: boolean;
  /** This node's plan refused the profile (validation is the same on every node). */
  invalid: boolean;
  /** Entries of the live nodes only, this node's fresh one included. */
  entries: readonly NodeStatus[];
  /** Names of the live nodes (this one included). */
  liveNodes: readonly string[];
  /** The status on the object, for lastTransitionTime. */
  previous: SeccompProfileStatus | undefined;
  now: string;
}

/** The aggregate the agents agree on, from the live nodes' entries. */
export function aggregate(i: AggregateInput): Aggregate {
  const users = [...new Set(i.entries.flatMap((e) => e.activeWorkloads ?? []))].sort();
  const current = i.entries.filter((e) => e.observedGeneration === i.generation);
  const byNode = new Map(current.map((e) => [e.nodeName, e]));
  let status: ProfileState;
  let ready: 'True' | 'False';
  let reason: string;
  let message: string;
  const failed = current.find((e) => e.status === 'Error');
  if (i.deleting) {
    status = 'Terminating';
    ready = 'False';
    reason = Reasons.Terminating;
    message =
      users.length > 0
        ? `deletion waits for the pods that use it: ${nameList(users)}`
        : 'being removed from every node';
  } else if (failed !== undefined) {
    status = 'Error';
    ready = 'False';
    reason = i.invalid ? Reasons.ProfileInvalid : Reasons.InstallFailed;
    message = `${failed.nodeName}: ${failed.message ?? 'failed'}`;
  } else if (i.disabled) {
    status = 'Disabled';
    ready = 'False';
    reason = Reasons.Disabled;
    message = 'spec.disabled is true: not installed on any node';
  } else if (i.liveNodes.length > 0 && i.liveNodes.every((n) => byNode.get(n)?.status === 'Installed')) {
    status = 'Installed';
    ready = 'True';
    reason = Reasons.Installed;
    message = `installed on every node running the agent (${i.liveNodes.length})`;
  } else {
    // A fixed message while pending: a count here would change with every node's report and turn
    // every report into a correction by the others.
    status = 'Pending';
    ready = 'False';
    reason = Reasons.Pending;
    message = 'not yet installed on every node running the agent; status.nodes shows each node';
  }
  const prev = i.previous?.conditions?.find((c) => c.type === 'Ready');
  const lastTransitionTime =
    prev !== undefined && prev.status === ready && prev.lastTransitionTime !== undefined
      ? prev.lastTransitionTime
      : i.now;
  return {
    status,
    localhostProfile: `operator/${i.namespace}/${i.name}.json`,
    conditions: [
      { type: 'Ready', status: ready, reason, message, lastTransitionTime, observedGeneration: i.generation },
    ],
    observedGeneration: i.generation,
    activeWorkloads: users,
  };
}

const aggregateView = (s: Partial<Aggregate> | SeccompProfileStatus | undefined): string => {
  const ready = s?.conditions?.find((c) => c.type === 'Ready');
  return JSON.stringify([
    s?.status ?? '',
    s?.localhostProfile ?? '',
    s?.observedGeneration ?? -1,
    s?.activeWorkloads ?? [],
    ready === undefined ? [] : [ready.status, ready.reason ?? '', ready.message ?? '', ready.observedGeneration ?? -1],
  ]);
};

/** Whether the object's status already shows this aggregate (transition times do not count). */
export const sameAggregate = (a: Aggregate, onObject: SeccompProfileStatus | undefined): boolean =>
  aggregateView(a) === aggregateView(onObject);

/** FNV-1a, for a stable per-profile order of the nodes (who corrects a stale aggregate first). */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** This node's place (0 first) among the live nodes in the order of corrections for one profile. */
export function correctionRank(profileKey: string, node: string, liveNodes: readonly string[]): number {
  const mine = hash(`${profileKey}\u0000${node}`);
  let rank = 0;
  for (const n of liveNodes) {
    if (n === node) continue;
    const h = hash(`${profileKey}\u0000${n}`);
    if (h < mine || (h === mine && n < node)) rank++;
  }
  return rank;
}
