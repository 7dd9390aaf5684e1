/**
 * The CustomResourceDefinitions, built from the schema in `schema.ts`: SeccompProfile (the reference
 * operator's API) in both layouts (layout.ts: Namespaced v1beta1, or Cluster with v1 stored and
 * v1beta1 served, the same schema, no conversion webhook) and SeccompNodeReport (ours, one per
 * node). `scripts/gen-crd.ts` writes each to its files; a unit test fails when a committed file
 * differs. The chart installs the report CRD from its `crds/` and the profile CRD of the layout
 * chosen by the `profileLayout` value from `profile-crds/<layout>.yaml` (a template picks it).
 */
import { stringify } from 'yaml';
import {
  API_GROUP,
  API_VERSION,
  API_VERSION_V1,
  KIND,
  PLURAL,
  PROFILE_STATES,
  REPORT_GROUP,
  REPORT_KIND,
  REPORT_PLURAL,
  REPORT_SHORT_NAMES,
  REPORT_SINGULAR,
  REPORT_VERSION,
  SHORT_NAMES,
  SINGULAR,
} from './enums.js';
import { LAYOUTS, type Layout } from './layout.js';
import { NodeReportSchema, SpecSchema, StatusSchema } from './schema.js';

/** The directories generated CRDs are written to: the plain manifests, the chart's `crds/` and `profile-crds/`. */
export const CRD_DIRS = [
  'manifests/crds',
  'manifests/helm/seccomp-agent/crds',
  'manifests/helm/seccomp-agent/profile-crds',
] as const;

/** Plain JSON schema, minus what a Kubernetes structural schema forbids (additionalProperties: false). */
function structural(schema: unknown): unknown {
  const plain: unknown = JSON.parse(JSON.stringify(schema));
  const strip = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(strip);
    if (node === null || typeof node !== 'object') return node;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      if (k === 'additionalProperties' && v === false) continue;
      out[k] = strip(v);
    }
    return out;
  };
  return strip(plain);
}

/** The properties every Kubernetes object has; metadata's schema is the API server's own. */
const OBJECT_PROPERTIES = {
  apiVersion: {
    type: 'string',
    description: 'APIVersion defines the versioned schema of this representation of an object.',
  },
  kind: {
    type: 'string',
    description: 'Kind is a string value representing the REST resource this object represents.',
  },
  metadata: { type: 'object' },
};

interface CrdParts {
  group: string;
  /** The versions served, all with the same schema; the first is stored. */
  versions: readonly string[];
  kind: string;
  plural: string;
  singular: string;
  shortNames: readonly string[];
  scope: 'Namespaced' | 'Cluster';
  subresources?: Record<string, unknown>;
  printerColumns: Record<string, unknown>[];
  openAPIV3Schema: Record<string, unknown>;
  /** Installed by a chart template (not crds/): helm must keep it, and the profiles, on uninstall. */
  keepOnUninstall?: boolean;
}

