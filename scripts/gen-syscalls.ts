/**
 * Generates shared/syscalls/tables.generated.ts (syscall number <-> name per arch) from the
 * kernel's own syscall tables.
 *
 *   npx node scripts/gen-syscalls.ts [kernelDir] [--check]
 *
 * kernelDir defaults to ../shared/linux-syscalls relative to the repo root; it holds verbatim
 * copies of the kernel files at their repo-relative paths. --check writes nothing and exits 1 when
 * the committed file differs from what would be generated.
 *
 * Which rows count: every row whose ABI the arch selects, whether or not it has an entry point.
 * Rows such as x86_64 `183 common afs_syscall` (no entry point) or s390x `149 common _sysctl -`
 * name numbers the kernel has reserved: a call to them returns ENOSYS, but seccomp filters and
 * audit records still see that number, and libseccomp resolves those names to those numbers.
 * Numbers with no row at all are left out (unknown).
 *
 * This file uses only erasable TypeScript syntax and node: imports so Node 24 runs it directly.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** x32 syscall numbers carry this bit (arch/x86/include/uapi/asm/unistd.h). */
export const X32_SYSCALL_BIT = 0x40000000;

/** ARM private syscalls live at __ARM_NR_BASE = __NR_SYSCALL_BASE + 0x0f0000 (EABI base is 0). */
const ARM_NR_BASE = 0x0f0000;

/**
 * ARM-private calls from arch/arm/include/uapi/asm/unistd.h (not in syscall.tbl, not in the copy).
 * Names as libseccomp spells them (it drops the __ARM_NR_ prefix).
 */
const ARM_PRIVATE: readonly (readonly [number, string])[] = [
  [ARM_NR_BASE + 1, 'breakpoint'],
  [ARM_NR_BASE + 2, 'cacheflush'],
  [ARM_NR_BASE + 3, 'usr26'],
  [ARM_NR_BASE + 4, 'usr32'],
  [ARM_NR_BASE + 5, 'set_tls'],
  [ARM_NR_BASE + 6, 'get_tls'],
];

/**
 * The 64-bit ABIs every generic-table arch gets before its Makefile.syscalls adds its own
 * (`syscall_abis_64 += common,64` in scripts/Makefile.asm-headers, not in the copy).
 */
const GENERIC_DEFAULT_ABIS_64 = ['common', '64'];

type TableSpec = {
  /** Our arch name; must match `Arch` in shared/syscalls/index.ts. */
  readonly arch: string;
  /** Path of the .tbl file relative to kernelDir. */
  readonly table: string;
  /** ABIs selected, or the Makefile.syscalls that adds ABIs to GENERIC_DEFAULT_ABIS_64. */
  readonly abis: readonly string[] | { readonly makefile: string };
  /** Added to each table number (x32). */
  readonly numberBit?: number;
  /** Extra rows that are not in the table. */
  readonly extra?: readonly (readonly [number, string])[];
  /** Why, for the generated file's comment. */
  readonly note?: string;
};

const SPECS: readonly TableSpec[] = [
  { arch: 'x86_64', table: 'arch/x86/entry/syscalls/syscall_64.tbl', abis: ['common', '64'] },
  { arch: 'x86', table: 'arch/x86/entry/syscalls/syscall_32.tbl', abis: ['i386'] },
  {
    arch: 'x32',
    table: 'arch/x86/entry/syscalls/syscall_64.tbl',
    abis: ['common', 'x32'],
    numberBit: X32_SYSCALL_BIT,
    note: 'numbers include __X32_SYSCALL_BIT 0x40000000, as seccomp and audit see them',
  },
  {
    arch: 'aarch64',
    table: 'scripts/syscall.tbl',
    abis: { makefile: 'arch/arm64/kernel/Makefile.syscalls' },
  },
  {
    arch: 'arm',
    table: 'arch/arm/tools/syscall.tbl',
    abis: ['common', 'eabi'],
    extra: ARM_PRIVATE,
    note: 'EABI; plus ARM-private calls at 0x0f0001.. from arch/arm/include/uapi/asm/unistd.h',
  },
  {
    arch: 'riscv64',
    table: 'scripts/syscall.tbl',
    abis: { makefile: 'arch/riscv/kernel/Makefile.syscalls' },
  },
  {
    arch: 'ppc64le',
    table: 'arch/powerpc/kernel/syscalls/syscall.tbl',
    abis: ['common', '64', 'nospu'],
  },
  { arch: 's390x', table: 'arch/s390/kernel/syscalls/syscall.tbl', abis: ['common', '64'] },
];

/** One row of a kernel syscall table. */
export type TableRow = { readonly nr: number; readonly abi: string; readonly name: string };

/** Parses `<nr> <abi> <name> [<entry> [<compat entry> [noreturn]]]` rows; `#` starts a comment. */
export function parseTable(text: string, file: string): TableRow[] {
  const rows: TableRow[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const [nrText, abi, name] = line.split(/\s+/);
    if (nrText === undefined || abi === undefined || name === undefined || !/^\d+$/.test(nrText)) {
      throw new Error(`${file}:${i + 1}: not a syscall table row: ${raw}`);
    }
    // Names are written into generated source unescaped: only C identifiers may pass.
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new Error(`${file}:${i + 1}: not a syscall name: ${name}`);
    }
    rows.push({ nr: Number(nrText), abi, name });
  });
  return rows;
}

