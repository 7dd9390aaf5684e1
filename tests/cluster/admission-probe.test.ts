// The probe behind docs/design/recording-and-binding.md (issues 15 and 16): what the real
// kube-apiserver of the test bed (v1.36.3, started with the test bed's flags and no feature gate)
// does with MutatingAdmissionPolicies and ValidatingAdmissionPolicies of the shape the design
// ships. Nothing here is the agent: the policies are drafts of the chart's templates, the
// SeccompPodRules objects stand for what the elected agent will write, and the PATCH that removes
// the scheduling gate is the agent's request made through the agent's own KubeClient.
//
// What it shows, each with assertions that fail when the server behaves otherwise:
// - admissionregistration.k8s.io/v1 serves MutatingAdmissionPolicy(Binding) with the default flags;
// - a policy with paramKind = our namespaced CRD, paramRef {name, no namespace} and
//   parameterNotFoundAction Allow binds profiles by image (first rule wins, `*`, a pod selector in
//   CEL) through an ApplyConfiguration, and leaves a pod or container that names a profile alone;
//   256 rules and a 64-container pod stay within the CEL budget;
// - a policy adds a scheduling gate to pods naming `operator/...`; a gated pod cannot be bound to
//   a node; the agent's strategic-merge PATCH removes only its gate, and then binding works;
// - a recording policy (same parameter) puts selected containers under the logging profile and
//   names the recording in annotations, whatever order it runs in beside the binding policy;
// - a ValidatingAdmissionPolicy refuses pods without Localhost/RuntimeDefault in a labelled
//   namespace naming the containers, and in Warn mode admits them with a warning kubectl prints;
// - a ValidatingAdmissionPolicy narrows the agent's `patch pods` to removing its own gate and label;
// - no webhook configuration exists at any point.
// Timings (how soon a policy or parameter reaches admission) are printed as comments, not asserted.
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { KubeClient, isKubeApiError } from '../../agent/src/kube/client.js';
import { loadKubeconfig } from '../../agent/src/kube/kubeconfig.js';
import { startControlPlane, testbedVersions, type CommandResult, type ControlPlane } from '../testbed/cluster.js';
import { pollUntil } from '../testbed/exec.js';
import { repoRoot } from '../helpers/shared.js';

const GROUP = 'seccomp-agent.security-profiles-operator.x-k8s.io';
const GATE = `${GROUP}/profiles`;
const GATED_LABEL = `${GROUP}/gated`;
const ENFORCE_LABEL = `${GROUP}/enforce`;
const AGENT_NS = 'seccomp-agent';
const AGENT_SA = 'seccomp-agent';
/** How long a policy, binding or parameter change may take to reach admission (informers). */
const SETTLE_MS = 30_000;

const cp: ControlPlane = await startControlPlane(t);
const client = new KubeClient(loadKubeconfig(cp.kubeconfig));

type Obj = Record<string, unknown>;
interface Container {
  name: string;
  image: string;
  securityContext?: { runAsUser?: number; seccompProfile?: { type: string; localhostProfile?: string } };
}
interface Pod {
  metadata: { name: string; namespace: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    nodeName?: string;
    securityContext?: { seccompProfile?: { type: string; localhostProfile?: string } };
    containers: Container[];
    initContainers?: Container[];
    schedulingGates?: { name: string }[];
  };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

let podSeq = 0;
/** A pod manifest; `name` gets a sequence number so every create is a new pod. */
function pod(
  ns: string,
  name: string,
  containers: Container[],
  more: { labels?: Record<string, string>; podProfile?: Obj; initContainers?: Container[]; nodeName?: string } = {},
): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `${name}-${++podSeq}`, namespace: ns, ...(more.labels ? { labels: more.labels } : {}) },
    spec: {
      ...(more.nodeName === undefined ? {} : { nodeName: more.nodeName }),
      ...(more.podProfile ? { securityContext: { seccompProfile: more.podProfile } } : {}),
      containers,
      ...(more.initContainers ? { initContainers: more.initContainers } : {}),
    },
  };
}

/** `kubectl create -o json`: the pod as admitted (mutations applied), or the refusal. */
async function create(manifest: Obj): Promise<{ pod: Pod | undefined; r: CommandResult }> {
  const r = await cp.kubectl(['create', '-f', '-', '-o', 'json'], { input: JSON.stringify(manifest) });
  return { pod: r.code === 0 ? (JSON.parse(r.stdout) as Pod) : undefined, r };
}

async function mustCreate(manifest: Obj): Promise<Pod> {
  const { pod: p, r } = await create(manifest);
  if (p === undefined) throw new Error(`creating ${JSON.stringify(manifest)} failed: ${r.stderr}`);
  return p;
}

/** Creates pods from `make` until `ok` holds for one (a policy or parameter reached admission). */
async function createUntil(make: () => Obj, ok: (p: Pod) => boolean): Promise<Pod | undefined> {
  return pollUntil(
    async () => {
      const p = await mustCreate(make());
      return ok(p) ? p : undefined;
    },
    SETTLE_MS,
    250,
  );
}

const profileOf = (p: Pod | undefined, container: string, list: 'containers' | 'initContainers' = 'containers') =>
  p?.spec[list]?.find((c) => c.name === container)?.securityContext?.seccompProfile;

const gated = (p: Pod | undefined): boolean => (p?.spec.schedulingGates ?? []).some((g) => g.name === GATE);

/** No webhook configuration of either kind exists. */
async function noWebhooks(t: Test, when: string): Promise<void> {
  const r = await cp.kubectl(['get', 'mutatingwebhookconfigurations,validatingwebhookconfigurations', '-o', 'name']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.trim(), '', `no webhook configuration ${when}`);
}

// ---------------------------------------------------------------------------------------------
// The objects the design ships (drafts of the chart's templates).

/** A label selector's schema, as both kinds of rule carry it (indented for PARAMS_CRD). */
const POD_SELECTOR_SCHEMA = `                    podSelector:
                      type: object
                      properties:
                        matchLabels: {type: object, additionalProperties: {type: string}, maxProperties: 64}
                        matchExpressions:
                          type: array
                          maxItems: 64
                          items:
                            type: object
                            required: [key, operator]
                            properties:
                              key: {type: string, maxLength: 317}
                              operator: {type: string, enum: [In, NotIn, Exists, DoesNotExist]}
                              values: {type: array, maxItems: 64, items: {type: string, maxLength: 63}}
`;

