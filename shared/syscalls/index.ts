/**
 * Syscall number <-> name lookups per architecture, from the kernel's own tables
 * (tables.generated.ts, made by scripts/gen-syscalls.ts).
 *
 * x32 numbers always carry __X32_SYSCALL_BIT (0x40000000), as seccomp and audit report them; a
 * number without the bit is unknown on x32 (libseccomp masks the bit off, we do not, so that an
 * x86_64 number is never silently read as x32).
 */
import { endianness } from 'node:os';
import { SYSCALL_TABLES, type TableArch } from './tables.generated.js';

/** Our architecture names. */
export type Arch = 'x86_64' | 'x86' | 'x32' | 'aarch64' | 'arm' | 'riscv64' | 'ppc64le' | 's390x';

// Fails to compile if the generated tables and `Arch` ever cover different arches.
const sameArches: [Arch, TableArch] extends [TableArch, Arch] ? true : never = true;
void sameArches;

/** Every arch we have a table for, in a fixed order. */
export const ARCHES: readonly Arch[] = Object.freeze([
  'x86_64',
  'x86',
  'x32',
  'aarch64',
  'arm',
  'riscv64',
  'ppc64le',
  's390x',
]);

/** The bit x32 sets in syscall numbers (arch/x86/include/uapi/asm/unistd.h). */
export const X32_SYSCALL_BIT = 0x40000000;

/**
 * Names libseccomp accepts that are a syscall on none of our arches. libseccomp resolves them to
 * a negative pseudo number here, so a filter naming them is valid but matches nothing.
 * - `syscall`: the mips o32 indirect syscall (4000); podman's default profile lists it.
 */
const LIBSECCOMP_ONLY_NAMES: ReadonlySet<string> = new Set(['syscall']);

type ArchMaps = {
  readonly byNr: ReadonlyMap<number, string>;
  readonly byName: ReadonlyMap<string, number>;
};

const MAPS = new Map<Arch, ArchMaps>(
  ARCHES.map((arch) => {
    const entries = SYSCALL_TABLES[arch];
    return [
      arch,
      {
        byNr: new Map(entries.map(([nr, name]) => [nr, name])),
        byName: new Map(entries.map(([nr, name]) => [name, nr])),
      },
    ];
  }),
);

/** For each name, the arches that have it (in ARCHES order). */
const ARCHES_BY_NAME = new Map<string, readonly Arch[]>();
for (const arch of ARCHES) {
  for (const [, name] of SYSCALL_TABLES[arch]) {
    ARCHES_BY_NAME.set(name, [...(ARCHES_BY_NAME.get(name) ?? []), arch]);
  }
}

function maps(arch: Arch): ArchMaps {
  const m = MAPS.get(arch);
  if (m === undefined) throw new TypeError(`unknown arch ${String(arch)}`);
  return m;
}

/** The name of syscall `nr` on `arch`, or undefined if the table has no such number. */
export function syscallName(arch: Arch, nr: number): string | undefined {
  return maps(arch).byNr.get(nr);
}

/** The number of syscall `name` on `arch` (x32 numbers include the x32 bit), or undefined. */
export function syscallNumber(arch: Arch, name: string): number | undefined {
  return maps(arch).byName.get(name);
}

/**
 * Whether `name` is a syscall on any of our arches, or a name libseccomp accepts anyway (see
 * LIBSECCOMP_ONLY_NAMES), i.e. whether a profile may list it.
 */
export function isKnownSyscall(name: string): boolean {
  return ARCHES_BY_NAME.has(name) || LIBSECCOMP_ONLY_NAMES.has(name);
}

const ALL_NAMES: readonly string[] = Object.freeze(
  [...new Set([...ARCHES_BY_NAME.keys(), ...LIBSECCOMP_ONLY_NAMES])].sort(),
);

/** Every name a profile may list, sorted (for "did you mean" suggestions). */
export function knownSyscallNames(): readonly string[] {
  return ALL_NAMES;
}

/** The catalog profile validation uses: the generated tables, and this machine's byte order. */
export const SYSCALL_CATALOG = Object.freeze({
  isKnown: isKnownSyscall,
  allNames: knownSyscallNames,
  nodeEndianness: endianness() === 'BE' ? ('big' as const) : ('little' as const),
});

/** The arches whose table has `name`, in ARCHES order; empty if none. */
export function archesKnowing(name: string): Arch[] {
  return [...(ARCHES_BY_NAME.get(name) ?? [])];
}

const SECCOMP_ARCHES: ReadonlyMap<string, Arch> = new Map([
  ['SCMP_ARCH_X86_64', 'x86_64'],
  ['SCMP_ARCH_X86', 'x86'],
  ['SCMP_ARCH_X32', 'x32'],
  ['SCMP_ARCH_AARCH64', 'aarch64'],
  ['SCMP_ARCH_ARM', 'arm'],
  ['SCMP_ARCH_RISCV64', 'riscv64'],
  ['SCMP_ARCH_PPC64LE', 'ppc64le'],
  ['SCMP_ARCH_S390X', 's390x'],
]);

/** Maps an OCI/libseccomp `SCMP_ARCH_*` name to our arch; undefined for arches we have no table for. */
export function archFromSeccomp(s: string): Arch | undefined {
  return SECCOMP_ARCHES.get(s);
}

/** AUDIT_ARCH_* values (include/uapi/linux/audit.h) as the audit `arch=` field prints them. */
const AUDIT_ARCHES: ReadonlyMap<string, Arch> = new Map([
  ['c000003e', 'x86_64'],
  ['40000003', 'x86'],
  ['c00000b7', 'aarch64'],
  ['40000028', 'arm'],
  ['c00000f3', 'riscv64'],
  ['c0000015', 'ppc64le'],
  ['80000016', 's390x'],
]);

/**
 * Maps the audit `arch=` hex field (case-insensitive, optional 0x) to our arch. x32 shares
 * x86_64's c000003e, so this never returns 'x32'; use resolveAuditSyscall to tell them apart.
 */
export function archFromAuditArch(hex: string): Arch | undefined {
  return AUDIT_ARCHES.get(hex.trim().toLowerCase().replace(/^0x/, ''));
}

/** An audit record's syscall, resolved. */
export type AuditSyscall = { readonly arch: Arch; readonly name: string | undefined };

/**
 * Resolves an audit record's `arch=` and `syscall=` pair. Under x86_64 (c000003e) a number with
 * the x32 bit set is an x32 call and is looked up in the x32 table. Undefined if the audit arch is
 * not one of ours; `name` is undefined if the number is not in the table.
 */
export function resolveAuditSyscall(auditArchHex: string, nr: number): AuditSyscall | undefined {
  let arch = archFromAuditArch(auditArchHex);
  if (arch === undefined) return undefined;
  // The bit as the kernel tests it on a 32-bit int: set, with bit 31 clear. A range check rather
  // than `&`, which would misread negative or out-of-range numbers.
  if (arch === 'x86_64' && nr >= X32_SYSCALL_BIT && nr < 2 * X32_SYSCALL_BIT) arch = 'x32';
  return { arch, name: syscallName(arch, nr) };
}
