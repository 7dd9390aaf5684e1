/**
 * The node-local pod index: which profiles the pods bound to this node use. Only pods with
 * `spec.nodeName=<this node>` are watched, and of each only its key and the profiles it references
 * are kept, so memory follows this node's pods, never the cluster's.
 */

import type { V1Pod } from '@kubernetes/client-node';
import { profileKeyOfLocalhost } from '../../../shared/profile/layout.js';
import { containerIdsOfPod, type PodIndex as ContainerIndex, type PodRef } from '../events/pod-index.js';

/** What the agent keeps of a pod. */
export interface PodUse {
  /** `<namespace>/<name>` */
  key: string;
  /** Profile keys (`<namespace>/<name>`, or `<name>` when cluster-scoped) the pod's containers run under. */
  profiles: string[];
  uid?: string;
  /** Runtime container ids (current and last terminated) → container, for event attribution. */
  containers: { id: string; ref: PodRef }[];
  /** Each container's own profile (its securityContext, else the pod's), for what it logged. */
  containerProfiles?: { container: string; profile: string }[];
}

/** `operator/<ns>/<name>.json` → `<ns>/<name>`, `operator/<name>.json` → `<name>` (shared/profile/layout.ts). */
export { profileKeyOfLocalhost } from '../../../shared/profile/layout.js';

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined;
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function fromSecurityContext(sc: unknown): string | undefined {
  const sp = obj(obj(sc)?.['seccompProfile']);
  if (sp === undefined || sp['type'] !== 'Localhost') return undefined;
  return profileKeyOfLocalhost(sp['localhostProfile']);
}

/**
 * The profiles a pod uses: its pod-level securityContext, every container, init container and
 * ephemeral container, and the deprecated seccomp annotations. A pod that has finished (Succeeded
 * or Failed) uses none. Being generous is safe here: a profile kept a little longer costs nothing,
 * a profile removed under a starting container makes it fail.
 */
export function podUse(raw: Obj): PodUse | undefined {
  const meta = obj(raw['metadata']);
  const spec = obj(raw['spec']);
  const name = meta?.['name'];
  const namespace = meta?.['namespace'];
  if (typeof name !== 'string' || typeof namespace !== 'string' || spec === undefined) return undefined;
  const phase = obj(raw['status'])?.['phase'];
  const profiles = new Set<string>();
  const containerProfiles: { container: string; profile: string }[] = [];
  if (phase !== 'Succeeded' && phase !== 'Failed') {
    const add = (k: string | undefined): void => {
      if (k !== undefined) profiles.add(k);
    };
    const podLevel = fromSecurityContext(spec['securityContext']);
    add(podLevel);
    for (const list of ['containers', 'initContainers', 'ephemeralContainers']) {
      for (const c of arr(spec[list])) {
        const own = fromSecurityContext(obj(c)?.['securityContext']);
        add(own);
        // A container that names another kind of profile (RuntimeDefault, Unconfined) does not run under the pod's.
        const named = obj(obj(obj(c)?.['securityContext'])?.['seccompProfile']) !== undefined;
        const effective = own ?? (named ? undefined : podLevel);
        const cname = obj(c)?.['name'];
        if (effective !== undefined && typeof cname === 'string')
          containerProfiles.push({ container: cname, profile: effective });
      }
    }
    for (const [k, v] of Object.entries(obj(meta?.['annotations']) ?? {})) {
      if (
        k === 'seccomp.security.alpha.kubernetes.io/pod' ||
        k.startsWith('container.seccomp.security.alpha.kubernetes.io/')
      ) {
        add(profileKeyOfLocalhost(v));
      }
    }
  }
  const uid = meta?.['uid'];
  return {
    key: `${namespace}/${name}`,
    profiles: [...profiles].sort(),
    ...(typeof uid === 'string' ? { uid } : {}),
    containers: containerIdsOfPod(raw as V1Pod),
    ...(containerProfiles.length === 0 ? {} : { containerProfiles }),
  };
}

/** profile key → the pods on this node that use it. */
export class PodIndex implements ContainerIndex {
  readonly #byProfile = new Map<string, Set<string>>();
  readonly #byContainer = new Map<string, PodRef>();
  readonly #byUid = new Map<string, { namespace: string; pod: string }>();
  /** pod key → its containers' profiles. */
  readonly #containerProfiles = new Map<string, readonly { container: string; profile: string }[]>();

  /** The pod and container of a runtime container id on this node (event attribution). */
  byContainerId(id: string): PodRef | undefined {
    return this.#byContainer.get(id);
  }

  /** The pod of a pod uid on this node (a container its status does not list yet). */
  byPodUid(uid: string): { namespace: string; pod: string } | undefined {
    return this.#byUid.get(uid);
  }

  /** Updates the index for one pod change; returns the profile keys whose users changed. */
  update(old: PodUse | undefined, cur: PodUse | undefined): string[] {
    for (const c of old?.containers ?? []) this.#byContainer.delete(c.id);
    if (old?.uid !== undefined) this.#byUid.delete(old.uid);
    for (const c of cur?.containers ?? []) this.#byContainer.set(c.id, c.ref);
    if (old !== undefined) this.#containerProfiles.delete(old.key);
    if (cur?.containerProfiles !== undefined) this.#containerProfiles.set(cur.key, cur.containerProfiles);
    if (cur?.uid !== undefined) {
      const [namespace = '', pod = ''] = cur.key.split('/');
      this.#byUid.set(cur.uid, { namespace, pod });
    }
    const changed = new Set<string>();
    for (const p of old?.profiles ?? []) {
      if (cur?.profiles.includes(p) === true) continue;
      const set = this.#byProfile.get(p);
      set?.delete(old?.key ?? '');
      if (set?.size === 0) this.#byProfile.delete(p);
      changed.add(p);
    }
    for (const p of cur?.profiles ?? []) {
      let set = this.#byProfile.get(p);
      if (set === undefined) {
        set = new Set();
        this.#byProfile.set(p, set);
      }
      if (!set.has(cur?.key ?? '')) {
        set.add(cur?.key ?? '');
        changed.add(p);
      }
    }
    return [...changed];
  }

  /** The pods (`ns/name`, sorted) on this node that use a profile. */
  users(profileKey: string): string[] {
    return [...(this.#byProfile.get(profileKey) ?? [])].sort();
  }

  /** The containers on this node that run under a profile: namespace, pod and container name. */
  containersUsing(profileKey: string): { namespace: string; pod: string; container: string }[] {
    const out: { namespace: string; pod: string; container: string }[] = [];
    for (const podKey of this.users(profileKey)) {
      const [namespace = '', pod = ''] = podKey.split('/');
      for (const c of this.#containerProfiles.get(podKey) ?? []) {
        if (c.profile === profileKey) out.push({ namespace, pod, container: c.container });
      }
    }
    return out;
  }

  /** Every profile key in use on this node. */
  profilesInUse(): string[] {
    return [...this.#byProfile.keys()].sort();
  }
}
