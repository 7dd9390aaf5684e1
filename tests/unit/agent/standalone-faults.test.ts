// The standalone agent under faults and awkward inputs, as a user meets them: the real CLI on real
// directories (a read-only mount, a ConfigMap-style tree, a slow first sync, files that break).
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import {
  aliasBomb,
  cli,
  profileYaml,
  readOrUndef,
  requireBuiltAgent,
  startAgent,
  until,
} from '../../helpers/standalone-agent.js';
import { mustExec } from '../../testbed/exec.js';

await requireBuiltAgent();

interface ProfilesBody {
  items: { namespace: string; name: string; state: string; message?: string; sha256?: string }[];
  problems: { file: string; document: number; message: string }[];
}

t.test(
  'item 15: the endpoint listens before the first sync; /readyz answers 503 with the reason until it is done',
  async (t) => {
    // 1,000 profiles: the first sync takes seconds, long enough to ask while it runs.
    const many = Array.from({ length: 1000 }, (_, i) => profileYaml('t1', `p-${i}`, '  defaultAction: SCMP_ACT_LOG\n'));
    const dir = t.testdir({ profiles: { 'many.yaml': many.join('---\n') }, kubelet: {} });
    const agent = await startAgent(t, path.join(dir, 'profiles'), path.join(dir, 'kubelet'), [
      '--recheck-interval',
      '30',
    ]);
    const health = await fetch(`${agent.base}/healthz`);
    const ready = await fetch(`${agent.base}/readyz`);
    const syncedBefore = agent.logs().some((l) => l['msg'] === 'first sync done');
    t.notOk(syncedBefore, 'the first sync was still running when the endpoint answered');
    t.equal(health.status, 200, '/healthz answers 200 at once');
    t.equal(ready.status, 503, '/readyz answers 503 during the first sync');
    t.match(await ready.json(), { status: 'not ready', reason: /first sync .* not done/ }, '... with the reason');
    const done = await until(
      '/readyz 200',
      async () => ((await fetch(`${agent.base}/readyz`)).status === 200 ? true : undefined),
      120_000,
    );
    t.ok(done.value, `/readyz answers 200 once the first sync is done (${done.ms.toFixed(0)} ms later)`);
    const body = (await (await fetch(`${agent.base}/v1/profiles`)).json()) as ProfilesBody;
    t.equal(body.items.filter((i) => i.state === 'Installed').length, 1000, 'all 1,000 installed');
    await agent.stop();
  },
);

/**
 * A new directory outside the test's testdir (tap removes that before later teardowns run) that
 * becomes a read-only bind mount of itself on `ro()`; unmounted and removed when the test ends.
 */
async function mountPoint(t: Test): Promise<{ dir: string; ro: () => Promise<void> }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'seccomp-agent-ro-'));
  let mounted = false;
  t.teardown(async () => {
    if (mounted) await mustExec('umount', [dir]);
    await fs.rm(dir, { recursive: true, force: true });
  });
  const ro = async (): Promise<void> => {
    await mustExec('mount', ['--bind', dir, dir]);
    mounted = true;
    await mustExec('mount', ['-o', 'remount,ro,bind', dir]);
    await t.rejects(fs.writeFile(path.join(dir, 'probe'), 'x'), { code: 'EROFS' }, `${dir} is read-only`);
  };
  return { dir, ro };
}

const fetchProfiles = async (base: string): Promise<ProfilesBody> =>
  (await (await fetch(`${base}/v1/profiles`)).json()) as ProfilesBody;

