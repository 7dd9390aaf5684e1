// Issue 6: the Helm chart and the plain manifest on a real kube-apiserver with the test bed's helm.
// lint; the rendering applies (server-side dry run); install creates the DaemonSet, RBAC and both
// CRDs; the schema refuses bad values with the key and what is allowed; uninstall leaves only the
// CRDs; the deploy manifest has not drifted from the chart. (That the chart's crds/ are the
// generated CRDs is checked without a cluster, in tests/unit/profile/crd.test.ts.)
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoPath, startControlPlane, type ControlPlane } from '../testbed/cluster.js';
import { CHART, CRD_NAMES, DEPLOY, dig, find, objects, template, type Obj } from './chart-helpers.js';

const execFileP = promisify(execFile);
const cp: ControlPlane = await startControlPlane(t);

/** The pod template's containers by name. */
function containers(ds: Obj, list: 'containers' | 'initContainers'): Map<string, Obj> {
  const cs = dig(ds, 'spec', 'template', 'spec', list);
  if (!Array.isArray(cs)) throw new Error(`DaemonSet has no ${list}`);
  return new Map((cs as Obj[]).map((c) => [String(c['name']), c]));
}

t.test('helm lint --strict passes', async (t) => {
  const r = await cp.helm(['lint', '--strict', CHART]);
  t.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  t.match(r.stdout, '1 chart(s) linted, 0 chart(s) failed');
});

t.test('the deploy manifest is the chart rendered with defaults', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'seccomp-agent-render-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = join(dir, 'seccomp-agent.yaml');
  await execFileP('bash', [repoPath('scripts', 'render-deploy.sh'), out], {
    env: { ...process.env, SECCOMP_AGENT_HELM: cp.binaries.helm },
  });
  t.equal(
    await readFile(DEPLOY, 'utf8'),
    await readFile(out, 'utf8'),
    'manifests/deploy/seccomp-agent.yaml is stale: run `bash scripts/render-deploy.sh`',
  );
});

