// Issue 5, attribution with a real API server: a Pod stored in the test bed's kube-apiserver whose
// status.containerStatuses carries the id of a runc container running on this node; the PodIndex is
// fed with the Pod as the API server returns it, and the agent's events show its namespace, pod and
// container. (The cluster-sync work implements PodIndex from the node-local watch.)
import { randomBytes } from 'node:crypto';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import Fastify from 'fastify';
import { pino } from 'pino';
import t from 'tap';
import { StaticPodIndex } from '../../agent/src/events/pod-index.js';
import { startEventPipeline } from '../../agent/src/events/pipeline.js';
import { eventsRoutes } from '../../agent/src/http/events-routes.js';
import { startControlPlane } from '../testbed/cluster.js';
import { ensureAuditd, startContainer } from '../testbed/node.js';
import { ensureBusyboxRootfs } from '../testbed/rootfs.js';

async function until<T>(probe: () => T | undefined, what: string, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('events carry namespace, pod and container from a Pod in the API server', async (t) => {
  const cp = await startControlPlane(t);
  const audit = await ensureAuditd(t);
  const rootfs = await ensureBusyboxRootfs();
  const id = randomBytes(32).toString('hex');

  await cp.apply(`
apiVersion: v1
kind: Namespace
metadata: {name: seccomp-test}
---
apiVersion: v1
kind: Pod
metadata: {name: complainer, namespace: seccomp-test}
spec:
  nodeName: node1
  containers:
  - {name: app, image: busybox}
`);
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const created = await core.readNamespacedPod({ name: 'complainer', namespace: 'seccomp-test' });
  const uid = created.metadata?.uid ?? '';
  t.match(uid, /^[0-9a-f-]{36}$/);
  // What the kubelet would report once the container runs.
  const patched = await cp.kubectl([
    'patch',
    'pod',
    'complainer',
    '-n',
    'seccomp-test',
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({
      status: {
        phase: 'Running',
        containerStatuses: [
          {
            name: 'app',
            image: 'busybox',
            imageID: '',
            ready: true,
            restartCount: 0,
            started: true,
            containerID: `containerd://${id}`,
            state: { running: {} },
          },
        ],
      },
    }),
  ]);
  t.equal(patched.code, 0, patched.stderr);
  const pod = await core.readNamespacedPod({ name: 'complainer', namespace: 'seccomp-test' });
  t.equal(
    pod.status?.containerStatuses?.[0]?.containerID,
    `containerd://${id}`,
    'the API server stored the container id',
  );

  const podIndex = new StaticPodIndex([pod]);
  const p = await startEventPipeline({
    node: 'node1',
    logger: pino({ level: 'silent' }),
    source: 'auditd',
    auditLog: audit.logPath,
    podIndex,
  });
  t.teardown(() => p.stop());
  const app = Fastify();
  await app.register(eventsRoutes, { store: p.store, node: 'node1' });
  t.teardown(() => app.close());

  // The container, in the kubelet's cgroup layout with the pod's real uid.
  const c = await startContainer(t, {
    rootfs,
    profile: '{"defaultAction":"SCMP_ACT_LOG"}',
    args: ['/bin/sh', '-c', 'uname -a; sleep 30'],
    id,
    podUid: uid,
  });
  await until(() => (p.store.events({ containerId: id }, 1).length > 0 ? true : undefined), 'events of the container');
  const items = (await app.inject('/v1/events?namespace=seccomp-test&pod=complainer&container=app')).json()
    .items as Record<string, unknown>[];
  t.ok(items.length > 0, `${items.length} events for seccomp-test/complainer/app`);
  t.ok(
    items.every((e) => e['containerId'] === id && e['podUid'] === uid && e['attribution'] === 'pod'),
    'with the container id and pod uid',
  );
  t.ok(
    items.some((e) => e['pid'] === c.pid),
    "including the container's init",
  );
  const sys = (await app.inject('/v1/syscalls?namespace=seccomp-test&pod=complainer')).json().items as {
    container: string;
    syscalls: { name: string }[];
  }[];
  t.equal(sys[0]?.container, 'app');
  t.ok(sys[0]?.syscalls.some((s) => s.name === 'execve'));
  await c.stop();
});
