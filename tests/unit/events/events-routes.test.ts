import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import t, { type Test } from 'tap';
import { parse as parseYaml } from 'yaml';
import { isKnownSyscall, resolveAuditSyscall } from '../../../shared/syscalls/index.js';
import { SYSCALL_TABLES } from '../../../shared/syscalls/tables.generated.js';
import { validateProfile } from '../../../shared/profile/validate.js';
import { Attributor } from '../../../agent/src/events/attribute.js';
import { Ingest } from '../../../agent/src/events/ingest.js';
import { StaticPodIndex } from '../../../agent/src/events/pod-index.js';
import { procReader } from '../../../agent/src/events/proc.js';
import { EventStore, MAX_UNRESOLVED } from '../../../agent/src/events/store.js';
import { eventsRoutes, parseSince } from '../../../agent/src/http/events-routes.js';
import { RUNC_BASELINE } from '../../../agent/src/events/suggest.js';
import { createMetrics, MAX_SYSCALL_SERIES_PER_CONTAINER, metricsRoutes } from '../../../agent/src/http/metrics.js';

const here = dirname(fileURLToPath(import.meta.url));
const corpusLines = readFileSync(
  join(here, '..', '..', '..', '..', 'shared', 'node-facts', 'corpus', 'audit-enriched.log'),
  'latin1',
)
  .split('\n')
  .filter((l) => l !== '');

// The corpus README's pid → container map; corpus-a runs in a pod in this test's cluster view.
const CONTAINERS: Record<string, number[]> = {
  'corpus-long': [18011, 18019, 18379, 18568, 18601],
  'corpus-a': [18083, 18100, 18101, 18105],
  'corpus-mix': [18420],
  'corpus-kill': [18273],
};

/** A store filled from the real corpus, with a /proc tree saying where each pid ran. */
function corpusStore(t: Test, ringSize = 10_000) {
  const btime = 1_795_860_000;
  const root = t.testdir({ stat: `btime ${btime}\n` });
  for (const [id, pids] of Object.entries(CONTAINERS)) {
    for (const pid of pids) {
      mkdirSync(join(root, String(pid)));
      writeFileSync(join(root, String(pid), 'stat'), `${pid} (sh) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0`);
      writeFileSync(join(root, String(pid), 'cgroup'), `1:name=systemd:/probe/${id}\n0::/probe/${id}\n`);
    }
  }
  const podIndex = new StaticPodIndex([
    {
      metadata: { name: 'web', namespace: 'shop', uid: '11111111-2222-3333-4444-555555555555' },
      status: {
        containerStatuses: [
          { name: 'app', image: 'x', imageID: '', ready: true, restartCount: 0, containerID: 'containerd://corpus-a' },
        ],
      },
    },
  ]);
  const attributor = new Attributor({ proc: procReader(root), podIndex });
  const store = new EventStore({ ringSize });
  const metrics = createMetrics({ node: 'node1', processMetrics: false });
  const ingest = new Ingest({
    node: 'node1',
    resolve: resolveAuditSyscall,
    strict: true,
    attributor,
    store,
    metrics: metrics.events,
  });
  ingest.lines(corpusLines);
  return { store, ingest, metrics };
}

async function app(t: Test, ringSize?: number) {
  const s = corpusStore(t, ringSize);
  const a = Fastify();
  await a.register(eventsRoutes, {
    store: s.store,
    node: 'node1',
    now: () => Date.parse('2026-11-28T13:00:00Z'),
    heartbeatMs: 50,
  });
  await a.register(metricsRoutes, { registry: s.metrics.registry });
  t.teardown(() => a.close());
  return { app: a, ...s };
}

