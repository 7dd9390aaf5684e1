import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { describeFindings } from '../../../shared/profile/findings.js';
import { validateProfile, validateSpec } from '../../../shared/profile/validate.js';
import { parseSourceText } from '../../../agent/src/profiles/source-parse.js';
import { SYSCALL_CATALOG } from '../../../shared/syscalls/index.js';
import { repoRoot, sharedDir } from '../../helpers/shared.js';

const corpus = join(repoRoot, 'tests', 'fixtures', 'bad-profiles');

t.test('every bad profile in the corpus gets its expected message', async (t) => {
  const files = readdirSync(corpus)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  t.ok(files.length >= 15, `${files.length} bad profiles`);
  for (const f of files) {
    const text = readFileSync(join(corpus, f), 'utf8');
    const m = /^# expect: (error|warning) (\S+) :: (.+)$/m.exec(text);
    if (m === null) throw new Error(`${f} has no '# expect:' line`);
    const [, severity, path, message] = m as unknown as [string, 'error' | 'warning', string, string];
    const check = validateProfile(parse(text), SYSCALL_CATALOG);
    const findings = check.ok ? check.warnings : [...check.errors, ...check.warnings];
    const hit = findings.find((x) => x.path === path && x.severity === severity && x.message.includes(message));
    t.ok(hit, `${f}: ${severity} at ${path}: ${message}`, { found: findings });
    t.equal(
      check.ok,
      severity === 'warning',
      `${f}: ${severity === 'warning' ? 'installed with a warning' : 'refused'}`,
    );
    if (!check.ok) t.match(check.ref, /^(t|seccomp\/test)\//, `${f}: the message names the profile`);
  }
});

t.test('the real and workshop profiles are valid, except the two runc 1.1.5 refuses', async (t) => {
  // results.txt: runc 1.1.5 refuses these two for their architectures (see render.test.ts).
  const refused = new Set(['moby-default.yaml', 'podman-default.yaml']);
  const dirs = [join(sharedDir(), 'real-profiles'), join(repoRoot, 'profiles')];
  for (const dir of dirs) {
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.yaml') && !x.endsWith('.original.yaml'))) {
      for (const doc of readFileSync(join(dir, f), 'utf8').split(/^---$/m)) {
        const obj = parse(doc) as { kind?: string } | null;
        if (obj?.kind !== 'SeccompProfile') continue;
        const check = validateProfile(obj, SYSCALL_CATALOG);
        if (refused.has(f)) {
          t.match(check, { ok: false, errors: [{ path: /^spec\.architectures\[\d+\]$/ }] }, `${f} is refused`);
          continue;
        }
        t.ok(check.ok, `${f} is valid`, check.ok ? {} : { errors: check.errors });
        if (check.ok && f.startsWith('podman-default')) {
          // podman lists setns as ALLOW and as ERRNO (its default) with no arguments: runc skips the
          // ERRNO rule and loads the rest, so it is a warning
          t.ok(
            check.warnings.some((w) => w.reason === 'ConflictingRules' && w.message.includes('"setns"')),
            `${f}: setns conflict is a warning`,
          );
        }
      }
    }
  }
});

t.test('same name with different argument conditions is not a conflict', async (t) => {
  const findings = validateSpec(
    {
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }] },
        { names: ['personality'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }] },
      ],
    },
    SYSCALL_CATALOG,
  );
  t.same(findings, []);
});

t.test('a spec that is not an object, and a missing name', async (t) => {
  t.match(validateSpec(undefined, SYSCALL_CATALOG), [{ path: 'spec', message: /required/ }]);
  const check = validateProfile(
    {
      apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
      kind: 'SeccompProfile',
      metadata: {},
      spec: { defaultAction: 'SCMP_ACT_LOG' },
    },
    SYSCALL_CATALOG,
  );
  t.equal(check.ok, false);
  if (!check.ok) t.match(check.errors, [{ path: 'metadata.name', message: /must not be empty/ }]);
});

t.test('a namespace defaults like kubectl does', async (t) => {
  const check = validateProfile(
    {
      apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
      kind: 'SeccompProfile',
      metadata: { name: 'x' },
      spec: { defaultAction: 'SCMP_ACT_LOG' },
    },
    SYSCALL_CATALOG,
  );
  t.equal(check.ok && check.profile.metadata.namespace, 'default');
});

/** A profile whose one rule lists `names`. */
const profileWith = (names: string[], name = 'big'): Record<string, unknown> => ({
  apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
  kind: 'SeccompProfile',
  metadata: { name, namespace: 't' },
  spec: { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names, action: 'SCMP_ACT_ERRNO' }] },
});

t.test('item 6: 100,000 unknown syscall names give a message under 4 KiB that says how many more', async (t) => {
  const names = Array.from({ length: 100_000 }, (_v, i) => `nosuchcall${i}`);
  const check = validateProfile(profileWith(names), SYSCALL_CATALOG);
  t.equal(check.ok, false, 'refused');
  if (check.ok) return;
  const unknown = check.errors.filter((e) => e.reason === 'UnknownSyscall');
  t.equal(unknown.length, 10, 'ten unknown names are listed');
  t.match(unknown[0], { path: 'spec.syscalls[0].names[0]', message: /"nosuchcall0" is not a syscall/ });
  t.ok(check.errors.length <= 12, `${check.errors.length} findings kept`);
  // The message the agent logs and shows in /v1/profiles (source-parse joins the same way).
  const message = describeFindings(check.ref, check.errors);
  t.ok(Buffer.byteLength(message) < 4096, `the message is ${Buffer.byteLength(message)} bytes`);
  t.match(message, /and 99,990 more unknown syscall names/);
  const parsed = parseSourceText('big.json', JSON.stringify(profileWith(names)), SYSCALL_CATALOG);
  const said = parsed.problems.map((p) => p.message).join('\n');
  t.ok(Buffer.byteLength(said) < 4096, `the file problem is ${Buffer.byteLength(said)} bytes`);
  t.match(said, /and 99,990 more/);
});

t.test('item 6: a huge value or field name is quoted short and escaped in messages', async (t) => {
  const long = `x\n${'y'.repeat(1_000_000)}`;
  const check = validateProfile(
    {
      apiVersion: long,
      kind: 'SeccompProfile',
      metadata: { name: long, namespace: 't' },
      spec: { defaultAction: long, [long]: 1, syscalls: [{ names: [long], action: 'SCMP_ACT_ERRNO' }] },
    },
    SYSCALL_CATALOG,
  );
  t.equal(check.ok, false);
  if (check.ok) return;
  const message = describeFindings(check.ref, check.errors);
  t.ok(Buffer.byteLength(message) < 4096, `the message is ${Buffer.byteLength(message)} bytes`);
  t.notOk(message.includes('\n'), 'no raw newline from the input');
  for (const e of check.errors) t.ok(e.path.length + e.message.length < 400, `${e.reason} is short`);
});
