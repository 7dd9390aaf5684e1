/**
 * Flags and environment, parsed in one place and frozen. Every flag has an environment twin
 * (`--kubelet-root` ↔ `SECCOMP_AGENT_KUBELET_ROOT`); a flag wins over its twin. Nothing else in the
 * agent reads process.env.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { agentError } from '../../shared/errors.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const AUDIT_SOURCES = ['auto', 'auditd', 'syslog', 'kmsg', 'none'] as const;
export type AuditSource = (typeof AUDIT_SOURCES)[number];

export interface Config {
  /** Standalone mode when set; cluster mode (SeccompProfiles from the API server) when not. */
  readonly profilesDir: string | undefined;
  /** Cluster mode: the kubeconfig to use; undefined means the in-cluster service account. */
  readonly kubeconfig: string | undefined;
  /** Cluster mode: the agent's own namespace, where its Leases live. */
  readonly namespace: string;
  readonly kubeletRoot: string;
  readonly nodeName: string;
  readonly listen: { readonly host: string; readonly port: number };
  readonly logLevel: LogLevel;
  readonly once: boolean;
  readonly auditSource: AuditSource;
  readonly auditLog: string | undefined;
  readonly auditFrom: 'start' | 'end';
  readonly eventRingSize: number;
  /** How many containers' syscall aggregates are kept (the least recently active are dropped). */
  readonly eventMaxContainers: number;
  /** How often every installed file is re-checked (mode and owner changes send no reliable event). */
  readonly recheckIntervalMs: number;
  /** Tests only ($SECCOMP_AGENT_TEST_TIMING, JSON): shorter lease, watch and retry timings in cluster mode. */
  readonly testTiming: Readonly<Record<string, number>> | undefined;
}

interface FlagSpec {
  type: 'string' | 'boolean';
  env: string;
  help: string;
}

const FLAGS: Readonly<Record<string, FlagSpec>> = {
  'profiles-dir': {
    type: 'string',
    env: 'SECCOMP_AGENT_PROFILES_DIR',
    help: 'standalone mode: install every SeccompProfile in the YAML/JSON files under DIR and follow changes (without it: cluster mode, profiles from the API server)',
  },
  kubeconfig: {
    type: 'string',
    env: 'SECCOMP_AGENT_KUBECONFIG',
    help: 'cluster mode: the kubeconfig file to use (default: the in-cluster service account)',
  },
  namespace: {
    type: 'string',
    env: 'SECCOMP_AGENT_NAMESPACE',
    help: "cluster mode: the agent's namespace, for its Leases (default $POD_NAMESPACE, else seccomp-agent)",
  },
  'kubelet-root': {
    type: 'string',
    env: 'SECCOMP_AGENT_KUBELET_ROOT',
    help: 'the kubelet root; profiles go to <root>/seccomp/operator/<ns>/<name>.json (default /var/lib/kubelet)',
  },
  'node-name': { type: 'string', env: 'SECCOMP_AGENT_NODE_NAME', help: "this node's name (default: the host name)" },
  listen: {
    type: 'string',
    env: 'SECCOMP_AGENT_LISTEN',
    help: 'HOST:PORT of the HTTP endpoint (default 127.0.0.1:8686)',
  },
  'log-level': {
    type: 'string',
    env: 'SECCOMP_AGENT_LOG_LEVEL',
    help: `one of ${LOG_LEVELS.join(', ')} (default info)`,
  },
  once: {
    type: 'boolean',
    env: 'SECCOMP_AGENT_ONCE',
    help: 'sync once and exit: 0 if every profile was written, 1 with the reasons if not',
  },
  'audit-source': {
    type: 'string',
    env: 'SECCOMP_AGENT_AUDIT_SOURCE',
    help: `where seccomp events come from: ${AUDIT_SOURCES.join(', ')} (default auto)`,
  },
  'audit-log': {
    type: 'string',
    env: 'SECCOMP_AGENT_AUDIT_LOG',
    help: 'the log file to tail (default /var/log/audit/audit.log; for syslog the first of /var/log/syslog, kern.log, messages)',
  },
  'audit-from': {
    type: 'string',
    env: 'SECCOMP_AGENT_AUDIT_FROM',
    help: 'start|end: read the audit log from its start or only new lines (default end)',
  },
  'event-ring-size': {
    type: 'string',
    env: 'SECCOMP_AGENT_EVENT_RING_SIZE',
    help: 'how many recent events to keep (default 10000)',
  },
  'event-max-containers': {
    type: 'string',
    env: 'SECCOMP_AGENT_EVENT_MAX_CONTAINERS',
    help: "how many containers' syscall aggregates to keep (default 1024)",
  },
  'recheck-interval': {
    type: 'string',
    env: 'SECCOMP_AGENT_RECHECK_INTERVAL',
    help: 'seconds between full re-checks of the installed files against drift (default 30)',
  },
  help: { type: 'boolean', env: '', help: 'print this help' },
};

