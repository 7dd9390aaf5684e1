/**
 * Benchmark (not a test): render and write 5,000 profiles with the agent's own renderer and writer on a
 * real disk, and compare with the fsync floor of the same disk measured in the same run.
 *
 *   npm run build && npx node dist/tests/bench/write-profiles.js [--count 5000] [--dir DIR] [--keep]
 *
 * Prints: the render time; pass 1 (new files: temp file, write, fsync, chown/chmod, rename, directory
 * fsync) total, per-profile mean, p50/p99 of single installs; pass 2 (same bytes: compare and skip)
 * the same; and the floor: plain open+write+fsync+close of the same bytes to the same number of files
 * plus one directory fsync per file, run before and after our passes, with the ratio ours/floor.
 * DIR (default: os.tmpdir(), else /var/tmp) must not be tmpfs, where fsync costs nothing.
 */
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { renderSpec } from '../../shared/profile/render.js';
import type { SeccompProfileSpec } from '../../shared/profile/schema.js';
import { SYSCALL_CATALOG } from '../../shared/syscalls/index.js';
import { realFs } from '../../agent/src/profiles/fs.js';
import { parseSourceText } from '../../agent/src/profiles/source-parse.js';
import { ProfileWriter, type WriteOutcome } from '../../agent/src/profiles/writer.js';

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;
const NAMESPACES = 10;

const out = (line: string): void => void process.stdout.write(`${line}\n`);

/** The repository root, from either tests/bench/ or dist/tests/bench/. */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    dir = path.dirname(dir);
    if (path.basename(dir) !== 'dist' && path.basename(dir) !== 'tests') return dir;
  }
  throw new Error('cannot find the repository root');
}

async function realDisk(preferred: string | undefined): Promise<{ dir: string; type: string }> {
  const candidates = preferred === undefined ? [os.tmpdir(), '/var/tmp'] : [preferred];
  for (const dir of candidates) {
    const st = await fs.statfs(dir).catch(() => undefined);
    if (st !== undefined && st.type !== TMPFS_MAGIC && st.type !== RAMFS_MAGIC)
      return { dir, type: `0x${st.type.toString(16)}` };
  }
  throw new Error(`no real disk among ${candidates.join(', ')} (tmpfs/ramfs or missing): pass --dir on a real disk`);
}

/** Real specs to vary: the workshop's profiles and the big real-world ones. */
async function baseSpecs(root: string): Promise<SeccompProfileSpec[]> {
  const files = [
    path.join(root, 'profiles', 'multiple.yaml'),
    path.join(root, 'profiles', 'confine-nginx-explicit-allow.yaml'),
    path.join(root, 'profiles', 'confine-nginx-explicit-deny.yaml'),
    path.join(root, '..', 'shared', 'real-profiles', 'moby-default-amd64.yaml'),
    path.join(root, '..', 'shared', 'real-profiles', 'podman-default-amd64.yaml'),
    path.join(root, '..', 'shared', 'real-profiles', 'k8s-fine-grained.yaml'),
  ];
  const specs: SeccompProfileSpec[] = [];
  for (const file of files) {
    const text = await fs.readFile(file, 'utf8').catch(() => {
      throw new Error(`${file} is missing (the shared material must sit beside the repository)`);
    });
    for (const { profile } of parseSourceText(file, text, SYSCALL_CATALOG).profiles) {
      if (profile.ok && profile.profile.spec.baseProfileName === undefined) specs.push(profile.profile.spec);
    }
  }
  return specs;
}

/**
 * The k-th variant of a base spec, so contents differ: one syscall name left out of one rule that has
 * several, or, for a spec without such a rule, one more rule with a single name that denies (or allows)
 * what the default does not.
 */
function vary(base: SeccompProfileSpec, k: number, names: readonly string[]): SeccompProfileSpec {
  const rules = base.syscalls ?? [];
  const long = rules.flatMap((rule, j) => (rule.names.length >= 2 ? [j] : []));
  if (long.length === 0) {
    const action = base.defaultAction === 'SCMP_ACT_ERRNO' ? 'SCMP_ACT_ALLOW' : 'SCMP_ACT_ERRNO';
    return { ...base, syscalls: [...rules, { names: [names[k % names.length] ?? 'read'], action }] };
  }
  const r = long[k % long.length];
  const syscalls = rules.map((rule, j) => {
    if (j !== r) return rule;
    const drop = Math.floor(k / long.length) % rule.names.length;
    return { ...rule, names: rule.names.filter((_, x) => x !== drop) };
  });
  return { ...base, syscalls };
}

interface Stats {
  totalMs: number;
  meanMs: number;
  p50: number;
  p99: number;
  max: number;
}

function stats(samples: number[], totalMs: number): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * (s.length - 1)))] ?? NaN;
  return { totalMs, meanMs: totalMs / samples.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] ?? NaN };
}

