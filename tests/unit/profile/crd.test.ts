import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { CRD_DIRS, CRDS, crdFiles, renderCrdYaml, type GeneratedCrd } from '../../../shared/profile/crd.js';
import { ACTIONS, ARCHITECTURES, REPORT_GROUP, REPORT_KIND, REPORT_VERSION } from '../../../shared/profile/enums.js';
import { repoRoot, sharedDir } from '../../helpers/shared.js';

/** The parts of a generated CRD these tests read. */
interface CrdShape {
  metadata: { name: string };
  spec: {
    group: string;
    versions: {
      name: string;
      served?: boolean;
      storage?: boolean;
      additionalPrinterColumns: { name: string; type: string; jsonPath: string; description?: string }[];
      subresources?: object;
      schema: { openAPIV3Schema: { required?: string[]; properties: Record<string, unknown> } };
    }[];
    names: { kind: string; plural: string; singular: string; shortNames: string[] };
    scope: string;
  };
}

function parsed(c: GeneratedCrd): { crd: CrdShape; v: CrdShape['spec']['versions'][number] } {
  const crd = parse(renderCrdYaml(c)) as CrdShape;
  const v = crd.spec.versions[0];
  if (v === undefined) throw new Error(`${c.name}: no version`);
  return { crd, v };
}

function byKind(kind: string): GeneratedCrd {
  const c = CRDS.find((x) => (parse(renderCrdYaml(x)) as CrdShape).spec.names.kind === kind);
  if (c === undefined) throw new Error(`no generated CRD of kind ${kind}`);
  return c;
}

/** The path of every schema property without a description (metadata is the API server's). */
function undocumented(schema: unknown): string[] {
  const out: string[] = [];
  const walk = (node: unknown, path: string): void => {
    if (node === null || typeof node !== 'object') return;
    const n = node as { properties?: Record<string, unknown>; items?: unknown };
    for (const [k, child] of Object.entries(n.properties ?? {})) {
      const c = child as { description?: string };
      if (k !== 'metadata' && (c.description === undefined || c.description === '')) out.push(`${path}.${k}`);
      walk(child, `${path}.${k}`);
    }
    if (n.items !== undefined) walk(n.items, `${path}[]`);
  };
  walk(schema, '');
  return out;
}

t.test('the committed CRDs are what the schema generates (run `npm run gen:crd` after a schema change)', async (t) => {
  for (const c of CRDS) {
    for (const f of crdFiles(c)) t.equal(readFileSync(join(repoRoot, f), 'utf8'), renderCrdYaml(c), f);
  }
  for (const d of CRD_DIRS) {
    t.same(
      readdirSync(join(repoRoot, d))
        .filter((f) => f.endsWith('.yaml'))
        .map((f) => `${d}/${f}`)
        .sort(),
      CRDS.flatMap((c) => c.files)
        .filter((f) => f.startsWith(`${d}/`) && !f.slice(d.length + 1).includes('/'))
        .sort(),
      `${d} holds exactly the generated CRDs`,
    );
  }
  for (const c of CRDS) {
    const { crd } = parsed(c);
    t.equal(c.name, `${crd.spec.names.plural}.${crd.spec.group}`, 'the file is named <plural>.<group>');
    t.equal(crd.metadata.name, c.name);
  }
});

t.test('the SeccompProfile CRD has what kubectl users see', async (t) => {
  const c = byKind('SeccompProfile');
  const { crd, v } = parsed(c);
  t.same(
    v.additionalPrinterColumns.map((col) => col.name),
    ['Status', 'Nodes', 'Age', 'LocalhostProfile'],
  );
  t.same(
    v.additionalPrinterColumns.find((col) => col.name === 'Nodes'),
    {
      name: 'Nodes',
      type: 'string',
      jsonPath: '.status.installedNodes',
      description: 'Nodes with the current generation installed, of the live nodes',
    },
    'NODES prints status.installedNodes',
  );
  t.same(v.subresources, { status: {} });
  t.same(crd.spec.names.shortNames, ['sp']);
  t.equal(crd.spec.scope, 'Namespaced');
  const status = v.schema.openAPIV3Schema.properties['status'] as { properties: Record<string, unknown> };
  t.equal(status.properties['nodes'], undefined, 'no per-node list on the profile: that is the SeccompNodeReport');
  t.same(undocumented(v.schema.openAPIV3Schema), [], 'every field has a description');
  const text = renderCrdYaml(c);
  for (const a of ACTIONS) t.match(text, a);
  for (const a of ARCHITECTURES) t.match(text, a);
  t.notMatch(text, /additionalProperties: false/, 'structural schema: no additionalProperties false');
});

