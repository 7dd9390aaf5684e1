/**
 * Writes the CRDs generated from the schema to manifests/crds/ and the Helm chart's crds/, and
 * removes any other YAML there (a CRD we no longer generate). Run with `npm run gen:crd`.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { CRD_DIRS, CRDS, renderCrdYaml } from '../shared/profile/crd.js';

const wanted = new Set(CRDS.flatMap((c) => c.files));
for (const dir of CRD_DIRS) {
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.yaml') && !wanted.has(`${dir}/${f}`)) {
      rmSync(`${dir}/${f}`);
      process.stdout.write(`removed ${dir}/${f}\n`);
    }
  }
}
for (const c of CRDS) {
  for (const f of c.files) {
    writeFileSync(f, renderCrdYaml(c));
    process.stdout.write(`wrote ${f}\n`);
  }
}
