import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { V1Pod } from '@kubernetes/client-node';
import { Attributor, containerFromCgroup } from '../../../agent/src/events/attribute.js';
import { StaticPodIndex, containerIdsOfPod, EMPTY_POD_INDEX } from '../../../agent/src/events/pod-index.js';
import { procReader, startTimeFromStat } from '../../../agent/src/events/proc.js';

const ID = 'a3f5c0de9b1e4f6a8c2d7e0b5a9f3c1d4e7b2a6f8c0d3e5b7a9c1f2e4d6b8a0c';
const UID = '2b1c6d2e-9f1a-4c4e-8a0b-7d3e5f6a1b2c';
const UID_ = UID.replaceAll('-', '_');

t.test('cgroup layouts → container id and pod uid', async (t) => {
  const v1 = (path: string, memory = path): string =>
    [`12:pids:${path}`, `11:memory:${memory}`, `5:devices:${path}`, `1:name=systemd:${path}`].join('\n') + '\n';
  const cases: [string, string, { containerId: string; podUid: string | null } | null][] = [
    ['containerd, cgroupfs, v2', `0::/kubepods/besteffort/pod${UID}/${ID}\n`, { containerId: ID, podUid: UID }],
    ['containerd, cgroupfs, v1', v1(`/kubepods/burstable/pod${UID}/${ID}`), { containerId: ID, podUid: UID }],
    ['guaranteed QoS has no qos segment', `0::/kubepods/pod${UID}/${ID}\n`, { containerId: ID, podUid: UID }],
    [
      'containerd, systemd driver',
      `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${ID}.scope\n`,
      { containerId: ID, podUid: UID },
    ],
    [
      'CRI-O, systemd driver',
      `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-${ID}.scope\n`,
      { containerId: ID, podUid: UID },
    ],
    [
      'guaranteed pod, systemd',
      `0::/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope\n`,
      { containerId: ID, podUid: UID },
    ],
    ['Docker, systemd', `0::/system.slice/docker-${ID}.scope\n`, { containerId: ID, podUid: null }],
    ['Docker, cgroupfs v1', v1(`/docker/${ID}`), { containerId: ID, podUid: null }],
    ['cgroup namespace: path relative to the reader', `0::/../../pod${UID}/${ID}\n`, { containerId: ID, podUid: UID }],
    // The corpus machine (hybrid): every v1 hierarchy and 0:: show runc's cgroupsPath.
    [
      'plain runc cgroupsPath (corpus)',
      v1('/probe/corpus-a') + '0::/probe/corpus-a\n',
      { containerId: 'corpus-a', podUid: null },
    ],
    [
      'runc without cgroupsPath (memory differs)',
      v1('/corpus-c', '/process_api/031bc49dc19c85b91a9ddb1a2fd3b5fc/corpus-c') + '0::/corpus-c\n',
      { containerId: 'corpus-c', podUid: null },
    ],
    [
      'host process (this machine: memory under /process_api)',
      v1('/', '/process_api/f8b0aaa853324207ee6d16e3c8fc418d') + '0::/\n',
      null,
    ],
    ['host process, pure v2', '0::/\n', null],
    ['systemd service', '0::/system.slice/cron.service\n', null],
    ['login session', '0::/user.slice/user-1000.slice/session-3.scope\n', null],
    ['CRI-O conmon is not the container', `0::/system.slice/crio-conmon-${ID}.scope\n`, null],
  ];
  for (const [name, text, want] of cases) t.same(containerFromCgroup(text), want, name);
});

t.test('start time is field 22, after a comm with spaces and parentheses', async (t) => {
  const stat =
    '4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 86688 3133440 362 18446744073709551615';
  t.equal(startTimeFromStat(stat), 86688);
  t.equal(startTimeFromStat('garbage'), undefined);
});