t.test('the SeccompNodeReport CRD: cluster-scoped, top-level fields, the watermark required', async (t) => {
  const c = byKind(REPORT_KIND);
  const { crd, v } = parsed(c);
  t.equal(crd.spec.group, REPORT_GROUP);
  t.equal(v.name, REPORT_VERSION);
  t.same(crd.spec.names, {
    kind: 'SeccompNodeReport',
    listKind: 'SeccompNodeReportList',
    plural: 'seccompnodereports',
    singular: 'seccompnodereport',
    shortNames: ['snr'],
    categories: ['security'],
  });
  t.equal(crd.spec.scope, 'Cluster');
  t.equal(v.subresources, undefined, 'no status subresource: the agent applies the whole report');
  t.same(
    v.additionalPrinterColumns.map((col) => [col.name, col.type, col.jsonPath]),
    [
      ['Applied', 'string', '.appliedRevision'],
      ['Installed', 'integer', '.installed'],
      ['Failed', 'integer', '.failedCount'],
      ['InUse', 'integer', '.inUseCount'],
      ['Age', 'date', '.metadata.creationTimestamp'],
    ],
  );
  const schema = v.schema.openAPIV3Schema;
  t.same(schema.required, ['nodeName', 'appliedRevision']);
  t.same(Object.keys(schema.properties), [
    'apiVersion',
    'kind',
    'metadata',
    'nodeName',
    'appliedRevision',
    'installed',
    'failedCount',
    'inUseCount',
    'failed',
    'inUse',
  ]);
  t.same(undocumented(schema), [], 'every field has a description');
  const text = renderCrdYaml(c);
  t.notMatch(text, /additionalProperties: false/, 'structural schema: no additionalProperties false');
  t.match(text, /x-kubernetes-list-type: atomic/, 'the report lists are replaced whole by each apply');
});

/** The parts of the reference operator's v1.0.0 CRD compared with ours. */
interface SpoCrd {
  spec: {
    scope: string;
    conversion?: { strategy: string };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, unknown> } } } };
    }[];
  };
}

t.test(
  "both SeccompProfile layouts come from the one schema; Cluster has the reference operator's shape",
  async (t) => {
    const layouts = CRDS.filter((c) => c.layout !== undefined);
    t.same(
      layouts.map((c) => c.layout),
      ['Namespaced', 'Cluster'],
    );
    const [ns, cl] = layouts.map(
      (c) => parse(renderCrdYaml(c)) as CrdShape & { spec: { conversion?: { strategy: string } } },
    );
    if (ns === undefined || cl === undefined) throw new Error('missing layout');
    t.equal(ns.spec.scope, 'Namespaced');
    t.same(
      ns.spec.versions.map((v) => [v.name, v.served, v.storage]),
      [['v1beta1', true, true]],
    );
    t.equal(ns.spec.conversion, undefined, 'one version: nothing to convert');
    t.equal(cl.spec.scope, 'Cluster');
    t.same(
      cl.spec.versions.map((v) => [v.name, v.served, v.storage]),
      [
        ['v1', true, true],
        ['v1beta1', true, false],
      ],
      'v1 stored, v1beta1 served',
    );
    t.same(cl.spec.conversion, { strategy: 'None' }, 'no conversion webhook');
    const schemas = [...ns.spec.versions, ...cl.spec.versions].map((v) =>
      JSON.stringify(v.schema).replace(
        /cluster-scoped |operator\/<namespace>\/<name>\.json|operator\/<name>\.json/g,
        '',
      ),
    );
    t.equal(new Set(schemas).size, 1, 'every version of both layouts has the same schema (but the scope words)');
    t.same(ns.metadata.name, cl.metadata.name, 'the same CRD object, so a cluster has one layout at a time');

    // The reference operator's v1.0.0 CRD: same scope and versions; its spec fields are all ours.
    const spo = parse(readFileSync(join(sharedDir(), 'spo-v1', 'crds', 'seccompprofile.yaml'), 'utf8')) as SpoCrd;
    t.equal(spo.spec.scope, cl.spec.scope);
    t.same(
      spo.spec.versions.map((v) => [v.name, v.served, v.storage]),
      cl.spec.versions.map((v) => [v.name, v.served, v.storage]),
    );
    const clSpec = cl.spec.versions[0]?.schema.openAPIV3Schema.properties['spec'] as {
      properties: Record<string, unknown>;
    };
    const ours = Object.keys(clSpec.properties).sort();
    for (const v of spo.spec.versions) {
      for (const k of Object.keys(v.schema.openAPIV3Schema.properties.spec.properties)) {
        t.ok(ours.includes(k), `${v.name} spec.${k} is a field of ours`);
      }
    }
    t.ok(ours.includes('disabled'), 'and the seed-era disabled flag stays');
    const text = renderCrdYaml(layouts[1] as GeneratedCrd);
    t.match(text, /x-kubernetes-validations/, 'the API server refuses state and disabled that disagree');
    t.match(text, /helm.sh\/resource-policy: keep/, 'helm uninstall keeps the profile CRD (a template, not crds/)');
  },
);
