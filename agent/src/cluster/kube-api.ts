/**
 * The small Kubernetes API the cluster code writes through: one request call. `KubeClient`
 * (agent/src/kube/client.ts) is one; the unit tests give a table of answers instead.
 */
import type { KubeRequest } from '../kube/client.js';

export interface KubeApi {
  request<T>(req: KubeRequest): Promise<T>;
}

/** JSON patch and server-side apply content types. */
export const JSON_PATCH = 'application/json-patch+json';
export const APPLY_PATCH = 'application/apply-patch+yaml';
export const MERGE_PATCH = 'application/merge-patch+json';
