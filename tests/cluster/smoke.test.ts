// Smoke tests of the cluster tier: the pinned tools run, the SeccompProfile CRD and the workshop's
// profiles behave in a real kube-apiserver the way a workshop user will see them, and so does the
// SeccompNodeReport CRD.
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { repoPath, startControlPlane, testbedVersions, type ControlPlane } from '../testbed/cluster.js';

const CRD_NAME = 'seccompprofiles.security-profiles-operator.x-k8s.io';
const CRD_FILE = repoPath('manifests', 'crds', `${CRD_NAME}.yaml`);
const REPORT_CRD_NAME = 'seccompnodereports.seccomp-agent.security-profiles-operator.x-k8s.io';
const REPORT_CRD_FILE = repoPath('manifests', 'crds', `${REPORT_CRD_NAME}.yaml`);
const NAMESPACE = 'seccomp-test';
const WORKSHOP_FILES = [
  'complainer.yaml',
  'multiple.yaml',
  'confine-nginx-explicit-deny.yaml',
  'confine-nginx-explicit-allow.yaml',
];
const WORKSHOP_PROFILES = [
  'complainer',
  'confine-nginx-explicit-allow',
  'confine-nginx-explicit-deny',
  'profile-allow-unsafe',
  'profile-block-all',
  'profile-complain-block-high-risk',
  'profile-complain-unsafe',
];

const execFileP = promisify(execFile);
const versions = testbedVersions();
const cp: ControlPlane = await startControlPlane(t);

/** Walks plain parsed YAML by keys; undefined when any step is missing. */
function dig(value: unknown, ...keys: (string | number)[]): unknown {
  let v = value;
  for (const k of keys) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[k];
  }
  return v;
}

/** The openAPIV3Schema of the CRD's storage version, read from the committed CRD file. */
async function crdSchema(): Promise<unknown> {
  const crd: unknown = parse(await readFile(CRD_FILE, 'utf8'));
  const versionsList = dig(crd, 'spec', 'versions');
  if (!Array.isArray(versionsList)) throw new Error(`${CRD_FILE}: no spec.versions`);
  const v1beta1: unknown = versionsList.find((v: unknown) => dig(v, 'name') === 'v1beta1');
  const schema = dig(v1beta1, 'schema', 'openAPIV3Schema');
  if (schema === undefined) throw new Error(`${CRD_FILE}: no v1beta1 openAPIV3Schema`);
  return schema;
}