t.test('the default rendering: least privilege, as docs/install.md says', async (t) => {
  const objs = objects(await template(cp, 'seccomp-agent', 'seccomp-agent'));
  t.same(objs.map((o) => o['kind']).sort(), [
    'ClusterRole',
    'ClusterRoleBinding',
    // The SeccompProfile CRD of profileLayout (a template; the report CRD is in crds/).
    'CustomResourceDefinition',
    'DaemonSet',
    'Role',
    'RoleBinding',
    'ServiceAccount',
  ]);
  const ds = find(objs, 'DaemonSet');
  const pod = dig(ds, 'spec', 'template', 'spec') as Obj;
  t.equal(pod['hostPID'], true, 'hostPID for attribution');
  t.equal(pod['hostNetwork'], true, 'hostNetwork for curl 127.0.0.1:8686 on the node');
  t.equal(pod['priorityClassName'], 'system-node-critical');
  t.same(pod['tolerations'], [{ operator: 'Exists' }], 'every node');
  t.same(dig(pod, 'securityContext', 'supplementalGroups'), [4], 'the audit log group (adm)');
  t.equal(dig(ds, 'spec', 'updateStrategy', 'type'), 'RollingUpdate');

  const agent = containers(ds, 'containers').get('agent');
  t.same(
    dig(agent, 'securityContext'),
    {
      runAsUser: 65535,
      runAsGroup: 65535,
      runAsNonRoot: true,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    'agent: 65535, no capability, read-only root, RuntimeDefault',
  );
  const init = containers(ds, 'initContainers').get('prepare-operator-dir');
  t.same(dig(init, 'securityContext', 'capabilities'), { drop: ['ALL'], add: ['CHOWN'] }, 'init: CHOWN only');
  t.equal(dig(init, 'securityContext', 'privileged'), false);
  const env = new Map(((dig(agent, 'env') as Obj[] | undefined) ?? []).map((e) => [String(e['name']), e]));
  t.equal(
    dig(env.get('SECCOMP_AGENT_NODE_NAME'), 'valueFrom', 'fieldRef', 'fieldPath'),
    'spec.nodeName',
    'node name from the downward API',
  );
  t.equal(dig(env.get('SECCOMP_AGENT_NAMESPACE'), 'valueFrom', 'fieldRef', 'fieldPath'), 'metadata.namespace');
  t.equal(dig(agent, 'livenessProbe', 'httpGet', 'path'), '/healthz');
  t.equal(dig(agent, 'readinessProbe', 'httpGet', 'path'), '/readyz');
  t.equal(dig(agent, 'readinessProbe', 'httpGet', 'host'), '127.0.0.1', 'probes reach the loopback listener');
  const mounts = new Map(((dig(agent, 'volumeMounts') as Obj[] | undefined) ?? []).map((m) => [String(m['name']), m]));
  t.same(
    mounts.get('kubelet-seccomp'),
    { name: 'kubelet-seccomp', mountPath: '/var/lib/kubelet/seccomp' },
    'seccomp dir read-write',
  );
  t.same(
    mounts.get('audit-log'),
    { name: 'audit-log', mountPath: '/var/log/audit', readOnly: true },
    'audit dir read-only',
  );
  t.notMatch(JSON.stringify(objs), /"privileged":true/, 'nothing privileged');
});

t.test(
  "apiServer sets the agent's KUBERNETES_SERVICE_HOST and _PORT; empty leaves the in-cluster default",
  async (t) => {
    const envOf = async (args: readonly string[]): Promise<Map<string, unknown>> => {
      const ds = find(objects(await template(cp, 'seccomp-agent', 'seccomp-agent', args)), 'DaemonSet');
      const env = dig(containers(ds, 'containers').get('agent'), 'env') as { name: string; value?: unknown }[];
      return new Map(env.map((e) => [e.name, e.value]));
    };
    const none = await envOf([]);
    t.notOk(
      none.has('KUBERNETES_SERVICE_HOST') || none.has('KUBERNETES_SERVICE_PORT'),
      'default: the kubelet sets them',
    );
    for (const [value, host] of [
      ['10.0.0.10:6443', '10.0.0.10'],
      ['[fd00::10]:6443', 'fd00::10'],
      ['api.example.test:6443', 'api.example.test'],
    ] as const) {
      const env = await envOf(['--set', `apiServer=${value}`]);
      t.same(
        [env.get('KUBERNETES_SERVICE_HOST'), env.get('KUBERNETES_SERVICE_PORT')],
        [host, '6443'],
        `apiServer=${value}: host ${host}, port 6443`,
      );
    }
  },
);

t.test('helm template output applies with kubectl apply --dry-run=server', async (t) => {
  await cp.apply('{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"dry"}}');
  const cases: [string, string[]][] = [
    ['defaults', []],
    ['metrics Service, all addresses', ['--set', 'listen=0.0.0.0:9100', '--set', 'metrics.service.enabled=true']],
    ['no audit source', ['--set', 'audit.source=none']],
    [
      'syslog, other kubelet root',
      [
        '--set',
        'audit.source=syslog',
        '--set',
        'audit.logPath=/var/log/kern.log',
        '--set',
        'kubeletRoot=/var/lib/k0s/kubelet',
      ],
    ],
  ];
  for (const [name, args] of cases) {
    const yaml = await template(cp, 'seccomp-agent', 'dry', args);
    const r = await cp.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: yaml });
    t.equal(r.code, 0, `${name}: ${r.stderr}`);
    t.equal(r.stderr.trim(), '', `${name}: no warnings`);
    t.match(r.stdout, 'daemonset.apps/seccomp-agent created (server dry run)', name);
  }
  const none = objects(await template(cp, 'seccomp-agent', 'dry', ['--set', 'audit.source=none']));
  const pod = dig(find(none, 'DaemonSet'), 'spec', 'template', 'spec') as Obj;
  t.equal(dig(pod, 'securityContext', 'supplementalGroups'), undefined, 'audit.source=none: no supplementary group');
  t.notMatch(JSON.stringify(pod['volumes']), /audit/, 'audit.source=none: no log mounted');
  const metrics = objects(
    await template(cp, 'seccomp-agent', 'dry', [
      '--set',
      'listen=0.0.0.0:9100',
      '--set',
      'metrics.service.enabled=true',
      '--set',
      'metrics.serviceMonitor.enabled=true',
    ]),
  );
  t.equal(dig(find(metrics, 'ServiceMonitor'), 'spec', 'endpoints', 0, 'path'), '/metrics');
  t.equal(dig(find(metrics, 'Service'), 'spec', 'ports', 0, 'targetPort'), 'http');
});

