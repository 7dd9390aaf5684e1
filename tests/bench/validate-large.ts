/**
 * Benchmark (not a test): validating a profile whose one rule lists N syscall names, for N = 10,
 * 1,000, 10,000, 100,000, when every name is unknown (each one an error) and, as the baseline in the
 * same run, when every name is a known one (the known names repeated).
 *
 *   npm run build && npx node dist/tests/bench/validate-large.js [--counts 10,1000,10000,100000]
 *
 * Each case runs in a fresh child process, so the figures do not share a heap: the validation time
 * (validateProfile plus describeFindings, as the agent calls them), the peak RSS of the child minus
 * the RSS it had before validating (process.resourceUsage().maxRSS), the heap used after validating
 * (before any collection), and the size of the message the agent would log and serve. The last
 * column is the time ratio unknown/known for the same N.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { describeFindings } from '../../shared/profile/findings.js';
import { validateProfile } from '../../shared/profile/validate.js';
import { knownSyscallNames, SYSCALL_CATALOG } from '../../shared/syscalls/index.js';

const out = (line: string): void => void process.stdout.write(`${line}\n`);

type Kind = 'unknown' | 'known';
interface Figures {
  ms: number;
  peakRssDeltaKb: number;
  heapUsedMb: number;
  messageBytes: number;
}

function names(kind: Kind, n: number): string[] {
  const known = knownSyscallNames();
  return Array.from({ length: n }, (_v, i) =>
    kind === 'unknown' ? `nosuchcall${i}` : (known[i % known.length] ?? ''),
  );
}

/** One case, in this process: prints its figures as JSON. */
function child(kind: Kind, n: number): void {
  const doc = {
    apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
    kind: 'SeccompProfile',
    metadata: { name: 'large', namespace: 'bench' },
    spec: { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: names(kind, n), action: 'SCMP_ACT_ERRNO' }] },
  };
  // Warm the validator (Ajv compiles lazily) on a small profile first.
  validateProfile({ ...doc, spec: { defaultAction: 'SCMP_ACT_LOG' } }, SYSCALL_CATALOG);
  const rssBefore = process.memoryUsage().rss / 1024;
  const t0 = process.hrtime.bigint();
  const check = validateProfile(doc, SYSCALL_CATALOG);
  const message = describeFindings(check.ok ? 'bench/large' : check.ref, check.ok ? check.warnings : check.errors);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const figures: Figures = {
    ms,
    peakRssDeltaKb: Math.max(0, process.resourceUsage().maxRSS - rssBefore),
    heapUsedMb: process.memoryUsage().heapUsed / 2 ** 20,
    messageBytes: Buffer.byteLength(message),
  };
  out(JSON.stringify(figures));
}

function runChild(kind: Kind, n: number): Figures {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', kind, '--n', String(n)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`child ${kind} ${n} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as Figures;
}

const { values } = parseArgs({
  options: {
    counts: { type: 'string', default: '10,1000,10000,100000' },
    child: { type: 'string' },
    n: { type: 'string' },
  },
});

if (values.child !== undefined) {
  child(values.child as Kind, Number(values.n));
} else {
  const fmt = (f: Figures): string =>
    `${f.ms.toFixed(1).padStart(9)} ms ${(f.peakRssDeltaKb / 1024).toFixed(1).padStart(7)} MB peak+ ${f.heapUsedMb
      .toFixed(1)
      .padStart(6)} MB heap ${String(f.messageBytes).padStart(6)} B msg`;
  out(`validate-large: one rule with N names; each case in a fresh process (node ${process.version})`);
  for (const n of values.counts.split(',').map(Number)) {
    const known = runChild('known', n);
    const unknown = runChild('unknown', n);
    out(`N=${String(n).padStart(6)}  known (baseline): ${fmt(known)}`);
    out(`          unknown:          ${fmt(unknown)}   time ratio unknown/known ${(unknown.ms / known.ms).toFixed(2)}`);
  }
}
