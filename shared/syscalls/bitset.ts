/**
 * Sets of syscall numbers of one architecture as compact bitsets, for node reports: bit i set means
 * the call with bit index i. Base64, trailing zero bytes cut, so a recording of 60 calls on x86_64
 * costs about 80 characters however many events it saw, and two sets merge with a bitwise or.
 *
 * Bit indexes: the number itself, except x32 (0x40000000 + i → bit i, as its numbers carry the x32
 * bit) and ARM's private calls 0x0f0001…0x0f0006 (→ bit 1024 + n − 0x0f0000). Every table we ship
 * fits in 1,031 bits; numbers up to MAX_BITS − 1 that no table names are kept as they are (the
 * kernel never renumbers, so a newer kernel's calls survive until the tables know them). Pure.
 */
import { X32_SYSCALL_BIT, type Arch } from './index.js';

/** Bits a set can hold: 512 bytes, 684 base64 characters at most. */
export const MAX_BITS = 4096;
const ARM_PRIVATE_BASE = 0x0f0000;
const ARM_PRIVATE_BIT = 1024;
const ARM_PRIVATE_COUNT = 16;

/** The bit index of `nr` on `arch`, or undefined when a set cannot hold it. */
export function bitOf(arch: Arch, nr: number): number | undefined {
  if (!Number.isInteger(nr) || nr < 0) return undefined;
  let bit = nr;
  if (arch === 'x32') {
    if (nr < X32_SYSCALL_BIT) return undefined;
    bit = nr - X32_SYSCALL_BIT;
  } else if (arch === 'arm' && nr >= ARM_PRIVATE_BASE) {
    if (nr >= ARM_PRIVATE_BASE + ARM_PRIVATE_COUNT) return undefined;
    bit = ARM_PRIVATE_BIT + (nr - ARM_PRIVATE_BASE);
  } else if (arch === 'arm' && nr >= ARM_PRIVATE_BIT && nr < ARM_PRIVATE_BIT + ARM_PRIVATE_COUNT) {
    return undefined; // those bits are the private calls'
  }
  return bit < MAX_BITS ? bit : undefined;
}

/** The syscall number of bit `bit` on `arch` (the inverse of bitOf). */
export function nrOfBit(arch: Arch, bit: number): number {
  if (arch === 'x32') return X32_SYSCALL_BIT + bit;
  if (arch === 'arm' && bit >= ARM_PRIVATE_BIT && bit < ARM_PRIVATE_BIT + ARM_PRIVATE_COUNT)
    return ARM_PRIVATE_BASE + (bit - ARM_PRIVATE_BIT);
  return bit;
}

function trimmed(bytes: Uint8Array): string {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return Buffer.from(bytes.buffer, bytes.byteOffset, end).toString('base64');
}

/** The set of `nrs` on `arch`; `outside`: the numbers a set cannot hold (to count apart). */
export function encodeSyscalls(arch: Arch, nrs: Iterable<number>): { bits: string; outside: number[] } {
  const bytes = new Uint8Array(MAX_BITS / 8);
  const outside: number[] = [];
  for (const nr of nrs) {
    const bit = bitOf(arch, nr);
    if (bit === undefined) outside.push(nr);
    else bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) | (1 << (bit & 7));
  }
  return { bits: trimmed(bytes), outside: [...new Set(outside)].sort((a, b) => a - b) };
}

/** The bytes of a set, or an error that says what is wrong with it. */
function bytesOf(bits: string): Uint8Array | Error {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(bits) || bits.length % 4 !== 0) {
    return new Error(`not a syscall set: ${JSON.stringify(bits.slice(0, 40))} is not base64`);
  }
  const b = Buffer.from(bits, 'base64');
  if (b.length > MAX_BITS / 8) return new Error(`not a syscall set: ${b.length} bytes, more than ${MAX_BITS / 8}`);
  return new Uint8Array(b);
}

/** The numbers in a set, ascending; an Error for a value that is not a set. */
export function decodeSyscalls(arch: Arch, bits: string): number[] | Error {
  const bytes = bytesOf(bits);
  if (bytes instanceof Error) return bytes;
  const out: number[] = [];
  bytes.forEach((byte, i) => {
    for (let j = 0; j < 8; j++) if ((byte & (1 << j)) !== 0) out.push(nrOfBit(arch, i * 8 + j));
  });
  return out.sort((a, b) => a - b);
}

/** The union of two sets (the same arch); an Error when either is not a set. */
export function unionSyscalls(a: string, b: string): string | Error {
  const x = bytesOf(a);
  if (x instanceof Error) return x;
  const y = bytesOf(b);
  if (y instanceof Error) return y;
  const out = new Uint8Array(Math.max(x.length, y.length));
  for (let i = 0; i < out.length; i++) out[i] = (x[i] ?? 0) | (y[i] ?? 0);
  return trimmed(out);
}
