// The standalone agent as a user runs it: the real CLI (dist/agent/src/main.js) as a child process on
// real temp directories. --once writes the workshop's seven files byte-for-byte with the seed's modes
// and owner; a bad file is reported by file and document without stopping the others; bad flags exit 2.
// Follow mode applies adds, edits and removals of profile files, never loses a profile to a broken
// file, restores files edited or deleted by hand, sweeps strays under operator/ at start (and nothing
// outside it), and serves /healthz, /readyz and /v1/profiles.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import t from 'tap';
import { repoRoot as REPO_ROOT } from '../../helpers/shared.js';
import {
  cli,
  profileYaml,
  readOrUndef,
  requireBuiltAgent,
  sha256,
  startAgent,
  until,
} from '../../helpers/standalone-agent.js';

const SHARED = path.join(REPO_ROOT, '..', 'shared');
const OWNER = 65535;
const API = 'security-profiles-operator.x-k8s.io/v1beta1';

await requireBuiltAgent();

/**
 * The bytes the workshop shows for each of its seven files: the seed prints five with `cat`; the four
 * profiles from the reference operator's example file are in ../shared/real-profiles as .expected.json.
 * Where both exist they must agree.
 */
async function workshopExpectations(): Promise<Map<string, Buffer>> {
  const seedPath = path.join(SHARED, 'seed', 'workshop-security-profiles-operator.md');
  const seed = await fs.readFile(seedPath, 'utf8').catch(() => {
    throw new Error(`the workshop seed is missing at ${seedPath}: the shared material must sit beside the repository`);
  });
  const lines = seed.split('\n');
  const printed = (name: string): Buffer => {
    const at = lines.findIndex((l) => l.trim() === `cat /var/lib/kubelet/seccomp/operator/seccomp-test/${name}.json`);
    const json = lines.slice(at + 1).find((l) => l.startsWith('{'));
    if (at < 0 || json === undefined) throw new Error(`the seed does not print ${name}.json`);
    return Buffer.from(json.trimEnd());
  };
  const want = new Map<string, Buffer>();
  for (const name of [
    'complainer',
    'profile-block-all',
    'profile-complain-block-high-risk',
    'confine-nginx-explicit-deny',
    'confine-nginx-explicit-allow',
  ]) {
    want.set(name, printed(name));
  }
  for (const name of [
    'profile-allow-unsafe',
    'profile-block-all',
    'profile-complain-block-high-risk',
    'profile-complain-unsafe',
  ]) {
    const file = path.join(SHARED, 'real-profiles', `${name}.expected.json`);
    const bytes = await fs.readFile(file).catch(() => {
      throw new Error(`${file} is missing: the shared material must sit beside the repository`);
    });
    const seen = want.get(name);
    if (seen !== undefined && !seen.equals(bytes)) throw new Error(`the seed and ${file} disagree about ${name}.json`);
    want.set(name, bytes);
  }
  return want;
}