t.test('item 5: a read-only kubelet root: Error per profile with the real cause, nothing else fails', async (t) => {
  const dir = t.testdir({
    profiles: {
      'p.yaml': [
        profileYaml('t1', 'a', '  defaultAction: SCMP_ACT_LOG\n'),
        profileYaml('t1', 'b', '  defaultAction: SCMP_ACT_ERRNO\n'),
      ].join('---\n'),
    },
  });
  const profiles = path.join(dir, 'profiles');
  const kubelet = await mountPoint(t);
  const root = kubelet.dir;
  const first = await cli(['--profiles-dir', profiles, '--kubelet-root', root, '--once', '--log-level', 'silent']);
  t.equal(first.code, 0, `installed while writable (${first.stderr})`);
  await kubelet.ro();

  await t.test('--once with every file already correct: exit 0, nothing written', async (t) => {
    const r = await cli(['--profiles-dir', profiles, '--kubelet-root', root, '--once', '--log-level', 'silent']);
    t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr})`);
    t.match(r.stdout, /2 profile\(s\) installed .* 0 failed/, 'both Installed');
    t.notMatch(r.stderr, /EROFS|rmdir/, 'no error about the read-only root');
  });

  await t.test(
    '--once with a profile to change: exit 1 naming EROFS and the path; the other stays Installed',
    async (t) => {
      await fs.writeFile(
        path.join(profiles, 'p.yaml'),
        [
          profileYaml('t1', 'a', '  defaultAction: SCMP_ACT_KILL\n'),
          profileYaml('t1', 'b', '  defaultAction: SCMP_ACT_ERRNO\n'),
        ].join('---\n'),
      );
      const r = await cli(['--profiles-dir', profiles, '--kubelet-root', root, '--once', '--log-level', 'silent']);
      t.equal(r.code, 1, 'exit 1');
      t.match(
        r.stdout,
        /^Error +\S+\/t1\/a\.json +\(.*EROFS: read-only file system at \S+\/operator\/t1/m,
        'a: Error, EROFS at its directory',
      );
      t.match(r.stdout, /^Installed +\S+\/t1\/b\.json$/m, 'b: Installed');
      t.notMatch(r.stdout + r.stderr, /ENOENT|rmdir/, 'no misleading cause');
      t.equal(
        (await readOrUndef(path.join(root, 'seccomp', 'operator', 't1', 'a.json')))?.toString(),
        '{"defaultAction":"SCMP_ACT_LOG"}',
        'the old file stays',
      );
    },
  );

  await t.test('a stray that cannot be swept: exit 1 naming it and EROFS, the profiles still Installed', async (t) => {
    const m = await mountPoint(t);
    const args = ['--profiles-dir', profiles, '--kubelet-root', m.dir, '--once', '--log-level', 'silent'];
    t.equal((await cli(args)).code, 0, 'installed while writable');
    await fs.writeFile(path.join(m.dir, 'seccomp', 'operator', 't1', 'a.json.999'), '{"defaultA');
    await m.ro();
    const r = await cli(args);
    t.equal(r.code, 1, 'exit 1');
    t.match(r.stdout, /2 profile\(s\) installed .* 0 failed/, 'both profiles Installed (their files are right)');
    t.match(r.stdout, /1 stray file\(s\) under the operator directory could not be removed/, 'the summary says so');
    t.match(
      r.stderr,
      /could not remove \S+a\.json\.999: EROFS: read-only file system at \S+a\.json\.999 \(unlink\)/,
      'names it and the cause',
    );
  });

  await t.test('follow mode keeps running and shows the truth in /v1/profiles', async (t) => {
    const agent = await startAgent(t, profiles, root);
    await until('/readyz 200', async () => ((await fetch(`${agent.base}/readyz`)).status === 200 ? true : undefined));
    const body = await fetchProfiles(agent.base);
    t.match(body.items, [
      { name: 'a', state: 'Error', message: /EROFS: read-only file system at/ },
      { name: 'b', state: 'Installed' },
    ]);
    await new Promise((r) => setTimeout(r, 1500)); // a drift re-check round (--recheck-interval 1)
    t.equal(agent.exited(), undefined, 'still running after a re-check round');
    t.equal((await fetch(`${agent.base}/healthz`)).status, 200, 'healthy');
    await agent.stop();
  });

  await t.test('an empty read-only root: the error says EROFS at the directory it could not make', async (t) => {
    const mount = await mountPoint(t);
    const empty = mount.dir;
    await mount.ro();
    const r = await cli(['--profiles-dir', profiles, '--kubelet-root', empty, '--once', '--log-level', 'silent']);
    t.equal(r.code, 1, 'exit 1');
    t.match(
      r.stdout,
      /EROFS: read-only file system at \S+\/seccomp-agent-ro-\w+\/seccomp \(mkdir\)/,
      'EROFS, at <root>/seccomp',
    );
    t.notMatch(r.stdout + r.stderr, /ENOENT/, 'not ENOENT');
  });
});

t.test('item 12: /v1/profiles shows the truth on disk and the source file problems', async (t) => {
  const dir = t.testdir({
    profiles: {
      'a.yaml': profileYaml('t1', 'a', '  defaultAction: SCMP_ACT_LOG\n'),
      'dup.yaml': profileYaml('t1', 'a', '  defaultAction: SCMP_ACT_ERRNO\n'),
      'bomb.yaml': aliasBomb(),
    },
    kubelet: {},
  });
  const root = path.join(dir, 'kubelet');
  const op = path.join(root, 'seccomp', 'operator');
  const aFile = path.join(op, 't1', 'a.json');
  const agent = await startAgent(t, path.join(dir, 'profiles'), root);
  await until('/readyz 200', async () => ((await fetch(`${agent.base}/readyz`)).status === 200 ? true : undefined));

  await t.test('file problems: an alias bomb and a profile defined twice', async (t) => {
    const body = await fetchProfiles(agent.base);
    t.match(body.items, [{ name: 'a', state: 'Installed' }], 'the first definition is installed');
    const bomb = body.problems.filter((p) => p.file.endsWith('bomb.yaml'));
    t.equal(bomb.length, 1, 'the alias bomb is one problem');
    t.match(bomb[0], { document: 1, message: /alias bomb/ });
    t.match(
      body.problems.find((p) => p.file.endsWith('dup.yaml')),
      { document: 1, message: /t1\/a is already defined in \S*a\.yaml document 1/ },
      'the second definition is a problem of dup.yaml document 1',
    );
  });

  await t.test(
    'a drift repair that fails (operator/ replaced by a symlink) is Error, and back when repaired',
    async (t) => {
      const away = path.join(root, 'seccomp', 'elsewhere');
      await fs.mkdir(path.join(away, 't1'), { recursive: true });
      await fs.writeFile(path.join(away, 't1', 'a.json'), '{"defaultAction":"SCMP_ACT_ALLOW"}');
      const link = path.join(root, 'seccomp', 'operator.link');
      await fs.symlink(away, link);
      // Two renames in a row; the agent may re-create operator/ in between, so move that away too.
      for (let attempt = 0; ; attempt++) {
        await fs.rename(op, path.join(root, 'seccomp', `operator.old-${attempt}`)).catch(() => undefined);
        if (
          await fs.rename(link, op).then(
            () => true,
            () => attempt > 20,
          )
        )
          break;
      }
      t.ok((await fs.lstat(op)).isSymbolicLink(), 'operator/ is a symlink now');
      const err = await until('a to be Error', async () => {
        const a = (await fetchProfiles(agent.base)).items.find((i) => i.name === 'a');
        return a?.state === 'Error' ? a : undefined;
      });
      t.match(err.value.message, /could not be restored: .*symlink is refused/, 'Error, with the cause');
      await fs.unlink(op);
      const back = await until('a to be Installed again', async () => {
        const a = (await fetchProfiles(agent.base)).items.find((i) => i.name === 'a');
        return a?.state === 'Installed' ? a : undefined;
      });
      t.notOk(back.value.message, 'no message once repaired');
      t.equal((await readOrUndef(aFile))?.toString(), '{"defaultAction":"SCMP_ACT_LOG"}', 'the file is back');
    },
  );
  await agent.stop();
});

/**
 * Writes `files` into `dir` the way the kubelet's AtomicWriter updates a mounted ConfigMap: a new
 * timestamped `..<stamp>` directory, `..data_tmp -> ..<stamp>` renamed over `..data`, a link
 * `<key> -> ..data/<key>` per key (links of keys that went are removed), the old directory removed.
 */
async function writeConfigMap(dir: string, files: Record<string, string>, stamp: string): Promise<void> {
  const old = await fs.readlink(path.join(dir, '..data')).catch(() => undefined);
  const ts = `..${stamp}`;
  await fs.mkdir(path.join(dir, ts));
  for (const [key, text] of Object.entries(files)) await fs.writeFile(path.join(dir, ts, key), text);
  await fs.symlink(ts, path.join(dir, '..data_tmp'));
  await fs.rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  for (const key of Object.keys(files)) {
    await fs.symlink(path.join('..data', key), path.join(dir, key)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
  for (const entry of await fs.readdir(dir)) {
    if (!entry.startsWith('.') && !(entry in files) && (await fs.lstat(path.join(dir, entry))).isSymbolicLink()) {
      const target = await fs.readlink(path.join(dir, entry));
      if (target.startsWith('..data')) await fs.unlink(path.join(dir, entry));
    }
  }
  if (old !== undefined) await fs.rm(path.join(dir, old), { recursive: true });
}

t.test(
  'item 13: a ConfigMap-style profiles directory (..data and symlinked files, as the kubelet mounts it)',
  async (t) => {
    const dir = t.testdir({
      cm: {},
      kubelet: {},
      'outside.yaml': profileYaml('t1', 'evil', '  defaultAction: SCMP_ACT_ALLOW\n'),
    });
    const cm = path.join(dir, 'cm');
    const root = path.join(dir, 'kubelet');
    const op = path.join(root, 'seccomp', 'operator', 't1');
    await writeConfigMap(
      cm,
      {
        'a.yaml': profileYaml('t1', 'a', '  defaultAction: SCMP_ACT_LOG\n'),
        'b.yaml': profileYaml('t1', 'b', '  defaultAction: SCMP_ACT_ERRNO\n'),
      },
      '2026_12_01_23_00_00.000000001',
    );
    const once = () => cli(['--profiles-dir', cm, '--kubelet-root', root, '--once', '--log-level', 'silent']);

    await t.test('--once installs every key once', async (t) => {
      const r = await once();
      t.equal(r.code, 0, `exit 0 (${r.stderr})`);
      t.match(
        r.stdout,
        /2 profile\(s\) installed .* 0 failed, 0 problem\(s\)/,
        'two profiles, not four (..data is not read itself)',
      );
      t.same((await fs.readdir(op)).sort(), ['a.json', 'b.json']);
    });

    await t.test(
      'a link that leaves the directory is refused with a problem naming the link and its target',
      async (t) => {
        await fs.symlink(path.join(dir, 'outside.yaml'), path.join(cm, 'evil.yaml'));
        const r = await once();
        t.equal(r.code, 1, 'exit 1');
        t.match(r.stdout, /2 profile\(s\) installed .* 1 problem\(s\)/, 'the problem is counted in the summary');
        t.match(
          r.stderr,
          /evil\.yaml: a symlink to \S+outside\.yaml, outside \S+cm: refused/,
          'names the link and the target',
        );
        t.notOk(await readOrUndef(path.join(op, 'evil.json')), 'not installed');
      },
    );

    await t.test('follow mode picks up a ConfigMap update (the kubelet swaps ..data)', async (t) => {
      const agent = await startAgent(t, cm, root);
      await until('/readyz 200', async () => ((await fetch(`${agent.base}/readyz`)).status === 200 ? true : undefined));
      const body = await fetchProfiles(agent.base);
      t.match(
        body.problems,
        [{ file: /evil\.yaml$/, document: 0, message: /outside/ }],
        'the refused link is in /v1/profiles',
      );
      await writeConfigMap(
        cm,
        {
          'a.yaml': profileYaml('t1', 'a', '  defaultAction: SCMP_ACT_KILL\n'),
          'c.yaml': profileYaml('t1', 'c', '  defaultAction: SCMP_ACT_LOG\n'),
        },
        '2026_12_01_23_05_00.000000002',
      );
      const got = await until('the update to be applied', async () => {
        const a = (await readOrUndef(path.join(op, 'a.json')))?.toString();
        const names = (await fs.readdir(op)).sort().join(',');
        return a === '{"defaultAction":"SCMP_ACT_KILL"}' && names === 'a.json,c.json' ? names : undefined;
      });
      t.equal(
        got.value,
        'a.json,c.json',
        `a changed, c added, b (gone from the ConfigMap) removed (${got.ms.toFixed(0)} ms)`,
      );
      await agent.stop();
    });
  },
);
