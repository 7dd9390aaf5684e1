// Reading SeccompProfiles out of a file's text: hostile YAML is one clear problem, never a crash.
import t from 'tap';
import { SYSCALL_CATALOG } from '../../../shared/syscalls/index.js';
import { parseSourceText } from '../../../agent/src/profiles/source-parse.js';
import { aliasBomb, profileYaml } from '../../helpers/standalone-agent.js';

t.test('item 12: a YAML alias bomb is one clear problem of its document, not a thrown error', async (t) => {
  const text = [profileYaml('t1', 'fine', '  defaultAction: SCMP_ACT_LOG\n'), aliasBomb()].join('---\n');
  const r = parseSourceText('bomb.yaml', text, SYSCALL_CATALOG);
  t.equal(r.readable, false, 'the file is not read (its earlier profiles are kept)');
  t.equal(r.problems.length, 1, 'one problem');
  t.match(r.problems[0], { file: 'bomb.yaml', doc: 2, message: /bomb\.yaml document 2: .*alias.*bomb/ });
});
