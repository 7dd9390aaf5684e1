// Standalone mode takes both kinds of files (issue 14): the reference operator's v1 examples
// (cluster-scoped, no namespace) install as operator/<name>.json with its bytes, beside a seed-era
// v1beta1 profile at operator/<namespace>/<name>.json; state: Disabled installs nothing.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import t from 'tap';
import { cli, profileYaml, readOrUndef, requireBuiltAgent } from '../../helpers/standalone-agent.js';
import { spoExamples, spoExamplesDir } from '../../helpers/spo-v1.js';

await requireBuiltAgent();

t.test('v1 examples and a v1beta1 profile in one directory, --once', async (t) => {
  const dir = t.testdir({});
  const profiles = path.join(dir, 'profiles');
  await fs.mkdir(profiles);
  // The "-change" file repeats profile-allowed-syscalls of the "-validation" one: one of them is enough.
  const examples = spoExamples().filter((e) => e.file !== 'seccompprofile-allowed-syscalls-change.yaml');
  for (const f of new Set(examples.map((e) => e.file))) {
    await fs.copyFile(path.join(spoExamplesDir(), f), path.join(profiles, f));
  }
  await fs.writeFile(
    path.join(profiles, 'seed.yaml'),
    profileYaml('seccomp-test', 'seed', '  defaultAction: SCMP_ACT_LOG\n'),
  );
  await fs.writeFile(
    path.join(profiles, 'off.yaml'),
    'apiVersion: security-profiles-operator.x-k8s.io/v1\nkind: SeccompProfile\nmetadata:\n  name: off\nspec:\n  state: Disabled\n  defaultAction: SCMP_ACT_LOG\n',
  );
  const root = path.join(dir, 'root');
  const r = await cli(['--profiles-dir', profiles, '--kubelet-root', root, '--once']);
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(0, 400)})`);
  const operator = path.join(root, 'seccomp', 'operator');
  for (const ex of examples) {
    const got = await readOrUndef(path.join(operator, `${ex.name}.json`));
    t.equal(got?.toString(), ex.expected, `operator/${ex.name}.json holds the reference operator's bytes`);
  }
  t.equal(
    (await readOrUndef(path.join(operator, 'seccomp-test', 'seed.json')))?.toString(),
    '{"defaultAction":"SCMP_ACT_LOG"}',
  );
  t.equal(await readOrUndef(path.join(operator, 'off.json')), undefined, 'state: Disabled: no file');
  const top = (await fs.readdir(operator)).sort();
  t.same(top, [...examples.map((e) => `${e.name}.json`), 'seccomp-test'].sort(), 'nothing else under operator/');
});
