// The in-memory WriterFs (tests/helpers/memory-fs.ts) that the scale simulation's hollow agents
// write to: the real reconciler and writer, given the same plans on it and on a real temp directory,
// leave the same files and answer the same, and its errors have the codes the writer branches on.
import { readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import type { Desired } from '../../../shared/profile/desired.js';
import { realFs, type WriterFs } from '../../../agent/src/profiles/fs.js';
import { Reconciler } from '../../../agent/src/profiles/reconciler.js';
import { ProfileWriter } from '../../../agent/src/profiles/writer.js';
import { memoryFs } from '../../helpers/memory-fs.js';

const install = (namespace: string, name: string, content: string): [string, Desired] => [
  `${namespace}/${name}`,
  { kind: 'install', namespace, name, content, bases: [], warnings: [] },
];

async function realTree(root: string, dir = root, out = new Map<string, string>()): Promise<Map<string, string>> {
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, d.name);
    if (d.isDirectory()) await realTree(root, p, out);
    else out.set(`/${relative(root, p)}`, await readFile(p, 'utf8'));
  }
  return out;
}

t.test('the reconciler leaves the same files on memory as on disk', async (t) => {
  const disk = t.testdir({});
  const mem = memoryFs({ uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
  const log = pino({ level: 'silent' });
  const run = (fs: WriterFs, root: string): Reconciler =>
    new Reconciler(new ProfileWriter(fs, { kubeletRoot: root, uid: 0, gid: 0, chownAllowed: false }, log), root, log);
  const onDisk = run(realFs, disk);
  const inMem = run(mem, '/');
  const plans: Map<string, Desired>[] = [
    new Map([install('a', 'p', '{"x":1}'), install('a', 'q', '{"x":2}'), install('b', 'r', '{}')]),
    new Map([install('a', 'p', '{"x":3}'), install('b', 'r', '{}')]),
    new Map([install('a', 'p', '{"x":3}')]),
    new Map(),
  ];
  for (const plan of plans) {
    const d = await onDisk.apply(plan);
    const m = await inMem.apply(plan);
    t.same(m, d, 'same result');
    t.same(mem.files(), await realTree(disk), 'same files');
  }
  t.same(mem.files().size, 0);
});

t.test('errors carry the codes and message shape of node:fs', async (t) => {
  const mem = memoryFs();
  await mem.mkdir('/a', { mode: 0o755 });
  await mem.writeFileAtomic('/a/f', 'x', { mode: 0o644, fsync: true });
  await t.rejects(mem.lstat('/nope'), { code: 'ENOENT', message: "ENOENT: no such file or directory, lstat '/nope'" });
  await t.rejects(mem.mkdir('/a', { mode: 0o755 }), { code: 'EEXIST' });
  await t.rejects(mem.mkdir('/x/y', { mode: 0o755 }), { code: 'ENOENT' });
  await t.rejects(mem.rmdir('/a'), { code: 'ENOTEMPTY' });
  await t.rejects(mem.lstat('/a/f/g'), { code: 'ENOTDIR' });
  await t.rejects(mem.unlink('/a'), { code: 'EISDIR' });
  t.equal(await mem.mkdir('/m/n/o', { recursive: true, mode: 0o700 }), '/m');
  t.equal((await mem.lstat('/a/f')).mode & 0o7777, 0o644);
  t.ok((await mem.lstat('/m/n')).isDirectory());
  t.equal((await mem.readFile('/a/f')).toString(), 'x');
});
