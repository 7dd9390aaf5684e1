/**
 * A node stand-in, kept for tests that need many nodes (a real node is one per machine, see
 * realnode.ts; the workshop runs on it: tests/e2e/workshop-realnode.test.ts). It does what a kubelet
 * (and, on a one-node cluster, the scheduler) does for the workshop's pods, over real parts: runc,
 * the kernel's seccomp and Debian's nginx below it, the kube-apiserver, kubectl and the agent above.
 *
 * - Registers its Node object, as a kubelet does.
 * - Binds every pod that has no node to this node (a Binding, as the scheduler posts one).
 * - For each pod bound here, resolves each container's seccomp profile as the kubelet does (the
 *   container's `securityContext.seccompProfile` wins over the pod's; `Localhost` means the file
 *   `<kubelet root>/seccomp/<localhostProfile>`, and a missing file is an error, as with
 *   containerd), runs the container with runc (any `nginx` image runs Debian's nginx from an
 *   assembled rootfs), and reports the pod's status (`containerID` is `containerd://<runc id>`, so
 *   the agent attributes audit events) and Events (`Failed` with the runtime's error; the real
 *   kubelet's words differ: tests/node/realnode.test.ts).
 * - When a pod is deleted (deletionTimestamp set), stops its containers and completes the deletion
 *   (grace period 0), as the kubelet does once the containers are gone.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeClient, isKubeApiError } from '../../agent/src/kube/client.js';
import { loadKubeconfig } from '../../agent/src/kube/kubeconfig.js';
import type { ControlPlane, TestLike } from './cluster.js';
import { pollUntil } from './exec.js';
import { startNginx, type NginxContainer } from './node.js';

interface SeccompProfileRef {
  type?: string;
  localhostProfile?: string;
}

interface PodContainer {
  name: string;
  image: string;
  securityContext?: { seccompProfile?: SeccompProfileRef };
}

interface PodObj {
  metadata: { name: string; namespace: string; uid: string; deletionTimestamp?: string };
  spec: { nodeName?: string; securityContext?: { seccompProfile?: SeccompProfileRef }; containers: PodContainer[] };
}

/** What the stand-in did with one container. */
export interface ContainerRun {
  readonly name: string;
  /** The host path of the seccomp profile it resolved; undefined for Unconfined. */
  readonly profilePath: string | undefined;
  /** The running nginx, when it started. */
  readonly nginx: NginxContainer | undefined;
  /** Why it did not start (the message the pod's status and its `Failed` Event carry). */
  readonly error: string | undefined;
}

/** What the stand-in did with one pod. */
export interface PodRun {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly containers: readonly ContainerRun[];
}

/** The running stand-in. */
export interface NodeStandIn {
  readonly node: string;
  /** Resolves once the pod's containers were started (or failed to start). */
  waitPod(namespace: string, name: string, timeoutMs?: number): Promise<PodRun>;
  /** Stops the loop and every container it started (also done at teardown). */
  stop(): Promise<void>;
}

/** Options of {@link startNodeStandIn}. */
export interface NodeStandInOptions {
  readonly cp: ControlPlane;
  readonly node: string;
  /** The kubelet root the agent writes to (`<root>/seccomp/operator/...`). */
  readonly kubeletRoot: string;
  /** How often the pods are listed; default 200 ms. */
  readonly pollMs?: number;
}

type Result<T> = { ok: true; value: T } | { ok: false; reason: string; message: string };

/** The profile the kubelet would hand the runtime: container level wins over pod level. */
async function resolveSeccomp(
  pod: PodObj,
  c: PodContainer,
  kubeletRoot: string,
): Promise<Result<{ path: string; text: string } | undefined>> {
  const ref = c.securityContext?.seccompProfile ?? pod.spec.securityContext?.seccompProfile;
  if (ref === undefined || ref.type === 'Unconfined') return { ok: true, value: undefined };
  if (ref.type !== 'Localhost' || ref.localhostProfile === undefined) {
    return {
      ok: false,
      reason: 'CreateContainerConfigError',
      message: `seccomp profile type ${String(ref.type)} is not available in the node stand-in (Localhost and Unconfined are)`,
    };
  }
  const path = join(kubeletRoot, 'seccomp', ref.localhostProfile);
  try {
    return { ok: true, value: { path, text: await readFile(path, 'utf8') } };
  } catch (e: unknown) {
    const code = (e as NodeJS.ErrnoException).code;
    return {
      ok: false,
      reason: 'CreateContainerError',
      message: `failed to create containerd container: cannot load seccomp profile "${path}": open ${path}: ${
        code === 'ENOENT' ? 'no such file or directory' : String(code)
      }`,
    };
  }
}

