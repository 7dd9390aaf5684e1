// Item 16: the validator refuses what runc 1.1.5 + libseccomp 2.5.4 refuse (the cases that
// tests/node/runc-refusals.test.ts runs in the real runc), and warns where runc loads something
// other than what is written.
import t from 'tap';
import { runtimeFindings } from '../../../shared/profile/runtime.js';
import type { SeccompProfileSpec } from '../../../shared/profile/schema.js';
import { validateProfile } from '../../../shared/profile/validate.js';
import { SYSCALL_CATALOG } from '../../../shared/syscalls/index.js';
import { RUNC_CASES } from '../../fixtures/runc-cases.js';
import { parseSourceText } from '../../../agent/src/profiles/source-parse.js';

const profile = (spec: unknown): Record<string, unknown> => ({
  apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
  kind: 'SeccompProfile',
  metadata: { name: 'case', namespace: 't' },
  spec,
});

for (const c of RUNC_CASES) {
  t.test(`item 16: ${c.title}`, async (t) => {
    const check = validateProfile(profile(c.spec), SYSCALL_CATALOG);
    const findings = check.ok ? check.warnings : [...check.errors, ...check.warnings];
    if (c.finding === undefined) {
      t.same(findings, [], 'accepted without a warning');
      return;
    }
    t.equal(check.ok, c.finding.severity === 'warning', c.finding.severity === 'error' ? 'refused' : 'installed');
    t.match(findings, [c.finding], `${c.finding.severity} at ${c.finding.path}`);
  });
}

t.test('item 16: on a big-endian node the little-endian architectures are the ones refused', async (t) => {
  const spec: SeccompProfileSpec = {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ['SCMP_ARCH_S390X', 'SCMP_ARCH_X86_64'],
  };
  t.match(runtimeFindings(spec, { endianness: 'big', isKnown: () => true }), [
    { path: 'spec.architectures[1]', message: /SCMP_ARCH_X86_64 is little-endian and this node is big-endian/ },
  ]);
  t.same(
    runtimeFindings(
      { ...spec, architectures: ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'] },
      { endianness: 'big', isKnown: () => true },
    ),
    [],
  );
});

t.test('item 16: SCMP_ACT_TRACE data above 16 bits is refused; up to 65535 is accepted', async (t) => {
  const rule = (errnoRet: number) => ({ names: ['mkdir'], action: 'SCMP_ACT_TRACE', errnoRet });
  const over = validateProfile(profile({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [rule(65536)] }), SYSCALL_CATALOG);
  t.match(over, { ok: false, errors: [{ path: 'spec.syscalls[0].errnoRet', reason: 'ErrnoRetOutOfRange' }] });
  t.match(validateProfile(profile({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [rule(65535)] }), SYSCALL_CATALOG), {
    ok: true,
    warnings: [],
  });
});

t.test('item 16: unknown names take no room in the filter', async (t) => {
  // 5,000 unknown names are refused as unknown, not as too many rules (runc would skip them).
  const names = Array.from({ length: 5000 }, (_v, i) => `nosuchcall${i}`);
  const check = validateProfile(
    profile({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names, action: 'SCMP_ACT_ERRNO' }] }),
    SYSCALL_CATALOG,
  );
  t.notOk(!check.ok && check.errors.some((e) => e.reason === 'TooManyRules'), 'no TooManyRules');
});

t.test('R4 found: an errnoRet above 2^53 in YAML (read as a bigint) is refused, not a crash', async (t) => {
  const text = `apiVersion: security-profiles-operator.x-k8s.io/v1beta1
kind: SeccompProfile
metadata: {name: big-errno, namespace: t}
spec:
  defaultAction: SCMP_ACT_ALLOW
  syscalls:
  - {names: [mkdir], action: SCMP_ACT_ERRNO, errnoRet: 99999999999999999999}
`;
  const parsed = parseSourceText('big-errno.yaml', text, SYSCALL_CATALOG);
  t.match(parsed.profiles[0]?.profile, {
    ok: false,
    errors: [
      {
        path: 'spec.syscalls[0].errnoRet',
        reason: 'ErrnoRetOutOfRange',
        message: /^99999999999999999999 is out of range/,
      },
    ],
  });
});

t.test('item 16: a conflict warning names the rule that is taken', async (t) => {
  const check = validateProfile(
    profile({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [
        { names: ['mkdir'], action: 'SCMP_ACT_ALLOW' },
        { names: ['mkdir'], action: 'SCMP_ACT_ERRNO' },
        { names: ['mkdir'], action: 'SCMP_ACT_KILL' },
      ],
    }),
    SYSCALL_CATALOG,
  );
  t.match(check, {
    ok: true,
    warnings: [
      {
        path: 'spec.syscalls[1].names[0]',
        message: /that rule has the default action and runc skips it, so SCMP_ACT_ERRNO here applies/,
      },
      {
        path: 'spec.syscalls[2].names[0]',
        message: /at spec\.syscalls\[1\]\.names\[0\].*libseccomp keeps the first \(SCMP_ACT_ERRNO\)/,
      },
    ],
  });
});
