// Issue 15: /v1/check over a store of real-shaped events and real profile files: an installed
// profile by key, a posted YAML document, the table, and each error named.
import { mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify from 'fastify';
import t, { type Test } from 'tap';
import { EventStore } from '../../../agent/src/events/store.js';
import { checkRoutes, type CheckReport } from '../../../agent/src/http/check-routes.js';
import { candidateResolver, type InstalledProfile } from '../../../agent/src/profiles/candidate.js';
import { SYSCALL_CATALOG } from '../../../shared/syscalls/index.js';
import { podEvent as event } from '../../helpers/store-events.js';

const NGINX = 'a'.repeat(64);
const OTHER = 'b'.repeat(64);

const COMPLAINER_CALLS = ['read', 'write', 'openat', 'rseq', 'faccessat2', 'mkdir', 'getpid'];

/** A node with the workshop-like installed profiles on disk and the complainer's calls in the store. */
async function node(t: Test) {
  const root = t.testdir();
  const dir = join(root, 'seccomp', 'operator', 'seccomp-test');
  mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = {
    allow:
      '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write","openat","mkdir","getpid"],"action":"SCMP_ACT_ALLOW"}]}',
    'block-all': '{"defaultAction":"SCMP_ACT_ERRNO"}',
    base: '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}',
  };
  const profiles: InstalledProfile[] = Object.keys(files).map((name) => ({
    namespace: 'seccomp-test',
    name,
    state: 'Installed',
    path: join(dir, `${name}.json`),
    localhostProfile: `operator/seccomp-test/${name}.json`,
  }));
  profiles.push({
    namespace: 'seccomp-test',
    name: 'broken',
    state: 'Error',
    path: join(dir, 'broken.json'),
    localhostProfile: 'operator/seccomp-test/broken.json',
    message: 'spec.syscalls[0].names[0]: "nosuchcall" is not a syscall',
  });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, `${name}.json`), content);
  const store = new EventStore({ ringSize: 100 });
  for (const name of COMPLAINER_CALLS) store.add(event(NGINX, 'complainer', 'nginx', 'x86_64', name), 1);
  store.add(event(NGINX, 'complainer', 'nginx', 'x86_64', null, 9999), 1);
  store.add(event(OTHER, 'other', 'app', 'x86', 'getpid'), 1);
  const app = Fastify();
  await app.register(checkRoutes, {
    store,
    node: 'node1',
    nativeArch: 'x86_64',
    candidates: candidateResolver({
      profiles: () => profiles,
      readFile: (p) => readFile(p, 'utf8'),
      catalog: SYSCALL_CATALOG,
    }),
  });
  t.teardown(() => app.close());
  return app;
}

const notAllowed = (r: CheckReport, pod: string): string[] =>
  (r.containers.find((c) => c.pod === pod)?.calls ?? []).map((c) => `${c.arch}/${c.syscall ?? c.nr} ${c.said}`);

t.test('an installed profile: exactly the observed calls its allow list lacks', async (t) => {
  const app = await node(t);
  const res = await app.inject({ url: '/v1/check?profile=seccomp-test/allow&pod=complainer' });
  t.equal(res.statusCode, 200);
  const r = res.json<CheckReport>();
  t.equal(r.profile, 'seccomp-test/allow');
  t.equal(r.localhostProfile, 'operator/seccomp-test/allow.json');
  t.same(notAllowed(r, 'complainer'), [
    'x86_64/faccessat2 deny (EPERM)',
    'x86_64/rseq deny (EPERM)',
    'x86_64/9999 deny (EPERM)',
  ]);
  t.same(r.summary, { containers: 1, observed: 8, notAllowed: 3, by: { deny: 3 } });
  t.same(r.containers[0]?.loggedAs, ['SCMP_ACT_LOG']);
});

t.test('block-all names every observed call; an i386 call on an x86_64 node is killed', async (t) => {
  const app = await node(t);
  const r = (await app.inject({ url: '/v1/check?profile=seccomp-test/block-all' })).json<CheckReport>();
  t.equal(notAllowed(r, 'complainer').length, COMPLAINER_CALLS.length + 1, 'every call of the complainer');
  t.same(notAllowed(r, 'other'), ['x86/getpid kill']);
  t.equal(r.containers.find((c) => c.pod === 'other')?.calls[0]?.because, 'architecture not in the profile');
});