t.test('the deploy manifest applies with kubectl apply --dry-run=server', async (t) => {
  // Its Namespace must exist for the namespaced objects to be checked against it.
  await cp.apply('{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"seccomp-agent"}}');
  const r = await cp.kubectl(['apply', '--dry-run=server', '-f', DEPLOY]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr.trim(), '', 'no warnings');
  for (const what of [
    ...CRD_NAMES.map((n) => `customresourcedefinition.apiextensions.k8s.io/${n}`),
    'daemonset.apps/seccomp-agent',
    'clusterrole.rbac.authorization.k8s.io/seccomp-agent',
    'role.rbac.authorization.k8s.io/seccomp-agent',
  ]) {
    t.match(r.stdout, what, what);
  }
});

t.test('helm install creates the DaemonSet, RBAC and CRDs; uninstall leaves only the CRDs', async (t) => {
  const ns = 'sa-helm';
  for (const n of CRD_NAMES) {
    const before = await cp.kubectl(['get', 'crd', n]);
    t.match(before.stderr, 'NotFound', `no CRD ${n} before the install: helm installs it`);
  }
  const install = await cp.helm(['install', 'seccomp-agent', CHART, '--namespace', ns, '--create-namespace'], {
    timeoutMs: 120_000,
  });
  t.equal(install.code, 0, install.stderr);
  t.match(install.stdout, 'STATUS: deployed');
  t.match(install.stdout, `kubectl -n ${ns} rollout status daemonset/seccomp-agent`, 'NOTES: how to check status');
  t.match(install.stdout, 'curl -s http://127.0.0.1:8686/v1/profiles', 'NOTES: curl on a node');
  t.match(install.stdout, 'port-forward', 'NOTES: port-forward');

  const est = await cp.kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    ...CRD_NAMES.map((n) => `crd/${n}`),
  ]);
  t.equal(est.code, 0, est.stderr);
  const made = [
    ['daemonset', ns],
    ['serviceaccount', ns],
    ['role', ns],
    ['rolebinding', ns],
    ['clusterrole', undefined],
    ['clusterrolebinding', undefined],
  ] as const;
  for (const [kind, where] of made) {
    const r = await cp.kubectl([
      'get',
      kind,
      'seccomp-agent',
      ...(where === undefined ? [] : ['-n', where]),
      '-o',
      'name',
    ]);
    t.equal(r.code, 0, `${kind} seccomp-agent exists: ${r.stderr}`);
  }
  // A profile made while installed outlives the release, with its CRD.
  await cp.kubectl(['apply', '-f', 'profiles/ns.yaml']);
  const sp = await cp.kubectl(['apply', '-f', 'profiles/complainer.yaml']);
  t.equal(sp.code, 0, sp.stderr);

  const un = await cp.helm(['uninstall', 'seccomp-agent', '--namespace', ns, '--wait'], { timeoutMs: 120_000 });
  t.equal(un.code, 0, un.stderr);
  for (const [kind, where] of made) {
    const r = await cp.kubectl(['get', kind, 'seccomp-agent', ...(where === undefined ? [] : ['-n', where])]);
    t.match(r.stderr, 'NotFound', `${kind} seccomp-agent is gone`);
  }
  const left = await cp.kubectl([
    'get',
    'clusterroles,clusterrolebindings,customresourcedefinitions',
    '-l',
    'app.kubernetes.io/name=seccomp-agent',
    '-o',
    'name',
  ]);
  t.same(
    left.stdout.trim().split('\n').sort(),
    CRD_NAMES.map((n) => `customresourcedefinition.apiextensions.k8s.io/${n}`).sort(),
    'of the cluster-wide objects, only the CRDs stay',
  );
  const nsLeft = await cp.kubectl([
    'get',
    'all,serviceaccounts,roles,rolebindings,leases',
    '-n',
    ns,
    '-l',
    'app.kubernetes.io/instance=seccomp-agent',
    '-o',
    'name',
  ]);
  t.equal(nsLeft.stdout.trim(), '', 'nothing of the release stays in its namespace');
  const still = await cp.kubectl(['get', 'sp', 'complainer', '-n', 'seccomp-test', '-o', 'name']);
  t.equal(
    still.stdout.trim(),
    'seccompprofile.security-profiles-operator.x-k8s.io/complainer',
    'profiles stay with the CRD',
  );
});