/** Every flag the agent knows, with its environment twin ('' for --help), in --help order. */
export const FLAG_LIST: readonly { readonly flag: string; readonly env: string; readonly takesValue: boolean }[] =
  Object.entries(FLAGS).map(([name, spec]) => ({
    flag: `--${name}`,
    env: spec.env,
    takesValue: spec.type === 'string',
  }));

/** The usage text printed with --help and on a bad flag. */
export function usage(): string {
  const lines = ['Usage: seccomp-agent [flags]', '', 'Flags (each also from its environment variable):'];
  const heads = Object.entries(FLAGS).map(([name, spec]) => `  --${name}${spec.type === 'string' ? ' VALUE' : ''}`);
  // The column fits the longest flag, with two spaces before its text (a fixed width ran long names into it).
  const width = Math.max(...heads.map((h) => h.length)) + 2;
  Object.values(FLAGS).forEach((spec, i) => {
    lines.push((heads[i] ?? '').padEnd(width) + spec.help + (spec.env === '' ? '' : ` [$${spec.env}]`));
  });
  return lines.join('\n');
}

export type ParseResult = { kind: 'config'; config: Config } | { kind: 'help'; text: string };

const bad = (detail: string): Error => agentError('SECCOMP_AGENT_ERR_BAD_FLAG', { detail });

function parseListen(v: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:]+):(\d+)$/.exec(v);
  const port = m?.[2] === undefined ? NaN : Number(m[2]);
  if (m?.[1] === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw bad(`--listen "${v}" is not HOST:PORT (for example 127.0.0.1:8686)`);
  }
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

function oneOf<T extends string>(flag: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v)) throw bad(`--${flag} "${v}" is not one of ${allowed.join(', ')}`);
  return v as T;
}

function parseBool(flag: string, v: string): boolean {
  if (['1', 'true', 'yes'].includes(v.toLowerCase())) return true;
  if (['0', 'false', 'no'].includes(v.toLowerCase())) return false;
  throw bad(`$${FLAGS[flag]?.env ?? flag} "${v}" is not true or false`);
}

/** `{"leaseDurationSeconds": 4, ...}`: an object of finite numbers, frozen. */
function parseTiming(raw: string | undefined): Readonly<Record<string, number>> | undefined {
  if (raw === undefined) return undefined;
  if (raw === '') throw bad('$SECCOMP_AGENT_TEST_TIMING is set but empty: give a JSON object or unset it');
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw bad('$SECCOMP_AGENT_TEST_TIMING is not JSON');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw bad('$SECCOMP_AGENT_TEST_TIMING must be a JSON object');
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'number' || !Number.isFinite(x) || x < 0)
      throw bad(`$SECCOMP_AGENT_TEST_TIMING.${k} must be a number >= 0`);
  }
  return Object.freeze({ ...(v as Record<string, number>) });
}

/**
 * Parses argv (without node and the script) and env into a frozen Config. Throws an AgentError
 * with code SECCOMP_AGENT_ERR_BAD_FLAG on anything unknown or malformed.
 */
