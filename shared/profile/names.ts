/** Kubernetes object name rules, which also keep every rendered path inside the operator directory. */

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Why `name` is not a valid object name (DNS-1123 subdomain), or undefined when it is. */
export function objectNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'must not be empty';
  if (name.length > 253) return `must be at most 253 characters (has ${name.length})`;
  if (!DNS1123_SUBDOMAIN.test(name)) {
    return `${JSON.stringify(name)} is not a valid name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Why `ns` is not a valid namespace name (DNS-1123 label), or undefined when it is. */
export function namespaceProblem(ns: string): string | undefined {
  if (ns.length === 0) return 'must not be empty';
  if (ns.length > 63) return `must be at most 63 characters (has ${ns.length})`;
  if (!DNS1123_LABEL.test(ns)) {
    return `${JSON.stringify(ns)} is not a valid namespace: use lower-case letters, digits and '-', starting and ending with a letter or digit`;
  }
  return undefined;
}
