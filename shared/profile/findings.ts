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

/** Formats findings for a log line, a status message or a CLI error. */
export function describeFindings(profileRef: string, findings: readonly Finding[]): string {
  return findings.map((f) => `SeccompProfile ${profileRef}: ${f.path}: ${f.message}`).join('; ');
}

export const hasErrors = (findings: readonly Finding[]): boolean => findings.some((f) => f.severity === 'error');