/** A /proc tree of our own: btime and per-pid stat and cgroup files. */
function fakeProc(
  t: Test,
  btime: number,
): { root: string; put(pid: number, startTicks: number, cgroup: string): void; kill(pid: number): void } {
  const root = t.testdir({ stat: `cpu  1 2 3\nbtime ${btime}\nprocesses 1\n` });
  return {
    root,
    put(pid, startTicks, cgroup) {
      mkdirSync(join(root, String(pid)), { recursive: true });
      writeFileSync(
        join(root, String(pid), 'stat'),
        `${pid} (sh) S 1 ${pid} ${pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 ${startTicks} 0 0`,
      );
      writeFileSync(join(root, String(pid), 'cgroup'), cgroup);
    },
    kill(pid) {
      writeFileSync(join(root, String(pid), 'stat'), '');
      writeFileSync(join(root, String(pid), 'cgroup'), '');
    },
  };
}

// A Pod as the API server returns it (trimmed to what matters), with a restarted container.
const POD: V1Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'nginx-7c5ddbdf54-x2x9k', namespace: 'seccomp-test', uid: UID },
  spec: {
    nodeName: 'node1',
    containers: [{ name: 'nginx', image: 'nginx:1.25' }],
    initContainers: [{ name: 'init', image: 'busybox' }],
  },
  status: {
    phase: 'Running',
    containerStatuses: [
      {
        name: 'nginx',
        image: 'nginx:1.25',
        imageID: '',
        ready: true,
        restartCount: 1,
        containerID: `containerd://${ID}`,
        lastState: { terminated: { exitCode: 137, containerID: `containerd://${'b'.repeat(64)}` } },
      },
    ],
    initContainerStatuses: [
      {
        name: 'init',
        image: 'busybox',
        imageID: '',
        ready: true,
        restartCount: 0,
        containerID: `containerd://${'c'.repeat(64)}`,
      },
    ],
    ephemeralContainerStatuses: [
      {
        name: 'debugger',
        image: 'busybox',
        imageID: '',
        ready: false,
        restartCount: 0,
        containerID: `cri-o://${'d'.repeat(64)}`,
      },
    ],
  },
};

t.test('StaticPodIndex: containers, init, ephemeral and previous instances', async (t) => {
  t.same(
    containerIdsOfPod(POD).map((e) => [e.id.slice(0, 4), e.ref.container]),
    [
      [ID.slice(0, 4), 'nginx'],
      ['bbbb', 'nginx'],
      ['cccc', 'init'],
      ['dddd', 'debugger'],
    ],
  );
  const idx = new StaticPodIndex([POD]);
  t.same(idx.byContainerId(ID), { namespace: 'seccomp-test', pod: 'nginx-7c5ddbdf54-x2x9k', container: 'nginx' });
  t.same(idx.byContainerId('d'.repeat(64))?.container, 'debugger');
  t.same(idx.byPodUid(UID), { namespace: 'seccomp-test', pod: 'nginx-7c5ddbdf54-x2x9k' });
  idx.remove(POD);
  t.equal(idx.byContainerId(ID), undefined, 'a removed pod is forgotten');
});

