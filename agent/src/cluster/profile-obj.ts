/** What the agent keeps of a SeccompProfile, and how it is read from a raw object. */
import { API_GROUP, API_VERSION, KIND, PLURAL } from '../../../shared/profile/enums.js';
import type { SeccompProfileStatus } from '../../../shared/profile/schema.js';

/** The finalizer that holds a profile while some live node has pods using it. */
export const IN_USE_FINALIZER = 'seccomp-agent.security-profiles-operator.x-k8s.io/in-use';

export const PROFILES_PATH = `/apis/${API_GROUP}/${API_VERSION}/${PLURAL}`;
export const profilePath = (ns: string, name: string): string =>
  `/apis/${API_GROUP}/${API_VERSION}/namespaces/${ns}/${PLURAL}/${name}`;

/** A SeccompProfile as the agent holds it (managedFields dropped). */
export interface ProfileObj {
  key: string;
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  resourceVersion: string;
  deleting: boolean;
  disabled: boolean;
  finalizers: string[];
  /** spec + deletion: a change here needs a new plan; a status-only change does not. */
  fingerprint: string;
  raw: Record<string, unknown>;
  status: SeccompProfileStatus | undefined;
}

export function profileObj(raw: Record<string, unknown>): ProfileObj | undefined {
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
  if (meta?.name === undefined || meta.namespace === undefined) return undefined;
  const { managedFields: _dropped, ...metadata } = meta;
  const kept: Record<string, unknown> = { ...raw, apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, metadata };
  const deleting = meta.deletionTimestamp !== undefined && meta.deletionTimestamp !== null;
  return {
    key: `${meta.namespace}/${meta.name}`,
    namespace: meta.namespace,
    name: meta.name,
    uid: meta.uid ?? '',
    generation: meta.generation ?? 0,
    resourceVersion: meta.resourceVersion ?? '',
    deleting,
    disabled: (raw['spec'] as { disabled?: boolean } | undefined)?.disabled === true,
    finalizers: meta.finalizers ?? [],
    fingerprint: JSON.stringify([meta.uid, meta.generation, deleting, raw['spec']]),
    raw: kept,
    status: raw['status'] as SeccompProfileStatus | undefined,
  };
}