function squash(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** Splits `kubectl get` table output into its header words and the first column of each row. */
function table(out: string): { headers: string[]; names: string[] } {
  const [head = '', ...rows] = out.trimEnd().split('\n');
  return {
    headers: head.trim().split(/\s+/),
    names: rows.map((r) => r.trim().split(/\s+/)[0] ?? '').sort(),
  };
}

t.test('kubectl, kube-apiserver, helm and etcd are the pinned versions', async (t) => {
  const kv = await cp.kubectl(['version', '-o', 'json']);
  t.equal(kv.code, 0, kv.stderr);
  const parsed: unknown = JSON.parse(kv.stdout);
  t.equal(dig(parsed, 'clientVersion', 'gitVersion'), versions.kubernetes, 'kubectl client');
  t.equal(dig(parsed, 'serverVersion', 'gitVersion'), versions.kubernetes, 'kube-apiserver');

  const hv = await cp.helm(['version', '--template', '{{.Version}}']);
  t.equal(hv.code, 0, hv.stderr);
  t.equal(hv.stdout.trim(), versions.helm, 'helm');

  const ev = await execFileP(cp.binaries.etcd, ['--version']);
  t.match(ev.stdout, `etcd Version: ${versions.etcd.replace(/^v/, '')}\n`, 'etcd');
});

t.test('the SeccompProfile CRD applies and becomes Established', async (t) => {
  const applied = await cp.kubectl(['apply', '-f', CRD_FILE]);
  t.equal(applied.code, 0, applied.stderr);
  t.match(applied.stdout, `customresourcedefinition.apiextensions.k8s.io/${CRD_NAME} created`);
  const wait = await cp.kubectl(['wait', '--for=condition=established', '--timeout=60s', `crd/${CRD_NAME}`]);
  t.equal(wait.code, 0, wait.stderr);
  t.match(wait.stdout, 'condition met');
});

t.test('the workshop profiles apply and list with our printer columns', async (t) => {
  const ns = await cp.kubectl(['apply', '-f', 'profiles/ns.yaml']);
  t.equal(ns.code, 0, ns.stderr);
  for (const file of WORKSHOP_FILES) {
    const r = await cp.kubectl(['apply', '-f', `profiles/${file}`]);
    t.equal(r.code, 0, `kubectl apply -f profiles/${file}: ${r.stderr}`);
  }

  const list = await cp.kubectl(['get', 'seccompprofiles', '-n', NAMESPACE]);
  t.equal(list.code, 0, list.stderr);
  const { headers, names } = table(list.stdout);
  t.same(names, WORKSHOP_PROFILES, 'the seven workshop profiles');
  for (const h of ['NAME', 'STATUS', 'NODES', 'AGE', 'LOCALHOSTPROFILE']) {
    t.ok(headers.includes(h), `column ${h} in ${headers.join(' ')}`);
  }

  const short = await cp.kubectl(['get', 'sp', '-n', NAMESPACE]);
  t.equal(short.code, 0, short.stderr);
  t.same(table(short.stdout).names, WORKSHOP_PROFILES, 'short name sp');

  // The aggregate status as the aggregator writes it: NODES prints installedNodes.
  const status = await cp.kubectl([
    'patch',
    'sp',
    'complainer',
    '-n',
    NAMESPACE,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status: { status: 'Pending', installedNodes: '3/4', specRevision: '12' } }),
  ]);
  t.equal(status.code, 0, status.stderr);
  const row = await cp.kubectl(['get', 'sp', 'complainer', '-n', NAMESPACE, '--no-headers']);
  t.match(row.stdout, /^complainer\s+Pending\s+3\/4\s/, 'NODES shows installed/live');
});

t.test('kubectl explain prints the CRD field descriptions', async (t) => {
  const description = dig(await crdSchema(), 'properties', 'spec', 'properties', 'syscalls', 'description');
  if (typeof description !== 'string' || description === '') {
    throw new Error(`${CRD_FILE}: spec.syscalls has no description`);
  }
  // The apiserver publishes a new CRD's OpenAPI a moment after it is Established.
  const deadline = Date.now() + 60_000;
  let r = await cp.kubectl(['explain', 'seccompprofile.spec.syscalls']);
  while (r.code !== 0 && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 500));
    r = await cp.kubectl(['explain', 'seccompprofile.spec.syscalls']);
  }
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^GROUP:\s+security-profiles-operator\.x-k8s\.io$/m);
  t.match(r.stdout, /^KIND:\s+SeccompProfile$/m);
  t.ok(squash(r.stdout).includes(squash(description)), `explain shows: ${description}`);
});

t.test('an invalid action is refused, naming the field and the valid values', async (t) => {
  const schema = await crdSchema();
  const cases = [
    {
      name: 'bad-default-action',
      spec: { defaultAction: 'SCMP_ACT_NOPE' },
      field: 'spec.defaultAction',
      enumAt: ['properties', 'spec', 'properties', 'defaultAction', 'enum'],
    },
    {
      name: 'bad-rule-action',
      spec: { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ action: 'SCMP_ACT_NOPE', names: ['read'] }] },
      field: 'spec.syscalls[0].action',
      enumAt: ['properties', 'spec', 'properties', 'syscalls', 'items', 'properties', 'action', 'enum'],
    },
  ];
  for (const c of cases) {
    const supported = dig(schema, ...c.enumAt);
    if (!Array.isArray(supported) || supported.length === 0) {
      throw new Error(`${CRD_FILE}: no enum at ${c.enumAt.join('.')}`);
    }
    const manifest = JSON.stringify({
      apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
      kind: 'SeccompProfile',
      metadata: { name: c.name, namespace: NAMESPACE },
      spec: c.spec,
    });
    const r = await cp.kubectl(['apply', '-f', '-'], { input: manifest });
    t.not(r.code, 0, `${c.name} is refused`);
    t.match(r.stderr, `${c.field}: Unsupported value: "SCMP_ACT_NOPE"`, `${c.name}: names ${c.field}`);
    for (const value of supported) {
      t.match(r.stderr, `"${String(value)}"`, `${c.name}: lists ${String(value)}`);
    }
    const get = await cp.kubectl(['get', 'sp', c.name, '-n', NAMESPACE]);
    t.not(get.code, 0, `${c.name} was not stored`);
    t.match(get.stderr, 'NotFound');
  }
});

