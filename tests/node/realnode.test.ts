// Issue 13: a real node. kube-apiserver and etcd (cluster.ts), kube-scheduler, the controller-manager's
// nodelifecycle controller, and a kubelet with containerd, CNI bridge networking and Debian's runc
// (realnode.ts). What a user depends on and the kubelet stand-in this replaced only imitated: how
// the kubelet resolves `localhostProfile` under its root dir, that runc applies the profile
// (Seccomp: 2), and what the kubelet reports when the profile file is not on the node (the
// reference operator's #2356): its exact words in the pod's status and Events, and that the pod
// starts by itself once the file is there. The pause image is the test bed's (images.ts); the pods
// run it as their container too.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { eventLines, startControlPlane, type ControlPlane } from '../testbed/cluster.js';
import { pollUntil } from '../testbed/exec.js';
import { PAUSE_IMAGE, ensurePauseImage } from '../testbed/images.js';
import { nodeBinaries, startRealNode, type RealNode } from '../testbed/realnode.js';

const NODE = 'realnode';
const NS = 'default';
// A profile that allows everything but ptrace: pause runs under it, and the spec shows it.
const PROFILE = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['ptrace'], action: 'SCMP_ACT_ERRNO' }] };

const sysctlsBefore = new Map(
  ['vm/overcommit_memory', 'kernel/panic', 'kernel/panic_on_oops'].map((k) => [
    k,
    readFileSync(`/proc/sys/${k}`, 'utf8').trim(),
  ]),
);
const HOST_PATHS = ['/var/lib/kubelet', '/var/lib/cni', '/var/log/containers', '/var/log/pods', '/run/containerd'];
const hostPathsBefore = HOST_PATHS.filter((p) => existsSync(p));
const cp = await startControlPlane(t, { nodes: [NODE] });
await cp.startControllerManager(['nodelifecycle']);
await cp.startScheduler((await nodeBinaries()).kubeScheduler);
const node = await startRealNode(t, { cp, name: NODE, pauseImage: await ensurePauseImage() });

function pod(name: string, localhostProfile: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS },
    spec: {
      terminationGracePeriodSeconds: 0,
      securityContext: { seccompProfile: { type: 'Localhost', localhostProfile } },
      containers: [{ name: 'main', image: PAUSE_IMAGE, imagePullPolicy: 'Never' }],
    },
  });
}

interface PodStatus {
  spec?: { nodeName?: string };
  metadata?: { uid?: string };
  status?: {
    phase?: string;
    podIP?: string;
    containerStatuses?: { state?: { waiting?: { reason?: string; message?: string }; running?: unknown } }[];
  };
}

async function getPod(cp: ControlPlane, name: string): Promise<PodStatus | undefined> {
  const r = await cp.kubectl(['-n', NS, 'get', 'pod', name, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as PodStatus) : undefined;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const v = await pollUntil(probe, timeoutMs, 250);
  if (v === undefined)
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; kubelet log:\n${await node.kubeletLog()}`);
  return v;
}

const statusField = (pid: number, field: string): string | undefined =>
  new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];

t.test('the node registered and is Ready, with containerd as its runtime', async (t) => {
  const r = await cp.kubectl([
    'get',
    'node',
    NODE,
    '-o',
    'jsonpath={.status.nodeInfo.containerRuntimeVersion} {.status.nodeInfo.kubeletVersion}',
  ]);
  t.equal(r.code, 0, 'kubectl get node');
  t.match(r.stdout, /^containerd:\/\/v?2\.4\.\d+\S* v1\.36\.3$/, `runtime and kubelet: ${r.stdout}`);
});

t.test('a pod with a Localhost profile runs under it (scheduled, CNI, Seccomp: 2)', async (t) => {
  const file = join(node.kubeletRoot, 'seccomp', 'operator', 'test', 'deny-ptrace.json');
  await mkdir(join(node.kubeletRoot, 'seccomp', 'operator', 'test'), { recursive: true });
  await writeFile(file, JSON.stringify(PROFILE));
  await cp.apply(pod('confined', 'operator/test/deny-ptrace.json'));
  const p = await waitFor('confined Running', async () => {
    const p = await getPod(cp, 'confined');
    return p?.status?.phase === 'Running' ? p : undefined;
  });
  t.equal(p.spec?.nodeName, NODE, 'kube-scheduler bound it to the real node');
  const id = await node.containerId(NS, 'confined');
  t.ok(id !== undefined, `the status has a containerd id (${id ?? 'none'})`);
  if (id === undefined) return;
  const pid = await node.containerPid(id);
  t.equal(statusField(pid, 'Seccomp'), '2', `/proc/${pid}/status: Seccomp: 2 (filter mode)`);
  t.equal(readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'pause', 'the process is the image entrypoint');
  const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  t.match(
    cgroup,
    new RegExp(`^\\d+:pids:${node.cgroupRoot}/kubepods/besteffort/pod${p.metadata?.uid ?? '?'}/${id}$`, 'm'),
    'its cgroup is <cgroupRoot>/kubepods/besteffort/pod<uid>/<container id>, as the agent attributes it',
  );
  const spec = await node.ociSpec(id);
  t.same(
    spec.linux?.seccomp?.defaultAction,
    'SCMP_ACT_ALLOW',
    'containerd wrote the profile into the OCI spec (config.json of the task bundle)',
  );
  t.match(JSON.stringify(spec.linux?.seccomp?.syscalls), /"ptrace".*SCMP_ACT_ERRNO/, 'with its ptrace rule');
  const addr = await node.inNetns(pid, 'ip', ['-4', '-o', 'addr', 'show', 'eth0']);
  t.match(
    addr.stdout,
    new RegExp(`inet ${(p.status?.podIP ?? '?').replace(/\./g, '\\.')}/24`),
    `eth0 holds the pod IP ${p.status?.podIP ?? ''}`,
  );
  t.equal(
    p.status?.podIP?.split('.').slice(0, 3).join('.'),
    node.podSubnet.split('.').slice(0, 3).join('.'),
    `in the node's pod subnet ${node.podSubnet}`,
  );
  const del = await cp.kubectl(['-n', NS, 'delete', 'pod', 'confined', '--wait=true'], { timeoutMs: 90_000 });
  t.equal(del.code, 0, 'the pod is deleted');
});

