// The byte path (scan.ts, Ingest.bytes straight into the store's columns) against the line path
// (parseLine, one event object per record): on every corpus line and on generated ones, a line the
// scanner takes reads exactly as parseLine reads it, and ingesting as bytes leaves the same events,
// aggregates, counters and metrics as ingesting as lines, through ring overwrites and evictions.
import fc from 'fast-check';
import t from 'tap';
import { resolveAuditSyscall } from '../../../shared/syscalls/index.js';
import { Attributor } from '../../../agent/src/events/attribute.js';
import { Ingest } from '../../../agent/src/events/ingest.js';
import { Interner } from '../../../agent/src/events/intern.js';
import { parseLine } from '../../../agent/src/events/parse.js';
import { EMPTY_POD_INDEX } from '../../../agent/src/events/pod-index.js';
import type { ProcReader } from '../../../agent/src/events/proc.js';
import { RecordScanner } from '../../../agent/src/events/scan.js';
import { EventStore } from '../../../agent/src/events/store.js';
import { createMetrics } from '../../../agent/src/http/metrics.js';
import { auditLineArb, corpusLines } from '../../helpers/events-fuzz.js';

const corpus = corpusLines();
/** A line as it comes out of a file: bytes (latin1 gives one character per byte), no newline. */
const asRead = (l: string): string => Buffer.from(l, 'latin1').toString('latin1').replaceAll('\n', ' ');
const readLineArb = auditLineArb(corpus).map(asRead);
const opts = { resolve: resolveAuditSyscall, strict: true };

/** What the scanner read, in parseLine's terms; undefined when it left the line to parseLine. */
function scanned(sc: RecordScanner, line: string): Record<string, unknown> | undefined {
  const buf = Buffer.from(`x${line}\n`, 'latin1');
  if (!sc.scan(buf, 1, buf.length - 1)) return undefined;
  const ms = sc.time % 1000;
  return {
    time: sc.time,
    auditId: `${(sc.time - ms) / 1000}.${String(ms).padStart(3, '0')}:${sc.serial}`,
    pid: sc.pid,
    auid: sc.auid,
    uid: sc.uid,
    gid: sc.gid,
    ses: sc.ses,
    sig: sc.sig,
    compat: sc.compat,
    syscallNr: sc.syscallNr,
    code: sc.code,
    auditArch: sc.archText,
    comm: sc.comm,
    exe: sc.exe,
    ip: sc.ipNull ? null : `0x${(BigInt(sc.ipHi) * 2n ** 32n + BigInt(sc.ipLo)).toString(16)}`,
  };
}

/** The same fields from parseLine; undefined when it gives no SECCOMP record. */
function parsed(line: string): Record<string, unknown> | undefined {
  const p = parseLine(line, opts);
  if (p.kind !== 'seccomp') return undefined;
  const r = p.record;
  return {
    time: r.time,
    auditId: r.auditId,
    pid: r.pid,
    auid: r.auid,
    uid: r.uid,
    gid: r.gid,
    ses: r.ses,
    sig: r.sig,
    compat: r.compat,
    syscallNr: r.syscallNr,
    code: r.code,
    auditArch: r.auditArch,
    comm: r.comm,
    exe: r.exe,
    ip: r.ip,
  };
}

/** A line the scanner takes must be a record parseLine reads the same; say how it differs. */
function compare(sc: RecordScanner, line: string): string | null {
  const got = scanned(sc, line);
  if (got === undefined) return null;
  const want = parsed(line);
  if (want === undefined) return `scanned a line parseLine does not take: ${JSON.stringify(line)}`;
  const a = JSON.stringify(got);
  const b = JSON.stringify(want);
  return a === b ? null : `${JSON.stringify(line)}: scanned ${a}, parsed ${b}`;
}

