/** Writes the CRD generated from the schema to manifests/crds/. Run with `npm run gen:crd`. */
import { writeFileSync } from 'node:fs';
import { CRD_FILE, renderCrdYaml } from '../shared/profile/crd.js';

writeFileSync(CRD_FILE, renderCrdYaml());
process.stdout.write(`wrote ${CRD_FILE}\n`);