t.test('GET /v1/events: newest last, every documented field, filters and limit', async (t) => {
  const { app: a } = await app(t);
  const r = await a.inject('/v1/events?limit=5');
  t.equal(r.statusCode, 200);
  const items = r.json().items as Record<string, unknown>[];
  t.equal(items.length, 5);
  const seqs = items.map((e) => e['seq'] as number);
  t.same(
    seqs,
    [...seqs].sort((x, y) => x - y),
    'newest last',
  );
  for (const k of [
    'time',
    'node',
    'namespace',
    'pod',
    'container',
    'containerId',
    'pid',
    'comm',
    'exe',
    'uid',
    'gid',
    'arch',
    'syscall',
    'syscallNr',
    'action',
    'code',
    'auditId',
  ]) {
    t.ok(k in (items[0] ?? {}), `event has ${k}`);
  }

  const web = (await a.inject('/v1/events?namespace=shop&pod=web&container=app')).json().items as Record<
    string,
    unknown
  >[];
  t.ok(web.length > 0);
  t.ok(web.every((e) => e['containerId'] === 'corpus-a' && e['attribution'] === 'pod'));
  t.match(
    web.find((e) => e['syscall'] === 'uname' && e['comm'] === 'uname'),
    {
      comm: 'uname',
      pid: 18105,
      arch: 'x86_64',
      syscallNr: 63,
      action: 'SCMP_ACT_LOG',
      code: '0x7ffc0000',
      node: 'node1',
    },
  );

  const mix = (await a.inject('/v1/events?containerId=corpus-mix&syscall=mkdir')).json().items as Record<
    string,
    unknown
  >[];
  t.same(
    mix.map((e) => [e['arch'], e['syscallNr']]),
    [['x86', 39]],
    'i386 mkdir (39), not x86_64 getpid',
  );
  const x32 = (await a.inject('/v1/events?containerId=corpus-mix&syscall=getpid')).json().items as Record<
    string,
    unknown
  >[];
  t.ok(
    x32.some((e) => e['arch'] === 'x32' && e['action'] === 'SCMP_ACT_KILL_THREAD'),
    'the x32 call, killed',
  );

  // The corpus spans 2026-11-28T12:00:09.665Z .. 12:00:27.983Z.
  const since = (await a.inject(`/v1/events?since=${encodeURIComponent('2026-11-28T12:00:20Z')}`)).json().items as {
    time: string;
  }[];
  t.ok(since.length > 0 && since.every((e) => e.time >= '2026-11-28T12:00:20'), 'since: an RFC 3339 time');
  const ago = (await a.inject('/v1/events?since=59m45s')).json().items as { time: string }[];
  t.ok(ago.length > 0 && ago.every((e) => e.time >= '2026-11-28T12:00:15'), 'since: a duration back from now');
  t.ok(ago.length < since.length + 1000);
});

t.test('GET /v1/events: bad query parameters get 400 with a message', async (t) => {
  const { app: a } = await app(t);
  const cases: [string, RegExp][] = [
    ['/v1/events?limit=0', /bad query parameter limit: "0" is not an integer from 1 to 10000/],
    ['/v1/events?limit=abc', /limit/],
    ['/v1/events?since=yesterday', /bad query parameter since: "yesterday" is neither an RFC 3339 time/],
    ['/v1/events?syscall=opneat', /bad query parameter syscall: "opneat" is not a syscall name/],
    ['/v1/events?namepsace=x', /bad query parameter namepsace: unknown parameter; use namespace, pod/],
    ['/v1/events?pod=a&pod=b', /bad query parameter pod: given more than once/],
    ['/v1/events?pod=a%20b', /not a valid pod/],
    ['/v1/events?follow=maybe', /follow: "maybe" is not true or false/],
    ['/v1/syscalls?format=xml', /format: "xml" is not json or table/],
    ['/v1/suggest', /give pod .* or containerId/],
  ];
  for (const [url, msg] of cases) {
    const r = await a.inject(url);
    t.equal(r.statusCode, 400, url);
    t.equal(r.json().code, 'SECCOMP_AGENT_ERR_BAD_QUERY', url);
    t.match(r.json().message, msg, url);
  }
  t.equal(parseSince('1h30m', 10_000_000), 10_000_000 - 5_400_000);
  t.equal(parseSince('90s', 100_000), 10_000);
});