t.test('Attributor: pod, container-only, host, gone, reused pid', async (t) => {
  const btime = 1_795_860_000;
  const proc = fakeProc(t, btime);
  const at = (s: number): number => (btime + s) * 1000; // epoch ms, s seconds after boot
  proc.put(100, 500, `0::/kubepods/besteffort/pod${UID}/${ID}\n`); // started 5 s after boot
  proc.put(101, 600, `0::/kubepods/besteffort/pod${UID}/${'e'.repeat(64)}\n`);
  proc.put(102, 700, '0::/\n');
  const a = new Attributor({ proc: procReader(proc.root), podIndex: new StaticPodIndex([POD]) });

  t.match(a.attribute(100, at(10)), {
    kind: 'pod',
    containerId: ID,
    podUid: UID,
    namespace: 'seccomp-test',
    pod: 'nginx-7c5ddbdf54-x2x9k',
    container: 'nginx',
  });
  t.match(
    a.attribute(101, at(10)),
    {
      kind: 'container',
      containerId: 'e'.repeat(64),
      namespace: 'seccomp-test',
      pod: 'nginx-7c5ddbdf54-x2x9k',
      container: null,
    },
    'pod known by uid, container not yet',
  );
  t.match(a.attribute(102, at(10)), { kind: 'host', containerId: null });
  t.match(a.attribute(999, at(10)), { kind: 'unknown' }, 'never seen and gone');

  // pid 100 exits; a record that arrives late is still its own.
  a.newBatch();
  proc.kill(100);
  t.match(a.attribute(100, at(11)), { kind: 'pod', containerId: ID }, 'exited process: last known attribution');

  // pid 100 is reused by a host process started at 20 s: an old record (10 s) keeps the old container,
  // a record from before the new process started never gets the new one.
  a.newBatch();
  proc.put(100, 2000, '0::/\n');
  t.match(
    a.attribute(100, at(10)),
    { kind: 'pod', containerId: ID },
    'record older than the new process: the old one made it',
  );
  t.match(a.attribute(100, at(25)), { kind: 'host' }, 'record after the new process started: the new one');

  // A pid we never saw before whose current process started after the record: unknown, not misattributed.
  proc.put(103, 3000, `0::/kubepods/besteffort/pod${UID}/${ID}\n`);
  t.match(a.attribute(103, at(10)), { kind: 'unknown' }, 'pid reused before we ever saw it');
});

t.test('Attributor reads /proc once per pid per batch', async (t) => {
  let reads = 0;
  const real = procReader('/proc');
  const counting = {
    ...real,
    cgroup: (pid: number) => (reads++, real.cgroup(pid)),
    stat: (pid: number) => (reads++, real.stat(pid)),
  };
  const a = new Attributor({ proc: counting, podIndex: EMPTY_POD_INDEX });
  a.newBatch();
  for (let i = 0; i < 50; i++) a.attribute(process.pid, Date.now());
  t.equal(reads, 2, 'stat and cgroup once');
  t.not(a.attribute(process.pid, Date.now()).kind, 'unknown', 'a live process is attributed from the real /proc');
});

t.test('vanished children are matched to the one container that just forked with their comm', async (t) => {
  const btime = 1_795_860_000;
  const proc = fakeProc(t, btime);
  const at = (ms: number): number => (btime + 10) * 1000 + ms;
  const A = '1'.repeat(64);
  const B = '2'.repeat(64);
  proc.put(100, 100, `0::/kubepods/besteffort/pod${UID}/${A}\n`);
  proc.put(300, 100, `0::/kubepods/besteffort/pod${UID}/${B}\n`);
  const a = new Attributor({ proc: procReader(proc.root), podIndex: EMPTY_POD_INDEX });

  t.match(a.attribute(100, at(0), { comm: 'sh', syscall: 'clone' }), { containerId: A });
  // pid 101 never existed in /proc for us: its first record still has the parent's comm.
  t.match(
    a.attribute(101, at(1), { comm: 'sh', syscall: 'rt_sigaction' }),
    { kind: 'container', containerId: A },
    'child of the forking shell',
  );
  t.match(
    a.attribute(101, at(2), { comm: 'uname', syscall: 'uname' }),
    { containerId: A },
    'its records after execve too',
  );
  t.match(
    a.attribute(102, at(3), { comm: 'nginx', syscall: 'read' }),
    { kind: 'unknown' },
    'another comm is not matched',
  );
  t.match(a.attribute(103, at(5000), { comm: 'sh', syscall: 'read' }), { kind: 'unknown' }, 'too long after the fork');

  // Two containers fork a "sh" at the same time: a vanished "sh" could be either.
  t.match(a.attribute(100, at(6000), { comm: 'sh', syscall: 'clone' }), { containerId: A });
  t.match(a.attribute(300, at(6001), { comm: 'sh', syscall: 'clone3' }), { containerId: B });
  t.match(a.attribute(104, at(6002), { comm: 'sh', syscall: 'execve' }), { kind: 'unknown' }, 'ambiguous: not guessed');
});
