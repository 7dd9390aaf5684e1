// Issue 15's transport: syscall sets as base64 bitsets (shared/syscalls/bitset.ts), for the node
// reports that carry recordings to the aggregator.
import t from 'tap';
import {
  MAX_BITS,
  bitOf,
  decodeSyscalls,
  encodeSyscalls,
  nrOfBit,
  unionSyscalls,
} from '../../shared/syscalls/bitset.js';
import { ARCHES, X32_SYSCALL_BIT } from '../../shared/syscalls/index.js';
import { SYSCALL_TABLES } from '../../shared/syscalls/tables.generated.js';

t.test('every number of every table we ship round-trips, and all fit in 1,031 bits', async (t) => {
  for (const arch of ARCHES) {
    const nrs = SYSCALL_TABLES[arch].map(([nr]) => nr).sort((a, b) => a - b);
    const { bits, outside } = encodeSyscalls(arch, nrs);
    t.same(outside, [], `${arch}: every number has a bit`);
    t.same(decodeSyscalls(arch, bits), nrs, `${arch}: ${nrs.length} numbers back`);
    const maxBit = Math.max(...nrs.map((n) => bitOf(arch, n) ?? Infinity));
    t.ok(maxBit < 1031, `${arch}: highest bit ${maxBit}`);
    t.ok(bits.length <= Math.ceil(1031 / 8 / 3) * 4, `${arch}: ${bits.length} base64 characters for the whole table`);
  }
});

t.test('bit indexes', async (t) => {
  const cases: [Parameters<typeof bitOf>[0], number, number | undefined][] = [
    ['x86_64', 0, 0],
    ['x86_64', 39, 39],
    ['x86_64', 9999, undefined], // beyond MAX_BITS: counted apart
    ['x86_64', MAX_BITS - 1, MAX_BITS - 1], // a number no table names is kept
    ['x86_64', -1, undefined],
    ['x86_64', 1.5, undefined],
    ['x32', X32_SYSCALL_BIT + 39, 39],
    ['x32', 39, undefined], // an x32 number always carries the x32 bit
    ['arm', 0x0f0001, 1025],
    ['arm', 0x0f0006, 1030],
    ['arm', 1025, undefined], // the private calls' bits
    ['arm', 0x0f0010, undefined],
  ];
  for (const [arch, nr, bit] of cases) {
    t.equal(bitOf(arch, nr), bit, `${arch} ${nr} → ${String(bit)}`);
    if (bit !== undefined) t.equal(nrOfBit(arch, bit), nr, `and back`);
  }
});

t.test('compact: trailing zero bytes are cut; the empty set is ""', async (t) => {
  t.equal(encodeSyscalls('x86_64', []).bits, '');
  t.equal(encodeSyscalls('x86_64', [0]).bits, 'AQ==');
  t.equal(encodeSyscalls('x86_64', [0, 0, 0]).bits, 'AQ==', 'a set: repeats count once');
  const sixty = Array.from({ length: 60 }, (_, i) => i * 7);
  t.ok(encodeSyscalls('x86_64', sixty).bits.length <= 72, '60 calls spread to 413: at most 72 characters');
  t.same(encodeSyscalls('x86_64', [5, 70000, 9999, 70000]).outside, [9999, 70000], 'outside: sorted, once each');
});

t.test('union is the set union, whatever the lengths', async (t) => {
  const a = encodeSyscalls('x86_64', [1, 2, 300]).bits;
  const b = encodeSyscalls('x86_64', [2, 3]).bits;
  const u = unionSyscalls(a, b);
  t.same(typeof u === 'string' ? decodeSyscalls('x86_64', u) : u, [1, 2, 3, 300]);
  t.equal(unionSyscalls('', b), b, 'the empty set is the identity');
  t.equal(unionSyscalls(b, b), b, 'idempotent');
});

t.test('a value that is not a set is an error that says why', async (t) => {
  const bad = decodeSyscalls('x86_64', 'not base64!');
  t.ok(bad instanceof Error);
  t.match(String(bad), /"not base64!" is not base64/);
  const big = Buffer.alloc(MAX_BITS / 8 + 1, 1).toString('base64');
  t.match(String(decodeSyscalls('x86_64', big)), /more than 512/);
  t.ok(unionSyscalls('AQ==', '%%%%') instanceof Error);
});