t.test('GET /v1/syscalls: per-container aggregates sorted by name, and a table', async (t) => {
  const { app: a } = await app(t, 50); // a tiny ring: aggregates must not depend on it
  const items = (await a.inject('/v1/syscalls')).json().items as {
    containerId: string | null;
    pod: string | null;
    total: number;
    syscalls: { name: string; count: number; actions: string[] }[];
  }[];
  const byId = new Map(items.map((i) => [i.containerId, i]));
  t.same(items[0]?.pod, 'web', 'the pod-attributed container sorts first (namespace shop)');
  const long = byId.get('corpus-long');
  t.ok(long);
  const names = long?.syscalls.map((s) => s.name) ?? [];
  t.same(names, [...names].sort(), 'sorted by name');
  t.ok(names.includes('clock_nanosleep') && names.includes('openat'));
  const kill = byId.get('corpus-kill');
  t.match(kill?.syscalls, [{ name: 'mkdir', count: 1, actions: ['SCMP_ACT_KILL_PROCESS'] }]);
  t.equal(kill?.syscalls.length, 1);
  const mix = byId.get('corpus-mix');
  t.same(mix && (mix as unknown as { arches: string[] }).arches, ['x32', 'x86', 'x86_64']);
  t.ok(byId.has(null), 'records from pids we could not attribute are kept, under containerId null');
  const total = items.reduce((n, i) => n + i.total, 0);
  t.equal(total, 321, 'every SECCOMP record of the corpus counted once');

  const table = await a.inject('/v1/syscalls?format=table&containerId=corpus-kill');
  t.equal(table.headers['content-type'], 'text/plain; charset=utf-8');
  t.match(
    table.body,
    /^NAMESPACE\s+POD\s+CONTAINER\s+CONTAINER ID\s+SYSCALL\s+COUNT\s+ACTIONS\n-\s+-\s+-\s+corpus-kill\s+mkdir\s+1\s+KILL_PROCESS\n$/,
  );
});

t.test('GET /v1/suggest: a valid SeccompProfile allowing what was seen', async (t) => {
  const { app: a } = await app(t);
  const r = await a.inject('/v1/suggest?namespace=shop&pod=web&container=app');
  t.equal(r.statusCode, 200);
  t.match(r.headers['content-type'], /^application\/yaml/);
  const doc = parseYaml(r.body) as {
    metadata: { name: string; namespace: string };
    spec: { defaultAction: string; architectures: string[]; syscalls: { action: string; names: string[] }[] };
  };
  t.equal(doc.metadata.name, 'web-app');
  t.equal(doc.metadata.namespace, 'shop');
  t.equal(doc.spec.defaultAction, 'SCMP_ACT_ERRNO');
  t.same(doc.spec.architectures, ['SCMP_ARCH_X86_64']);
  const seen = ((await a.inject('/v1/syscalls?pod=web')).json().items[0].syscalls as { name: string }[]).map(
    (s) => s.name,
  );
  t.same(doc.spec.syscalls[0], { action: 'SCMP_ACT_ALLOW', names: seen }, 'first rule: exactly the observed syscalls');
  const extra = doc.spec.syscalls[1];
  t.equal(doc.spec.syscalls.length, 2, 'a second rule for the container runtime');
  t.same(
    extra?.names,
    RUNC_BASELINE.filter((n) => !seen.includes(n)).sort(),
    "second rule: runc's start-up calls that were not seen",
  );
  t.ok(extra?.names.includes('futex') && !seen.includes('futex'), 'futex is allowed even though it was not seen');
  t.match(r.body, /not seen but is allowed for the container runtime/, 'the YAML says why');
  const bare = parseYaml((await a.inject('/v1/suggest?namespace=shop&pod=web&container=app&runtime=none')).body) as {
    spec: { syscalls: { action: string; names: string[] }[] };
  };
  t.same(bare.spec.syscalls, [{ action: 'SCMP_ACT_ALLOW', names: seen }], 'runtime=none: only what was seen');
  const badRuntime = await a.inject('/v1/suggest?namespace=shop&pod=web&runtime=crun');
  t.equal(badRuntime.statusCode, 400);
  t.match(badRuntime.json().message, /runtime: "crun" is not runc or none/);
  const allNames = Object.values(SYSCALL_TABLES).flatMap((rows) => rows.map(([, n]) => n));
  const check = validateProfile(doc, { isKnown: isKnownSyscall, allNames: () => allNames });
  t.ok(check.ok, `our own validator accepts it: ${JSON.stringify(check.ok ? [] : check.errors)}`);

  const mix = parseYaml((await a.inject('/v1/suggest?containerId=corpus-mix&name=mix-profile')).body) as {
    metadata: { name: string; namespace?: string };
    spec: { architectures: string[] };
  };
  t.equal(mix.metadata.name, 'mix-profile');
  t.equal(mix.metadata.namespace, undefined, 'no namespace for a container outside any pod');
  t.same(mix.spec.architectures, ['SCMP_ARCH_X32', 'SCMP_ARCH_X86', 'SCMP_ARCH_X86_64'], 'every arch seen');

  const none = await a.inject('/v1/suggest?namespace=shop&pod=nope');
  t.equal(none.statusCode, 404);
  t.equal(none.json().code, 'SECCOMP_AGENT_ERR_NO_EVENTS');
  t.match(none.json().message, /no syscall events for namespace=shop pod=nope: no container matches/);
});

