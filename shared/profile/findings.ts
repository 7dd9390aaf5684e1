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

/** The reason of the one finding that stands for those left out. */
export const MORE_FINDINGS = 'MoreFindings';

/** 99990 → "99,990" (no locale data needed). */
export const thousands = (n: number): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/** What the left-out findings were, by reason: "unknown syscall names" rather than "problems". */
const WHAT: Readonly<Record<string, readonly [string, string]>> = {
  UnknownSyscall: ['unknown syscall name', 'unknown syscall names'],
  ConflictingRules: ['conflicting rule', 'conflicting rules'],
};

/**
 * The first `max` findings of each severity, and for each severity with more, one finding that
 * says how many more (e.g. "and 99,990 more unknown syscall names"). Order is kept.
 */
export function boundFindings(findings: readonly Finding[], max = MAX_LISTED_FINDINGS): Finding[] {
  const out: Finding[] = [];
  const kept = { error: 0, warning: 0 };
  const left = { error: new Map<string, number>(), warning: new Map<string, number>() };
  for (const f of findings) {
    if (f.reason === MORE_FINDINGS || kept[f.severity] < max) {
      // A summary from an earlier bounding is kept as it is: it carries the count.
      if (f.reason !== MORE_FINDINGS) kept[f.severity]++;
      out.push(f);
    } else {
      left[f.severity].set(f.reason, (left[f.severity].get(f.reason) ?? 0) + 1);
    }
  }
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
