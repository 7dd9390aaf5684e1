// Discovery of the SeccompProfile API (agent/src/cluster/discovery.ts): the layout follows the
// served resource's scope, the version is the newest served; no CRD yet means waiting.
import pino from 'pino';
import t from 'tap';
import { awaitProfileApi, discoverProfileApi } from '../../../agent/src/cluster/discovery.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { FakeKubeApi } from '../../helpers/fake-kube-api.js';

const G = '/apis/security-profiles-operator.x-k8s.io';
const group = (...versions: string[]): Record<string, unknown> => ({
  kind: 'APIGroup',
  versions: versions.map((version) => ({ groupVersion: `security-profiles-operator.x-k8s.io/${version}`, version })),
});
const resources = (namespaced: boolean): Record<string, unknown> => ({
  kind: 'APIResourceList',
  resources: [
    { name: 'seccompprofiles', namespaced, kind: 'SeccompProfile' },
    { name: 'seccompprofiles/status', namespaced, kind: 'SeccompProfile' },
  ],
});

t.test('the layout and version come from the discovery documents', async (t) => {
  const cases: [string, string[], boolean, string, string, string][] = [
    ['the seed CRD', ['v1beta1'], true, 'Namespaced', 'v1beta1', `${G}/v1beta1/seccompprofiles`],
    ['the Cluster layout', ['v1', 'v1beta1'], false, 'Cluster', 'v1', `${G}/v1/seccompprofiles`],
    ['a 0.9-era cluster-scoped v1beta1', ['v1beta1'], false, 'Cluster', 'v1beta1', `${G}/v1beta1/seccompprofiles`],
  ];
  for (const [what, versions, namespaced, layout, version, list] of cases) {
    const api = new FakeKubeApi(new FakeClock()).on('GET', G, group(...versions));
    for (const v of versions) api.on('GET', `${G}/${v}`, resources(namespaced));
    const found = await discoverProfileApi(api);
    t.match(found, { layout, version, listPath: list }, what);
  }
});

t.test('no CRD: a problem that says so; awaitProfileApi waits and retries until it is there', async (t) => {
  const clock = new FakeClock();
  const api = new FakeKubeApi(clock);
  t.match(await discoverProfileApi(api), { problem: /is not served .*CRD installed/ });
  api.on('GET', G, group('v1'));
  api.on('GET', `${G}/v1`, { kind: 'APIResourceList', resources: [] });
  t.match(await discoverProfileApi(api), { problem: /none of v1, v1beta1 with seccompprofiles/ });
  let done = false;
  const waiting = awaitProfileApi(api, { clock, log: pino({ level: 'silent' }), retryMs: 100, maxRetryMs: 1000 }).then(
    (a) => {
      done = true;
      return a;
    },
  );
  await clock.advance(250);
  t.equal(done, false, 'still waiting');
  api.on('GET', `${G}/v1`, resources(false));
  await clock.advance(1000);
  t.match(await waiting, { layout: 'Cluster', version: 'v1' });
});
