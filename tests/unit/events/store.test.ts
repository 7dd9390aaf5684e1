import t from 'tap';
import { EventStore, type SyscallEvent } from '../../../agent/src/events/store.js';

type NewEvent = Omit<SyscallEvent, 'seq'>;

export function ev(over: Partial<NewEvent> = {}): NewEvent {
  return {
    time: '2026-11-28T12:00:00.000Z',
    node: 'node1',
    namespace: 'ns',
    pod: 'p',
    container: 'c',
    containerId: 'a'.repeat(64),
    podUid: null,
    attribution: 'pod',
    pid: 1,
    comm: 'sh',
    exe: '/bin/sh',
    uid: 0,
    gid: 0,
    auid: null,
    ses: null,
    arch: 'x86_64',
    auditArch: 'c000003e',
    syscall: 'openat',
    syscallNr: 257,
    action: 'SCMP_ACT_LOG',
    code: '0x7ffc0000',
    errno: null,
    sig: 0,
    compat: 0,
    ip: '0x1',
    auditId: '1.000:1',
    ...over,
  };
}

t.test('the ring keeps the newest events; aggregates outlive it', async (t) => {
  const s = new EventStore({ ringSize: 3 });
  for (let i = 0; i < 5; i++) s.add(ev({ syscallNr: i, syscall: `s${i}` }), 1000 + i);
  t.equal(s.size, 3);
  t.same(
    s.events({}, 10).map((e) => e.syscall),
    ['s2', 's3', 's4'],
    'oldest first, newest last',
  );
  t.same(
    s.events({}, 2).map((e) => e.syscall),
    ['s3', 's4'],
    'limit keeps the newest',
  );
  const [a] = s.aggregates({});
  t.equal(a?.total, 5);
  t.same([...(a?.syscalls.keys() ?? [])].sort(), ['s0', 's1', 's2', 's3', 's4'], 'all five syscalls still counted');
  t.equal(a?.first, 1000);
  t.equal(a?.last, 1004);
});

t.test('filters', async (t) => {
  const s = new EventStore();
  s.add(ev({ namespace: 'a', pod: 'p1', container: 'web', containerId: '1'.repeat(64) }), 1000);
  s.add(ev({ namespace: 'a', pod: 'p1', container: 'side', containerId: '2'.repeat(64), syscall: 'read' }), 2000);
  s.add(ev({ namespace: 'b', pod: 'p2', container: 'web', containerId: '3'.repeat(64) }), 3000);
  s.add(ev({ namespace: null, pod: null, container: null, containerId: null, attribution: 'host' }), 4000);
  const pick = (f: Parameters<EventStore['events']>[0]): (string | null)[] =>
    s.events(f, 100).map((e) => e.containerId?.[0] ?? null);
  t.same(pick({ namespace: 'a' }), ['1', '2']);
  t.same(pick({ container: 'web' }), ['1', '3']);
  t.same(pick({ containerId: '222222222222' }), ['2'], 'id prefix');
  t.same(pick({ syscall: 'read' }), ['2']);
  t.same(pick({ since: 2500 }), ['3', null]);
  t.same(pick({ afterSeq: 2 }), ['3', null]);
  t.same(
    s.aggregates({ namespace: 'a' }).map((a) => a.container),
    ['side', 'web'],
    'sorted by namespace, pod, container',
  );
  t.same(
    s.aggregates({}).map((a) => a.namespace),
    ['a', 'a', 'b', null],
    'unattributed last',
  );
});

t.test('at most maxContainers aggregates; the least recently active goes first', async (t) => {
  const evicted: (string | null)[] = [];
  const s = new EventStore({ maxContainers: 2, onEvict: (a) => evicted.push(a.containerId) });
  s.add(ev({ containerId: 'x' }), 1);
  s.add(ev({ containerId: 'y' }), 2);
  s.add(ev({ containerId: 'x' }), 3); // x is now the most recent
  s.add(ev({ containerId: 'z' }), 4);
  t.same(evicted, ['y']);
  t.same(
    s
      .aggregates({})
      .map((a) => a.containerId)
      .sort(),
    ['x', 'z'],
  );
});

t.test('pod fields the pod watch learns later are filled at query time', async (t) => {
  let known = false;
  const s = new EventStore({
    lateResolve: (id) => (known && id === 'k' ? { namespace: 'late', pod: 'lp', container: 'lc' } : undefined),
  });
  s.add(ev({ containerId: 'k', namespace: null, pod: null, container: null, attribution: 'container' }), 1);
  t.same(s.events({ pod: 'lp' }, 10), []);
  known = true;
  t.match(s.events({ pod: 'lp' }, 10), [{ namespace: 'late', pod: 'lp', container: 'lc' }]);
  t.match(s.aggregates({ pod: 'lp' }), [{ namespace: 'late', pod: 'lp', container: 'lc' }]);
});

t.test('subscribers see every new event; a throwing one does not stop the store', async (t) => {
  const s = new EventStore();
  const seen: number[] = [];
  const off = s.subscribe((e) => seen.push(e.seq));
  s.subscribe(() => {
    throw new Error('broken client');
  });
  s.add(ev(), 1);
  s.add(ev(), 2);
  off();
  s.add(ev(), 3);
  t.same(seen, [1, 2]);
  t.equal(s.subscribers, 1);
});

t.test('unresolved numbers are aggregated apart', async (t) => {
  const s = new EventStore();
  s.add(ev({ syscall: null, syscallNr: 999 }), 1);
  s.add(ev({ syscall: null, syscallNr: 999 }), 2);
  const [a] = s.aggregates({});
  t.same([...(a?.unresolved ?? [])], [['x86_64:999', 2]]);
  t.equal(a?.syscalls.size, 0);
});