/** The parameter CRD: one SeccompPodRules per namespace, written by the elected agent. */
const PARAMS_CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: seccomppodrules.${GROUP}}
spec:
  group: ${GROUP}
  names: {kind: SeccompPodRules, listKind: SeccompPodRulesList, plural: seccomppodrules, singular: seccomppodrules}
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              bindings:
                type: array
                maxItems: 256
                items:
                  type: object
                  required: [binding, image, localhostProfile]
                  properties:
                    binding: {type: string, maxLength: 253}
                    image: {type: string, maxLength: 4096}
                    localhostProfile: {type: string, maxLength: 4096}
${POD_SELECTOR_SCHEMA}              recordings:
                type: array
                maxItems: 64
                items:
                  type: object
                  required: [recording, uid]
                  properties:
                    recording: {type: string, maxLength: 253}
                    uid: {type: string, maxLength: 64}
                    containers: {type: array, maxItems: 16, items: {type: string, maxLength: 63}}
${POD_SELECTOR_SCHEMA}`;

/** The selector of a rule, evaluated in CEL against the pod's labels (variables.labels). */
const SELECTOR_MATCHES = `(!has(r.podSelector) || (
  (!has(r.podSelector.matchLabels) || r.podSelector.matchLabels.all(k,
    k in variables.labels && variables.labels[k] == r.podSelector.matchLabels[k])) &&
  (!has(r.podSelector.matchExpressions) || r.podSelector.matchExpressions.all(e,
    e.operator == 'In' ? (e.key in variables.labels && has(e.values) && variables.labels[e.key] in e.values) :
    e.operator == 'NotIn' ? (!(e.key in variables.labels) || !has(e.values) || !(variables.labels[e.key] in e.values)) :
    e.operator == 'Exists' ? (e.key in variables.labels) :
    !(e.key in variables.labels)))))`;

/** The image rule test of a container `c`. */
const IMAGE_MATCHES = `r.image == '*' || r.image == c.image`;

/** Containers of `list` without their own profile that a rule matches. */
const boundIn = (list: string): string =>
  `(has(object.spec.${list}) ? object.spec.${list} : []).filter(c,
    (!has(c.securityContext) || !has(c.securityContext.seccompProfile)) && variables.rules.exists(r, ${IMAGE_MATCHES}))`;

/** Sets the first matching rule's profile on each container of `variables.<list>` (nothing when empty). */
const applyTo = (list: string): string => `variables.${list}.size() == 0 ? Object{} : Object{
  spec: Object.spec{
    ${list}: variables.${list}.map(c, Object.spec.${list}{
      name: c.name,
      securityContext: Object.spec.${list}.securityContext{
        seccompProfile: Object.spec.${list}.securityContext.seccompProfile{
          type: 'Localhost',
          localhostProfile: variables.rules.filter(r, ${IMAGE_MATCHES})[0].localhostProfile
        }
      }
    })
  }
}`;

/** The gate and the label. A pod already on a node cannot take a gate (the API server refuses it). */
const GATE_APPLY = `Object{
  metadata: Object.metadata{labels: {'${GATED_LABEL}': 'true'}},
  spec: Object.spec{schedulingGates: [Object.spec.schedulingGates{name: '${GATE}'}]}
}`;
const NOT_ON_A_NODE = `(!has(object.spec.nodeName) || object.spec.nodeName == '')`;

const PODS_CREATE = { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] };
const list = (...items: Obj[]): string => JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
const AR = 'admissionregistration.k8s.io/v1';

const BINDING_MAP = list(
  {
    apiVersion: AR,
    kind: 'MutatingAdmissionPolicy',
    metadata: { name: 'seccomp-agent-binding' },
    spec: {
      paramKind: { apiVersion: `${GROUP}/v1alpha1`, kind: 'SeccompPodRules' },
      matchConstraints: { resourceRules: [PODS_CREATE] },
      failurePolicy: 'Ignore',
      reinvocationPolicy: 'Never',
      matchConditions: [
        {
          name: 'pod-names-no-profile',
          expression: '!has(object.spec.securityContext) || !has(object.spec.securityContext.seccompProfile)',
        },
      ],
      variables: [
        { name: 'labels', expression: 'has(object.metadata.labels) ? object.metadata.labels : {}' },
        {
          name: 'rules',
          expression: `(has(params.spec) && has(params.spec.bindings) ? params.spec.bindings : []).filter(r, ${SELECTOR_MATCHES})`,
        },
        { name: 'containers', expression: boundIn('containers') },
        { name: 'initContainers', expression: boundIn('initContainers') },
      ],
      // Each mutation evaluates the variables again, on the pod as the mutations before it left it
      // (the probe showed it): the gate comes first, while the containers are still unbound.
      mutations: [
        {
          patchType: 'ApplyConfiguration',
          applyConfiguration: {
            expression: `${NOT_ON_A_NODE} && variables.containers.size() + variables.initContainers.size() > 0 ? ${GATE_APPLY} : Object{}`,
          },
        },
        { patchType: 'ApplyConfiguration', applyConfiguration: { expression: applyTo('containers') } },
        { patchType: 'ApplyConfiguration', applyConfiguration: { expression: applyTo('initContainers') } },
      ],
    },
  },
  {
    apiVersion: AR,
    kind: 'MutatingAdmissionPolicyBinding',
    metadata: { name: 'seccomp-agent-binding' },
    spec: {
      policyName: 'seccomp-agent-binding',
      paramRef: { name: 'seccomp-agent', parameterNotFoundAction: 'Allow' },
    },
  },
);

/** A seccompProfile of a container (or the pod) under `operator/`. */
const namesOperator = (sc: string): string =>
  `(has(${sc}) && has(${sc}.seccompProfile) && has(${sc}.seccompProfile.localhostProfile) &&
    ${sc}.seccompProfile.localhostProfile.startsWith('operator/'))`;

const GATE_MAP = list(
  {
    apiVersion: AR,
    kind: 'MutatingAdmissionPolicy',
    metadata: { name: 'seccomp-agent-gate' },
    spec: {
      matchConstraints: { resourceRules: [PODS_CREATE] },
      failurePolicy: 'Ignore',
      // The condition is in the expression, not in matchConditions: a policy whose matchConditions
      // failed is not re-invoked after another policy mutated the pod (reinvocationcontext.go).
      reinvocationPolicy: 'IfNeeded',
      matchConditions: [{ name: 'not-on-a-node-yet', expression: NOT_ON_A_NODE }],
      variables: [
        {
          name: 'namesOperator',
          expression: `${namesOperator('object.spec.securityContext')} ||
            object.spec.containers.exists(c, ${namesOperator('c.securityContext')}) ||
            (has(object.spec.initContainers) && object.spec.initContainers.exists(c, ${namesOperator('c.securityContext')}))`,
        },
      ],
      mutations: [
        {
          patchType: 'ApplyConfiguration',
          applyConfiguration: { expression: `variables.namesOperator ? ${GATE_APPLY} : Object{}` },
        },
      ],
    },
  },
  {
    apiVersion: AR,
    kind: 'MutatingAdmissionPolicyBinding',
    metadata: { name: 'seccomp-agent-gate' },
    spec: { policyName: 'seccomp-agent-gate' },
  },
);

const RECORD_PROFILE = 'seccomp-agent/record.json';
const RECORDING_ANNOTATION = `${GROUP}/recording`;

/** The recording policy: the first recording whose selector matches takes the selected containers. */
const RECORDING_MAP = list(
  {
    apiVersion: AR,
    kind: 'MutatingAdmissionPolicy',
    metadata: { name: 'seccomp-agent-recording' },
    spec: {
      paramKind: { apiVersion: `${GROUP}/v1alpha1`, kind: 'SeccompPodRules' },
      matchConstraints: { resourceRules: [PODS_CREATE] },
      failurePolicy: 'Ignore',
      reinvocationPolicy: 'Never',
      variables: [
        { name: 'labels', expression: 'has(object.metadata.labels) ? object.metadata.labels : {}' },
        {
          name: 'recordings',
          expression: `(has(params.spec) && has(params.spec.recordings) ? params.spec.recordings : []).filter(r, ${SELECTOR_MATCHES})`,
        },
        {
          name: 'containers',
          expression: `object.spec.containers.filter(c, variables.recordings.size() > 0 &&
            (!has(variables.recordings[0].containers) || variables.recordings[0].containers.size() == 0 ||
            c.name in variables.recordings[0].containers))`,
        },
      ],
      mutations: [
        {
          patchType: 'ApplyConfiguration',
          applyConfiguration: {
            expression: `variables.containers.size() == 0 ? Object{} : Object{
              metadata: Object.metadata{annotations: {
                '${RECORDING_ANNOTATION}': variables.recordings[0].recording,
                '${RECORDING_ANNOTATION}-uid': variables.recordings[0].uid
              }},
              spec: Object.spec{
                containers: variables.containers.map(c, Object.spec.containers{
                  name: c.name,
                  securityContext: Object.spec.containers.securityContext{
                    seccompProfile: Object.spec.containers.securityContext.seccompProfile{
                      type: 'Localhost', localhostProfile: '${RECORD_PROFILE}'
                    }
                  }
                })
              }
            }`,
          },
        },
      ],
    },
  },
  {
    apiVersion: AR,
    kind: 'MutatingAdmissionPolicyBinding',
    metadata: { name: 'seccomp-agent-recording' },
    spec: {
      policyName: 'seccomp-agent-recording',
      paramRef: { name: 'seccomp-agent', parameterNotFoundAction: 'Allow' },
    },
  },
);

/**
 * The chart's require-profile policy and its binding (templates/require-profile.yaml), rendered
 * with `validationActions`: the probe runs what `helm install --set requireProfile.enabled=true`
 * installs, not a copy.
 */
async function chartRequirePolicy(actions: string[]): Promise<string> {
  const r = await cp.helm([
    'template',
    'seccomp-agent',
    join(repoRoot, 'manifests/helm/seccomp-agent'),
    '--set',
    'requireProfile.enabled=true',
    '--set',
    `requireProfile.validationActions={${actions.join(',')}}`,
    '--api-versions',
    'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy',
    '--show-only',
    'templates/require-profile.yaml',
  ]);
  if (r.code !== 0) throw new Error(`helm template: ${r.stderr}`);
  return r.stdout;
}

const listOf = (x: string): string => `(has(${x}) ? ${x} : [])`;
const same = (field: string): string =>
  `has(object.${field}) == has(oldObject.${field}) && (!has(object.${field}) || object.${field} == oldObject.${field})`;

/** What the agent's account may change in a pod: only its own gate and its own label go. */
const AGENT_GUARD_VAP = list(
  {
    apiVersion: AR,
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name: 'seccomp-agent-pod-updates' },
    spec: {
      failurePolicy: 'Fail',
      matchConstraints: {
        resourceRules: [
          { apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['pods', 'pods/*'] },
        ],
      },
      matchConditions: [
        {
          name: 'the-agent',
          expression: `request.userInfo.username == 'system:serviceaccount:${AGENT_NS}:${AGENT_SA}'`,
        },
      ],
      variables: [
        { name: 'oldLabels', expression: 'has(oldObject.metadata.labels) ? oldObject.metadata.labels : {}' },
        { name: 'newLabels', expression: 'has(object.metadata.labels) ? object.metadata.labels : {}' },
      ],
      validations: [
        {
          expression: [
            `(!has(request.subResource) || request.subResource == '')`,
            `object.spec.containers.map(c, c.image) == oldObject.spec.containers.map(c, c.image)`,
            `${listOf('object.spec.initContainers')}.map(c, c.image) == ${listOf('oldObject.spec.initContainers')}.map(c, c.image)`,
            `${listOf('object.spec.tolerations')} == ${listOf('oldObject.spec.tolerations')}`,
            same('spec.activeDeadlineSeconds'),
            same('spec.nodeSelector'),
            same('spec.affinity'),
            `${listOf('object.spec.schedulingGates')}.all(g, ${listOf('oldObject.spec.schedulingGates')}.exists(o, o.name == g.name))`,
            `${listOf('oldObject.spec.schedulingGates')}.all(g, g.name == '${GATE}' || ${listOf('object.spec.schedulingGates')}.exists(n, n.name == g.name))`,
            `variables.newLabels.all(k, k in variables.oldLabels && variables.oldLabels[k] == variables.newLabels[k])`,
            `variables.oldLabels.all(k, k == '${GATED_LABEL}' || k in variables.newLabels)`,
            same('metadata.annotations'),
          ].join(' &&\n'),
          reason: 'Forbidden',
          message: `the seccomp-agent may only remove its scheduling gate ${GATE} and its label ${GATED_LABEL} from a pod`,
        },
      ],
    },
  },
  {
    apiVersion: AR,
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name: 'seccomp-agent-pod-updates' },
    spec: { policyName: 'seccomp-agent-pod-updates', validationActions: ['Deny'] },
  },
);

/** The agent's PATCH: its gate and its label go, other gates stay (strategic merge by name). */
async function ungate(c: KubeClient, ns: string, name: string): Promise<Pod> {
  return c.request<Pod>({
    method: 'PATCH',
    path: `/api/v1/namespaces/${ns}/pods/${name}`,
    contentType: 'application/strategic-merge-patch+json',
    body: {
      metadata: { labels: { [GATED_LABEL]: null } },
      spec: { schedulingGates: [{ $patch: 'delete', name: GATE }] },
    },
  });
}

/** What a scheduler does: POST pods/binding. */
async function bindToNode(ns: string, name: string, node: string): Promise<unknown> {
  return client
    .request({
      method: 'POST',
      path: `/api/v1/namespaces/${ns}/pods/${name}/binding`,
      body: {
        apiVersion: 'v1',
        kind: 'Binding',
        metadata: { name },
        target: { apiVersion: 'v1', kind: 'Node', name: node },
      },
    })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
}

// ---------------------------------------------------------------------------------------------

t.test('v1.36.3 serves MutatingAdmissionPolicy v1 with no flag or feature gate', async (t) => {
  await noWebhooks(t, 'on a fresh control plane');
  const version = await cp.kubectl(['version', '-o', 'json']);
  t.equal(version.code, 0, version.stderr);
  const server = (JSON.parse(version.stdout) as { serverVersion?: { gitVersion?: string } }).serverVersion;
  t.equal(server?.gitVersion, testbedVersions().kubernetes, 'the pinned kube-apiserver');

  const v1 = await cp.kubectl(['get', '--raw', '/apis/admissionregistration.k8s.io/v1']);
  t.equal(v1.code, 0, v1.stderr);
  const resources = (JSON.parse(v1.stdout) as { resources: { name: string; kind: string; namespaced: boolean }[] })
    .resources;
  const byName = new Map(resources.map((r) => [r.name, r]));
  for (const [name, kind] of [
    ['mutatingadmissionpolicies', 'MutatingAdmissionPolicy'],
    ['mutatingadmissionpolicybindings', 'MutatingAdmissionPolicyBinding'],
    ['validatingadmissionpolicies', 'ValidatingAdmissionPolicy'],
    ['validatingadmissionpolicybindings', 'ValidatingAdmissionPolicyBinding'],
  ] as const) {
    t.equal(byName.get(name)?.kind, kind, `${name} served in v1`);
    t.equal(byName.get(name)?.namespaced, false, `${name} cluster-scoped`);
  }
  const group = await cp.kubectl(['get', '--raw', '/apis/admissionregistration.k8s.io']);
  t.equal(group.code, 0, group.stderr);
  const g = JSON.parse(group.stdout) as { versions: { version: string }[]; preferredVersion: { version: string } };
  t.equal(g.preferredVersion.version, 'v1', 'v1 is the preferred version');
  t.comment(`admissionregistration.k8s.io versions served: ${g.versions.map((v) => v.version).join(', ')}`);

  // The feature gate as the server itself reports it (kubernetes_feature_enabled, stage "" = GA).
  const metrics = await cp.kubectl(['get', '--raw', '/metrics']);
  t.equal(metrics.code, 0, metrics.stderr);
  const gate = metrics.stdout
    .split('\n')
    .find((l) => l.startsWith('kubernetes_feature_enabled{name="MutatingAdmissionPolicy"'));
  t.match(gate, /^kubernetes_feature_enabled\{name="MutatingAdmissionPolicy",stage=""\} 1$/, 'on, and GA');
  t.comment(gate ?? '(no feature metric)');
});

t.test('a parameterised policy binds profiles by image through an ApplyConfiguration', async (t) => {
  await cp.apply(PARAMS_CRD);
  const est = await cp.kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    `crd/seccomppodrules.${GROUP}`,
  ]);
  t.equal(est.code, 0, est.stderr);
  await cp.apply(`
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: bind}}
- {apiVersion: v1, kind: Namespace, metadata: {name: free}}
`);
  await cp.apply(BINDING_MAP);
  // What the elected agent writes for the namespace from its ProfileBindings: rules in order
  // (specific images first, then '*'), localhostProfile resolved for the layout.
  await cp.apply(`