t.test('every corpus line: what the scanner takes reads as parseLine reads it', async (t) => {
  const sc = new RecordScanner();
  let taken = 0;
  for (const line of corpus) {
    t.equal(compare(sc, line), null);
    if (scanned(sc, line) !== undefined) taken++;
  }
  const auditd = corpus.filter((l) => l.startsWith('type=SECCOMP ')).length;
  t.equal(taken, auditd, "auditd's SECCOMP records (enriched and raw) all take the byte path");
});

t.test('lines the scanner leaves to parseLine', async (t) => {
  const base =
    'type=SECCOMP msg=audit(1795867209.801:61933): auid=4294967295 uid=0 gid=0 ses=4294967295 pid=18011 comm="sh" exe="/bin/sh" sig=0 arch=c000003e syscall=3 compat=0 ip=0x40828e code=0x7ffc0000';
  const sc = new RecordScanner();
  t.ok(scanned(sc, base), 'the canonical form is taken');
  const cases: [string, string][] = [
    ['two digits of milliseconds', base.replace('209.801', '209.80')],
    ['a leading zero in the seconds', base.replace('(1795867209', '(01795867209')],
    ['a leading zero in the serial', base.replace(':61933', ':061933')],
    ['a serial over 32 bits', base.replace(':61933', ':4294967296')],
    ['a pid over 32 bits', base.replace('pid=18011', 'pid=4294967296')],
    ['no pid', base.replace('pid=18011 ', '')],
    ['an upper-case ip', base.replace('0x40828e', '0x40828E')],
    ['an ip with a leading zero', base.replace('0x40828e', '0x040828e')],
    ['no code', base.replace(' code=0x7ffc0000', '')],
    ['a nine-digit arch', base.replace('c000003e', '0c000003e')],
    ['a syslog prefix', `Dec  2 03:00:00 n kernel: ${base}`],
    ['a time no Date holds', base.replace('1795867209.801', '9999999999999.999')],
  ];
  for (const [name, line] of cases) t.equal(scanned(sc, line), undefined, name);
  t.equal(
    await sameIngest(
      cases.map(([, l]) => l),
      16,
      4,
    ),
    null,
    'and ingested as bytes, they answer as lines do',
  );
  // Taken, and read the way parseLine reads them.
  const taken: [string, string][] = [
    ['fields in another order', base.replace('pid=18011 comm="sh"', 'comm="sh" pid=18011')],
    ['a subj= field (SELinux, AppArmor)', base.replace(' pid=', ' subj=unconfined pid=')],
    ['a repeated key: the last wins', `${base} pid=7`],
    ['hex-encoded comm', base.replace('comm="sh"', 'comm=7368206C')],
    ['no ip', base.replace(' ip=0x40828e', '')],
    ['a 64-bit ip', base.replace('0x40828e', '0xffffffffff600000')],
    ['auditd enrichment after 0x1d', `${base}\x1dAUID="unset" pid=1`],
    ['type=1326 as the kernel names it', base.replace('type=SECCOMP msg=', 'type=1326 ')],
    ['upper-case code', base.replace('0x7ffc0000', '0x7FFC0000')],
  ];
  for (const [name, line] of taken) {
    t.ok(scanned(sc, line), `${name}: taken`);
    t.equal(compare(sc, line), null, `${name}: as parseLine reads it`);
  }
  // Each again right after the canonical line, so that the remembered region (and the call's fields
  // read in the kernel's order) is what reads it.
  for (const [name, line] of cases) {
    scanned(sc, base);
    t.equal(scanned(sc, line), undefined, `${name}, after the same process`);
  }
  const afterRegion: [string, string][] = [
    ...taken,
    ['a negative syscall', base.replace('syscall=3', 'syscall=-1')],
    ['a field after code', `${base} key=1`],
    ['a field after code that counts', `${base} syscall=5`],
    ['an upper-case arch', base.replace('c000003e', 'C000003E')],
    ['a short arch', base.replace('c000003e', '3e')],
  ];
  for (const [name, line] of afterRegion) {
    scanned(sc, base);
    t.equal(compare(sc, line), null, `${name}, after the same process: as parseLine reads it`);
  }
  // The remembered process region: the same bytes, then a different process, then the first again.
  const other = base.replace('pid=18011 comm="sh"', 'pid=18012 comm="ls"');
  for (const line of [base, base, other, base, other, other, `${base} uid=5`, base])
    t.equal(compare(sc, line), null, 'region reused only where it holds');
});