t.test('format=table', async (t) => {
  const app = await node(t);
  const res = await app.inject({ url: '/v1/check?profile=seccomp-test/allow&pod=complainer&format=table' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/plain/);
  const lines = res.body.trimEnd().split('\n');
  t.match(lines[0], /^NAMESPACE\s+POD\s+CONTAINER\s+ARCH\s+SYSCALL\s+COUNT\s+WOULD$/);
  t.match(lines[1], /^seccomp-test\s+complainer\s+nginx\s+x86_64\s+faccessat2\s+1\s+deny \(EPERM\)$/);
  t.match(lines[3], /\?9999\s+1\s+deny \(EPERM\): unnamed syscall$/);
  t.equal(lines[4], '3 calls seccomp-test/allow would not allow, of 8 observed in 1 container (logged as LOG)');
});

t.test('POST a YAML profile, with its base profile taken from the node', async (t) => {
  const app = await node(t);
  const yaml = [
    'apiVersion: security-profiles-operator.x-k8s.io/v1beta1',
    'kind: SeccompProfile',
    'metadata: { name: candidate, namespace: seccomp-test }',
    'spec:',
    '  defaultAction: SCMP_ACT_ERRNO',
    '  baseProfileName: base',
    '  syscalls:',
    '    - names: [openat, mkdir]',
    '      action: SCMP_ACT_ALLOW',
    '    - names: [getpid]',
    '      action: SCMP_ACT_ERRNO',
    '      errnoRet: 13',
  ].join('\n');
  const post = (contentType: string, payload: string) =>
    app.inject({ method: 'POST', url: '/v1/check?pod=complainer', headers: { 'content-type': contentType }, payload });
  const res = await post('application/yaml', yaml);
  t.equal(res.statusCode, 200, res.body);
  const r = res.json<CheckReport>();
  t.equal(r.profile, 'seccomp-test/candidate');
  t.same(notAllowed(r, 'complainer'), [
    'x86_64/faccessat2 deny (EPERM)',
    'x86_64/getpid deny (EACCES)',
    'x86_64/rseq deny (EPERM)',
    'x86_64/9999 deny (EPERM)',
  ]);
  // curl -d sends application/x-www-form-urlencoded: the body is still the profile.
  const json = JSON.stringify({
    apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
    kind: 'SeccompProfile',
    metadata: { name: 'all', namespace: 'seccomp-test' },
    spec: { defaultAction: 'SCMP_ACT_ALLOW' },
  });
  const form = await post('application/x-www-form-urlencoded', json);
  t.equal(form.statusCode, 200, form.body);
  t.equal(form.json<CheckReport>().summary.notAllowed, 0, 'an ALLOW default allows every call of the node’s arch');
});

t.test('bad input: each error names what is wrong', async (t) => {
  const app = await node(t);
  const cases: {
    what: string;
    method?: 'GET' | 'POST';
    url: string;
    payload?: string;
    status: number;
    message: RegExp;
  }[] = [
    { what: 'no profile', url: '/v1/check', status: 400, message: /profile.*give profile=<namespace>\/<name>/ },
    {
      what: 'an unknown profile',
      url: '/v1/check?profile=seccomp-test/nope',
      status: 404,
      message:
        /cannot check seccomp-test\/nope: this node knows no such SeccompProfile \(it knows: seccomp-test\/allow, /,
    },
    {
      what: 'a profile in Error',
      url: '/v1/check?profile=seccomp-test/broken',
      status: 422,
      message: /cannot check seccomp-test\/broken: it is Error on this node: .*nosuchcall/,
    },
    {
      what: 'a bad format',
      url: '/v1/check?profile=seccomp-test/allow&format=xml',
      status: 400,
      message: /format: "xml" is not json or table/,
    },
    {
      what: 'an unknown parameter',
      url: '/v1/check?profile=seccomp-test/allow&pods=x',
      status: 400,
      message: /pods: unknown parameter/,
    },
    { what: 'an empty body', method: 'POST', url: '/v1/check', payload: '', status: 400, message: /its body is empty/ },
    { what: 'not YAML', method: 'POST', url: '/v1/check', payload: 'a: [b', status: 400, message: /not valid YAML/ },
    {
      what: 'an invalid profile',
      method: 'POST',
      url: '/v1/check',
      payload:
        'apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nmetadata: {name: x, namespace: seccomp-test}\nspec: {defaultAction: SCMP_ACT_NOPE}\n',
      status: 422,
      message: /cannot check seccomp-test\/x: spec\.defaultAction: /,
    },
    {
      what: 'a missing base profile',
      method: 'POST',
      url: '/v1/check',
      payload:
        'apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nmetadata: {name: x, namespace: seccomp-test}\nspec: {defaultAction: SCMP_ACT_LOG, baseProfileName: gone}\n',
      status: 422,
      message: /base profile "gone" was not found in namespace seccomp-test .*installed on this node/,
    },
    {
      what: 'two profiles',
      method: 'POST',
      url: '/v1/check',
      payload:
        'apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nmetadata: {name: x}\nspec: {defaultAction: SCMP_ACT_LOG}\n---\napiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nmetadata: {name: y}\nspec: {defaultAction: SCMP_ACT_LOG}\n',
      status: 400,
      message: /holds 2 SeccompProfiles; post exactly one/,
    },
  ];
  for (const c of cases) {
    const res = await app.inject({
      method: c.method ?? 'GET',
      url: c.url,
      ...(c.payload === undefined ? {} : { payload: c.payload, headers: { 'content-type': 'application/yaml' } }),
    });
    t.equal(res.statusCode, c.status, `${c.what}: ${c.status}`);
    t.match(res.json<{ message: string }>().message, c.message, `${c.what}: the message`);
  }
});