apiVersion: ${GROUP}/v1alpha1
kind: SeccompPodRules
metadata: {name: seccomp-agent, namespace: bind}
spec:
  bindings:
  - {binding: nginx, image: 'nginx:1.19.1', localhostProfile: operator/bind/profile-allow-unsafe.json}
  - binding: cache
    image: 'redis:7'
    localhostProfile: operator/bind/cache.json
    podSelector:
      matchLabels: {tier: cache}
      matchExpressions: [{key: env, operator: NotIn, values: [dev]}]
  - {binding: everything-else, image: '*', localhostProfile: operator/bind/complainer.json}
`);
  const started = Date.now();
  const first = await createUntil(
    () => pod('bind', 'web', [{ name: 'web', image: 'nginx:1.19.1' }]),
    (p) => profileOf(p, 'web') !== undefined,
  );
  t.ok(first, 'the policy and its parameter reach admission');
  t.comment(`policy + parameter effective ${Date.now() - started} ms after they were created`);
  t.same(profileOf(first, 'web'), { type: 'Localhost', localhostProfile: 'operator/bind/profile-allow-unsafe.json' });

  const mixed = await mustCreate(
    pod(
      'bind',
      'mixed',
      [
        { name: 'web', image: 'nginx:1.19.1' },
        { name: 'side', image: 'busybox:1.36', securityContext: { runAsUser: 1000 } },
        { name: 'own-default', image: 'nginx:1.19.1', securityContext: { seccompProfile: { type: 'RuntimeDefault' } } },
        {
          name: 'own-localhost',
          image: 'nginx:1.19.1',
          securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'my/own.json' } },
        },
        { name: 'unconfined', image: 'nginx:1.19.1', securityContext: { seccompProfile: { type: 'Unconfined' } } },
      ],
      { initContainers: [{ name: 'init', image: 'nginx:1.19.1' }] },
    ),
  );
  t.same(
    mixed.spec.containers.map((c) => [c.name, c.securityContext]),
    [
      ['web', { seccompProfile: { type: 'Localhost', localhostProfile: 'operator/bind/profile-allow-unsafe.json' } }],
      [
        'side',
        { runAsUser: 1000, seccompProfile: { type: 'Localhost', localhostProfile: 'operator/bind/complainer.json' } },
      ],
      ['own-default', { seccompProfile: { type: 'RuntimeDefault' } }],
      ['own-localhost', { seccompProfile: { type: 'Localhost', localhostProfile: 'my/own.json' } }],
      ['unconfined', { seccompProfile: { type: 'Unconfined' } }],
    ],
    'first matching rule per container; the rest of securityContext kept; containers that name a profile keep it',
  );
  t.same(profileOf(mixed, 'init', 'initContainers'), {
    type: 'Localhost',
    localhostProfile: 'operator/bind/profile-allow-unsafe.json',
  });
  t.ok(gated(mixed), 'a pod the binding gave an operator/ profile is gated in the same policy');

  const podLevel = await mustCreate(
    pod('bind', 'pod-level', [{ name: 'web', image: 'nginx:1.19.1' }], { podProfile: { type: 'RuntimeDefault' } }),
  );
  t.equal(profileOf(podLevel, 'web'), undefined, 'a pod-level profile: the pod is left alone');
  t.same(podLevel.spec.securityContext?.seccompProfile, { type: 'RuntimeDefault' });

  const selected = await mustCreate(
    pod('bind', 'cache-prod', [{ name: 'redis', image: 'redis:7' }], { labels: { tier: 'cache', env: 'prod' } }),
  );
  t.equal(profileOf(selected, 'redis')?.localhostProfile, 'operator/bind/cache.json', 'pod selector matches');
  t.same(
    selected.metadata.labels,
    { tier: 'cache', env: 'prod', [GATED_LABEL]: 'true' },
    'the gate label is merged into the labels',
  );
  const dev = await mustCreate(
    pod('bind', 'cache-dev', [{ name: 'redis', image: 'redis:7' }], { labels: { tier: 'cache', env: 'dev' } }),
  );
  t.equal(profileOf(dev, 'redis')?.localhostProfile, 'operator/bind/complainer.json', 'NotIn excludes it: * applies');
  const unlabelled = await mustCreate(pod('bind', 'cache-none', [{ name: 'redis', image: 'redis:7' }]));
  t.equal(profileOf(unlabelled, 'redis')?.localhostProfile, 'operator/bind/complainer.json', 'no labels: * applies');

  const elsewhere = await mustCreate(pod('free', 'web', [{ name: 'web', image: 'nginx:1.19.1' }]));
  t.equal(profileOf(elsewhere, 'web'), undefined, 'a namespace without SeccompPodRules: nothing (Allow)');
  t.notOk(gated(elsewhere));

  const onNode = await mustCreate(pod('bind', 'on-node', [{ name: 'web', image: 'nginx:1.19.1' }], { nodeName: 'n1' }));
  t.equal(
    profileOf(onNode, 'web')?.localhostProfile,
    'operator/bind/profile-allow-unsafe.json',
    'a pod created on a node is bound too',
  );
  t.notOk(gated(onNode), 'but not gated: the API server refuses a gate beside spec.nodeName');

  // The binding is deleted: the agent drops its rule. Then the namespace has no rule at all.
  await cp.apply(`
