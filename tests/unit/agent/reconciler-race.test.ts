// A drift repair and a plan change must not interleave: a repair that is half-way through rewriting a
// file when its profile is removed would otherwise put the file back after the removal, and since the
// profile is then no longer managed, the stray file would stay until the next start. The real writer
// on a real temp directory; only writeFileAtomic is held at a gate (through the WriterFs seam) so the
// interleaving is certain rather than timing-dependent.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
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

/** realFs whose writeFileAtomic waits at a gate while `held` is true. */
function gatedFs(): { fs: WriterFs; hold: () => Promise<void>; release: () => void } {
  let held = false;
  let entered: () => void = () => {};
  let open: () => void = () => {};
  let gate = Promise.resolve();
  return {
    fs: {
      ...realFs,
      writeFileAtomic: async (p, data, options) => {
        if (held) {
          entered();
          await gate;
        }
        await realFs.writeFileAtomic(p, data, options);
      },
    },
    hold: () => {
      held = true;
      gate = new Promise((r) => (open = r));
      return new Promise((r) => (entered = r));
    },
    release: () => {
      held = false;
      open();
    },
  };
}

t.test('a repair in flight when the profile is removed does not bring the file back', async (t) => {
  const root = t.testdir({});
  const g = gatedFs();
  const log = pino({ level: 'silent' });
  const writer = new ProfileWriter(
    g.fs,
    { kubeletRoot: root, uid: 65535, gid: 65535, chownAllowed: process.getuid?.() === 0 },
    log,
  );
  const reconciler = new Reconciler(writer, root, log);
  const file = profilePath(root, 'ns', 'p');
  const q = install('q', '{"defaultAction":"SCMP_ACT_ERRNO"}'); // keeps the namespace directory in use
  await reconciler.apply(
    new Map([
      ['ns/p', install('p', '{"defaultAction":"SCMP_ACT_LOG"}')],
      ['ns/q', q],
    ]),
  );
  t.equal(await fs.readFile(file, 'utf8'), '{"defaultAction":"SCMP_ACT_LOG"}', 'installed');

  // Someone edits the file; the drift guard's repair starts and reaches the write.
  await fs.writeFile(file, 'tampered');
  const inWrite = g.hold();
  const repair = reconciler.repair('ns/p');
  await inWrite;
  // Meanwhile the profile is removed from the source.
  const removal = reconciler.apply(new Map([['ns/q', q]]));
  // Let the removal run as far as it can before the repair's write goes through.
  await new Promise((r) => setTimeout(r, 50));
  g.release();
  const [repaired, removed] = await Promise.allSettled([repair, removal]);
  t.equal(repaired.status, 'fulfilled', 'the repair did not fail');
  t.same(removed.status === 'fulfilled' ? removed.value.removed : removed.reason, ['ns/p'], 'the removal removed ns/p');
  t.equal(await fs.readFile(file, 'utf8').catch(() => undefined), undefined, 'the removed profile has no file');
  t.same(
    await fs.readdir(path.join(root, 'seccomp', 'operator', 'ns')),
    ['q.json'],
    'only the remaining profile is there',
  );
});