t.test('--once on profiles/ writes the seven workshop files byte-for-byte, 0644/0744, owned by 65535', async (t) => {
  const want = await workshopExpectations();
  t.equal(want.size, 7, 'seven expected files');
  t.equal(want.get('complainer')?.length, 32, 'complainer.json is 32 bytes in the seed');
  t.equal(want.get('profile-block-all')?.length, 34, 'profile-block-all.json is 34 bytes in the seed');
  t.equal(
    want.get('profile-complain-block-high-risk')?.length,
    813,
    'profile-complain-block-high-risk.json is 813 bytes',
  );
  const root = t.testdir({});
  const r = await cli(['--profiles-dir', 'profiles', '--kubelet-root', root, '--once']);
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(0, 400)})`);
  t.match(r.stdout, /7 profile\(s\) installed/, 'says what it installed');
  t.equal(process.getuid?.(), 0, 'the test runs as root, so ownership must be 65535:65535');
  const operator = path.join(root, 'seccomp', 'operator');
  const dir = path.join(operator, 'seccomp-test');
  t.same((await fs.readdir(dir)).sort(), [...want.keys()].map((n) => `${n}.json`).sort(), 'exactly the seven files');
  for (const [name, bytes] of want) {
    const file = path.join(dir, `${name}.json`);
    const got = await readOrUndef(file);
    t.ok(
      got !== undefined && got.equals(bytes),
      `${name}.json is byte-for-byte the workshop's (${bytes.length} bytes)`,
      {
        got: got?.toString(),
        want: bytes.toString(),
      },
    );
    const st = await fs.stat(file);
    t.equal((st.mode & 0o7777).toString(8), '644', `${name}.json mode 0644 (-rw-r--r--)`);
    t.same([st.uid, st.gid], [OWNER, OWNER], `${name}.json owned by 65535:65535`);
  }
  for (const d of [operator, dir]) {
    const st = await fs.stat(d);
    t.equal((st.mode & 0o7777).toString(8), '744', `${path.relative(root, d)} mode 0744 (drwxr--r--)`);
    t.same([st.uid, st.gid], [OWNER, OWNER], `${path.relative(root, d)} owned by 65535:65535`);
  }
});