apiVersion: ${GROUP}/v1alpha1
kind: SeccompPodRules
metadata: {name: seccomp-agent, namespace: bind}
spec:
  bindings:
  - {binding: everything-else, image: '*', localhostProfile: operator/bind/complainer.json}
`);
  const changed = Date.now();
  const after = await createUntil(
    () => pod('bind', 'after', [{ name: 'web', image: 'nginx:1.19.1' }]),
    (p) => profileOf(p, 'web')?.localhostProfile !== 'operator/bind/profile-allow-unsafe.json',
  );
  t.equal(profileOf(after, 'web')?.localhostProfile, 'operator/bind/complainer.json', 'the rule is gone');
  t.comment(`a changed parameter effective ${Date.now() - changed} ms after the write`);
  const del = await cp.kubectl(['delete', 'seccomppodrules', 'seccomp-agent', '-n', 'bind']);
  t.equal(del.code, 0, del.stderr);
  const none = await createUntil(
    () => pod('bind', 'none', [{ name: 'web', image: 'nginx:1.19.1' }]),
    (p) => profileOf(p, 'web') === undefined,
  );
  t.ok(none, 'no parameter object: pods are admitted unchanged');
  t.notOk(gated(none));
  await noWebhooks(t, 'with the binding policy');
});

t.test('the rules at their bounds stay within the CEL budget', async (t) => {
  // 255 rules that never match (each with 8 selector expressions), then the one that does, and a
  // pod of 64 containers: every rule is evaluated for every container. A cost overrun would leave
  // the pod unbound (failurePolicy Ignore), which the assertions see.
  await cp.apply(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bounds"}}`);
  const misses = Array.from({ length: 255 }, (_, i) => ({
    binding: `miss-${i}`,
    image: `nowhere/image-${i}:1`,
    localhostProfile: `operator/bounds/miss-${i}.json`,
    podSelector: {
      matchLabels: { app: 'big' },
      matchExpressions: Array.from({ length: 8 }, (_, j) => ({ key: `k${j}`, operator: 'NotIn', values: ['x', 'y'] })),
    },
  }));
  await cp.apply(
    JSON.stringify({
      apiVersion: `${GROUP}/v1alpha1`,
      kind: 'SeccompPodRules',
      metadata: { name: 'seccomp-agent', namespace: 'bounds' },
      spec: {
        bindings: [...misses, { binding: 'hit', image: 'busybox:1.36', localhostProfile: 'operator/bounds/hit.json' }],
      },
    }),
  );
  const containers = Array.from({ length: 64 }, (_, i) => ({ name: `c${i}`, image: 'busybox:1.36' }));
  const big = await createUntil(
    () => pod('bounds', 'big', containers, { labels: { app: 'big' } }),
    (p) => profileOf(p, 'c0') !== undefined,
  );
  t.ok(big, 'bound within the budget');
  t.equal(
    big?.spec.containers.filter(
      (c) => c.securityContext?.seccompProfile?.localhostProfile === 'operator/bounds/hit.json',
    ).length,
    64,
    'all 64 containers, by the 256th rule',
  );
});