/** Opens a follow stream on a real socket; resolves with a reader of its body. */
function openStream(url: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; type: string; next(n: number): Promise<string>; close(): void }>(
    (resolve, reject) => {
      const req = request(url, { headers }, (res) => {
        let buf = '';
        const waiters: (() => void)[] = [];
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          buf += d;
          for (const w of waiters.splice(0)) w();
        });
        resolve({
          status: res.statusCode ?? 0,
          type: String(res.headers['content-type']),
          next: async (n) => {
            // Waits for n complete frames (NDJSON lines, or SSE events ending in a blank line).
            const sep = headers['accept'] === 'text/event-stream' ? '\n\n' : '\n';
            for (;;) {
              const frames = buf.split(sep);
              if (frames.length - 1 >= n) {
                const out = frames.slice(0, n).join(sep);
                buf = frames.slice(n).join(sep);
                return out;
              }
              await new Promise<void>((r) => waiters.push(r));
            }
          },
          close: () => req.destroy(),
        });
      });
      req.on('error', reject);
      req.end();
    },
  );
}

t.test('follow: NDJSON and SSE streams of new events, until the client leaves', async (t) => {
  const { app: a, store, ingest } = await app(t);
  await a.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(a.server.address() as AddressInfo).port}`;

  const nd = await openStream(`${base}/v1/events?follow=true&syscall=uname`);
  t.equal(nd.status, 200);
  t.match(nd.type, /^application\/x-ndjson/);
  const sse = await openStream(`${base}/v1/events?containerId=corpus-a`, { accept: 'text/event-stream' });
  t.match(sse.type, /^text\/event-stream/);
  t.equal(store.subscribers, 2);
  t.equal(await sse.next(1), ': seccomp-agent events', 'SSE opens with a comment');

  const before = store.seq;
  ingest.lines(corpusLines.slice(0, 100)); // the first 100 corpus lines again: corpus-long and corpus-a records
  const uname = corpusLines.slice(0, 100).filter((l) => / syscall=63 /.test(l)).length;
  const lines = (await nd.next(uname)).split('\n').map((l) => JSON.parse(l) as { syscall: string; seq: number });
  t.ok(
    lines.every((e) => e.syscall === 'uname' && e.seq >= before),
    `${uname} uname events streamed`,
  );
  const frame = await sse.next(1);
  t.match(frame, /^id: \d+\ndata: \{.*"containerId":"corpus-a"/, 'SSE frames carry the seq as id');

  nd.close();
  sse.close();
  for (let i = 0; i < 200 && store.subscribers > 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(store.subscribers, 0, 'both subscriptions ended with their clients');

  // Resuming: Last-Event-ID replays what came after it from the ring.
  const resume = await openStream(`${base}/v1/events`, {
    accept: 'text/event-stream',
    'last-event-id': String(store.seq - 3),
  });
  await resume.next(1);
  const replay = await resume.next(2);
  t.match(replay, new RegExp(`^id: ${store.seq - 2}\\n`));
  resume.close();
});

t.test('/metrics: the reference operator names and ours', async (t) => {
  const { app: a } = await app(t);
  const text = (await a.inject('/metrics')).body;
  t.match(
    text,
    /security_profiles_operator_seccomp_profile_audit_total\{node="node1",namespace="shop",pod="web",container="app",syscall="uname"\} 2/,
  );
  t.match(text, /seccomp_agent_audit_lines_total 412/);
  t.match(text, /seccomp_agent_audit_malformed_lines_total 0/);
  t.match(text, /# TYPE security_profiles_operator_seccomp_profile_total counter/);
  t.match(text, /# TYPE security_profiles_operator_seccomp_profile_error_total counter/);
  t.match(text, /seccomp_agent_audit_tail_lag_seconds/);
});

t.test('item 7: 50,000 distinct unknown syscall numbers from one container make one series, not 50,000', async (t) => {
  const { app: a, ingest, store } = await app(t);
  const base = corpusLines.find((l) => l.startsWith('type=SECCOMP ') && l.includes(' pid=18105 ')) ?? '';
  const flood: string[] = [];
  for (let i = 0; i < 50_000; i++) flood.push(base.replace(/ syscall=\d+ /, ` syscall=${100_000 + i} `));
  // And 200 different named calls (x86_64 0..199): the first 128 names keep a series each.
  for (let nr = 0; nr < 200; nr++) flood.push(base.replace(/ syscall=\d+ /, ` syscall=${nr} `));
  ingest.lines(flood);
  const text = (await a.inject('/metrics')).body;
  const series = text
    .split('\n')
    .filter((l) => l.startsWith('security_profiles_operator_seccomp_profile_audit_total{') && l.includes('pod="web"'));
  t.ok(series.length <= MAX_SYSCALL_SERIES_PER_CONTAINER + 2, `${series.length} series for the container`);
  t.match(text, /audit_total\{node="node1",namespace="shop",pod="web",container="app",syscall="unknown"\} 50000$/m);
  t.match(text, /audit_total\{node="node1",namespace="shop",pod="web",container="app",syscall="other"\} \d+$/m);
  const sum = series.reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  t.equal(sum, store.aggregates({ pod: 'web' })[0]?.total, 'every call counted in some series');
  const [agg] = store.aggregates({ pod: 'web' });
  t.equal(agg?.unresolved.size, MAX_UNRESOLVED, 'the aggregate keeps 64 unnamed numbers');
  t.equal(agg?.unresolvedOther, 50_000 - MAX_UNRESOLVED, 'and counts the rest');
  const json = (await a.inject('/v1/syscalls?pod=web')).json<{ items: { unresolvedOther: number }[] }>();
  t.equal(json.items[0]?.unresolvedOther, 50_000 - MAX_UNRESOLVED);
});

t.test('item 7: an evicted container takes all its series with it, unknown included', async (t) => {
  const metrics = createMetrics({ node: 'node1', processMetrics: false });
  const store = new EventStore();
  const attributor = new Attributor({
    proc: procReader(t.testdir({ stat: 'btime 1\n' })),
    podIndex: new StaticPodIndex([]),
  });
  const ingest = new Ingest({
    node: 'node1',
    resolve: resolveAuditSyscall,
    strict: true,
    attributor,
    store,
    metrics: metrics.events,
  });
  const base = corpusLines.find((l) => l.startsWith('type=SECCOMP ')) ?? '';
  ingest.lines([base.replace(/ syscall=\d+ /, ' syscall=99999 '), base]);
  const count = async () =>
    (await metrics.registry.metrics())
      .split('\n')
      .filter((l) => l.startsWith('security_profiles_operator_seccomp_profile_audit_total{')).length;
  t.equal(await count(), 2, 'a named series and the unknown one');
  const evicted = store.aggregates({})[0];
  if (evicted !== undefined) metrics.events.containerEvicted?.(evicted);
  t.equal(await count(), 0, 'both gone');
});

t.test('follow: a client too far behind is disconnected, not buffered without bound', async (t) => {
  const s = corpusStore(t);
  const a = Fastify();
  await a.register(eventsRoutes, { store: s.store, node: 'node1', maxStreamBufferBytes: 1 });
  t.teardown(() => a.close());
  await a.listen({ host: '127.0.0.1', port: 0 });
  const port = (a.server.address() as AddressInfo).port;
  // A backlog of 300 events into a 1-byte allowance: the server gives up on this client.
  const body = await new Promise<string>((resolve, reject) => {
    request(`http://127.0.0.1:${port}/v1/events?follow=true&limit=300`, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (b += d));
      res.on('end', () => resolve(b));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
  t.ok(body.split('\n').filter(Boolean).length < 300, 'the stream ended before the backlog was through');
  for (let i = 0; i < 200 && s.store.subscribers > 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(s.store.subscribers, 0, 'and its subscription is gone');
});