export function parseConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  hostname: string,
): ParseResult {
  let values: Record<string, string | boolean | undefined>;
  try {
    const options = Object.fromEntries(Object.entries(FLAGS).map(([k, s]) => [k, { type: s.type }])) as Record<
      string,
      { type: 'string' | 'boolean' }
    >;
    values = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (e: unknown) {
    throw bad(e instanceof Error ? e.message : String(e));
  }
  if (values['help'] === true) return { kind: 'help', text: usage() };
  // An empty value is never meant: `--profiles-dir ""` or `SECCOMP_AGENT_PROFILES_DIR=` would otherwise
  // resolve to the current directory (or silently fall back to a default).
  const str = (flag: string): string | undefined => {
    const v = values[flag];
    if (typeof v === 'string') {
      if (v === '') throw bad(`--${flag} is empty: give a value (see --help) or leave the flag out`);
      return v;
    }
    const spec = FLAGS[flag];
    const e = spec === undefined || spec.env === '' ? undefined : env[spec.env];
    if (e === '') throw bad(`$${spec?.env ?? flag} is set but empty: give a value (see --help) or unset it`);
    return e;
  };
  const bool = (flag: string): boolean => {
    const v = values[flag];
    if (typeof v === 'boolean') return v;
    const e = str(flag);
    return e === undefined ? false : parseBool(flag, e);
  };
  const ringRaw = str('event-ring-size') ?? '10000';
  const ring = Number(ringRaw);
  if (!Number.isInteger(ring) || ring < 1 || ring > 10_000_000)
    throw bad(`--event-ring-size "${ringRaw}" must be a whole number from 1 to 10000000`);
  const maxContainersRaw = str('event-max-containers') ?? '1024';
  const maxContainers = Number(maxContainersRaw);
  if (!Number.isInteger(maxContainers) || maxContainers < 1 || maxContainers > 1_000_000)
    throw bad(`--event-max-containers "${maxContainersRaw}" must be a whole number from 1 to 1000000`);
  const recheckRaw = str('recheck-interval') ?? '30';
  const recheck = Number(recheckRaw);
  if (!Number.isFinite(recheck) || recheck < 0.1 || recheck > 86_400)
    throw bad(`--recheck-interval "${recheckRaw}" must be a number of seconds from 0.1 to 86400`);
  const testTiming = parseTiming(env['SECCOMP_AGENT_TEST_TIMING']);
  const profilesDir = str('profiles-dir');
  const auditLog = str('audit-log');
  const kubeconfig = str('kubeconfig');
  if (env['POD_NAMESPACE'] === '') throw bad('$POD_NAMESPACE is set but empty: give a namespace or unset it');
  const namespace = str('namespace') ?? env['POD_NAMESPACE'] ?? 'seccomp-agent';
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace) || namespace.length > 63) {
    throw bad(`--namespace "${namespace}" is not a valid namespace name`);
  }
  const config: Config = {
    profilesDir: profilesDir === undefined ? undefined : resolve(profilesDir),
    kubeconfig: kubeconfig === undefined ? undefined : resolve(kubeconfig),
    namespace,
    kubeletRoot: resolve(str('kubelet-root') ?? '/var/lib/kubelet'),
    nodeName: str('node-name') ?? hostname,
    listen: parseListen(str('listen') ?? '127.0.0.1:8686'),
    logLevel: oneOf('log-level', str('log-level') ?? 'info', LOG_LEVELS),
    once: bool('once'),
    auditSource: oneOf('audit-source', str('audit-source') ?? 'auto', AUDIT_SOURCES),
    auditLog: auditLog === undefined ? undefined : resolve(auditLog),
    auditFrom: oneOf('audit-from', str('audit-from') ?? 'end', ['start', 'end'] as const),
    eventRingSize: ring,
    eventMaxContainers: maxContainers,
    recheckIntervalMs: Math.round(recheck * 1000),
    testTiming,
  };
  if (config.profilesDir === undefined && config.once) {
    throw bad('--once needs --profiles-dir: in cluster mode the agent keeps following the API server');
  }
  if (config.profilesDir !== undefined && config.kubeconfig !== undefined) {
    throw bad('--kubeconfig is for cluster mode and --profiles-dir for standalone mode: give one of them');
  }
  return { kind: 'config', config: Object.freeze(config) };
}