t.test('the SeccompNodeReport CRD: reports apply (server-side) and list with their columns', async (t) => {
  const applied = await cp.kubectl(['apply', '-f', REPORT_CRD_FILE]);
  t.equal(applied.code, 0, applied.stderr);
  t.match(applied.stdout, `customresourcedefinition.apiextensions.k8s.io/${REPORT_CRD_NAME} created`);
  const wait = await cp.kubectl(['wait', '--for=condition=established', '--timeout=60s', `crd/${REPORT_CRD_NAME}`]);
  t.equal(wait.code, 0, wait.stderr);

  const reportOf = (node: string, body: Record<string, unknown>): string =>
    JSON.stringify({
      apiVersion: 'seccomp-agent.security-profiles-operator.x-k8s.io/v1alpha1',
      kind: 'SeccompNodeReport',
      metadata: { name: node },
      nodeName: node,
      ...body,
    });
  const full = {
    appliedRevision: '1234',
    installed: 7,
    failedCount: 1,
    inUseCount: 1,
    failed: [{ profile: 'seccomp-test/bad', generation: 2, reason: 'InstallFailed', message: 'disk full' }],
    inUse: [{ profile: 'seccomp-test/complainer', pods: ['seccomp-test/a', 'seccomp-test/b'] }],
  };
  // As the agent writes it: server-side apply with one field manager, twice (the lists are atomic).
  for (const pods of [['seccomp-test/a', 'seccomp-test/b'], ['seccomp-test/b']]) {
    const r = await cp.kubectl(
      ['apply', '--server-side', '--field-manager=seccomp-agent', '--force-conflicts', '-f', '-'],
      {
        input: reportOf('node-a', { ...full, inUse: [{ profile: 'seccomp-test/complainer', pods }] }),
      },
    );
    t.equal(r.code, 0, `server-side apply: ${r.stderr}`);
  }
  const got = await cp.kubectl(['get', 'snr', 'node-a', '-o', 'json']);
  t.equal(got.code, 0, got.stderr);
  t.same(dig(JSON.parse(got.stdout), 'inUse', 0, 'pods'), ['seccomp-test/b'], 'the second apply replaced the list');
  const bare = await cp.kubectl(['apply', '-f', '-'], {
    input: reportOf('node-b', { appliedRevision: '99' }),
  });
  t.equal(bare.code, 0, `only nodeName and appliedRevision are required: ${bare.stderr}`);

  const list = await cp.kubectl(['get', 'seccompnodereports']);
  t.equal(list.code, 0, list.stderr);
  const { headers, names } = table(list.stdout);
  t.same(headers, ['NAME', 'APPLIED', 'INSTALLED', 'FAILED', 'INUSE', 'AGE']);
  t.same(names, ['node-a', 'node-b'], 'cluster-scoped, named after the nodes');
  const row = await cp.kubectl(['get', 'snr', 'node-a', '--no-headers']);
  t.match(row.stdout, /^node-a\s+1234\s+7\s+1\s+1\s/, 'the columns show the counts');

  const missing = await cp.kubectl(['apply', '-f', '-'], { input: reportOf('node-c', { installed: 1 }) });
  t.not(missing.code, 0, 'a report without appliedRevision is refused');
  t.match(missing.stderr, 'appliedRevision: Required value');
  const badReason = await cp.kubectl(['apply', '-f', '-'], {
    input: reportOf('node-c', { ...full, failed: [{ ...full.failed[0], reason: 'Oops' }] }),
  });
  t.not(badReason.code, 0, 'a failure reason outside the enum is refused');
  t.match(badReason.stderr, 'failed[0].reason: Unsupported value: "Oops"');
});