t.test(
  'a pod whose localhostProfile is not on the node: CreateContainerError, then it starts when the file comes',
  async (t) => {
    const rel = 'operator/test/late.json';
    const file = join(node.kubeletRoot, 'seccomp', rel);
    await cp.apply(pod('late', rel));
    const want = `failed to create containerd container: cannot load seccomp profile "${file}": open ${file}: no such file or directory`;
    const waiting = await waitFor('late CreateContainerError', async () => {
      const w = (await getPod(cp, 'late'))?.status?.containerStatuses?.[0]?.state?.waiting;
      return w?.reason === 'CreateContainerError' ? w : undefined;
    });
    t.equal(waiting.message, want, `status: waiting, CreateContainerError: ${want}`);
    const ev = await waitFor('the Failed event', async () => {
      const lines = await eventLines(cp, NS, 'late', 'Failed');
      return lines.length === 0 ? undefined : lines;
    });
    t.same(ev[0], `Warning|kubelet|Error: ${want}`, 'Event: Warning Failed from the kubelet, with the same words');
    const d = await cp.kubectl(['-n', NS, 'describe', 'pod', 'late']);
    t.ok(d.stdout.includes(`Error: ${want}`), 'kubectl describe shows it');
    t.equal((await getPod(cp, 'late'))?.status?.phase, 'Pending', 'the pod stays Pending');

    // The kubelet retries with a back-off: the pod starts by itself once the file is there.
    await writeFile(file, JSON.stringify(PROFILE));
    await waitFor('late Running after the file appeared', async () =>
      (await getPod(cp, 'late'))?.status?.phase === 'Running' ? true : undefined,
    );
    const pid = await node.podPid(NS, 'late');
    t.equal(statusField(pid, 'Seccomp'), '2', 'and runs under the profile');
    const del = await cp.kubectl(['-n', NS, 'delete', 'pod', 'late', '--wait=true'], { timeoutMs: 90_000 });
    t.equal(del.code, 0, 'the pod is deleted');
  },
);

t.test('teardown leaves nothing behind', async (t) => {
  const n: RealNode = node;
  await n.stop();
  t.notOk(existsSync(n.dir), `the node's dir ${n.dir} is gone`);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(n.dir));
  t.same(mounts, [], 'no mount under it');
  const cgroups = readdirSync('/sys/fs/cgroup').filter((h) => existsSync(join('/sys/fs/cgroup', h, n.cgroupRoot)));
  t.same(cgroups, [], `no ${n.cgroupRoot} cgroup in any hierarchy`);
  const procs = readdirSync('/proc').filter((p) => {
    try {
      return /^\d+$/.test(p) && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`${n.dir}/`);
    } catch {
      return false;
    }
  });
  t.same(procs, [], 'no process of the node is left');
  for (const [k, v] of sysctlsBefore)
    t.equal(readFileSync(`/proc/sys/${k}`, 'utf8').trim(), v, `${k} restored to ${v}`);
  t.same(
    HOST_PATHS.filter((p) => existsSync(p)),
    hostPathsBefore,
    'the host paths kubelet, libcni and ctr hard-code are as they were',
  );
  const links = readdirSync('/sys/class/net').filter((l) => l.startsWith('rnbr'));
  t.same(links, [], 'no node bridge is left');
});
