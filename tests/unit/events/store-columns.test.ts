// The columnar event store against the store it replaced (tests/helpers/reference-store.ts), on
// events made from the real corpus: every query answers the same before and after every change; the
// cached HTTP answers change with every write; interned ids outlive evictions and overwrites.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';
import t, { type Test } from 'tap';
import { resolveAuditSyscall } from '../../../shared/syscalls/index.js';
import { formatCode, parseLine } from '../../../agent/src/events/parse.js';
import { EventStore, TimeText, type EventFilter, type SyscallEvent } from '../../../agent/src/events/store.js';
import { Interner, keyPart } from '../../../agent/src/events/intern.js';
import { aggregateJson, eventsRoutes } from '../../../agent/src/http/events-routes.js';
import { ReferenceStore } from '../../helpers/reference-store.js';
import { sharedDir } from '../../helpers/shared.js';

type NewEvent = Omit<SyscallEvent, 'seq'>;

const ID = (c: string): string => c.repeat(64);
/** Where the corpus's records are made to run, in turn. */
const ORIGINS = [
  { namespace: 'a', pod: 'p1', container: 'web', containerId: ID('1'), podUid: null, attribution: 'pod' },
  { namespace: 'a', pod: 'p1', container: 'side', containerId: ID('2'), podUid: null, attribution: 'pod' },
  { namespace: 'b', pod: 'p2', container: 'web', containerId: ID('3'), podUid: 'u-3', attribution: 'pod' },
  { namespace: null, pod: null, container: null, containerId: null, podUid: null, attribution: 'host' },
  // The pod watch learns this one late (`late` below).
  { namespace: null, pod: null, container: null, containerId: ID('4'), podUid: 'u-4', attribution: 'container' },
  { namespace: null, pod: null, container: null, containerId: null, podUid: null, attribution: 'unknown' },
] as const;

/** Events as Ingest makes them, from the corpus's SECCOMP records. */
function corpusEvents(): NewEvent[] {
  const lines = readFileSync(join(sharedDir(), 'node-facts', 'corpus', 'audit-enriched.log'), 'latin1').split('\n');
  const out: NewEvent[] = [];
  for (const line of lines) {
    const p = parseLine(line, { resolve: resolveAuditSyscall, strict: true });
    if (p.kind !== 'seccomp') continue;
    const r = p.record;
    const o = ORIGINS[out.length % ORIGINS.length] ?? ORIGINS[0];
    out.push({
      time: new Date(r.time).toISOString(),
      node: 'n1',
      ...o,
      pid: r.pid,
      comm: r.comm,
      exe: r.exe,
      uid: r.uid,
      gid: r.gid,
      auid: r.auid,
      ses: r.ses,
      arch: r.arch,
      auditArch: r.auditArch,
      syscall: r.syscall,
      syscallNr: r.syscallNr,
      action: r.action,
      code: formatCode(r.code),
      errno: r.errno,
      sig: r.sig,
      compat: r.compat,
      ip: r.ip,
      auditId: r.auditId,
    });
  }
  return out;
}

const EVENTS = corpusEvents();
const timeOf = (e: NewEvent): number => Date.parse(e.time);
/** Events no column holds as they are: kept whole, and answered the same. */
const ODD: [string, (e: NewEvent) => NewEvent][] = [
  ['ip with a leading zero', (e) => ({ ...e, ip: '0x0001' })],
  ['upper-case ip', (e) => ({ ...e, ip: '0x7FFE' })],
  ['no ip', (e) => ({ ...e, ip: null })],
  ['a 64-bit ip', (e) => ({ ...e, ip: '0xffffffffff600000' })],
  ['an audit id from another time', (e) => ({ ...e, auditId: '1.000:1' })],
  ['a serial with a leading zero', (e) => ({ ...e, auditId: e.auditId.replace(':', ':0') })],
  ['a serial over 32 bits', (e) => ({ ...e, auditId: e.auditId.replace(/:\d+$/, ':99999999999') })],
  ['a time text from another time', (e) => ({ ...e, time: '2026-11-28T12:00:00.000Z' })],
  ['a pid over 32 bits', (e) => ({ ...e, pid: 2 ** 33 })],
  ['comm with a NUL and exe that would collide unescaped', (e) => ({ ...e, comm: 'a\0b', exe: 'c' })],
  ['the same, split the other way', (e) => ({ ...e, comm: 'a', exe: 'b\0c' })],
];

