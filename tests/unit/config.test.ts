import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FLAG_LIST, parseConfig, usage } from '../../agent/src/config.js';
import { isAgentError } from '../../shared/errors.js';
import { repoRoot } from '../helpers/shared.js';

const parse = (argv: string[], env: Record<string, string> = {}) => parseConfig(argv, env, 'host-1');

t.test('defaults, flags and environment twins', async (t) => {
  const r = parse(['--profiles-dir', 'profiles']);
  t.equal(r.kind, 'config');
  if (r.kind !== 'config') return;
  t.match(r.config, {
    kubeletRoot: '/var/lib/kubelet',
    nodeName: 'host-1',
    listen: { host: '127.0.0.1', port: 8686 },
    logLevel: 'info',
    once: false,
    auditSource: 'auto',
    auditFrom: 'end',
    eventRingSize: 10000,
  });
  t.ok(Object.isFrozen(r.config));
  const env = parse([], {
    SECCOMP_AGENT_PROFILES_DIR: '/p',
    SECCOMP_AGENT_KUBELET_ROOT: '/k',
    SECCOMP_AGENT_ONCE: 'true',
    SECCOMP_AGENT_LISTEN: '[::1]:9000',
    SECCOMP_AGENT_NODE_NAME: 'n2',
  });
  t.match(env.kind === 'config' ? env.config : {}, {
    profilesDir: '/p',
    kubeletRoot: '/k',
    once: true,
    listen: { host: '::1', port: 9000 },
    nodeName: 'n2',
  });
  const win = parse(['--kubelet-root', '/flag', '--profiles-dir', '/p'], { SECCOMP_AGENT_KUBELET_ROOT: '/env' });
  t.equal(win.kind === 'config' ? win.config.kubeletRoot : '', '/flag', 'a flag wins over its twin');
});

t.test('bad input names what is wrong', async (t) => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['--profiles-dir', 'p', '--bogus'], {}, /Unknown option '--bogus'/],
    [['--profiles-dir', 'p', '--listen', 'localhost'], {}, /--listen "localhost" is not HOST:PORT/],
    [['--profiles-dir', 'p', '--listen', '1.2.3.4:99999'], {}, /is not HOST:PORT/],
    [['--profiles-dir', 'p', '--log-level', 'loud'], {}, /--log-level "loud" is not one of fatal, error/],
    [['--profiles-dir', 'p', '--audit-from', 'middle'], {}, /--audit-from "middle" is not one of start, end/],
    [['--profiles-dir', 'p', '--event-ring-size', '0'], {}, /--event-ring-size "0" must be a whole number/],
    [['--profiles-dir', 'p'], { SECCOMP_AGENT_ONCE: 'maybe' }, /SECCOMP_AGENT_ONCE "maybe" is not true or false/],
    [['--once'], {}, /--once needs --profiles-dir/],
    [['--profiles-dir', 'p', '--kubeconfig', 'k'], {}, /give one of them/],
    [['--namespace', 'Bad_NS'], {}, /--namespace "Bad_NS" is not a valid namespace name/],
    [['extra'], {}, /Unexpected argument 'extra'/],
  ];
  for (const [argv, env, msg] of cases) {
    try {
      parse(argv, env);
      t.fail(`${argv.join(' ')} should be refused`);
    } catch (e: unknown) {
      t.ok(isAgentError(e) && e.code === 'SECCOMP_AGENT_ERR_BAD_FLAG', 'coded error');
      t.match((e as Error).message, msg);
    }
  }
});

t.test('without --profiles-dir the agent runs in cluster mode', async (t) => {
  const r = parse([]);
  t.equal(r.kind, 'config');
  t.match(
    r.kind === 'config' ? r.config : {},
    { profilesDir: undefined, kubeconfig: undefined, namespace: 'seccomp-agent' },
    'in-cluster config, default namespace',
  );
  const k = parse(['--kubeconfig', '/etc/kube.yaml'], { POD_NAMESPACE: 'sec' });
  t.match(
    k.kind === 'config' ? k.config : {},
    { kubeconfig: '/etc/kube.yaml', namespace: 'sec' },
    'POD_NAMESPACE from the downward API',
  );
  const e = parse([], { SECCOMP_AGENT_KUBECONFIG: '/k', SECCOMP_AGENT_NAMESPACE: 'mine', POD_NAMESPACE: 'other' });
  t.match(
    e.kind === 'config' ? e.config : {},
    { kubeconfig: '/k', namespace: 'mine' },
    'the twins; SECCOMP_AGENT_NAMESPACE wins over POD_NAMESPACE',
  );
});

