import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { CRD_FILE, buildCrd, renderCrdYaml } from '../../../shared/profile/crd.js';
import { ACTIONS, ARCHITECTURES } from '../../../shared/profile/enums.js';
import { repoRoot } from '../../helpers/shared.js';

t.test('the committed CRD is what the schema generates (run `npm run gen:crd` after a schema change)', async (t) => {
  t.equal(readFileSync(join(repoRoot, CRD_FILE), 'utf8'), renderCrdYaml());
});

t.test('the CRD has what kubectl users see', async (t) => {
  const crd = parse(renderCrdYaml()) as ReturnType<typeof buildCrd> & {
    spec: {
      versions: {
        additionalPrinterColumns: { name: string }[];
        subresources: object;
        schema: { openAPIV3Schema: unknown };
      }[];
      names: { shortNames: string[] };
      scope: string;
    };
  };
  const v = crd.spec.versions[0];
  t.same(
    v?.additionalPrinterColumns.map((c) => c.name),
    ['Status', 'Age', 'LocalhostProfile'],
  );
  t.same(v?.subresources, { status: {} });
  t.same(crd.spec.names.shortNames, ['sp']);
  t.equal(crd.spec.scope, 'Namespaced');
  // every property has a description, so `kubectl explain` is useful
  const undocumented: string[] = [];
  const walk = (node: unknown, path: string): void => {
    if (node === null || typeof node !== 'object') return;
    const n = node as { properties?: Record<string, unknown>; items?: unknown; description?: string };
    for (const [k, child] of Object.entries(n.properties ?? {})) {
      const c = child as { description?: string };
      if (k !== 'metadata' && (c.description === undefined || c.description === '')) undocumented.push(`${path}.${k}`);
      walk(child, `${path}.${k}`);
    }
    if (n.items !== undefined) walk(n.items, `${path}[]`);
  };
  walk(v?.schema.openAPIV3Schema, '');
  t.same(undocumented, [], 'every field has a description');
  const text = renderCrdYaml();
  for (const a of ACTIONS) t.match(text, a);
  for (const a of ARCHITECTURES) t.match(text, a);
  t.notMatch(text, /additionalProperties: false/, 'structural schema: no additionalProperties false');
});