const fmt = (s: Stats): string =>
  `total ${(s.totalMs / 1000).toFixed(2)} s, mean ${s.meanMs.toFixed(3)} ms/profile, p50 ${s.p50.toFixed(3)} ms, p99 ${s.p99.toFixed(3)} ms, max ${s.max.toFixed(1)} ms`;

/** The floor: each file plainly written and fsynced, and its directory fsynced, nothing else. */
async function floor(dir: string, items: { ns: string; name: string; content: string }[]): Promise<Stats> {
  for (let n = 0; n < NAMESPACES; n++) await fs.mkdir(path.join(dir, `ns-${n}`), { recursive: true });
  const samples: number[] = [];
  const start = performance.now();
  for (const it of items) {
    const t0 = performance.now();
    const fh = await fs.open(path.join(dir, it.ns, `${it.name}.json`), 'w', 0o644);
    await fh.write(it.content);
    await fh.sync();
    await fh.close();
    const dh = await fs.open(path.join(dir, it.ns), 'r');
    await dh.sync();
    await dh.close();
    samples.push(performance.now() - t0);
  }
  return stats(samples, performance.now() - start);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '5000' },
      dir: { type: 'string' },
      keep: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1) throw new Error(`--count ${values.count} is not a positive whole number`);
  const disk = await realDisk(values.dir);
  const work = await fs.mkdtemp(path.join(disk.dir, 'seccomp-agent-bench-'));
  const root = repoRoot();
  const isRoot = process.getuid?.() === 0;
  try {
    const bases = await baseSpecs(root);
    const names = SYSCALL_CATALOG.allNames();
    const specs = Array.from({ length: count }, (_, i) =>
      vary(bases[i % bases.length] as SeccompProfileSpec, Math.floor(i / bases.length), names),
    );
    const r0 = performance.now();
    const items = specs.map((spec, i) => ({
      ns: `ns-${i % NAMESPACES}`,
      name: `profile-${i}`,
      content: renderSpec(spec),
    }));
    const renderMs = performance.now() - r0;
    const sizes = items.map((it) => Buffer.byteLength(it.content));
    const distinct = new Set(items.map((it) => it.content)).size;
    out(
      `write-profiles: ${count} profiles in ${NAMESPACES} namespaces on ${work} (statfs type ${disk.type}), ${isRoot ? 'as root (chown 65535:65535)' : 'not root (no chown)'}`,
    );
    out(
      `  contents: ${bases.length} real base profiles varied, ${distinct} distinct, ${Math.min(...sizes)}..${Math.max(...sizes)} bytes, mean ${(sizes.reduce((a, b) => a + b, 0) / count).toFixed(0)} bytes`,
    );
    out(
      `  load average ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} on ${os.cpus().length} CPUs at start`,
    );
    out(`render: ${renderMs.toFixed(1)} ms for ${count} (${((renderMs / count) * 1000).toFixed(1)} µs each)`);

    const floorBefore = await floor(path.join(work, 'floor-before'), items);
    out(`fsync floor, before (open+write+fsync+close, dir fsync): ${fmt(floorBefore)}`);

    const writer = new ProfileWriter(
      realFs,
      { kubeletRoot: path.join(work, 'kubelet'), uid: 65535, gid: 65535, chownAllowed: isRoot },
      pino({ level: 'silent' }),
    );
    const pass = async (want: WriteOutcome): Promise<Stats> => {
      const samples: number[] = [];
      const start = performance.now();
      for (const it of items) {
        const t0 = performance.now();
        const outcome = await writer.install(it.ns, it.name, it.content);
        samples.push(performance.now() - t0);
        if (outcome !== want) throw new Error(`${it.ns}/${it.name}: ${outcome}, expected ${want}`);
      }
      return stats(samples, performance.now() - start);
    };
    const pass1 = await pass('written');
    out(
      `pass 1, new files (ProfileWriter.install: temp, write, fsync, chown, chmod, rename, dir fsync): ${fmt(pass1)}`,
    );
    const pass2 = await pass('unchanged');
    out(`pass 2, same bytes (read, compare, skip): ${fmt(pass2)}`);

    const floorAfter = await floor(path.join(work, 'floor-after'), items);
    out(`fsync floor, after: ${fmt(floorAfter)}`);
    out(
      `  load average ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} at the end`,
    );
    const floorMs = (floorBefore.totalMs + floorAfter.totalMs) / 2;
    out(
      `ratio ours/floor (floor = mean of before and after, ${(floorMs / 1000).toFixed(2)} s): pass 1 ${(pass1.totalMs / floorMs).toFixed(2)}x, ` +
        `pass 2 ${(pass2.totalMs / floorMs).toFixed(3)}x; p50 pass 1 ${(pass1.p50 / ((floorBefore.p50 + floorAfter.p50) / 2)).toFixed(2)}x`,
    );
  } finally {
    if (values.keep) out(`kept ${work}`);
    else await fs.rm(work, { recursive: true, force: true });
  }
}

await main();
