import t from 'tap';
import { PodIndex, podUse, profileKeyOfLocalhost } from '../../../agent/src/kube/pods.js';

t.test('localhostProfile to profile key', async (t) => {
  t.equal(profileKeyOfLocalhost('operator/ns/p.json'), 'ns/p');
  t.equal(profileKeyOfLocalhost('localhost/operator/ns/p.json'), 'ns/p', 'the deprecated annotation form');
  t.equal(profileKeyOfLocalhost('operator/p.json'), 'p', 'a cluster-scoped profile (Cluster layout): keyed by name');
  t.equal(profileKeyOfLocalhost('localhost/operator/p.json'), 'p');
  for (const v of [
    'profiles/ns/p.json',
    'operator/.json',
    'operator//p.json',
    'operator/ns/p',
    'operator/a/b/c.json',
    42,
    undefined,
  ]) {
    t.equal(profileKeyOfLocalhost(v), undefined, `${String(v)} is not ours`);
  }
});

t.test('the profiles a pod uses', async (t) => {
  const local = (p: string) => ({ seccompProfile: { type: 'Localhost', localhostProfile: `operator/ns/${p}.json` } });
  const pod = {
    metadata: {
      name: 'web',
      namespace: 'ns',
      annotations: { 'container.seccomp.security.alpha.kubernetes.io/x': 'localhost/operator/ns/old.json' },
    },
    spec: {
      securityContext: local('pod-level'),
      initContainers: [{ name: 'i', securityContext: local('init') }],
      containers: [
        { name: 'c', securityContext: local('main') },
        { name: 'd', securityContext: { seccompProfile: { type: 'RuntimeDefault' } } },
      ],
      ephemeralContainers: [{ name: 'e', securityContext: local('debug') }],
    },
  };
  t.same(podUse(pod), {
    key: 'ns/web',
    profiles: ['ns/debug', 'ns/init', 'ns/main', 'ns/old', 'ns/pod-level'],
    containers: [],
    // d names RuntimeDefault: it does not run under the pod-level profile.
    containerProfiles: [
      { container: 'c', profile: 'ns/main' },
      { container: 'i', profile: 'ns/init' },
      { container: 'e', profile: 'ns/debug' },
    ],
  });
  const plain = {
    metadata: { name: 'p', namespace: 'ns' },
    spec: {
      securityContext: local('pod-level'),
      containers: [{ name: 'a' }, { name: 'b', securityContext: local('own') }],
    },
  };
  t.same(
    podUse(plain)?.containerProfiles,
    [
      { container: 'a', profile: 'ns/pod-level' },
      { container: 'b', profile: 'ns/own' },
    ],
    "a container without a profile of its own runs under the pod's",
  );
  const idx = new PodIndex();
  idx.update(undefined, podUse(plain));
  t.same(idx.containersUsing('ns/pod-level'), [{ namespace: 'ns', pod: 'p', container: 'a' }], 'containersUsing');
  t.same(idx.containersUsing('ns/own'), [{ namespace: 'ns', pod: 'p', container: 'b' }]);
  idx.update(podUse(plain), undefined);
  t.same(idx.containersUsing('ns/own'), [], 'forgotten with the pod');
  t.same(podUse({ ...pod, status: { phase: 'Succeeded' } })?.profiles, [], 'a finished pod uses nothing');
  t.equal(podUse({ metadata: { name: 'x' } }), undefined);
});

t.test('the index follows pod changes', async (t) => {
  const idx = new PodIndex();
  const use = (key: string, profiles: string[]) => ({ key, profiles, containers: [] });
  t.same(idx.update(undefined, use('ns/a', ['ns/p'])), ['ns/p']);
  t.same(idx.update(undefined, use('ns/b', ['ns/p', 'ns/q'])).sort(), ['ns/p', 'ns/q']);
  t.same(idx.users('ns/p'), ['ns/a', 'ns/b']);
  t.same(idx.update(use('ns/b', ['ns/p', 'ns/q']), use('ns/b', ['ns/p', 'ns/q'])), [], 'no change');
  t.same(idx.update(use('ns/b', ['ns/p', 'ns/q']), undefined).sort(), ['ns/p', 'ns/q']);
  t.same(idx.users('ns/q'), []);
  t.same(idx.profilesInUse(), ['ns/p']);
});

t.test('container ids join events to pods, through restarts and pod changes', async (t) => {
  const idx = new PodIndex();
  const id1 = 'a'.repeat(64);
  const id0 = 'b'.repeat(64);
  const pod = (containerID: string) => ({
    metadata: { name: 'web', namespace: 'ns', uid: 'u-1' },
    spec: { containers: [{ name: 'c' }] },
    status: {
      containerStatuses: [
        {
          name: 'c',
          containerID: `containerd://${containerID}`,
          lastState: { terminated: { containerID: `containerd://${id0}` } },
        },
      ],
      initContainerStatuses: [{ name: 'init', containerID: `cri-o://${'c'.repeat(64)}` }],
    },
  });
  const first = podUse(pod(id1));
  idx.update(undefined, first);
  t.same(idx.byContainerId(id1), { namespace: 'ns', pod: 'web', container: 'c' });
  t.same(
    idx.byContainerId(id0),
    { namespace: 'ns', pod: 'web', container: 'c' },
    'the previous run of a restarted container',
  );
  t.same(idx.byContainerId('c'.repeat(64)), { namespace: 'ns', pod: 'web', container: 'init' }, 'init containers too');
  t.same(idx.byPodUid('u-1'), { namespace: 'ns', pod: 'web' });
  const id2 = 'd'.repeat(64);
  idx.update(first, podUse(pod(id2)));
  t.equal(idx.byContainerId(id1), undefined, 'an id the pod no longer lists is forgotten');
  t.same(idx.byContainerId(id2), { namespace: 'ns', pod: 'web', container: 'c' });
  idx.update(podUse(pod(id2)), undefined);
  t.equal(idx.byContainerId(id2), undefined);
  t.equal(idx.byPodUid('u-1'), undefined);
});