const QUERIES: [string, EventFilter][] = [
  ['everything', {}],
  ['namespace', { namespace: 'a' }],
  ['pod', { pod: 'p1' }],
  ['container', { container: 'web' }],
  ['container id prefix', { containerId: ID('2').slice(0, 12) }],
  ['syscall', { syscall: 'openat' }],
  ['a syscall not seen', { syscall: 'ptrace' }],
  ['since', { since: timeOf(EVENTS[20] ?? EVENTS[0]!) }],
  ['pod learned late', { pod: 'late-pod' }],
  ['namespace learned late', { namespace: 'late' }],
  ['pod and syscall', { pod: 'p2', syscall: 'write' }],
];
const LIMITS = [1, 3, 1000];

/** Two stores fed the same events, and a switch for the late pod. */
function pair(ringSize: number, maxContainers: number) {
  const state = { known: false };
  const lateResolve = (id: string) =>
    state.known && id === ID('4') ? { namespace: 'late', pod: 'late-pod', container: 'lc' } : undefined;
  const col = new EventStore({ ringSize, maxContainers, lateResolve });
  const ref = new ReferenceStore({ ringSize, maxContainers, lateResolve });
  let afterSeq = 0;
  return {
    state,
    col,
    add(e: NewEvent): void {
      col.add({ ...e }, timeOf(e));
      ref.add({ ...e }, timeOf(e));
      afterSeq = Math.max(0, col.seq - 3);
    },
    /** Every query, every limit: the same events and the same aggregates. */
    same(tt: Test, when: string): void {
      for (const [name, f0] of [...QUERIES, ['after', { afterSeq }] as [string, EventFilter]]) {
        for (const limit of LIMITS) {
          tt.strictSame(col.events(f0, limit), ref.events(f0, limit), `${when}: events, ${name}, limit ${limit}`);
        }
        tt.strictSame(
          col.aggregates(f0).map(aggregateJson),
          ref.aggregates(f0).map(aggregateJson),
          `${when}: aggregates, ${name}`,
        );
      }
    },
  };
}

t.test('every query answers as the object store did, after every add, overwrite and eviction', async (t) => {
  for (const [ringSize, maxContainers] of [
    [7, 3],
    [50, 1024],
    [1, 1],
  ] as const) {
    const p = pair(ringSize, maxContainers);
    p.same(t, `ring ${ringSize}, empty`);
    EVENTS.slice(0, 60).forEach((e, i) => {
      p.add(e);
      if (i % 5 === 0 || ringSize === 1) p.same(t, `ring ${ringSize}, after ${i + 1} events`);
    });
    p.state.known = true;
    p.same(t, `ring ${ringSize}, the pod watch learned the late pod`);
    for (const e of EVENTS.slice(60, 80)) p.add(e);
    p.same(t, `ring ${ringSize}, 20 more`);
  }
});

t.test('events no column holds are kept whole and answered the same', async (t) => {
  for (const [name, make] of ODD) {
    const p = pair(5, 8);
    p.add(EVENTS[0]!);
    p.add(make(EVENTS[1]!));
    p.add(EVENTS[2]!);
    p.same(t, name);
    for (const e of EVENTS.slice(3, 9)) p.add(e); // overwritten
    p.same(t, `${name}, overwritten`);
  }
});

t.test('interned ids survive eviction and overwrite', async (t) => {
  const cases: [string, (p: ReturnType<typeof pair>) => void][] = [
    [
      "a container's aggregate is evicted while its events are still in the ring",
      (p) => {
        for (const e of EVENTS.slice(0, 6)) p.add(e);
        // Only other containers from here: the first ones' aggregates go, their events stay.
        for (const e of EVENTS.slice(6, 30).filter((_, i) => i % ORIGINS.length === 2)) p.add(e);
      },
    ],
    [
      'the ring overwrites every event of a value, and new values take the freed ids',
      (p) => {
        for (const e of EVENTS.slice(0, 40)) p.add(e);
        for (const e of EVENTS.slice(40, 60)) p.add({ ...e, comm: `new-${e.comm ?? ''}`, exe: '/new' });
      },
    ],
  ];
  for (const [name, run] of cases) {
    const p = pair(25, 2);
    run(p);
    p.same(t, name);
    const live = p.col.interned;
    t.ok(live.procs <= 25 && live.origins <= 25 && live.calls <= 25, `${name}: no more live ids than held events`);
  }

  const i = new Interner<{ v: string }>(
    (x) => keyPart(x.v),
    (a, b) => a.v === b.v,
    (x) => ({ v: x.v }),
  );
  const a = i.acquire({ v: 'a' });
  i.acquire({ v: 'a' });
  const b = i.acquire({ v: 'b' });
  i.release(a);
  t.equal(i.get(a).v, 'a', 'an id with a reference left keeps its value');
  i.release(a);
  const c = i.acquire({ v: 'c' });
  t.equal(c, a, 'a freed id is reused');
  t.equal(i.get(b).v, 'b', 'and no other id changes');
  t.equal(i.acquire({ v: 'a' }) === c, false, 'the old value gets an id of its own again');
  t.throws(() => i.release(b + 100), RangeError, 'releasing an id never acquired is a bug, said loudly');
});

