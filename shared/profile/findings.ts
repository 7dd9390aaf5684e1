/** A problem found in a profile, with the field it is about. */
export interface Finding {
  /** 'error': the profile is refused; 'warning': it is installed and the warning is shown loudly. */
  severity: 'error' | 'warning';
  /** A CamelCase reason, as Kubernetes uses in conditions and events. */
  reason: string;
  /** The field path, such as `spec.syscalls[2].names[0]`; `metadata.name` for the name. */
  path: string;
  /** What is wrong and what would be valid. */
  message: string;
}

/**
 * How many findings of one severity a profile check keeps, and a message lists. Input can hold any
 * number of problems (100,000 unknown names); what is kept, logged and served stays bounded.
 */
export const MAX_LISTED_FINDINGS = 10;

/** Longest piece of user input quoted in a message (a value, a field name). */
export const MAX_QUOTED_CHARS = 64;

/** At most MAX_QUOTED_CHARS of `s`, saying how long it really was. */
export function clip(s: string): string {
  return s.length <= MAX_QUOTED_CHARS ? s : `${s.slice(0, MAX_QUOTED_CHARS)}… (${s.length} characters)`;
}

/** User text as a message quotes it: clipped and escaped as a JSON string. */
export const quote = (s: string): string => JSON.stringify(clip(s));

/** The reason of the one finding that stands for those left out. */
export const MORE_FINDINGS = 'MoreFindings';

/** 99990 → "99,990" (no locale data needed). */
export const thousands = (n: number): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/** What the left-out findings were, by reason: "unknown syscall names" rather than "problems". */
const WHAT: Readonly<Record<string, readonly [string, string]>> = {
  UnknownSyscall: ['unknown syscall name', 'unknown syscall names'],
  ConflictingRules: ['conflicting rule', 'conflicting rules'],
  SyscallUnknownToLibseccomp: ['name libseccomp 2.5.4 does not know', 'names libseccomp 2.5.4 does not know'],
};

/**
 * The first `max` findings of each severity, and for each severity with more, one finding that
 * says how many more (e.g. "and 99,990 more unknown syscall names"). Order is kept.
 */
export function boundFindings(findings: readonly Finding[], max = MAX_LISTED_FINDINGS): Finding[] {
  // Which to keep: summaries from an earlier bounding (they carry a count), then the first finding
  // of each reason (so one rare problem is not hidden behind 100,000 of another), then the rest in order.
  const keep = new Set<number>();
  const kept = { error: 0, warning: 0 };
  const reasons = new Set<string>();
  findings.forEach((f, i) => {
    if (f.reason === MORE_FINDINGS) keep.add(i);
    else if (!reasons.has(`${f.severity}:${f.reason}`) && kept[f.severity] < max) {
      reasons.add(`${f.severity}:${f.reason}`);
      keep.add(i);
      kept[f.severity]++;
    }
  });
  findings.forEach((f, i) => {
    if (!keep.has(i) && kept[f.severity] < max) {
      keep.add(i);
      kept[f.severity]++;
    }
  });
  const out: Finding[] = [];
  const left = { error: new Map<string, number>(), warning: new Map<string, number>() };
  findings.forEach((f, i) => {
    if (keep.has(i)) out.push(f);
    else left[f.severity].set(f.reason, (left[f.severity].get(f.reason) ?? 0) + 1);
  });
  for (const severity of ['error', 'warning'] as const) {
    const counts = [...left[severity]];
    const total = counts.reduce((n, [, c]) => n + c, 0);
    if (total === 0) continue;
    const only = counts.length === 1 ? WHAT[counts[0]?.[0] ?? ''] : undefined;
    const what = only ?? (severity === 'error' ? ['error', 'errors'] : ['warning', 'warnings']);
    out.push({
      severity,
      reason: MORE_FINDINGS,
      path: 'spec',
      message: `and ${thousands(total)} more ${total === 1 ? what[0] : what[1]}, not listed (${kept[severity]} shown)`,
    });
  }
  return out;
}

/** Formats findings for a log line, a status message or a CLI error; bounded like boundFindings. */
export function describeFindings(profileRef: string, findings: readonly Finding[]): string {
  return boundFindings(findings)
    .map((f) => `SeccompProfile ${profileRef}: ${f.path}: ${f.message}`)
    .join('; ');
}

export const hasErrors = (findings: readonly Finding[]): boolean => findings.some((f) => f.severity === 'error');
