// The standalone agent under faults and awkward inputs, as a user meets them: the real CLI on real
// directories (a read-only mount, a ConfigMap-style tree, a slow first sync, files that break).
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { cli, profileYaml, readOrUndef, requireBuiltAgent, startAgent, until } from '../../helpers/standalone-agent.js';
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