t.test('a policy gates pods naming operator/ profiles; the agent PATCH ungates; then binding works', async (t) => {
  await cp.apply(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"gate"}}`);
  await cp.apply(GATE_MAP);
  const named = (n: string): Obj =>
    pod('gate', n, [
      {
        name: 'web',
        image: 'nginx:1.19.1',
        securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'operator/gate/complainer.json' } },
      },
    ]);
  const first = await createUntil(() => named('named'), gated);
  t.ok(first, 'gated once the policy is effective');
  t.equal(first?.metadata.labels?.[GATED_LABEL], 'true', 'and labelled, so the agent watches only gated pods');
  const cond = first?.status?.conditions?.find((c) => c.type === 'PodScheduled');
  t.same(
    cond && { status: cond.status, reason: cond.reason, message: cond.message },
    { status: 'False', reason: 'SchedulingGated', message: 'Scheduling is blocked due to non-empty scheduling gates' },
    'the API server marks it SchedulingGated at creation',
  );

  const podLevel = await mustCreate(
    pod('gate', 'pod-level', [{ name: 'web', image: 'nginx:1.19.1' }], {
      podProfile: { type: 'Localhost', localhostProfile: 'operator/gate/complainer.json' },
    }),
  );
  t.ok(gated(podLevel), 'a pod-level operator/ profile is gated too');
  const init = await mustCreate(
    pod('gate', 'init', [{ name: 'web', image: 'nginx:1.19.1' }], {
      initContainers: [
        {
          name: 'init',
          image: 'busybox:1.36',
          securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'operator/gate/x.json' } },
        },
      ],
    }),
  );
  t.ok(gated(init), 'an init container under an operator/ profile is gated too');
  for (const [what, containers, podProfile] of [
    ['no profile', [{ name: 'web', image: 'nginx:1.19.1' }], undefined],
    ['RuntimeDefault', [{ name: 'web', image: 'nginx:1.19.1' }], { type: 'RuntimeDefault' }],
    [
      'a Localhost profile outside operator/',
      [
        {
          name: 'web',
          image: 'nginx:1.19.1',
          securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'my/own.json' } },
        },
      ],
      undefined,
    ],
  ] as const) {
    const p = await mustCreate(
      pod('gate', 'plain', [...containers], podProfile === undefined ? {} : { podProfile: { ...podProfile } }),
    );
    t.notOk(gated(p), `${what}: no gate`);
    t.equal(p.metadata.labels?.[GATED_LABEL], undefined, `${what}: no label`);
  }
  const onNode = await create(
    pod(
      'gate',
      'on-node',
      [
        {
          name: 'web',
          image: 'nginx:1.19.1',
          securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'operator/gate/complainer.json' } },
        },
      ],
      { nodeName: 'n1' },
    ),
  );
  t.ok(onNode.pod, `a pod created with spec.nodeName is admitted: ${onNode.r.stderr}`);
  t.notOk(gated(onNode.pod), 'and not gated (the API server refuses nodeName with gates)');

  // Without the policy's nodeName condition the server would refuse the pod; shown directly:
  const both = await create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `both-${++podSeq}`, namespace: 'gate' },
    spec: { nodeName: 'n1', schedulingGates: [{ name: 'x/y' }], containers: [{ name: 'web', image: 'nginx:1.19.1' }] },
  });
  t.equal(both.pod, undefined, 'nodeName together with a gate is refused');
  t.match(both.r.stderr, 'spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared');

  // A gated pod cannot be bound: no scheduler, stand-in or kubelet can start it early.
  const name = first?.metadata.name ?? '';
  const refused = await bindToNode('gate', name, 'n1');
  t.ok(isKubeApiError(refused), 'binding a gated pod is refused');
  t.match(refused instanceof Error ? refused.message : '', `pod ${name} has non-empty .spec.schedulingGates`);
  t.comment(`binding a gated pod: ${refused instanceof Error ? refused.message : String(refused)}`);

  // Someone else's gate stays when the agent removes its own.
  const two = await mustCreate({
    ...named('two-gates'),
    spec: { ...(named('x').spec as Obj), schedulingGates: [{ name: 'example.com/other' }] },
  });
  t.same(
    (two.spec.schedulingGates ?? []).map((g) => g.name).sort(),
    ['example.com/other', GATE].sort(),
    'our gate is added beside an existing one',
  );
  const afterTwo = await ungate(client, 'gate', two.metadata.name);
  t.same(afterTwo.spec.schedulingGates, [{ name: 'example.com/other' }], 'only our gate went');
  t.equal(afterTwo.metadata.labels?.[GATED_LABEL], undefined, 'and our label');

  const ungated = await ungate(client, 'gate', name);
  t.same(ungated.spec.schedulingGates ?? [], [], 'spec.schedulingGates is empty after the PATCH');
  const again = await ungate(client, 'gate', name);
  t.same(again.spec.schedulingGates ?? [], [], 'the same PATCH again is a no-op, not an error');
  t.same(profileOf(ungated, 'web'), { type: 'Localhost', localhostProfile: 'operator/gate/complainer.json' });
  t.equal(await bindToNode('gate', name, 'n1'), undefined, 'now a scheduler can bind it');
  const bound = await cp.kubectl(['get', 'pod', name, '-n', 'gate', '-o', 'jsonpath={.spec.nodeName}']);
  t.equal(bound.stdout, 'n1');

  // A gate cannot come back by an update: only removal is allowed.
  const readd = await cp.kubectl([
    'patch',
    'pod',
    two.metadata.name,
    '-n',
    'gate',
    '--type=strategic',
    '-p',
    JSON.stringify({ spec: { schedulingGates: [{ name: GATE }] } }),
  ]);
  t.not(readd.code, 0, 'a gate cannot be added after creation');
  t.comment(`re-adding a gate: ${readd.stderr.trim()}`);

  // A pod the binding policy gives an operator/ profile gets the gate whatever order the two
  // policies run in (the binding policy adds it itself). Re-create the rules in a new namespace.
  await cp.apply(`
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: bind-gate}}
- apiVersion: ${GROUP}/v1alpha1
  kind: SeccompPodRules
  metadata: {name: seccomp-agent, namespace: bind-gate}
  spec:
    bindings: [{binding: all, image: '*', localhostProfile: operator/bind-gate/complainer.json}]