/** Reads the ABIs a Makefile.syscalls adds to `syscall_abis_64` (space or comma separated). */
export function parseMakefileAbis64(text: string): string[] {
  const abis: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*syscall_abis_64\s*\+?=\s*(.*)$/.exec(line.replace(/#.*/, ''));
    if (m?.[1] !== undefined) abis.push(...m[1].split(/[\s,]+/).filter((a) => a !== ''));
  }
  return abis;
}

type BuiltTable = {
  readonly spec: TableSpec;
  readonly abis: readonly string[];
  readonly sources: readonly string[];
  readonly entries: readonly (readonly [number, string])[];
};

function buildTable(spec: TableSpec, read: (rel: string) => string): BuiltTable {
  const sources = [spec.table];
  let abis: readonly string[];
  if (Array.isArray(spec.abis)) {
    abis = spec.abis;
  } else {
    const { makefile } = spec.abis as { readonly makefile: string };
    sources.push(makefile);
    abis = [...GENERIC_DEFAULT_ABIS_64, ...parseMakefileAbis64(read(makefile))];
  }
  const byNr = new Map<number, string>();
  const byName = new Map<string, number>();
  const add = (nr: number, name: string, where: string): void => {
    const had = byNr.get(nr);
    if (had !== undefined) throw new Error(`${spec.arch}: ${where}: nr ${nr} is both ${had} and ${name}`);
    const hadNr = byName.get(name);
    if (hadNr !== undefined) throw new Error(`${spec.arch}: ${where}: ${name} is both ${hadNr} and ${nr}`);
    byNr.set(nr, name);
    byName.set(name, nr);
  };
  for (const row of parseTable(read(spec.table), spec.table)) {
    if (abis.includes(row.abi)) add(row.nr + (spec.numberBit ?? 0), row.name, spec.table);
  }
  for (const [nr, name] of spec.extra ?? []) add(nr, name, 'extra rows');
  const entries = [...byNr].sort((a, b) => a[0] - b[0]);
  return { spec, abis, sources, entries };
}

const REGENERATE = 'npx node scripts/gen-syscalls.ts';

/** Renders the generated module from the kernel tables in kernelDir. Pure apart from reading. */
export function generate(kernelDir: string): string {
  const cache = new Map<string, string>();
  const read = (rel: string): string => {
    let text = cache.get(rel);
    if (text === undefined) {
      text = readFileSync(join(kernelDir, rel), 'utf8');
      cache.set(rel, text);
    }
    return text;
  };
  const tables = SPECS.map((spec) => buildTable(spec, read));
  const sha = (rel: string): string => createHash('sha256').update(read(rel)).digest('hex');

  const out: string[] = [];
  out.push('// GENERATED FILE - DO NOT EDIT.');
  out.push(`// Generated by scripts/gen-syscalls.ts from the kernel syscall tables in`);
  out.push('// ../shared/linux-syscalls. Regenerate from the repo root with:');
  out.push(`//   ${REGENERATE} [kernelDir]`);
  out.push('// Every row of a selected ABI is kept, with or without an entry point (reserved numbers');
  out.push('// such as afs_syscall still reach seccomp and audit); numbers with no row are unknown.');
  out.push('// Sources (sha256):');
  const allSources = [...new Set(tables.flatMap((t) => t.sources))].sort();
  for (const rel of allSources) out.push(`//   ${rel} ${sha(rel)}`);
  out.push('');
  out.push('/** The arches these tables cover. */');
  // Split as prettier (print width 100) would, so formatting the file leaves it unchanged.
  out.push('export type TableArch =');
  out.push(`  ${tables.map((t) => `'${t.spec.arch}'`).join(' | ')};`);
  out.push('');
  out.push('/** [number, name] pairs per arch, ascending by number. */');
  out.push('export const SYSCALL_TABLES: Readonly<Record<TableArch, readonly (readonly [number, string])[]>> = {');
  for (const t of tables) {
    out.push(`  // ${t.spec.table}, abis ${t.abis.join(',')}: ${t.entries.length} entries`);
    if (t.spec.note !== undefined) out.push(`  // ${t.spec.note}`);
    out.push(`  ${t.spec.arch}: [`);
    for (const [nr, name] of t.entries) out.push(`    [${nr}, '${name}'],`);
    out.push('  ],');
  }
  out.push('};');
  out.push('');
  return out.join('\n');
}

/** The repo root: the nearest directory above this file with a package.json (works from dist/). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('no package.json above scripts/gen-syscalls');
    dir = up;
  }
}

function main(argv: readonly string[]): number {
  const check = argv.includes('--check');
  const positional = argv.filter((a) => !a.startsWith('--'));
  const root = repoRoot();
  const kernelDir = resolve(positional[0] ?? join(root, '..', 'shared', 'linux-syscalls'));
  const target = join(root, 'shared', 'syscalls', 'tables.generated.ts');
  const text = generate(kernelDir);
  if (check) {
    const current = existsSync(target) ? readFileSync(target, 'utf8') : '';
    if (current !== text) {
      process.stderr.write(`${target} is stale; run: ${REGENERATE}\n`);
      return 1;
    }
    return 0;
  }
  writeFileSync(target, text);
  process.stdout.write(`wrote ${target}\n`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
