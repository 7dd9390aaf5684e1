import t from 'tap';
import { PodIndex, podUse, profileKeyOfLocalhost } from '../../../agent/src/kube/pods.js';

t.test('localhostProfile to profile key', async (t) => {
  t.equal(profileKeyOfLocalhost('operator/ns/p.json'), 'ns/p');
  t.equal(profileKeyOfLocalhost('localhost/operator/ns/p.json'), 'ns/p', 'the deprecated annotation form');
  for (const v of ['profiles/ns/p.json', 'operator/p.json', 'operator/ns/p', 'operator/a/b/c.json', 42, undefined]) {
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
  t.same(podUse(pod), { key: 'ns/web', profiles: ['ns/debug', 'ns/init', 'ns/main', 'ns/old', 'ns/pod-level'] });
  t.same(podUse({ ...pod, status: { phase: 'Succeeded' } })?.profiles, [], 'a finished pod uses nothing');
  t.equal(podUse({ metadata: { name: 'x' } }), undefined);
});

t.test('the index follows pod changes', async (t) => {
  const idx = new PodIndex();
  t.same(idx.update(undefined, { key: 'ns/a', profiles: ['ns/p'] }), ['ns/p']);
  t.same(idx.update(undefined, { key: 'ns/b', profiles: ['ns/p', 'ns/q'] }).sort(), ['ns/p', 'ns/q']);
  t.same(idx.users('ns/p'), ['ns/a', 'ns/b']);
  t.same(
    idx.update({ key: 'ns/b', profiles: ['ns/p', 'ns/q'] }, { key: 'ns/b', profiles: ['ns/p', 'ns/q'] }),
    [],
    'no change',
  );
  t.same(idx.update({ key: 'ns/b', profiles: ['ns/p', 'ns/q'] }, undefined).sort(), ['ns/p', 'ns/q']);
  t.same(idx.users('ns/q'), []);
  t.same(idx.profilesInUse(), ['ns/p']);
});