`);
  const boundPod = await createUntil(
    () => pod('bind-gate', 'bound', [{ name: 'web', image: 'nginx:1.19.1' }]),
    (p) => profileOf(p, 'web') !== undefined,
  );
  t.ok(gated(boundPod), 'bound by the binding policy, gated');
  t.equal(boundPod?.spec.schedulingGates?.length, 1, 'one gate, not two (a list keyed by name)');
  await noWebhooks(t, 'with the gate policy');
});

t.test('a recording policy puts the selected containers under the logging profile', async (t) => {
  await cp.apply(RECORDING_MAP);
  await cp.apply(`
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: rec}}
- apiVersion: ${GROUP}/v1alpha1
  kind: SeccompPodRules
  metadata: {name: seccomp-agent, namespace: rec}
  spec:
    bindings: [{binding: all, image: '*', localhostProfile: operator/rec/complainer.json}]
    recordings:
    - {recording: only-nginx, uid: u-1, containers: [nginx], podSelector: {matchLabels: {app: web}}}
    - {recording: everything, uid: u-2, podSelector: {matchLabels: {app: web}}}
    - {recording: alpine, uid: u-3, podSelector: {matchExpressions: [{key: app, operator: In, values: [alpine]}]}}
`);
  const web = (n: string): Obj =>
    pod(
      'rec',
      n,
      [
        { name: 'nginx', image: 'nginx:1.19.1', securityContext: { seccompProfile: { type: 'RuntimeDefault' } } },
        {
          name: 'side',
          image: 'busybox:1.36',
          securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'operator/rec/own.json' } },
        },
        { name: 'plain', image: 'busybox:1.36' },
      ],
      { labels: { app: 'web' } },
    );
  const first = await createUntil(
    () => web('web'),
    (p) => profileOf(p, 'nginx')?.localhostProfile === RECORD_PROFILE,
  );
  t.ok(first, 'the recording policy is effective');
  const annotations = first?.metadata.annotations;
  t.same(
    annotations,
    { [RECORDING_ANNOTATION]: 'only-nginx', [`${RECORDING_ANNOTATION}-uid`]: 'u-1' },
    'the first matching recording names the pod, with its uid (the recorded containers are those under its profile)',
  );
  t.same(profileOf(first, 'nginx'), { type: 'Localhost', localhostProfile: RECORD_PROFILE }, 'RuntimeDefault replaced');
  t.same(
    profileOf(first, 'side'),
    { type: 'Localhost', localhostProfile: 'operator/rec/own.json' },
    'a container the recording does not select keeps its profile',
  );
  t.equal(
    profileOf(first, 'plain')?.localhostProfile,
    'operator/rec/complainer.json',
    'and one without a profile is bound as usual',
  );

  const alpine = await mustCreate(
    pod(
      'rec',
      'alpine',
      [
        {
          name: 'a',
          image: 'alpine:3',
          securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'operator/rec/own.json' } },
        },
        { name: 'b', image: 'alpine:3' },
      ],
      { labels: { app: 'alpine' } },
    ),
  );
  t.same(
    [profileOf(alpine, 'a'), profileOf(alpine, 'b')],
    [
      { type: 'Localhost', localhostProfile: RECORD_PROFILE },
      { type: 'Localhost', localhostProfile: RECORD_PROFILE },
    ],
    'no container list: every container, its own profile replaced, whatever order the binding ran in',
  );
  const other = await mustCreate(
    pod('rec', 'other', [{ name: 'x', image: 'busybox:1.36' }], { labels: { app: 'db' } }),
  );
  t.equal(profileOf(other, 'x')?.localhostProfile, 'operator/rec/complainer.json', 'not selected: not recorded');
  t.equal(other.metadata.annotations?.[RECORDING_ANNOTATION], undefined);
  await noWebhooks(t, 'with the recording policy');
});

t.test('a ValidatingAdmissionPolicy requires a profile in labelled namespaces; Warn warns', async (t) => {
  await cp.apply(`
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: strict, labels: {${JSON.stringify(ENFORCE_LABEL)}: 'true'}}}
- {apiVersion: v1, kind: Namespace, metadata: {name: lax}}
`);
  await cp.apply(await chartRequirePolicy(['Deny']));
  const bare = (n: string): Obj =>
    pod('strict', n, [
      { name: 'web', image: 'nginx:1.19.1' },
      { name: 'side', image: 'busybox:1.36', securityContext: { seccompProfile: { type: 'RuntimeDefault' } } },
      { name: 'log', image: 'busybox:1.36', securityContext: { seccompProfile: { type: 'Unconfined' } } },
    ]);
  const refused = await pollUntil(
    async () => {
      const c = await create(bare('bare'));
      if (c.pod !== undefined) await cp.kubectl(['delete', 'pod', c.pod.metadata.name, '-n', 'strict', '--wait=false']);
      return c.pod === undefined ? c.r : undefined;
    },
    SETTLE_MS,
    250,
  );
  t.ok(refused, 'refused once the policy is effective');
  const msg = refused?.stderr.trim() ?? '';
  t.comment(`kubectl: ${msg}`);
  t.match(
    msg,
    /^Error from server \(Forbidden\): error when creating "STDIN": pods "bare-\d+" is forbidden: ValidatingAdmissionPolicy 'seccomp-agent-require-profile' with binding 'seccomp-agent-require-profile' denied request: containers without a seccomp profile of type Localhost or RuntimeDefault: web, log \(namespace strict has seccomp-agent.security-profiles-operator.x-k8s.io\/enforce=true; set securityContext.seccompProfile on the pod or on each container\)$/,
    'the message names the containers without one (web, log), not the RuntimeDefault one',
  );

  const init = await create(
    pod('strict', 'init', [{ name: 'web', image: 'nginx:1.19.1' }], {
      podProfile: { type: 'RuntimeDefault' },
      initContainers: [
        { name: 'setup', image: 'busybox:1.36', securityContext: { seccompProfile: { type: 'Unconfined' } } },
      ],
    }),
  );
  t.equal(init.pod, undefined, 'an Unconfined init container is refused');
  t.match(init.r.stderr, 'without a seccomp profile of type Localhost or RuntimeDefault: setup (');

  for (const [what, podProfile, containerProfile] of [
    ['RuntimeDefault on the pod', { type: 'RuntimeDefault' }, undefined],
    ['Localhost on the pod', { type: 'Localhost', localhostProfile: 'operator/strict/p.json' }, undefined],
    ['Localhost on the container', undefined, { type: 'Localhost', localhostProfile: 'operator/strict/p.json' }],
  ] as const) {
    const c = await create(
      pod(
        'strict',
        'ok',
        [
          {
            name: 'web',
            image: 'nginx:1.19.1',
            ...(containerProfile ? { securityContext: { seccompProfile: { ...containerProfile } } } : {}),
          },
        ],
        podProfile ? { podProfile: { ...podProfile } } : {},
      ),
    );
    t.ok(c.pod, `${what}: admitted ${c.r.stderr}`);
  }
  const lax = await create(pod('lax', 'bare', [{ name: 'web', image: 'nginx:1.19.1' }]));
  t.ok(lax.pod, `an unlabelled namespace is not checked ${lax.r.stderr}`);

  // A ProfileBinding in the labelled namespace: the mutation runs before validation, so the pod
  // that names nothing gets the bound profile and is admitted.
  await cp.apply(`