t.test('every flag has an environment twin: the same --once run from the environment', async (t) => {
  const root = t.testdir({});
  const r = await cli([], {
    SECCOMP_AGENT_PROFILES_DIR: 'profiles',
    SECCOMP_AGENT_KUBELET_ROOT: root,
    SECCOMP_AGENT_ONCE: 'true',
    SECCOMP_AGENT_LOG_LEVEL: 'silent',
  });
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(0, 400)})`);
  t.equal(r.stderr, '', 'log level silent from the environment: nothing on stderr');
  t.equal((await fs.readdir(path.join(root, 'seccomp', 'operator', 'seccomp-test'))).length, 7, 'seven files');
});

t.test('a bad file among good ones: reported by file and document, exit 1, the others written', async (t) => {
  const dir = t.testdir({
    profiles: {
      'good.yaml': [
        profileYaml('t1', 'good-a', '  defaultAction: SCMP_ACT_LOG\n'),
        'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: t1\n',
        profileYaml('t1', 'good-b', '  defaultAction: SCMP_ACT_ERRNO\n'),
      ].join('---\n'),
      'mixed.yaml': [
        profileYaml('t1', 'fine', '  defaultAction: SCMP_ACT_ALLOW\n'),
        profileYaml('t1', 'broken', '  defaultAction: SCMP_ACT_NOPE\n'),
      ].join('---\n'),
      'garbage.yaml': 'key: [unclosed\n  - x: :\n',
      nested: {
        'more.json': JSON.stringify({
          apiVersion: API,
          kind: 'SeccompProfile',
          metadata: { name: 'from-json', namespace: 't2' },
          spec: { defaultAction: 'SCMP_ACT_LOG' },
        }),
      },
    },
    kubelet: {},
  });
  const root = path.join(dir, 'kubelet');
  const r = await cli([
    '--profiles-dir',
    path.join(dir, 'profiles'),
    '--kubelet-root',
    root,
    '--once',
    '--log-level',
    'silent',
  ]);
  t.equal(r.code, 1, 'exit 1');
  t.match(
    r.stderr,
    /mixed\.yaml document 2: .*t1\/broken.*spec\.defaultAction.*SCMP_ACT_NOPE/,
    'the invalid document is named by file and document number, with the field',
  );
  t.match(r.stderr, /garbage\.yaml document 1: not valid YAML/, 'the unreadable file is named');
  t.notMatch(r.stderr, /good\.yaml|more\.json/, 'the good files are not blamed');
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  const op = path.join(root, 'seccomp', 'operator');
  t.equal(
    (await readOrUndef(path.join(op, 't1', 'good-a.json')))?.toString(),
    '{"defaultAction":"SCMP_ACT_LOG"}',
    'good-a written',
  );
  t.equal(
    (await readOrUndef(path.join(op, 't1', 'good-b.json')))?.toString(),
    '{"defaultAction":"SCMP_ACT_ERRNO"}',
    'good-b (after a Namespace document) written',
  );
  t.equal(
    (await readOrUndef(path.join(op, 't1', 'fine.json')))?.toString(),
    '{"defaultAction":"SCMP_ACT_ALLOW"}',
    'the good document of the bad file written',
  );
  t.equal(
    (await readOrUndef(path.join(op, 't2', 'from-json.json')))?.toString(),
    '{"defaultAction":"SCMP_ACT_LOG"}',
    'a JSON file in a subdirectory written',
  );
  t.equal(await readOrUndef(path.join(op, 't1', 'broken.json')), undefined, 'the invalid profile is not written');
});

t.test('bad flags exit 2 with a usage message; --help exits 0', async (t) => {
  const cases: [string, string[], Record<string, string>][] = [
    ['an unknown flag', ['--profiles-dir', 'profiles', '--bogus'], {}],
    ['a positional argument', ['--profiles-dir', 'profiles', 'extra'], {}],
    ['a malformed --listen', ['--profiles-dir', 'profiles', '--listen', 'nowhere'], {}],
    ['a --listen port out of range', ['--profiles-dir', 'profiles', '--listen', '127.0.0.1:70000'], {}],
    ['an unknown --log-level', ['--profiles-dir', 'profiles', '--log-level', 'loud'], {}],
    ['a string flag without its value', ['--profiles-dir'], {}],
    ['no --profiles-dir at all', ['--once'], {}],
    ['a bad boolean in an environment twin', ['--profiles-dir', 'profiles'], { SECCOMP_AGENT_ONCE: 'maybe' }],
    ['item 14: an empty $SECCOMP_AGENT_PROFILES_DIR', ['--once'], { SECCOMP_AGENT_PROFILES_DIR: '' }],
    ['item 14: an empty --kubelet-root', ['--profiles-dir', 'profiles', '--once', '--kubelet-root='], {}],
  ];
  for (const [what, args, env] of cases) {
    const r = await cli(args, env);
    t.equal(r.code, 2, `${what}: exit 2`);
    t.match(
      r.stderr,
      /^seccomp-agent: invalid command line: .+\n\nUsage: seccomp-agent/,
      `${what}: the reason, then the usage`,
    );
    t.notMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
  }
  const help = await cli(['--help']);
  t.equal(help.code, 0, '--help: exit 0');
  t.match(help.stdout, /^Usage: seccomp-agent/, '--help prints the usage on stdout');
  for (const flag of ['--profiles-dir', '--kubelet-root', '--node-name', '--listen', '--log-level', '--once']) {
    t.match(help.stdout, flag, `the usage names ${flag}`);
  }
  t.equal(help.stderr, '', '--help writes nothing on stderr');
});

t.test(
  'follow mode: adds, edits, removals, broken files, drift, the start-up sweep and the HTTP endpoint',
  async (t) => {
    const dir = t.testdir({
      profiles: {
        'a.yaml': profileYaml('t1', 'a', '  defaultAction: SCMP_ACT_LOG\n'),
      },
      kubelet: {
        'other.txt': 'not ours',
        seccomp: {
          'other.json': '{"defaultAction":"SCMP_ACT_ALLOW"}',
          custom: { 'mine.json': '{"defaultAction":"SCMP_ACT_LOG"}' },
          operator: {
            t1: { 'old.json': '{"defaultAction":"SCMP_ACT_KILL"}', 'x.json.123456': '{"defaultA', 'a.json.4242': '' },
            gone: { 'y.json': '{}' },
            'loose-file': 'x',
          },
        },
      },
    });
    const profilesDir = path.join(dir, 'profiles');
    const root = path.join(dir, 'kubelet');
    const op = path.join(root, 'seccomp', 'operator');
    const aFile = path.join(op, 't1', 'a.json');
    const bFile = path.join(op, 't1', 'b.json');
    const outside = ['other.txt', 'seccomp/other.json', 'seccomp/custom/mine.json'];
    const before = new Map<string, { data: Buffer; mtimeMs: number }>();
    for (const rel of outside) {
      const p = path.join(root, rel);
      before.set(rel, { data: await fs.readFile(p), mtimeMs: (await fs.stat(p)).mtimeMs });
    }

    const agent = await startAgent(t, profilesDir, root);

    await t.test('ready, healthy, and the start-up sweep removed strays under operator/ only', async (t) => {
      const ready = await until('/readyz 200', async () =>
        (await fetch(`${agent.base}/readyz`)).status === 200 ? true : undefined,
      );
      t.ok(ready.value, '/readyz answers 200');
      const health = await fetch(`${agent.base}/healthz`);
      t.equal(health.status, 200, '/healthz answers 200');
      t.equal((await readOrUndef(aFile))?.toString(), '{"defaultAction":"SCMP_ACT_LOG"}', 'the profile is installed');
      t.same(
        await fs.readdir(path.join(op, 't1')),
        ['a.json'],
        'old.json and the temp files x.json.123456, a.json.4242 are gone',
      );
      t.same((await fs.readdir(op)).sort(), ['t1'], 'the namespace with no profiles and the loose file are gone');
      for (const rel of outside) {
        const p = path.join(root, rel);
        const was = before.get(rel);
        const data = await readOrUndef(p);
        t.ok(
          was !== undefined && data !== undefined && data.equals(was.data),
          `${rel} (outside operator/) is untouched`,
        );
        t.equal((await fs.stat(p)).mtimeMs, was?.mtimeMs, `${rel} was not rewritten`);
      }
      const removedLogged = agent
        .logs()
        .filter((l) => l['msg'] === 'removed a file no profile accounts for')
        .map((l) => String(l['path']));
      t.ok(
        removedLogged.some((p) => p.endsWith('x.json.123456')),
        'each removal is logged',
      );
    });

    await t.test('/v1/profiles lists path, sha256 of the file and state', async (t) => {
      const res = await fetch(`${agent.base}/v1/profiles`);
      t.equal(res.status, 200);
      const body = (await res.json()) as {
        node: string;
        items: {
          namespace: string;
          name: string;
          path: string;
          sha256?: string;
          state: string;
          localhostProfile: string;
        }[];
      };
      t.equal(body.node, 'test-node', 'the node name from --node-name');
      t.equal(body.items.length, 1, 'one profile');
      const item = body.items[0];
      t.equal(item?.path, aFile, 'path');
      t.equal(item?.state, 'Installed', 'state');
      t.equal(item?.localhostProfile, 'operator/t1/a.json', 'the localhostProfile pods use');
      t.equal(item?.sha256, sha256(await fs.readFile(aFile)), 'sha256 equals the sha256 of the file on disk');
    });

    const bYaml = path.join(profilesDir, 'b.yaml');
    await t.test('a new profile file is installed', async (t) => {
      await fs.writeFile(bYaml, profileYaml('t1', 'b', '  defaultAction: SCMP_ACT_LOG\n'));
      const got = await until('b.json', async () => (await readOrUndef(bFile))?.toString());
      t.equal(got.value, '{"defaultAction":"SCMP_ACT_LOG"}', `b.json appeared (${got.ms.toFixed(0)} ms)`);
    });

    await t.test('an edited profile file changes the installed file', async (t) => {
      const want =
        '{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}';
      await fs.writeFile(
        bYaml,
        profileYaml(
          't1',
          'b',
          '  defaultAction: SCMP_ACT_ERRNO\n  architectures: [SCMP_ARCH_X86_64]\n  syscalls:\n    - action: SCMP_ACT_ALLOW\n      names: [read, write]\n',
        ),
      );
      const got = await until('b.json to change', async () =>
        (await readOrUndef(bFile))?.toString() === want ? true : undefined,
      );
      t.ok(got.value, `b.json holds the new rendering (${got.ms.toFixed(0)} ms)`);
      const st = await fs.stat(bFile);
      t.equal((st.mode & 0o7777).toString(8), '644', 'still 0644');
      t.same([st.uid, st.gid], [OWNER, OWNER], 'still 65535:65535');
    });

    await t.test('removing the profile file removes the installed file', async (t) => {
      await fs.rm(bYaml);
      const got = await until('b.json to go', async () =>
        (await readOrUndef(bFile)) === undefined ? true : undefined,
      );
      t.ok(got.value, `b.json removed (${got.ms.toFixed(0)} ms)`);
      const res = (await (await fetch(`${agent.base}/v1/profiles`)).json()) as { items: { name: string }[] };
      t.same(
        res.items.map((i) => i.name),
        ['a'],
        '/v1/profiles no longer lists it',
      );
    });

    const aYaml = path.join(profilesDir, 'a.yaml');
    const aBefore = await fs.readFile(aFile);
    await t.test(
      'garbage YAML in a file that defined a profile: the profile file stays, the error is logged',
      async (t) => {
        const from = agent.logs().length;
        await fs.writeFile(aYaml, 'apiVersion: [this is\n  not: yaml: at all\n');
        const err = await agent.waitLog(
          'the YAML error in the log',
          (l) => /a\.yaml document 1: not valid YAML/.test(String(l['msg'])),
          from,
        );
        t.equal(err['level'], 50, `logged at error level: ${String(err['msg']).slice(0, 120)}`);
        await agent.waitLog(
          'the sync after the change',
          (l) => l['msg'] === 'profiles directory changed; synced',
          from,
        );
        const data = await readOrUndef(aFile);
        t.ok(data !== undefined && data.equals(aBefore), 'a.json is still installed, unchanged');
        t.ok(
          agent
            .logs()
            .slice(from)
            .some((l) => /keeping the 1 profile\(s\) it defined before/.test(String(l['msg']))),
          'the log says the old profile is kept',
        );
      },
    );

    await t.test(
      'an invalid profile where a valid one was: the last good file stays, the error is logged',
      async (t) => {
        const from = agent.logs().length;
        await fs.writeFile(aYaml, profileYaml('t1', 'a', '  defaultAction: SCMP_ACT_NOPE\n'));
        const err = await agent.waitLog(
          'the validation error in the log',
          (l) => /t1\/a.*SCMP_ACT_NOPE/.test(String(l['msg'])),
          from,
        );
        t.equal(err['level'], 50, 'logged at error level');
        await agent.waitLog(
          'the sync after the change',
          (l) => l['msg'] === 'profiles directory changed; synced',
          from,
        );
        const data = await readOrUndef(aFile);
        t.ok(data !== undefined && data.equals(aBefore), 'a.json is still installed, unchanged');
        const res = (await (await fetch(`${agent.base}/v1/profiles`)).json()) as {
          items: { name: string; state: string; sha256?: string; message?: string }[];
        };
        t.equal(res.items[0]?.state, 'Error', '/v1/profiles shows the profile in Error');
        t.equal(res.items[0]?.sha256, sha256(aBefore), '... with the sha256 of the file that stays');
        t.match(res.items[0]?.message ?? '', /last good version stays installed/, '... and says the old file stays');
      },
    );

    await t.test('fixing the file brings the profile back to normal', async (t) => {
      const want = '{"defaultAction":"SCMP_ACT_ERRNO"}';
      await fs.writeFile(aYaml, profileYaml('t1', 'a', '  defaultAction: SCMP_ACT_ERRNO\n'));
      const got = await until('a.json to take the fixed profile', async () =>
        (await readOrUndef(aFile))?.toString() === want ? true : undefined,
      );
      t.ok(got.value, `a.json holds the fixed profile (${got.ms.toFixed(0)} ms)`);
      const state = await until('/v1/profiles to show Installed', async () => {
        const res = (await (await fetch(`${agent.base}/v1/profiles`)).json()) as {
          items: { state: string; sha256?: string }[];
        };
        return res.items[0]?.state === 'Installed' ? res.items[0] : undefined;
      });
      t.equal(state.value.sha256, sha256(want), 'Installed with the sha256 of the new file');
    });

    /** Changes a.json by hand, then waits until it is back (bytes, mode, owner) and the repair is logged. */
    const tamper = async (what: string, change: () => Promise<void>, timeoutMs = 10_000): Promise<number> => {
      const want = '{"defaultAction":"SCMP_ACT_ERRNO"}';
      const from = agent.logs().length;
      const start = performance.now();
      await change();
      await until(
        `a.json to be restored after ${what}`,
        async () => {
          const st = await fs.stat(aFile).catch(() => undefined);
          if (st === undefined || (st.mode & 0o7777) !== 0o644 || st.uid !== OWNER || st.gid !== OWNER)
            return undefined;
          return (await readOrUndef(aFile))?.toString() === want ? true : undefined;
        },
        timeoutMs,
      );
      const ms = performance.now() - start;
      await agent.waitLog(
        `the repair after ${what} in the log`,
        (l) => l['msg'] === 'profile file was changed on disk; restored it' && l['profile'] === 't1/a',
        from,
      );
      return ms;
    };

    await t.test('drift: a file edited or deleted by hand is restored and the repair logged', async (t) => {
      const times: string[] = [];
      const time = (what: string, ms: number): void => void times.push(`${what} ${ms.toFixed(0)} ms`);
      time('edit', await tamper('an edit', () => fs.writeFile(aFile, '{"defaultAction":"SCMP_ACT_ALLOW"}')));
      t.pass('edited by hand: restored');
      time('delete', await tamper('a delete', () => fs.rm(aFile)));
      t.pass('deleted by hand: restored');
      time(
        'edit of the restored file',
        await tamper('an edit of the restored file', () => fs.writeFile(aFile, 'tampered')),
      );
      t.pass('the restored file is watched too: an edit is restored');
      // Moved away in one step, then deleted: a recursive rm in place would race with the agent re-creating it.
      const away = path.join(root, 'seccomp', 'operator-removed');
      time(
        'rm -r operator/',
        await tamper('removing operator/', async () => {
          await fs.rename(op, away);
          await fs.rm(away, { recursive: true });
        }),
      );
      t.pass('the whole operator directory removed: restored');
      time(
        'edit after re-creation',
        await tamper('an edit in the re-created directory', () => fs.writeFile(aFile, 'tampered again')),
      );
      t.pass('edits are still watched after the directory was re-created');
      t.comment(
        `measured restore times, change to restored (not asserted; the issue asks for < 1 s): ${times.join(', ')}`,
      );
    });

    await t.test('drift: a mode or owner changed by hand on a re-created file is restored', async (t) => {
      // The file was re-created above (delete, rm -r): chokidar often reports no event for an
      // attribute-only change then, so this is the periodic re-check's work (--recheck-interval 1 here).
      const chmod = await tamper('a chmod', () => fs.chmod(aFile, 0o666), 10_000);
      t.type(chmod, 'number', 'chmod 0666 by hand: mode restored');
      const chown = await tamper('a chown', () => fs.chown(aFile, 0, 0), 10_000);
      t.type(chown, 'number', 'chown root by hand: owner restored');
      t.comment(`restore after chmod ${chmod.toFixed(0)} ms, after chown ${chown.toFixed(0)} ms`);
    });

    await t.test('SIGTERM shuts the agent down cleanly', async (t) => {
      const exit = new Promise<[number | null, NodeJS.Signals | null]>((r) =>
        agent.child.once('exit', (c, s) => r([c, s])),
      );
      agent.child.kill('SIGTERM');
      const [code, signal] = await exit;
      t.same([code, signal], [0, null], 'exit 0');
      t.ok(
        agent.logs().some((l) => l['msg'] === 'shutting down'),
        'the shutdown is logged',
      );
    });
  },
);
