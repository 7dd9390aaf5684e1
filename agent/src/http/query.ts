/**
 * Query strings of the event endpoints (and /v1/check): flat string parameters, unknown and
 * repeated ones refused, each value checked, and a 400 that names the parameter. Pure.
 */
import type { FastifyReply } from 'fastify';
import { agentError, type AgentError } from '../../../shared/errors.js';
import { isKnownSyscall } from '../../../shared/syscalls/index.js';
import type { EventFilter } from '../events/store.js';

export type Query = Record<string, string>;

export class BadQuery extends Error {
  readonly agentError: AgentError;
  constructor(param: string, detail: string) {
    const e = agentError('SECCOMP_AGENT_ERR_BAD_QUERY', { param, detail });
    super(e.message);
    this.agentError = e;
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const DURATION = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

/** Flat string params only; unknown and repeated parameters are errors (typos must not pass silently). */
export function readQuery(raw: unknown, allowed: readonly string[]): Query {
  const q: Query = {};
  if (raw === null || typeof raw !== 'object') return q;
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (!allowed.includes(k)) throw new BadQuery(k, `unknown parameter; use ${allowed.join(', ')}`);
    if (typeof v !== 'string') throw new BadQuery(k, 'given more than once');
    q[k] = v;
  }
  return q;
}

export function nameParam(q: Query, key: string, pattern = NAME): string | undefined {
  const v = q[key];
  if (v === undefined) return undefined;
  if (!pattern.test(v)) throw new BadQuery(key, `"${v}" is not a valid ${key} (letters, digits, '.', '_', '-')`);
  return v;
}

/** `since`: RFC 3339 time, or a duration back from now (`90s`, `5m`, `1h30m`), as kubectl logs takes. */
export function parseSince(v: string, now: number): number {
  const d = DURATION.exec(v);
  if (d !== null && v !== '') {
    const [, h, m, s, ms] = d;
    return now - ((Number(h ?? 0) * 60 + Number(m ?? 0)) * 60 + Number(s ?? 0)) * 1000 - Number(ms ?? 0);
  }
  if (RFC3339.test(v)) {
    const t = Date.parse(v);
    if (!Number.isNaN(t)) return t;
  }
  throw new BadQuery(
    'since',
    `"${v}" is neither an RFC 3339 time (2026-11-28T12:00:00Z) nor a duration (90s, 5m, 1h30m)`,
  );
}

export function intParam(q: Query, key: string, min: number, max: number): number | undefined {
  const v = q[key];
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new BadQuery(key, `"${v}" is not an integer from ${min} to ${max}`);
  }
  return Number(v);
}

export function boolParam(q: Query, key: string): boolean | undefined {
  const v = q[key];
  if (v === undefined) return undefined;
  if (v === 'true' || v === '1' || v === '') return true;
  if (v === 'false' || v === '0') return false;
  throw new BadQuery(key, `"${v}" is not true or false`);
}

export function filterOf(q: Query, now: number): EventFilter {
  const syscall = q['syscall'];
  if (syscall !== undefined && !isKnownSyscall(syscall)) {
    throw new BadQuery('syscall', `"${syscall}" is not a syscall name on any architecture we know`);
  }
  return {
    namespace: nameParam(q, 'namespace'),
    pod: nameParam(q, 'pod'),
    container: nameParam(q, 'container'),
    containerId: nameParam(q, 'containerId', CONTAINER_ID),
    syscall,
    since: q['since'] === undefined ? undefined : parseSince(q['since'], now),
  };
}

export function badRequest(reply: FastifyReply, e: BadQuery): FastifyReply {
  return reply.code(400).send({
    statusCode: 400,
    error: 'Bad Request',
    code: e.agentError.code,
    message: e.agentError.message,
  });
}

export const FILTER_PARAMS = ['namespace', 'pod', 'container', 'containerId', 'syscall', 'since'] as const;