apiVersion: ${GROUP}/v1alpha1
kind: SeccompPodRules
metadata: {name: seccomp-agent, namespace: strict}
spec:
  bindings: [{binding: all, image: '*', localhostProfile: operator/strict/complainer.json}]
`);
  const boundOk = await pollUntil(
    async () => {
      const c = await create(pod('strict', 'bound', [{ name: 'web', image: 'nginx:1.19.1' }]));
      return c.pod;
    },
    SETTLE_MS,
    250,
  );
  t.equal(profileOf(boundOk, 'web')?.localhostProfile, 'operator/strict/complainer.json', 'bound, then admitted');
  await cp.kubectl(['delete', 'seccomppodrules', 'seccomp-agent', '-n', 'strict']);

  await cp.apply(await chartRequirePolicy(['Warn']));
  const warned = await pollUntil(
    async () => {
      const c = await create(bare('warned'));
      return c.pod !== undefined && c.r.stderr.includes('Warning:') && c.r.stderr.includes(': web, log (')
        ? c.r
        : undefined;
    },
    SETTLE_MS,
    250,
  );
  t.ok(warned, 'Warn: admitted');
  const w = warned?.stderr.trim() ?? '';
  t.comment(`kubectl: ${w}`);
  t.match(
    w,
    /^Warning: Validation failed for ValidatingAdmissionPolicy 'seccomp-agent-require-profile' with binding 'seccomp-agent-require-profile': containers without a seccomp profile of type Localhost or RuntimeDefault: web, log \(namespace strict/,
    'kubectl prints the warning with the message',
  );

  await cp.apply(await chartRequirePolicy(['Audit']));
  const audited = await pollUntil(
    async () => {
      const c = await create(bare('audited'));
      return c.pod !== undefined && !c.r.stderr.includes('Warning:') ? c.r : undefined;
    },
    SETTLE_MS,
    250,
  );
  t.ok(audited, 'Audit alone: admitted without a warning (the audit log carries it)');
  await noWebhooks(t, 'with the validating policy');
});

t.test("a ValidatingAdmissionPolicy narrows the agent's patch on pods to its own gate", async (t) => {
  await cp.apply(`
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: ${AGENT_NS}}}
- {apiVersion: v1, kind: ServiceAccount, metadata: {name: ${AGENT_SA}, namespace: ${AGENT_NS}}}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {name: probe-agent-pods}
  rules: [{apiGroups: [''], resources: [pods], verbs: [get, list, watch, patch]}]
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRoleBinding
  metadata: {name: probe-agent-pods}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: probe-agent-pods}
  subjects: [{kind: ServiceAccount, name: ${AGENT_SA}, namespace: ${AGENT_NS}}]