t.test('generated lines: the scanner never reads a line otherwise than parseLine', async (t) => {
  const sc = new RecordScanner();
  let problem: string | null = null;
  fc.assert(
    fc.property(fc.array(readLineArb, { minLength: 1, maxLength: 6 }), (lines) => {
      // Several lines through one scanner: what it remembers from one line must not leak.
      for (const l of lines) {
        problem = compare(sc, l);
        if (problem !== null) return false;
      }
      return true;
    }),
    { numRuns: 5000 },
  );
  t.equal(problem, null);
});

/** /proc for the corpus's pids: some in containers, some on the host, some gone. */
const fakeProc: ProcReader = {
  stat: (pid) => (pid % 5 === 0 ? undefined : `${pid} (x) ${Array.from({ length: 20 }, () => '0').join(' ')}`),
  cgroup: (pid) =>
    pid % 5 === 1
      ? '0::/\n'
      : `0::/kubepods/besteffort/pod0000000${pid % 3}-0000-0000-0000-000000000000/${String(pid % 4).repeat(64)}\n`,
  bootTimeMs: () => 0,
};

function ingestAll(lines: readonly string[], asBytes: boolean, ringSize: number, maxContainers: number) {
  const metrics = createMetrics({ node: 'n', processMetrics: false });
  const store = new EventStore({ ringSize, maxContainers, onEvict: (a) => metrics.events.containerEvicted?.(a) });
  const reported: string[] = [];
  const ingest = new Ingest({
    node: 'n',
    resolve: resolveAuditSyscall,
    strict: true,
    attributor: new Attributor({ proc: fakeProc, podIndex: EMPTY_POD_INDEX, now: () => 0 }),
    store,
    metrics: metrics.events,
    onMalformed: (line, reason) => reported.push(`${line} ${reason}`),
    now: () => 0,
  });
  for (let i = 0; i < lines.length; i += 5) {
    const batch = lines.slice(i, i + 5);
    if (asBytes) ingest.bytes(Buffer.from(batch.map((l) => `${l}\n`).join(''), 'latin1'));
    else ingest.lines(batch);
  }
  return { store, ingest, reported, metrics };
}

async function sameIngest(lines: readonly string[], ringSize: number, maxContainers: number): Promise<string | null> {
  const a = ingestAll(lines, true, ringSize, maxContainers);
  const b = ingestAll(lines, false, ringSize, maxContainers);
  const pairs: [string, unknown, unknown][] = [
    ['events', a.store.events({}, 10_000), b.store.events({}, 10_000)],
    ['events of a syscall', a.store.events({ syscall: 'write' }, 10_000), b.store.events({ syscall: 'write' }, 10_000)],
    ['aggregates', a.store.aggregates({}), b.store.aggregates({})],
    ['stats', a.ingest.stats, b.ingest.stats],
    ['reported', a.reported, b.reported],
    ['interned', a.store.interned, b.store.interned],
    ['metrics', await a.metrics.registry.metrics(), await b.metrics.registry.metrics()],
  ];
  for (const [name, x, y] of pairs) {
    const sx = JSON.stringify(x, (_k, v: unknown) =>
      v instanceof Set ? [...(v as Set<unknown>)] : v instanceof Map ? [...(v as Map<unknown, unknown>)] : v,
    );
    const sy = JSON.stringify(y, (_k, v: unknown) =>
      v instanceof Set ? [...(v as Set<unknown>)] : v instanceof Map ? [...(v as Map<unknown, unknown>)] : v,
    );
    if (sx !== sy) {
      let k = 0;
      while (k < sx.length && sx[k] === sy[k]) k++;
      return `${name} differ: bytes ${sx.slice(Math.max(0, k - 80), k + 120)} / lines ${sy.slice(Math.max(0, k - 80), k + 120)}`;
    }
  }
  return null;
}