t.test('requireProfile: helm install with it on adds the policy and its binding, and no webhook', async (t) => {
  // The namespace of the install above: the SeccompProfile CRD it kept belongs to a release there.
  const ns = 'sa-helm';
  const install = await cp.helm(
    [
      'install',
      'seccomp-agent',
      CHART,
      '--namespace',
      ns,
      '--create-namespace',
      '--set',
      'requireProfile.enabled=true',
      '--set',
      'requireProfile.validationActions={Warn,Audit}',
    ],
    { timeoutMs: 120_000 },
  );
  t.equal(install.code, 0, install.stderr);
  t.match(install.stdout, 'reported (Warn, Audit) in namespaces labelled', 'NOTES: what the policy does, and where');
  t.match(install.stdout, '/v1/check?profile=', 'NOTES: checking before enforcing');
  const got = await cp.kubectl([
    'get',
    'validatingadmissionpolicies,validatingadmissionpolicybindings',
    '-l',
    'app.kubernetes.io/instance=seccomp-agent',
    '-o',
    'jsonpath={range .items[*]}{.kind} {.metadata.name} {.spec.validationActions}{"\\n"}{end}',
  ]);
  t.same(
    got.stdout.trim().split('\n').sort(),
    [
      'ValidatingAdmissionPolicy seccomp-agent-require-profile ',
      'ValidatingAdmissionPolicyBinding seccomp-agent-require-profile ["Warn","Audit"]',
    ],
    'the policy and its binding, with the validation actions given',
  );
  const hooks = await cp.kubectl([
    'get',
    'validatingwebhookconfigurations,mutatingwebhookconfigurations',
    '-o',
    'name',
  ]);
  t.equal(hooks.stdout.trim(), '', 'no webhook configuration');
  const un = await cp.helm(['uninstall', 'seccomp-agent', '--namespace', ns, '--wait'], { timeoutMs: 120_000 });
  t.equal(un.code, 0, un.stderr);
  const left = await cp.kubectl(['get', 'validatingadmissionpolicies,validatingadmissionpolicybindings', '-o', 'name']);
  t.equal(left.stdout.trim(), '', 'uninstall removes them');
});

// Last: helm installs crds/ before it checks the values, so even a refused install leaves the report
// CRD (the SeccompProfile CRD is a template of the layout, installed only with the release).
t.test('bad values are refused by the schema, naming the key', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--set', 'listen=8686'], /listen/],
    [['--set', 'logLevel=verbose'], /logLevel[\s\S]*(fatal|info)/],
    [['--set', 'audit.source=kmsg'], /audit\/source|audit\.source/],
    [['--set', 'kubeletRoot=var/lib/kubelet'], /kubeletRoot/],
    [['--set', 'kubletRoot=/x'], /kubletRoot/],
    [['--set', 'audit.logGroup=0'], /logGroup/],
    [['--set', 'resources.limits.memory=lots'], /memory/],
    [['--set', 'apiServer=10.0.0.10'], /apiServer/],
    [['--set', 'requireProfile.validationActions={Deny,Warn}'], /requireProfile\/validationActions/],
    [['--set', 'requireProfile.validationActions={Block}'], /requireProfile\/validationActions/],
  ];
  for (const [args, names] of cases) {
    const r = await cp.helm(['install', 'bad', CHART, '--namespace', 'bad', '--create-namespace', ...args]);
    t.not(r.code, 0, `${args.join(' ')} is refused`);
    t.match(r.stderr, /values don't meet the specifications of the schema/, `${args.join(' ')}: schema error`);
    t.match(r.stderr, names, `${args.join(' ')}: names the key`);
  }
  const list = await cp.helm(['list', '--all-namespaces', '--all', '-q']);
  t.notMatch(list.stdout, /^bad$/m, 'no release was made');
  const svc = await cp.helm(['template', 'x', CHART, '--set', 'metrics.service.enabled=true']);
  t.not(svc.code, 0, 'a metrics Service with a loopback listener is refused');
  t.match(svc.stderr, 'metrics.service.enabled needs the agent to listen beyond loopback');
});
