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

/** The longest file name Linux file systems take (NAME_MAX), in bytes. */
const NAME_MAX = 255;
/**
 * The node file is `<name>.json`, and npm's write-file-atomic first writes `<name>.json.<n>` with n
 * a uint32 in decimal (up to 10 digits; node_modules/write-file-atomic/lib/index.js getTmpname).
 * Names are ASCII, so characters are bytes.
 */
const TEMP_SUFFIX_MAX = '.json'.length + '.'.length + String(2 ** 32 - 1).length;

/** The longest profile name whose file and temporary file fit NAME_MAX: 239. */
export const MAX_PROFILE_NAME_LENGTH = NAME_MAX - TEMP_SUFFIX_MAX;

/** Why a valid object name cannot name a profile file, or undefined when it can. */
export function profileNameProblem(name: string): string | undefined {
  if (name.length <= MAX_PROFILE_NAME_LENGTH) return undefined;
  return `is ${name.length} characters; profile names can be at most ${MAX_PROFILE_NAME_LENGTH} characters, because the node file <name>.json and its temporary file <name>.json.<up to 10 digits> must fit the ${NAME_MAX}-byte file name limit`;
}