const isNginx = (image: string): boolean =>
  /^(?:(?:docker\.io\/)?library\/)?nginx(?::[\w.-]+)?(?:@sha256:[0-9a-f]+)?$/.test(image);

/** runc's own words from a failed start (its `msg="..."`), else the whole message. */
function runtimeError(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  const msgs = [...text.matchAll(/msg="([^"]+)"/g)].map((m) => m[1]);
  return msgs.at(-1) ?? text;
}

/** Starts the stand-in for `node`; it runs until `stop()` or the test's teardown. */
export async function startNodeStandIn(t: TestLike, o: NodeStandInOptions): Promise<NodeStandIn> {
  const client = new KubeClient(loadKubeconfig(o.cp.kubeconfig));
  const node = o.node;
  const runs = new Map<string, Promise<PodRun>>();
  const finished = new Set<string>();
  let stopped = false;
  let events = 0;

  try {
    await client.request({
      method: 'POST',
      path: '/api/v1/nodes',
      body: { apiVersion: 'v1', kind: 'Node', metadata: { name: node, labels: { 'kubernetes.io/hostname': node } } },
    });
  } catch (e: unknown) {
    if (!(isKubeApiError(e) && e.status === 409)) throw e;
  }

  const podPath = (p: PodObj, sub = ''): string =>
    `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}${sub}`;

  const event = async (p: PodObj, c: PodContainer, type: string, reason: string, message: string): Promise<void> => {
    const now = new Date().toISOString();
    await client.request({
      method: 'POST',
      path: `/api/v1/namespaces/${p.metadata.namespace}/events`,
      body: {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${p.metadata.name}.${Date.now().toString(16)}${String(events++)}` },
        involvedObject: {
          apiVersion: 'v1',
          kind: 'Pod',
          namespace: p.metadata.namespace,
          name: p.metadata.name,
          uid: p.metadata.uid,
          fieldPath: `spec.containers{${c.name}}`,
        },
        type,
        reason,
        message,
        source: { component: 'kubelet', host: node },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  };

  const startPod = async (p: PodObj): Promise<PodRun> => {
    const startedAt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const containers: ContainerRun[] = [];
    const statuses: unknown[] = [];
    for (const c of p.spec.containers) {
      const id = randomBytes(32).toString('hex');
      let failure: { reason: string; message: string } | undefined;
      let nginx: NginxContainer | undefined;
      let profilePath: string | undefined;
      const seccomp = await resolveSeccomp(p, c, o.kubeletRoot);
      if (!seccomp.ok) failure = seccomp;
      else if (!isNginx(c.image)) {
        failure = {
          reason: 'ErrImagePull',
          message: `image ${c.image} is not available in the node stand-in (nginx images run Debian's nginx)`,
        };
      } else {
        profilePath = seccomp.value?.path;
        try {
          nginx = await startNginx(t, { profile: seccomp.value?.text, id, podUid: p.metadata.uid });
        } catch (e: unknown) {
          failure = {
            reason: 'RunContainerError',
            message: `failed to start container "${c.name}": ${runtimeError(e)}`,
          };
        }
      }
      containers.push({ name: c.name, profilePath, nginx, error: failure?.message });
      if (failure === undefined) {
        await event(p, c, 'Normal', 'Started', `Started container ${c.name}`);
        statuses.push({
          name: c.name,
          image: c.image,
          imageID: '',
          containerID: `containerd://${id}`,
          ready: true,
          started: true,
          restartCount: 0,
          state: { running: { startedAt } },
        });
      } else {
        await event(p, c, 'Warning', 'Failed', `Error: ${failure.message}`);
        statuses.push({
          name: c.name,
          image: c.image,
          imageID: '',
          ready: false,
          started: false,
          restartCount: 0,
          state: { waiting: { reason: failure.reason, message: failure.message } },
        });
      }
    }
    const allUp = containers.every((c) => c.error === undefined);
    const cond = (type: string, ok: boolean) => ({
      type,
      status: ok ? 'True' : 'False',
      lastTransitionTime: startedAt,
      ...(ok ? {} : { reason: 'ContainersNotReady' }),
    });
    await client.request({
      method: 'PATCH',
      path: podPath(p, '/status'),
      contentType: 'application/merge-patch+json',
      body: {
        status: {
          phase: allUp ? 'Running' : 'Pending',
          hostIP: '127.0.0.1',
          podIP: '127.0.0.1',
          startTime: startedAt,
          conditions: [
            cond('PodScheduled', true),
            cond('Initialized', true),
            cond('ContainersReady', allUp),
            cond('Ready', allUp),
          ],
          containerStatuses: statuses,
        },
      },
    });
    return { namespace: p.metadata.namespace, name: p.metadata.name, uid: p.metadata.uid, containers };
  };

  const stopRun = async (uid: string): Promise<void> => {
    const run = runs.get(uid);
    if (run === undefined) return;
    const r = await run.catch(() => undefined);
    for (const c of r?.containers ?? []) await c.nginx?.container.stop();
  };

  const tick = async (): Promise<void> => {
    const list = await client.request<{ items: PodObj[] }>({ method: 'GET', path: '/api/v1/pods' });
    const seen = new Set<string>();
    for (const p of list.items) {
      const uid = p.metadata.uid;
      seen.add(uid);
      if (p.spec.nodeName === undefined || p.spec.nodeName === '') {
        if (p.metadata.deletionTimestamp !== undefined) continue;
        await client
          .request({
            method: 'POST',
            path: podPath(p, '/binding'),
            body: {
              apiVersion: 'v1',
              kind: 'Binding',
              metadata: { name: p.metadata.name, namespace: p.metadata.namespace },
              target: { apiVersion: 'v1', kind: 'Node', name: node },
            },
          })
          .catch((e: unknown) => {
            if (!(isKubeApiError(e) && (e.status === 409 || e.status === 404))) throw e;
          });
        continue;
      }
      if (p.spec.nodeName !== node || finished.has(uid)) continue;
      if (p.metadata.deletionTimestamp !== undefined) {
        finished.add(uid);
        await stopRun(uid);
        await client
          .request({
            method: 'DELETE',
            path: podPath(p),
            body: { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid } },
          })
          .catch((e: unknown) => {
            if (!(isKubeApiError(e) && (e.status === 404 || e.status === 409))) throw e;
          });
        continue;
      }
      if (!runs.has(uid)) {
        const run = startPod(p);
        run.catch(() => undefined);
        runs.set(uid, run);
      }
    }
    // Pods deleted without a grace period (or with their namespace) are gone already.
    for (const uid of runs.keys()) {
      if (!seen.has(uid) && !finished.has(uid)) {
        finished.add(uid);
        await stopRun(uid);
      }
    }
  };

  let loopError: unknown;
  const loop = (async () => {
    while (!stopped) {
      try {
        await tick();
        loopError = undefined;
      } catch (e: unknown) {
        loopError = e; // the API server may be restarting; the next tick tries again
      }
      await new Promise((r) => setTimeout(r, o.pollMs ?? 200));
    }
  })();

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await loop;
    for (const uid of runs.keys()) await stopRun(uid);
    client.close();
  };
  t.teardown(stop);

  return {
    node,
    async waitPod(namespace, name, timeoutMs = 60_000) {
      const started = await pollUntil(
        async () => {
          const list = await client.request<{ items: PodObj[] }>({
            method: 'GET',
            path: `/api/v1/namespaces/${namespace}/pods`,
            query: { fieldSelector: `metadata.name=${name}` },
          });
          const uid = list.items[0]?.metadata.uid;
          return uid === undefined ? undefined : runs.get(uid);
        },
        timeoutMs,
        100,
      );
      if (started === undefined) {
        const why = loopError instanceof Error ? ` (last error: ${loopError.message})` : '';
        throw new Error(`node stand-in ${node}: pod ${namespace}/${name} was not started within ${timeoutMs} ms${why}`);
      }
      return started;
    },
    stop,
  };
}
