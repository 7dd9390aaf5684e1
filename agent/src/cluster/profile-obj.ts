/** What the agent keeps of a SeccompProfile, and how it is read from a raw object. */
import { KIND } from '../../../shared/profile/enums.js';
import {
  CLUSTER_NAMESPACE,
  NAMESPACED_API,
  profileKey,
  specDisabled,
  type ProfileApi,
} from '../../../shared/profile/layout.js';
import type { SeccompProfileSpec, SeccompProfileStatus } from '../../../shared/profile/schema.js';

/** The finalizer that holds a profile while some live node has pods using it. */
export const IN_USE_FINALIZER = 'seccomp-agent.security-profiles-operator.x-k8s.io/in-use';

/** The Namespaced layout's paths (the seed's); the agent itself uses the discovered ProfileApi. */
export const PROFILES_PATH = NAMESPACED_API.listPath;
export const profilePath = NAMESPACED_API.objectPath;

/** A SeccompProfile as the agent holds it (managedFields dropped). */
export interface ProfileObj {
  /** `<namespace>/<name>`, or `<name>` when cluster-scoped (layout.ts). */
  key: string;
  /** '' when cluster-scoped. */
  namespace: string;
  name: string;
  /** The object's path on the API server (in the discovered layout and version). */
  path: string;
  uid: string;
  generation: number;
  resourceVersion: string;
  deleting: boolean;
  disabled: boolean;
  /** defaultAction SCMP_ACT_LOG (a base profile never changes it): its status says what enforcing would block. */
  complain: boolean;
  finalizers: string[];
  /** spec + deletion: a change here needs a new plan; a status-only change does not. */
  fingerprint: string;
  raw: Record<string, unknown>;
  status: SeccompProfileStatus | undefined;
}

/** Reads a raw object of the given API (the seed's Namespaced v1beta1 one when not said). */
export function profileObj(raw: Record<string, unknown>, api: ProfileApi = NAMESPACED_API): ProfileObj | undefined {
  const meta = raw['metadata'] as
    | {
        name?: string;
        namespace?: string;
        uid?: string;
        generation?: number;
        resourceVersion?: string;
        deletionTimestamp?: string;
        finalizers?: string[];
        managedFields?: unknown;
      }
    | undefined;
  const namespace = api.layout === 'Cluster' ? CLUSTER_NAMESPACE : meta?.namespace;
  if (meta?.name === undefined || namespace === undefined) return undefined;
  const { managedFields: _dropped, ...metadata } = meta;
  const kept: Record<string, unknown> = { ...raw, apiVersion: api.apiVersion, kind: KIND, metadata };
  const deleting = meta.deletionTimestamp !== undefined && meta.deletionTimestamp !== null;
  return {
    key: profileKey(namespace, meta.name),
    namespace,
    name: meta.name,
    path: api.objectPath(namespace, meta.name),
    uid: meta.uid ?? '',
    generation: meta.generation ?? 0,
    resourceVersion: meta.resourceVersion ?? '',
    deleting,
    disabled: specDisabled(raw['spec'] as Partial<SeccompProfileSpec> | undefined),
    complain: (raw['spec'] as Partial<SeccompProfileSpec> | undefined)?.defaultAction === 'SCMP_ACT_LOG',
    finalizers: meta.finalizers ?? [],
    fingerprint: JSON.stringify([meta.uid, meta.generation, deleting, raw['spec']]),
    raw: kept,
    status: raw['status'] as SeccompProfileStatus | undefined,
  };
}