t.test('help lists every flag with its environment twin', async (t) => {
  const r = parse(['--help']);
  t.equal(r.kind, 'help');
  for (const f of [
    '--profiles-dir',
    '--kubeconfig',
    '--namespace',
    '$SECCOMP_AGENT_KUBECONFIG',
    '--kubelet-root',
    '--node-name',
    '--listen',
    '--log-level',
    '--once',
    '$SECCOMP_AGENT_KUBELET_ROOT',
  ]) {
    t.match(usage(), f);
  }
});

t.test(
  'item 14: an empty value, flag or environment twin, is an error naming it (never the current directory)',
  async (t) => {
    const refused = (argv: string[], env: Record<string, string>, msg: RegExp, what: string): void => {
      try {
        const r = parse(argv, env);
        t.fail(`${what} should be refused, got ${JSON.stringify(r)}`);
      } catch (e: unknown) {
        t.ok(isAgentError(e) && e.code === 'SECCOMP_AGENT_ERR_BAD_FLAG', `${what}: a bad flag (exit 2 with usage)`);
        t.match((e as Error).message, msg, `${what}: names it`);
      }
    };
    refused([], { SECCOMP_AGENT_PROFILES_DIR: '' }, /\$SECCOMP_AGENT_PROFILES_DIR is set but empty/, 'PROFILES_DIR=');
    refused(['--profiles-dir', ''], {}, /--profiles-dir is empty/, "--profiles-dir ''");
    for (const { flag, env, takesValue } of FLAG_LIST) {
      if (env === '') continue;
      const base = flag === '--profiles-dir' || flag === '--kubeconfig' ? [] : ['--profiles-dir', 'p'];
      refused(base, { [env]: '' }, new RegExp(`\\$${env} is set but empty`), `${env}=`);
      if (takesValue) refused([...base, `${flag}=`], {}, new RegExp(`${flag} is empty`), `${flag}=`);
    }
    refused(['--profiles-dir', 'p'], { POD_NAMESPACE: '' }, /\$POD_NAMESPACE is set but empty/, 'POD_NAMESPACE=');
    refused(
      ['--profiles-dir', 'p'],
      { SECCOMP_AGENT_TEST_TIMING: '' },
      /SECCOMP_AGENT_TEST_TIMING is set but empty/,
      'TEST_TIMING=',
    );
  },
);

t.test('item 17: --help keeps one column for the text, whatever the flag length', async (t) => {
  const lines = usage()
    .split('\n')
    .filter((l) => l.startsWith('  --'));
  t.equal(lines.length, FLAG_LIST.length, 'a line per flag');
  const starts = new Set<number>();
  for (const line of lines) {
    const m = /^( {2}--\S+(?: VALUE)?)( {2,})\S/.exec(line);
    t.ok(m, `two spaces or more between the flag and its text: ${line.slice(0, 60)}`);
    if (m?.[1] !== undefined && m[2] !== undefined) starts.add(m[1].length + m[2].length);
  }
  t.equal(starts.size, 1, 'every text starts in the same column');
  t.match(usage(), /--event-max-containers VALUE {2,}how many/, 'the longest flag is not run into its text');
});

t.test('item 17: the README flag table lists exactly the flags config.ts knows', async (t) => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## The agent'), readme.indexOf('### How profiles are rendered'));
  const inTable = [...section.matchAll(/^\| `(--[a-z-]+)[^`]*` +\|/gm)].map((m) => m[1]);
  t.same(
    inTable,
    FLAG_LIST.map((f) => f.flag),
    'the same flags, in the order of --help',
  );
  t.notMatch(
    section,
    /\| required +\|/,
    'no flag is marked required: without --profiles-dir the agent runs in cluster mode',
  );
});
