import t from 'tap';
import { computeDesired, type KnownProfile } from '../../../shared/profile/desired.js';
import { resolveSpec } from '../../../shared/profile/merge.js';
import type { SeccompProfileSpec } from '../../../shared/profile/schema.js';

const prof = (name: string, spec: SeccompProfileSpec, ns = 'n'): KnownProfile => ({
  ok: true,
  warnings: [],
  profile: {
    apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
    kind: 'SeccompProfile',
    metadata: { name, namespace: ns },
    spec,
  },
});

const base: SeccompProfileSpec = {
  defaultAction: 'SCMP_ACT_ERRNO',
  architectures: ['SCMP_ARCH_X86_64'],
  syscalls: [
    { names: ['read', 'write', 'ptrace'], action: 'SCMP_ACT_ALLOW' },
    { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }] },
  ],
  flags: ['SECCOMP_FILTER_FLAG_LOG'],
};

t.test('a child extends its base; the child wins for the same syscall and conditions', async (t) => {
  const plan = computeDesired([
    prof('base', base),
    prof('child', {
      defaultAction: 'SCMP_ACT_LOG',
      baseProfileName: 'base',
      syscalls: [
        { names: ['ptrace'], action: 'SCMP_ACT_ERRNO' },
        { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }] },
      ],
    }),
  ]);
  const child = plan.get('n/child');
  t.equal(child?.kind, 'install');
  t.equal(
    child?.kind === 'install' ? child.content : '',
    '{"defaultAction":"SCMP_ACT_LOG","architectures":["SCMP_ARCH_X86_64"],"syscalls":[' +
      '{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},' +
      '{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"valueTwo":0,"op":"SCMP_CMP_EQ"}]},' +
      '{"names":["ptrace"],"action":"SCMP_ACT_ERRNO"},' +
      '{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"valueTwo":0,"op":"SCMP_CMP_EQ"}]}],' +
      '"flags":["SECCOMP_FILTER_FLAG_LOG"]}',
  );
  t.same(child?.kind === 'install' ? child.bases : [], ['base']);
});

t.test('chains merge from the deepest base up', async (t) => {
  const lookup = new Map<string, SeccompProfileSpec>([
    ['a', { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read', 'mount'], action: 'SCMP_ACT_ALLOW' }] }],
    [
      'b',
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        baseProfileName: 'a',
        syscalls: [{ names: ['mount'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }],
      },
    ],
  ]);
  const r = resolveSpec(
    'n',
    'c',
    { defaultAction: 'SCMP_ACT_KILL', baseProfileName: 'b', syscalls: [{ names: ['mount'], action: 'SCMP_ACT_LOG' }] },
    (_ns, n) => lookup.get(n),
  );
  t.ok(r.ok);
  if (r.ok) {
    t.same(r.spec.syscalls, [
      { names: ['read'], action: 'SCMP_ACT_ALLOW' },
      { names: ['mount'], action: 'SCMP_ACT_LOG' },
    ]);
    t.same(r.bases, ['b', 'a']);
    t.equal(r.spec.baseProfileName, undefined, 'baseProfileName is not rendered');
  }
});

t.test('missing, cyclic, too deep and invalid bases are errors on the child', async (t) => {
  const missing = computeDesired([prof('c', { defaultAction: 'SCMP_ACT_LOG', baseProfileName: 'nope' })]).get('n/c');
  t.match(missing, { kind: 'error', message: /base profile "nope" was not found in namespace n/ });

  const otherNs = computeDesired([
    prof('base', base, 'other'),
    prof('c', { defaultAction: 'SCMP_ACT_LOG', baseProfileName: 'base' }),
  ]).get('n/c');
  t.match(
    otherNs,
    { kind: 'error', message: /not found in namespace n/ },
    'bases are looked up in the same namespace only',
  );

  const cyc = computeDesired([
    prof('x', { defaultAction: 'SCMP_ACT_LOG', baseProfileName: 'y' }),
    prof('y', { defaultAction: 'SCMP_ACT_LOG', baseProfileName: 'x' }),
  ]);
  t.match(cyc.get('n/x'), { kind: 'error', message: /cycle: x -> y -> x/ });
  t.match(cyc.get('n/y'), { kind: 'error', message: /cycle: y -> x -> y/ });

  const chain: KnownProfile[] = [];
  for (let i = 0; i < 12; i++)
    chain.push(prof(`p${i}`, { defaultAction: 'SCMP_ACT_LOG', ...(i < 11 ? { baseProfileName: `p${i + 1}` } : {}) }));
  const deep = computeDesired(chain);
  t.match(deep.get('n/p0'), { kind: 'error', message: /more than 8 base profiles/ });
  t.equal(deep.get('n/p5')?.kind, 'install', 'a chain of 6 is fine');

  const invalid = computeDesired([
    {
      ok: false,
      namespace: 'n',
      name: 'bad',
      errors: [{ severity: 'error', reason: 'InvalidValue', path: 'spec.defaultAction', message: 'x' }],
      warnings: [],
    },
    prof('c', { defaultAction: 'SCMP_ACT_LOG', baseProfileName: 'bad' }),
  ]);
  t.match(invalid.get('n/c'), { kind: 'error', message: /base profile "bad" is itself invalid/ });
});

t.test('disabled profiles are not installed but still serve as bases', async (t) => {
  const plan = computeDesired([
    prof('base', { ...base, disabled: true }),
    prof('c', { defaultAction: 'SCMP_ACT_LOG', baseProfileName: 'base' }),
  ]);
  t.equal(plan.get('n/base')?.kind, 'disabled');
  t.equal(plan.get('n/c')?.kind, 'install');
});
