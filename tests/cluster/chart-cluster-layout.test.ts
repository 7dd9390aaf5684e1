// `helm install --set profileLayout=Cluster` on the real API server (issue 14): the chart installs
// the cluster-scoped SeccompProfile CRD (v1 stored, v1beta1 served, no conversion webhook); agents
// (as processes, the test bed has no kubelet) discover it; `kubectl get seccompprofiles` with no
// namespace lists the reference operator's examples with their status. A bad layout is refused.
import { join } from 'node:path';
import t from 'tap';
import { startControlPlane } from '../testbed/cluster.js';
import { spoExamplesDir } from '../helpers/spo-v1.js';
import { CHART } from './chart-helpers.js';
import { AGENT_NS, createNodes, startAgent, waitFor } from './sync-helpers.js';

const cp = await startControlPlane(t);
const G = 'security-profiles-operator.x-k8s.io';

t.test('a layout that is not Namespaced or Cluster is refused, naming the key', async (t) => {
  const r = await cp.helm(['template', 'x', CHART, '--set', 'profileLayout=Global']);
  t.not(r.code, 0);
  t.match(r.stderr, /profileLayout/);
});

t.test('helm install --set profileLayout=Cluster; kubectl get seccompprofiles lists them with status', async (t) => {
  const install = await cp.helm(
    [
      'install',
      'seccomp-agent',
      CHART,
      '--namespace',
      AGENT_NS,
      '--create-namespace',
      '--set',
      'profileLayout=Cluster',
    ],
    { timeoutMs: 120_000 },
  );
  t.equal(install.code, 0, install.stderr);
  t.match(install.stdout, '/var/lib/kubelet/seccomp/operator/<name>.json', 'NOTES: the Cluster layout path');
  t.match(install.stdout, /^ {2}kubectl describe seccompprofile <name> /m, 'NOTES: no namespace');
  t.notMatch(install.stdout, '<namespace>', 'NOTES: nothing namespaced');
  const est = await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', `crd/seccompprofiles.${G}`]);
  t.equal(est.code, 0, est.stderr);
  const crd = await cp.kubectl(['get', 'crd', `seccompprofiles.${G}`, '-o', 'json']);
  const spec = (
    JSON.parse(crd.stdout) as {
      spec: { scope: string; conversion: { strategy: string }; versions: { name: string; storage: boolean }[] };
    }
  ).spec;
  t.equal(spec.scope, 'Cluster');
  t.equal(spec.conversion.strategy, 'None');
  t.same(
    spec.versions.map((v) => [v.name, v.storage]),
    [
      ['v1', true],
      ['v1beta1', false],
    ],
  );
  const ds = await cp.kubectl([
    'get',
    'daemonset',
    '-n',
    AGENT_NS,
    'seccomp-agent',
    '-o',
    'jsonpath={.spec.template.metadata.annotations}',
  ]);
  t.match(ds.stdout, /"seccomp-agent.dev\/profile-layout":"Cluster"/, 'a layout change rolls the agents');

  const nodes = ['node-1', 'node-2'];
  await createNodes(cp, nodes);
  const agents = await Promise.all(nodes.map((node) => startAgent(t, { node, kubeconfig: cp.kubeconfig })));
  const a = await cp.kubectl(['apply', '-f', join(spoExamplesDir(), 'seccompprofile.yaml')]);
  t.equal(a.code, 0, a.stderr);
  const out = await waitFor('four profiles Installed 2/2', async () => {
    const r = await cp.kubectl(['get', 'seccompprofiles']);
    return (r.stdout.match(/\sInstalled\s+2\/2\s/g) ?? []).length === 4 ? r.stdout : undefined;
  });
  t.comment(out);
  t.match(out, /^NAME\s+STATUS\s+NODES\s+AGE/m, 'no NAMESPACE column: cluster-scoped');
  for (const n of [
    'profile-block-all',
    'profile-complain-unsafe',
    'profile-allow-unsafe',
    'profile-complain-block-high-risk',
  ]) {
    t.match(out, new RegExp(`^${n}\\s+Installed\\s+2/2`, 'm'), n);
  }
  const wide = await cp.kubectl(['get', 'seccompprofiles', 'profile-block-all', '-o', 'wide']);
  t.match(wide.stdout, 'operator/profile-block-all.json', 'LocalhostProfile column');
  for (const ag of agents) t.same((await ag.stats()).profileApi, { layout: 'Cluster', version: 'v1' });
});