t.test(
  'ingest as bytes = ingest as lines: events, aggregates, stats, metrics (ring overwrites, evictions)',
  async (t) => {
    for (const [ring, containers] of [
      [10_000, 1024],
      [16, 2],
      [1, 1],
    ] as const) {
      t.equal(await sameIngest(corpus, ring, containers), null, `ring ${ring}, ${containers} containers`);
    }
    // Generated lines among corpus lines.
    const samples = fc.sample(fc.array(fc.oneof(fc.constantFrom(...corpus), readLineArb), { maxLength: 40 }), 200);
    let bad: string | null = null;
    for (const lines of samples) {
      bad = await sameIngest(lines, 8, 2);
      if (bad !== null) {
        bad = `${bad} in ${JSON.stringify(lines)}`;
        break;
      }
    }
    if (bad !== null) t.comment(bad);
    t.equal(bad, null, '200 generated batches');
  },
);

t.test('interner: ids found by hash are the ids found by key, and survive eviction', async (t) => {
  const mk = () =>
    new Interner<{ v: string }>(
      (x) => x.v,
      (a, b) => a.v === b.v,
      (x) => ({ v: x.v }),
    );
  // A constant hash: every value collides in the recent-id cache.
  const cases: [string, (v: string) => number][] = [
    ['constant hash', () => 0],
    ['length hash', (v) => v.length],
  ];
  for (const [name, hash] of cases) {
    const i = mk();
    const a = i.acquire({ v: 'a' }, hash('a'));
    const b = i.acquire({ v: 'bb' }, hash('bb'));
    t.equal(i.acquire({ v: 'a' }, hash('a')), a, `${name}: same value, same id`);
    t.equal(i.acquire({ v: 'bb' }), b, `${name}: found by key too`);
    i.release(a);
    i.release(a);
    // 'a' is freed; its id may go to another value, which the cache must not mistake for 'a'.
    const c = i.acquire({ v: 'ccc' }, hash('ccc'));
    t.equal(i.get(c).v, 'ccc', `${name}: a reused id holds its new value`);
    t.not(i.acquire({ v: 'a' }, hash('a')), c, `${name}: the old value gets an id of its own`);
    t.equal(i.get(b).v, 'bb', `${name}: a held id never changes`);
  }
});

t.test('attribution: a pid /proc said was gone is not asked again for records made before', async (t) => {
  let reads = 0;
  let alive = false;
  let clock = 10_000;
  const proc: ProcReader = {
    stat: (pid) => {
      reads++;
      return alive ? `${pid} (x) ${Array.from({ length: 20 }, () => '0').join(' ')}` : undefined;
    },
    cgroup: () => `0::/kubepods/pod00000000-0000-0000-0000-000000000000/${'a'.repeat(64)}\n`,
    bootTimeMs: () => 9_000,
  };
  const at = new Attributor({ proc, podIndex: EMPTY_POD_INDEX, now: () => clock });
  t.equal(at.attribute(7, 5_000).kind, 'unknown', 'gone');
  t.equal(reads, 1);
  at.newBatch();
  alive = true; // a process now has pid 7 (whatever it is, it was not there at the look)
  t.equal(at.attribute(7, 5_000).kind, 'unknown', 'a record made before the look: not asked again');
  t.equal(reads, 1);
  at.newBatch();
  clock = 20_000;
  t.equal(at.attribute(7, 9_500).kind, 'container', 'a record made within the tolerance of the look: asked');
  t.equal(reads, 2);
});
