// The start-up sweep removes what no profile accounts for, but never the files of profiles it cannot
// see because their source file does not read: a half-saved edit must not uninstall anything.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { exec } from '../../testbed/exec.js';
import { REPO_ROOT } from '../../testbed/agent-cli.js';

const main = join(REPO_ROOT, 'dist', 'agent', 'src', 'main.js');
const once = (dir: string, root: string) =>
  exec(process.execPath, [main, '--profiles-dir', dir, '--kubelet-root', root, '--once', '--log-level', 'silent'], {
    cwd: REPO_ROOT,
    timeoutMs: 60_000,
  });

const profile = (name: string): string => `apiVersion: security-profiles-operator.x-k8s.io/v1beta1
kind: SeccompProfile
metadata: {name: ${name}, namespace: t}
spec: {defaultAction: SCMP_ACT_LOG}
`;

t.test('an unreadable source file at start keeps every installed profile file', async (t) => {
  const top = t.testdir({ profiles: { 'good.yaml': profile('a'), 'other.yaml': profile('b') }, root: {} });
  const dir = join(top, 'profiles');
  const root = join(top, 'root');
  const first = await once(dir, root);
  t.equal(first.code, 0, first.stderr);
  const a = join(root, 'seccomp', 'operator', 't', 'a.json');
  const b = join(root, 'seccomp', 'operator', 't', 'b.json');
  t.ok(existsSync(a) && existsSync(b), 'both installed');

  writeFileSync(join(dir, 'good.yaml'), 'apiVersion: [unclosed\n  kind: : :\n');
  mkdirSync(join(root, 'seccomp', 'operator', 't'), { recursive: true });
  writeFileSync(join(root, 'seccomp', 'operator', 't', 'a.json.12345'), 'torn');
  const second = await once(dir, root);
  t.equal(second.code, 1, 'the bad file fails the run');
  t.match(second.stderr, /good\.yaml document 1: not valid YAML/);
  t.ok(existsSync(a), 'the profile of the unreadable file is kept');
  t.ok(existsSync(b), 'the other profile is kept');
  t.notOk(existsSync(join(root, 'seccomp', 'operator', 't', 'a.json.12345')), 'temp files are still swept');

  writeFileSync(join(dir, 'good.yaml'), '# emptied on purpose\n');
  const third = await once(dir, root);
  t.equal(third.code, 0);
  t.notOk(existsSync(a), 'once the file reads again and no longer defines a, a is removed');
  t.ok(existsSync(b));
});
