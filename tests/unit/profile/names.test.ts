import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { MAX_PROFILE_NAME_LENGTH } from '../../../shared/profile/names.js';
import { validateProfile } from '../../../shared/profile/validate.js';
import { SYSCALL_CATALOG } from '../../../shared/syscalls/index.js';
import { realFs } from '../../../agent/src/profiles/fs.js';
import { ProfileWriter } from '../../../agent/src/profiles/writer.js';

const profileNamed = (name: string): Record<string, unknown> => ({
  apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
  kind: 'SeccompProfile',
  metadata: { name, namespace: 't' },
  spec: { defaultAction: 'SCMP_ACT_LOG' },
});

/** A valid DNS-1123 subdomain of exactly `n` characters. */
const nameOf = (n: number): string => `a${'.b'.repeat(Math.floor((n - 1) / 2))}${n % 2 === 0 ? 'c' : ''}`;

t.test(
  'item 9: the longest name accepted is written by the real writer; one more is refused with the limit',
  async (t) => {
    t.equal(MAX_PROFILE_NAME_LENGTH, 239, '255 bytes minus ".json" and write-file-atomic\'s ".<uint32>" suffix');
    const root = t.testdir({});
    const writer = new ProfileWriter(
      realFs,
      { kubeletRoot: root, uid: 0, gid: 0, chownAllowed: false },
      pino({ level: 'silent' }),
    );

    const longest = nameOf(MAX_PROFILE_NAME_LENGTH);
    t.equal(longest.length, MAX_PROFILE_NAME_LENGTH);
    const ok = validateProfile(profileNamed(longest), SYSCALL_CATALOG);
    t.ok(ok.ok, `a ${longest.length}-character name is valid`, ok.ok ? {} : { errors: ok.errors });
    // write-file-atomic's suffix has 1 to 10 digits; a few writes cover long and short ones.
    for (let i = 0; i < 20; i++) {
      t.equal(await writer.install('t', longest, `{"defaultAction":"SCMP_ACT_LOG","n":${i}}`), 'written');
    }
    t.equal(
      await fs.readFile(join(root, 'seccomp', 'operator', 't', `${longest}.json`), 'utf8'),
      '{"defaultAction":"SCMP_ACT_LOG","n":19}',
    );

    const over = nameOf(MAX_PROFILE_NAME_LENGTH + 1);
    const refused = validateProfile(profileNamed(over), SYSCALL_CATALOG);
    t.equal(refused.ok, false, `a ${over.length}-character name is refused up front`);
    if (!refused.ok) {
      t.match(refused.errors, [
        {
          path: 'metadata.name',
          reason: 'NameTooLong',
          message:
            'is 240 characters; profile names can be at most 239 characters, because the node file <name>.json and its temporary file <name>.json.<up to 10 digits> must fit the 255-byte file name limit',
        },
      ]);
    }
    // What happens without the check: a 250-character name (valid for Kubernetes) cannot be written.
    await t.rejects(writer.install('t', nameOf(250), '{}'), /ENAMETOOLONG|name too long/);
    // Kubernetes' own limit still applies beyond it.
    const k8s = validateProfile(profileNamed(nameOf(254)), SYSCALL_CATALOG);
    t.match(!k8s.ok && k8s.errors, [{ path: 'metadata.name', message: /at most 253 characters/ }]);
  },
);