`);
  await cp.apply(AGENT_GUARD_VAP);
  const agent = new KubeClient(loadKubeconfig(await cp.kubeconfigFor(await cp.mintToken(AGENT_NS, AGENT_SA))));
  const make = (n: string): Obj => ({
    ...pod('gate', n, [
      {
        name: 'web',
        image: 'nginx:1.19.1',
        securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'operator/gate/complainer.json' } },
      },
    ]),
  });
  const victim = await mustCreate(make('victim'));
  t.ok(gated(victim));
  const patch = (body: Obj) =>
    agent
      .request({
        method: 'PATCH',
        path: `/api/v1/namespaces/gate/pods/${victim.metadata.name}`,
        contentType: 'application/strategic-merge-patch+json',
        body,
      })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
  // Until the policy (and the account's RBAC) is effective, a harmless change: a new label value
  // each time, which the policy refuses once it applies.
  let n = 0;
  const effective = await pollUntil(
    async () => {
      const e = await patch({ metadata: { labels: { probe: String(++n) } } });
      return isKubeApiError(e) && e.status === 403 && e.message.includes('ValidatingAdmissionPolicy') ? e : undefined;
    },
    SETTLE_MS,
    250,
  );
  t.ok(effective, 'the guard policy is effective');
  t.comment(effective instanceof Error ? effective.message : '');
  const refused = await patch({ spec: { containers: [{ name: 'web', image: 'evil:1' }] } });
  t.ok(isKubeApiError(refused) && refused.status === 403, 'the agent cannot change an image');
  t.match(
    refused instanceof Error ? refused.message : '',
    `ValidatingAdmissionPolicy 'seccomp-agent-pod-updates' with binding 'seccomp-agent-pod-updates' denied request: the seccomp-agent may only remove its scheduling gate ${GATE} and its label ${GATED_LABEL} from a pod`,
  );
  const image = await cp.kubectl([
    'get',
    'pod',
    victim.metadata.name,
    '-n',
    'gate',
    '-o',
    'jsonpath={.spec.containers[0].image}',
  ]);
  t.equal(image.stdout, 'nginx:1.19.1', 'the image is unchanged');
  for (const [what, body] of [
    ['a label of its own choosing', { metadata: { labels: { owned: 'yes' } } }],
    ['a toleration', { spec: { tolerations: [{ key: 'k', operator: 'Exists' }] } }],
    ['a nodeSelector (allowed on gated pods)', { spec: { nodeSelector: { 'kubernetes.io/hostname': 'n9' } } }],
  ] as const) {
    const e = await patch(body);
    t.ok(isKubeApiError(e) && e.status === 403, `${what}: refused`);
  }
  const ok = await ungate(agent, 'gate', victim.metadata.name);
  t.same(ok.spec.schedulingGates ?? [], [], 'removing its own gate and label is allowed');
  t.equal(ok.metadata.labels?.[GATED_LABEL], undefined);
  const admin = await cp.kubectl(['label', 'pod', victim.metadata.name, '-n', 'gate', 'someone=else']);
  t.equal(admin.code, 0, `other users are not affected: ${admin.stderr}`);
});

t.test('no webhook configuration at the end', async (t) => {
  await noWebhooks(t, 'after every policy above');
  const maps = await cp.kubectl(['get', 'mutatingadmissionpolicies,validatingadmissionpolicies', '-o', 'name']);
  t.same(
    maps.stdout.trim().split('\n').sort(),
    [
      'mutatingadmissionpolicy.admissionregistration.k8s.io/seccomp-agent-binding',
      'mutatingadmissionpolicy.admissionregistration.k8s.io/seccomp-agent-gate',
      'mutatingadmissionpolicy.admissionregistration.k8s.io/seccomp-agent-recording',
      'validatingadmissionpolicy.admissionregistration.k8s.io/seccomp-agent-pod-updates',
      'validatingadmissionpolicy.admissionregistration.k8s.io/seccomp-agent-require-profile',
    ],
    'what did the work: five policies',
  );
});