t.test('cached answers: every write changes them; an unchanged store answers 304', async (t) => {
  const state = { known: false };
  const store = new EventStore({
    ringSize: 8,
    maxContainers: 3,
    lateResolve: (id) =>
      state.known && id === ID('4') ? { namespace: 'late', pod: 'late-pod', container: 'lc' } : undefined,
  });
  const app = Fastify();
  await app.register(eventsRoutes, { store, node: 'n1' });
  t.teardown(() => app.close());
  let next = 0;
  const add = (over: Partial<NewEvent> = {}): void => {
    const e = EVENTS[next++] ?? EVENTS[0]!;
    store.add({ ...e, ...over }, timeOf(e));
  };
  for (let k = 0; k < 5; k++) add();

  const writes: [string, () => void][] = [
    ['an event of a container already seen', () => add({ ...ORIGINS[0] })],
    ['an event of a new container (one is evicted)', () => add({ ...ORIGINS[2] })],
    ['an event of the container whose pod is not known', () => add({ ...ORIGINS[4] })],
    ['the pod watch learns that pod (no event)', () => (state.known = true)],
    ['the ring overwrites its oldest event', () => add({ ...ORIGINS[1] })],
    ['an event no column holds', () => add({ ...ORIGINS[1], ip: '0x0001' })],
  ];
  const urls = ['/v1/syscalls', '/v1/syscalls?format=table', '/v1/events?limit=5', '/v1/events?pod=late-pod'];
  const fresh = (url: string): string => {
    if (url === '/v1/syscalls') return JSON.stringify({ items: store.aggregates({}).map(aggregateJson) });
    if (url === '/v1/events?limit=5') return JSON.stringify({ items: store.events({}, 5) });
    if (url === '/v1/events?pod=late-pod') return JSON.stringify({ items: store.events({ pod: 'late-pod' }, 1000) });
    return '';
  };
  for (const [name, write] of writes) {
    const etags = new Map<string, string>();
    for (const url of urls) {
      const before = await app.inject(url);
      t.equal(before.statusCode, 200);
      const etag = String(before.headers['etag']);
      etags.set(url, etag);
      const again = await app.inject({ url, headers: { 'if-none-match': etag } });
      t.equal(again.statusCode, 304, `${name}: ${url} unchanged before the write`);
      t.equal(again.body, '');
    }
    write();
    for (const url of urls) {
      const etag = etags.get(url) ?? '';
      const after = await app.inject({ url, headers: { 'if-none-match': etag } });
      t.equal(after.statusCode, 200, `${name}: ${url} answered anew`);
      t.not(after.headers['etag'], etag, `${name}: ${url} has a new ETag`);
      if (fresh(url) !== '') t.equal(after.body, fresh(url), `${name}: ${url} is what the store says now`);
    }
  }
});

t.test('event times are written exactly as Date#toISOString writes them', async (t) => {
  const text = new TimeText();
  const times = [0, 1, -1, 999, 1000, -1000, -86_400_000, 86_399_999, 8.64e15, -8.64e15, 1_795_867_209_801];
  times.push(951_782_400_000, 253_402_300_799_999, 253_402_300_800_000, -62_167_219_200_001, 0.5);
  for (let i = 0; i < 5000; i++) times.push(1_795_867_209_000 + i * 7919, Math.round(Math.sin(i) * 8.64e15));
  const wrong = times.filter((ms) => text.iso8601(ms) !== new Date(ms).toISOString());
  t.same(wrong, [], `${times.length} times, leap days, year 10000, negative years`);
});
