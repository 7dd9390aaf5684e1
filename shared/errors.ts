/**
 * The one table of coded errors. Each code has a message template; `{name}` placeholders are filled
 * from the params given to `agentError`. A unit test checks that codes are unique and well formed.
 */
export const ERRORS = {
  // --- configuration and CLI ---
  SECCOMP_AGENT_ERR_BAD_FLAG: 'invalid command line: {detail}',
  SECCOMP_AGENT_ERR_BAD_CONFIG: 'invalid setting {setting}: {detail}',
  // --- profile model and validation ---
  SECCOMP_AGENT_ERR_PROFILE_INVALID: 'SeccompProfile {profile} is invalid: {detail}',
  SECCOMP_AGENT_ERR_BASE_PROFILE: 'SeccompProfile {profile}: base profile problem: {detail}',
  SECCOMP_AGENT_ERR_SOURCE_DOCUMENT: '{file} document {doc}: {detail}',
  // --- writing to the node ---
  SECCOMP_AGENT_ERR_WRITE: 'could not write {path}: {detail}',
  SECCOMP_AGENT_ERR_REMOVE: 'could not remove {path}: {detail}',
  // --- events path (tail, parse, attribute, serve) ---
  SECCOMP_AGENT_ERR_BAD_QUERY: 'bad query parameter {param}: {detail}',
  SECCOMP_AGENT_ERR_AUDIT_SOURCE: 'audit source {source}: {detail}',
  SECCOMP_AGENT_ERR_NO_EVENTS: 'no syscall events for {selector}: {detail}',
  SECCOMP_AGENT_ERR_CHECK_PROFILE: 'cannot check {profile}: {detail}',
  SECCOMP_AGENT_ERR_UNAUTHORIZED: 'unauthorized: {detail}',
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** An error with a stable code, a filled-in message and an optional cause. */
export class AgentError extends Error {
  readonly code: ErrorCode;
  readonly params: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, params: Record<string, string>, options?: { cause?: unknown }) {
    super(formatMessage(code, params), options);
    this.name = 'AgentError';
    this.code = code;
    this.params = Object.freeze({ ...params });
  }
}

/** Fills a code's template; unknown placeholders are left visible so a missing param is noticed. */
export function formatMessage(code: ErrorCode, params: Record<string, string>): string {
  return ERRORS[code].replace(/\{(\w+)\}/g, (whole, key: string) => params[key] ?? whole);
}

/** Shorthand for `new AgentError(...)`. */
export function agentError(code: ErrorCode, params: Record<string, string>, cause?: unknown): AgentError {
  return cause === undefined ? new AgentError(code, params) : new AgentError(code, params, { cause });
}

/** Narrows an unknown caught value to an AgentError. */
export function isAgentError(e: unknown): e is AgentError {
  return e instanceof AgentError;
}

/** Narrows an unknown caught value to a Node.js system error with a `code` such as ENOENT. */
export function isErrnoException(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string';
}

/** A message for any caught value, for logs and status conditions. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
