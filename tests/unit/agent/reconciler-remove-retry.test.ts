// A profile whose file could not be removed (an unlink that failed: EBUSY, EIO, a read-only remount
// that was lifted) is removed by the next apply, even though that apply's previous plan no longer
// names it: the reconciler used to remove only what the previous plan had, so after one failed
// removal the file stayed on the node for good (issue 10 item 1). The real writer on a real temp
// directory; only unlink fails, through the WriterFs seam.
import * as fs from 'node:fs/promises';
import { pino } from 'pino';
import t from 'tap';
import type { Desired } from '../../../shared/profile/desired.js';
import { realFs, type WriterFs } from '../../../agent/src/profiles/fs.js';
import { Reconciler } from '../../../agent/src/profiles/reconciler.js';
import { ProfileWriter, profilePath } from '../../../agent/src/profiles/writer.js';

const install = (name: string, content: string): Desired => ({
  kind: 'install',
  namespace: 'ns',
  name,
  content,
  bases: [],
  warnings: [],
});

const exists = (p: string): Promise<boolean> =>
  fs.access(p).then(
    () => true,
    () => false,
  );

t.test('a removal that failed is tried again by the next apply', async (t) => {
  const root = t.testdir({});
  let failUnlinks = 0;
  const flaky: WriterFs = {
    ...realFs,
    unlink: async (p) => {
      if (failUnlinks > 0) {
        failUnlinks--;
        throw Object.assign(new Error(`EBUSY: resource busy or locked, unlink '${String(p)}'`), { code: 'EBUSY' });
      }
      await realFs.unlink(p);
    },
  };
  const log = pino({ level: 'silent' });
  const writer = new ProfileWriter(
    flaky,
    { kubeletRoot: root, uid: 65535, gid: 65535, chownAllowed: process.getuid?.() === 0 },
    log,
  );
  const reconciler = new Reconciler(writer, root, log);
  const p = install('p', '{"defaultAction":"SCMP_ACT_LOG"}');
  const q = install('q', '{"defaultAction":"SCMP_ACT_ERRNO"}');
  await reconciler.apply(
    new Map([
      ['ns/p', p],
      ['ns/q', q],
    ]),
  );
  const file = profilePath(root, 'ns', 'p');
  t.ok(await exists(file), 'installed');

  failUnlinks = 1;
  const first = await reconciler.apply(new Map([['ns/q', q]]));
  t.same(first.failed, ['ns/p'], 'the removal failed and says so');
  t.ok(await exists(file), 'the file is still there');

  const second = await reconciler.apply(new Map([['ns/q', q]]));
  t.same(second.removed, ['ns/p'], 'the next apply (same plan) removes it');
  t.notOk(await exists(file), 'the file is gone');
  t.same(
    reconciler.reports().map((r) => r.name),
    ['q'],
    'only the planned profile is reported',
  );

  const third = await reconciler.apply(new Map([['ns/q', q]]));
  t.same([third.removed, third.failed], [[], []], 'and nothing more to do after that');
});
