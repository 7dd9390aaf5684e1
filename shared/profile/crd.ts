/**
 * The CustomResourceDefinition, built from the schema in `schema.ts`. `scripts/gen-crd.ts` writes it
 * to `manifests/crds/`; a unit test fails when the committed file differs from this.
 */
import { stringify } from 'yaml';
import { API_GROUP, API_VERSION, KIND, PLURAL, SHORT_NAMES, SINGULAR } from './enums.js';
import { SpecSchema, StatusSchema } from './schema.js';

export const CRD_NAME = `${PLURAL}.${API_GROUP}`;
export const CRD_FILE = `manifests/crds/${CRD_NAME}.yaml`;

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

/** The CRD object. */
export function buildCrd(): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: CRD_NAME,
      labels: { 'app.kubernetes.io/name': 'seccomp-agent', 'app.kubernetes.io/part-of': 'seccomp-agent' },
      annotations: {
        'seccomp-agent.dev/generated-by': 'npm run gen:crd (scripts/gen-crd.ts from shared/profile/schema.ts)',
      },
    },
    spec: {
      group: API_GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: SINGULAR,
        shortNames: [...SHORT_NAMES],
        categories: ['security'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            {
              name: 'Status',
              type: 'string',
              jsonPath: '.status.status',
              description: 'The state of the profile: Pending, Installed, Terminating, Error.',
            },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
            {
              name: 'LocalhostProfile',
              type: 'string',
              jsonPath: '.status.localhostProfile',
              description: 'The localhostProfile value pods use.',
            },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description:
                'SeccompProfile is a seccomp profile that seccomp-agent installs on every node as <kubelet root>/seccomp/operator/<namespace>/<name>.json, for pods to use with securityContext.seccompProfile (type Localhost, localhostProfile operator/<namespace>/<name>.json).',
              required: ['spec'],
              properties: {
                apiVersion: {
                  type: 'string',
                  description: 'APIVersion defines the versioned schema of this representation of an object.',
                },
                kind: {
                  type: 'string',
                  description: 'Kind is a string value representing the REST resource this object represents.',
                },
                metadata: { type: 'object' },
                spec: structural(SpecSchema),
                status: structural(StatusSchema),
              },
            },
          },
        },
      ],
    },
  };
}

/** The CRD as the YAML file we commit. */
export function renderCrdYaml(): string {
  return `# Generated from shared/profile/schema.ts by \`npm run gen:crd\`. Do not edit by hand.\n${stringify(buildCrd(), { lineWidth: 0 })}`;
}
