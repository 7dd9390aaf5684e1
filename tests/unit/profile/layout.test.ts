// The two layouts (shared/profile/layout.ts): keys, file names and localhostProfile of namespaced
// and cluster-scoped profiles; validation of v1 and v1beta1 documents in each scope; the two
// spellings of "disabled" kept consistent; every reference-operator v1 example renders to the bytes
// the reference operator writes, at operator/<name>.json.
import t from 'tap';
import { computeDesired, type KnownProfile } from '../../../shared/profile/desired.js';
import {
  localhostProfile,
  profileApi,
  profileKey,
  profileKeyOfLocalhost,
  specDisabled,
  splitProfileKey,
} from '../../../shared/profile/layout.js';
import { checkKey, validateProfile } from '../../../shared/profile/validate.js';
import { SYSCALL_CATALOG } from '../../../shared/syscalls/index.js';
import { spoExamples } from '../../helpers/spo-v1.js';

const V1 = 'security-profiles-operator.x-k8s.io/v1';
const V1BETA1 = 'security-profiles-operator.x-k8s.io/v1beta1';
const doc = (apiVersion: string, spec: Record<string, unknown>, namespace?: string): Record<string, unknown> => ({
  apiVersion,
  kind: 'SeccompProfile',
  metadata: { name: 'p', ...(namespace === undefined ? {} : { namespace }) },
  spec: { defaultAction: 'SCMP_ACT_LOG', ...spec },
});

t.test('keys, files and localhostProfile of both kinds of profile', async (t) => {
  t.equal(profileKey('ns', 'p'), 'ns/p');
  t.equal(profileKey('', 'p'), 'p');
  t.same(splitProfileKey('ns/p'), { namespace: 'ns', name: 'p' });
  t.same(splitProfileKey('p'), { namespace: '', name: 'p' });
  t.equal(localhostProfile('ns', 'p'), 'operator/ns/p.json');
  t.equal(localhostProfile('', 'p'), 'operator/p.json');
  for (const k of ['ns/p', 'p']) {
    const { namespace, name } = splitProfileKey(k);
    t.equal(profileKeyOfLocalhost(localhostProfile(namespace, name)), k, `${k}: localhostProfile and back`);
  }
});

t.test('the API paths of each layout', async (t) => {
  const ns = profileApi('Namespaced', 'v1beta1');
  t.equal(ns.listPath, '/apis/security-profiles-operator.x-k8s.io/v1beta1/seccompprofiles');
  t.equal(ns.objectPath('a', 'p'), '/apis/security-profiles-operator.x-k8s.io/v1beta1/namespaces/a/seccompprofiles/p');
  const cl = profileApi('Cluster', 'v1');
  t.equal(cl.apiVersion, V1);
  t.equal(cl.listPath, '/apis/security-profiles-operator.x-k8s.io/v1/seccompprofiles');
  t.equal(cl.objectPath('', 'p'), '/apis/security-profiles-operator.x-k8s.io/v1/seccompprofiles/p');
});

t.test(
  'scope: a v1 file without a namespace is cluster-scoped; the Cluster layout makes every profile so',
  async (t) => {
    const cases: [string, Record<string, unknown>, Parameters<typeof validateProfile>[2], string][] = [
      ['v1 file, no namespace', doc(V1, {}), {}, 'p'],
      ['v1 file with a namespace', doc(V1, {}, 'a'), {}, 'a/p'],
      ['v1beta1 file, no namespace (the seed: kubectl default)', doc(V1BETA1, {}), {}, 'default/p'],
      ['v1beta1 in the Cluster layout', doc(V1BETA1, {}), { layout: 'Cluster' }, 'p'],
      ['v1 in the Cluster layout', doc(V1, {}), { layout: 'Cluster' }, 'p'],
      ['v1beta1 in the Namespaced layout', doc(V1BETA1, {}, 'a'), { layout: 'Namespaced' }, 'a/p'],
    ];
    for (const [what, d, scope, key] of cases) {
      const c = validateProfile(d, SYSCALL_CATALOG, scope);
      t.ok(c.ok, `${what}: valid`);
      t.equal(checkKey(c), key, `${what}: key ${key}`);
    }
    const bad = validateProfile(doc('security-profiles-operator.x-k8s.io/v2', {}), SYSCALL_CATALOG);
    t.match(bad, { ok: false, errors: [{ reason: 'WrongApiVersion', message: /use .*\/v1 or .*\/v1beta1/ }] });
    const badCluster = validateProfile(doc(V1, { syscalls: 3 }), SYSCALL_CATALOG);
    t.match(
      badCluster,
      { ok: false, ref: 'p', namespace: '', name: 'p' },
      'a refused cluster-scoped profile keeps its key',
    );
  },
);

t.test('state and disabled: each pair, in both versions', async (t) => {
  const pairs: [Record<string, unknown>, boolean | 'refused'][] = [
    [{}, false],
    [{ state: 'Enabled' }, false],
    [{ state: 'Disabled' }, true],
    [{ disabled: false }, false],
    [{ disabled: true }, true],
    [{ state: 'Enabled', disabled: false }, false],
    [{ state: 'Disabled', disabled: true }, true],
    [{ state: 'Disabled', disabled: false }, 'refused'],
    [{ state: 'Enabled', disabled: true }, 'refused'],
  ];
  for (const api of [V1, V1BETA1]) {
    for (const [spec, want] of pairs) {
      const c = validateProfile(doc(api, spec, 'a'), SYSCALL_CATALOG);
      const what = `${api} ${JSON.stringify(spec)}`;
      if (want === 'refused') {
        t.match(c, { ok: false, errors: [{ reason: 'StateConflict', path: 'spec.disabled' }] }, `${what}: refused`);
        continue;
      }
      if (!c.ok) {
        t.fail(`${what}: refused`);
        continue;
      }
      t.equal(specDisabled(c.profile.spec), want, `${what}: disabled ${want}`);
      const plan = computeDesired([{ ok: true, profile: c.profile, warnings: [] }]);
      t.equal(
        plan.get('a/p')?.kind,
        want ? 'disabled' : 'install',
        `${what}: planned ${want ? 'disabled' : 'install'}`,
      );
    }
  }
  t.match(validateProfile(doc(V1, { state: 'Off' }), SYSCALL_CATALOG), {
    ok: false,
    errors: [{ path: 'spec.state', message: /Enabled, Disabled/ }],
  });
});

t.test('every reference-operator v1 example renders to the bytes it writes, as operator/<name>.json', async (t) => {
  const examples = spoExamples();
  t.ok(examples.length >= 10, `${examples.length} SeccompProfile examples`);
  for (const ex of examples) {
    const c = validateProfile(ex.doc, SYSCALL_CATALOG);
    if (!c.ok) {
      t.fail(`${ex.file} ${ex.name}: ${JSON.stringify(c.errors)}`);
      continue;
    }
    t.equal(checkKey(c), ex.name, `${ex.name}: cluster-scoped`);
    const known: KnownProfile = { ok: true, profile: c.profile, warnings: [] };
    const d = computeDesired([known]).get(ex.name);
    t.equal(
      d?.kind === 'install' ? d.content : undefined,
      ex.expected,
      `${ex.file} ${ex.name}: the reference operator's bytes`,
    );
    t.equal(localhostProfile(c.profile.metadata.namespace, ex.name), `operator/${ex.name}.json`);
  }
});