/** A CRD with our labels and the generated-by annotation; every version has the same schema. */
function crd(p: CrdParts): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${p.plural}.${p.group}`,
      labels: { 'app.kubernetes.io/name': 'seccomp-agent', 'app.kubernetes.io/part-of': 'seccomp-agent' },
      annotations: {
        'seccomp-agent.dev/generated-by': 'npm run gen:crd (scripts/gen-crd.ts from shared/profile/schema.ts)',
        ...(p.keepOnUninstall === true ? { 'helm.sh/resource-policy': 'keep' } : {}),
      },
    },
    spec: {
      group: p.group,
      names: {
        kind: p.kind,
        listKind: `${p.kind}List`,
        plural: p.plural,
        singular: p.singular,
        shortNames: [...p.shortNames],
        categories: ['security'],
      },
      scope: p.scope,
      // Same schema in every version: the API server converts by changing apiVersion only.
      ...(p.versions.length > 1 ? { conversion: { strategy: 'None' } } : {}),
      versions: p.versions.map((name, i) => ({
        name,
        served: true,
        storage: i === 0,
        ...(p.subresources === undefined ? {} : { subresources: p.subresources }),
        additionalPrinterColumns: p.printerColumns,
        schema: { openAPIV3Schema: p.openAPIV3Schema },
      })),
    },
  };
}

const AGE = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

/** The SeccompProfile CRD of a layout (the seed's Namespaced one when not said). */
export function buildProfileCrd(layout: Layout = 'Namespaced'): Record<string, unknown> {
  const cluster = layout === 'Cluster';
  const file = cluster ? 'operator/<name>.json' : 'operator/<namespace>/<name>.json';
  return crd({
    group: API_GROUP,
    versions: cluster ? [API_VERSION_V1, API_VERSION] : [API_VERSION],
    kind: KIND,
    plural: PLURAL,
    singular: SINGULAR,
    shortNames: SHORT_NAMES,
    scope: layout,
    keepOnUninstall: true,
    subresources: { status: {} },
    printerColumns: [
      {
        name: 'Status',
        type: 'string',
        jsonPath: '.status.status',
        description: `The state of the profile: ${PROFILE_STATES.join(', ')}.`,
      },
      {
        name: 'Nodes',
        type: 'string',
        jsonPath: '.status.installedNodes',
        description: 'Nodes with the current generation installed, of the live nodes',
      },
      AGE,
      {
        name: 'LocalhostProfile',
        type: 'string',
        jsonPath: '.status.localhostProfile',
        description: 'The localhostProfile value pods use.',
      },
    ],
    openAPIV3Schema: {
      type: 'object',
      description: `SeccompProfile is a ${cluster ? 'cluster-scoped ' : ''}seccomp profile that seccomp-agent installs on every node as <kubelet root>/seccomp/${file}, for pods to use with securityContext.seccompProfile (type Localhost, localhostProfile ${file}).`,
      required: ['spec'],
      properties: {
        ...OBJECT_PROPERTIES,
        spec: structural(SpecSchema),
        status: structural(StatusSchema),
      },
    },
  });
}

/**
 * The SeccompNodeReport CRD: the report's fields sit at the top level (no spec or status, no status
 * subresource), and only the watermark is required, so a report can grow optional fields later.
 */
export function buildReportCrd(): Record<string, unknown> {
  const body = structural(NodeReportSchema) as { properties: Record<string, unknown> };
  return crd({
    group: REPORT_GROUP,
    versions: [REPORT_VERSION],
    kind: REPORT_KIND,
    plural: REPORT_PLURAL,
    singular: REPORT_SINGULAR,
    shortNames: REPORT_SHORT_NAMES,
    scope: 'Cluster',
    printerColumns: [
      {
        name: 'Applied',
        type: 'string',
        jsonPath: '.appliedRevision',
        description: "The SeccompProfile resourceVersion the node's files reflect.",
      },
      {
        name: 'Installed',
        type: 'integer',
        jsonPath: '.installed',
        description: 'Profile files installed on the node.',
      },
      {
        name: 'Failed',
        type: 'integer',
        jsonPath: '.failedCount',
        description: 'Profiles that failed on the node.',
      },
      {
        name: 'InUse',
        type: 'integer',
        jsonPath: '.inUseCount',
        description: 'Profiles that pods on the node use.',
      },
      AGE,
    ],
    openAPIV3Schema: {
      type: 'object',
      description: `${REPORT_KIND} is what seccomp-agent on one node has installed, named after the node: the SeccompProfile resourceVersion its files reflect, and only the exceptions (profiles that failed, profiles in use). Written by that node's agent, read by the elected aggregator, removed with the Node.`,
      required: ['nodeName', 'appliedRevision'],
      properties: { ...OBJECT_PROPERTIES, ...body.properties },
    },
  });
}

/** A generated CRD: its object name, the files it is committed as, and how to build it. */
export interface GeneratedCrd {
  name: string;
  /** The SeccompProfile CRD's layout; undefined for the report CRD. */
  layout?: Layout;
  /** Relative to the repository root. */
  files: readonly string[];
  build: () => Record<string, unknown>;
}

export const PROFILE_CRD_NAME = `${PLURAL}.${API_GROUP}`;
const REPORT_CRD_NAME = `${REPORT_PLURAL}.${REPORT_GROUP}`;

/** The plain manifest of a layout's SeccompProfile CRD (for `kubectl apply -f`). */
export const profileCrdFile = (layout: Layout): string =>
  layout === 'Namespaced'
    ? `manifests/crds/${PROFILE_CRD_NAME}.yaml`
    : `manifests/crds/${PROFILE_CRD_NAME}.cluster.yaml`;

/** Every CRD we generate: the report CRD, and the SeccompProfile CRD once per layout. */
export const CRDS: readonly GeneratedCrd[] = [
  ...LAYOUTS.map((layout): GeneratedCrd => ({
    name: PROFILE_CRD_NAME,
    layout,
    files: [profileCrdFile(layout), `manifests/helm/seccomp-agent/profile-crds/${layout}.yaml`],
    build: () => buildProfileCrd(layout),
  })),
  {
    name: REPORT_CRD_NAME,
    files: [`manifests/crds/${REPORT_CRD_NAME}.yaml`, `manifests/helm/seccomp-agent/crds/${REPORT_CRD_NAME}.yaml`],
    build: buildReportCrd,
  },
];

/** The files a CRD is committed as, relative to the repository root. */
export function crdFiles(c: GeneratedCrd): readonly string[] {
  return c.files;
}

/** A CRD as the YAML file we commit. */
export function renderCrdYaml(c: GeneratedCrd): string {
  return `# Generated from shared/profile/schema.ts by \`npm run gen:crd\`. Do not edit by hand.\n${stringify(c.build(), { lineWidth: 0 })}`;
}
