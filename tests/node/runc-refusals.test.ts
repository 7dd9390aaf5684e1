// Item 16 on a real node: every profile rule of runc 1.1.5 + libseccomp 2.5.4 that our validator
// enforces beyond the CRD's enums, shown against the real runc. For each case: (a) the profile as
// the agent would render it is refused by runc (or loaded, doing what the warning says), and (b)
// the validator refuses it (or warns) naming the field and why. Near misses load in both.
import t from 'tap';
import { renderSpec } from '../../shared/profile/render.js';
import type { SeccompProfileSpec } from '../../shared/profile/schema.js';
import { validateProfile } from '../../shared/profile/validate.js';
import { LIBSECCOMP_UNKNOWN } from '../../shared/profile/runtime.js';
import { SYSCALL_CATALOG, knownSyscallNames } from '../../shared/syscalls/index.js';
import { COMMAND, RUNC_CASES } from '../fixtures/runc-cases.js';
import { exec } from '../testbed/exec.js';
import { RUNC_SPEC_CAPABILITIES, runContainer } from '../testbed/node.js';
import { ensureBusyboxRootfs } from '../testbed/rootfs.js';

const busybox = await ensureBusyboxRootfs();

for (const c of RUNC_CASES) {
  t.test(`item 16: ${c.title}`, async (t) => {
    const ran = await runContainer(t, {
      rootfs: busybox,
      args: COMMAND,
      profile: renderSpec(c.spec as unknown as SeccompProfileSpec),
      capabilities: RUNC_SPEC_CAPABILITIES,
      noNewPrivileges: true,
      timeoutMs: 20_000,
    });
    if ('refuses' in c.runc) {
      t.equal(ran.exitCode, 1, 'runc fails');
      t.equal(ran.stdout, '', 'the workload never ran');
      t.match(ran.stderr, c.runc.refuses, `runc says: ${c.runc.refuses}`);
    } else {
      t.equal(ran.exitCode, 0, `runc runs it (stderr: ${ran.stderr.trim()})`);
      t.equal(ran.stdout, c.runc.stdout, `mkdir: ${JSON.stringify(c.runc.stdout)}`);
      if (c.runc.stderr !== undefined) t.match(ran.stderr, c.runc.stderr);
    }
    const check = validateProfile(
      {
        apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
        kind: 'SeccompProfile',
        metadata: { name: 'case', namespace: 't' },
        spec: c.spec,
      },
      SYSCALL_CATALOG,
    );
    const findings = check.ok ? check.warnings : [...check.errors, ...check.warnings];
    if (c.finding === undefined) {
      t.same(findings, [], 'the validator accepts it');
      return;
    }
    t.equal(check.ok, c.finding.severity === 'warning', c.finding.severity === 'error' ? 'refused' : 'installed');
    t.match(findings, [c.finding], `${c.finding.severity} at ${c.finding.path}: ${c.finding.message.source}`);
  });
}

t.test('item 16: the names libseccomp 2.5.4 cannot resolve are exactly LIBSECCOMP_UNKNOWN', async (t) => {
  const unknown: string[] = [];
  for (const name of knownSyscallNames()) {
    const r = await exec('scmp_sys_resolver', ['-a', 'x86_64', name], { timeoutMs: 10_000 });
    t.equal(r.code, 0, `scmp_sys_resolver ${name}`);
    if (r.stdout.trim() === '-1') unknown.push(name);
  }
  t.same(unknown.sort(), [...LIBSECCOMP_UNKNOWN].sort(), `${unknown.length} names runc 1.1.5 would skip`);
});
