/**
 * Writes the CRDs generated from the schema to manifests/crds/ and the Helm chart's crds/, and
 * removes any other YAML there (a CRD we no longer generate). Run with `npm run gen:crd`.
 */
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { CRD_DIRS, CRDS, renderCrdYaml } from '../shared/profile/crd.js';

for (const dir of CRD_DIRS) {
  const wanted = new Set(CRDS.map((c) => `${c.name}.yaml`));
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.yaml') && !wanted.has(f)) {
      rmSync(`${dir}/${f}`);
      process.stdout.write(`removed ${dir}/${f}\n`);
    }
  }
  for (const c of CRDS) {
    writeFileSync(`${dir}/${c.name}.yaml`, renderCrdYaml(c));
    process.stdout.write(`wrote ${dir}/${c.name}.yaml\n`);
  }
}
