/**
 * The two layouts of the SeccompProfile API, and the names a profile gets in each. A cluster runs
 * one layout at a time (a CRD has one scope):
 *
 * - `Namespaced` (the seed's): v1beta1, namespaced, files at `operator/<namespace>/<name>.json`;
 * - `Cluster` (the reference operator since 0.9): cluster-scoped, v1 stored and v1beta1 served with
 *   the same schema, files at `operator/<name>.json`.
 *
 * A cluster-scoped profile is carried with namespace `''` everywhere, so its key is its name and
 * the two kinds of keys (`<name>` and `<namespace>/<name>`) never collide: names hold no `/`.
 * Pure: no I/O.
 */
import { API_GROUP, API_VERSION, API_VERSION_V1, PLURAL } from './enums.js';

export const LAYOUTS = ['Namespaced', 'Cluster'] as const;
export type Layout = (typeof LAYOUTS)[number];

/** The SeccompProfile versions we read, newest first (the order the agent prefers them in). */
export const PROFILE_VERSIONS = [API_VERSION_V1, API_VERSION] as const;
export type ProfileVersion = (typeof PROFILE_VERSIONS)[number];

/** The namespace of a cluster-scoped profile. */
export const CLUSTER_NAMESPACE = '';

/** `<name>` for a cluster-scoped profile, `<namespace>/<name>` for a namespaced one. */
export const profileKey = (namespace: string, name: string): string =>
  namespace === CLUSTER_NAMESPACE ? name : `${namespace}/${name}`;

/** A profile key back to its namespace and name. */
export function splitProfileKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: CLUSTER_NAMESPACE, name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** The file under `<kubelet root>/seccomp/`: `operator/<name>.json` or `operator/<namespace>/<name>.json`. */
export const localhostProfile = (namespace: string, name: string): string =>
  `operator/${profileKey(namespace, name)}.json`;

const PREFIX = 'operator/';

/**
 * A pod's localhostProfile → the profile key, in either layout (`operator/<name>.json` →
 * `<name>`, `operator/<ns>/<name>.json` → `<ns>/<name>`); anything else → undefined. Both forms
 * are read in both layouts, so a pod that still names a file of the other layout keeps it in use.
 */
export function profileKeyOfLocalhost(localhostProfile: unknown): string | undefined {
  if (typeof localhostProfile !== 'string') return undefined;
  const p = localhostProfile.startsWith('localhost/') ? localhostProfile.slice('localhost/'.length) : localhostProfile;
  if (!p.startsWith(PREFIX) || !p.endsWith('.json')) return undefined;
  const parts = p.slice(PREFIX.length, -'.json'.length).split('/');
  if (parts.some((x) => x === '') || parts.length > 2) return undefined;
  return parts.join('/');
}

/** Where the agent reads and writes SeccompProfiles on the API server, in one layout and version. */
export interface ProfileApi {
  layout: Layout;
  version: ProfileVersion;
  /** `<group>/<version>`, as objects sent to the API server say. */
  apiVersion: string;
  /** Every profile (all namespaces, or the cluster's). */
  listPath: string;
  /** One profile. */
  objectPath: (namespace: string, name: string) => string;
}

export function profileApi(layout: Layout, version: ProfileVersion): ProfileApi {
  const base = `/apis/${API_GROUP}/${version}`;
  return {
    layout,
    version,
    apiVersion: `${API_GROUP}/${version}`,
    listPath: `${base}/${PLURAL}`,
    objectPath:
      layout === 'Cluster'
        ? (_ns, name) => `${base}/${PLURAL}/${name}`
        : (ns, name) => `${base}/namespaces/${ns}/${PLURAL}/${name}`,
  };
}

/** The seed's layout, for callers that have not discovered one (standalone tests, tools). */
export const NAMESPACED_API: ProfileApi = profileApi('Namespaced', API_VERSION);

/** A spec's two spellings of "not installed": `state: Disabled` (v1) and `disabled: true` (seed). */
export function specDisabled(spec: { state?: string; disabled?: boolean } | undefined): boolean {
  return spec?.state === 'Disabled' || spec?.disabled === true;
}
