/**
 * Joining a container id to its pod. The cluster side implements PodIndex from the node-local pod
 * watch; StaticPodIndex is the plain in-memory implementation (tests, and a base for that watch).
 */
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';

/** Where a container runs in the cluster. */
export interface PodRef {
  readonly namespace: string;
  readonly pod: string;
  readonly container: string;
}

/** Looks up containers (and optionally pods) on this node. */
export interface PodIndex {
  /** By runtime container id (64 hex digits, no `containerd://` prefix). */
  byContainerId(id: string): PodRef | undefined;
  /** By pod uid, for a container the pod's status does not list yet. */
  byPodUid?(uid: string): { readonly namespace: string; readonly pod: string } | undefined;
}

/** An index that knows nothing (no cluster). */
export const EMPTY_POD_INDEX: PodIndex = Object.freeze({ byContainerId: () => undefined });

/** `containerd://abc` → `abc`; ids without a scheme are returned as they are. */
export function stripRuntimeScheme(containerID: string): string {
  const i = containerID.indexOf('://');
  return i < 0 ? containerID : containerID.slice(i + 3);
}

/** Every (container id → ref) a pod's status names: containers, init containers, ephemeral containers. */
export function containerIdsOfPod(pod: V1Pod): { id: string; ref: PodRef }[] {
  const namespace = pod.metadata?.namespace ?? 'default';
  const name = pod.metadata?.name ?? '';
  const statuses: V1ContainerStatus[] = [
    ...(pod.status?.containerStatuses ?? []),
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.ephemeralContainerStatuses ?? []),
  ];
  const out: { id: string; ref: PodRef }[] = [];
  for (const s of statuses) {
    // A restarted container's previous id still owns records that arrive late.
    for (const cid of [s.containerID, s.lastState?.terminated?.containerID]) {
      if (cid !== undefined && cid !== '')
        out.push({ id: stripRuntimeScheme(cid), ref: { namespace, pod: name, container: s.name } });
    }
  }
  return out;
}

/** An in-memory PodIndex fed with Pod objects. */
export class StaticPodIndex implements PodIndex {
  private readonly byId = new Map<string, PodRef>();
  private readonly byUid = new Map<string, { namespace: string; pod: string }>();
  private readonly idsOfPod = new Map<string, string[]>();

  constructor(pods: readonly V1Pod[] = []) {
    for (const p of pods) this.upsert(p);
  }

  /** Adds or replaces a pod. */
  upsert(pod: V1Pod): void {
    this.remove(pod);
    const key = podKey(pod);
    const entries = containerIdsOfPod(pod);
    for (const e of entries) this.byId.set(e.id, e.ref);
    this.idsOfPod.set(
      key,
      entries.map((e) => e.id),
    );
    const uid = pod.metadata?.uid;
    if (uid !== undefined)
      this.byUid.set(uid, { namespace: pod.metadata?.namespace ?? 'default', pod: pod.metadata?.name ?? '' });
  }

  /** Forgets a pod. */
  remove(pod: V1Pod): void {
    const key = podKey(pod);
    for (const id of this.idsOfPod.get(key) ?? []) this.byId.delete(id);
    this.idsOfPod.delete(key);
    const uid = pod.metadata?.uid;
    if (uid !== undefined) this.byUid.delete(uid);
  }

  byContainerId(id: string): PodRef | undefined {
    return this.byId.get(id);
  }

  byPodUid(uid: string): { namespace: string; pod: string } | undefined {
    return this.byUid.get(uid);
  }
}

function podKey(pod: V1Pod): string {
  return `${pod.metadata?.namespace ?? 'default'}/${pod.metadata?.name ?? ''}`;
}
