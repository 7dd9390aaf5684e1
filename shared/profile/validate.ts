/**
 * Validation of SeccompProfile documents: the structure comes from the schema (Ajv), the rules the
 * schema cannot say (errnoRet per action, unknown syscall names, conflicting rules, Docker fields
 * pasted into a v1beta1 spec, object names) are checked here. Pure: no I/O.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { ACTIONS_WITH_ERRNO, API_GROUP, API_VERSION, API_VERSION_V1, KIND } from './enums.js';
import { CLUSTER_NAMESPACE, PROFILE_VERSIONS, profileKey, type Layout } from './layout.js';
import { boundFindings, clip, MAX_LISTED_FINDINGS, type Finding } from './findings.js';
import { namespaceProblem, objectNameProblem, profileNameProblem } from './names.js';
import { runtimeFindings, type Endianness } from './runtime.js';
import { SpecSchema, type SeccompProfile, type SeccompProfileSpec } from './schema.js';

/** What validation needs to know about syscalls (the generated tables, passed in to keep this pure). */
export interface SyscallCatalog {
  isKnown(name: string): boolean;
  allNames(): readonly string[];
  /** The node's byte order, which decides the architectures libseccomp can add; little when absent. */
  readonly nodeEndianness?: Endianness;
}

/** Fields of the Docker / OCI profile format that v1beta1 does not have, with what to use instead. */
const FOREIGN_FIELDS: Readonly<Record<string, string>> = {
  archMap: 'it comes from the Docker profile format; list the architectures in spec.architectures',
  defaultErrnoRet: 'v1beta1 has no default errno; SCMP_ACT_ERRNO returns EPERM unless a rule sets errnoRet',
  defaultErrno: 'v1beta1 has no default errno; set errnoRet on the SCMP_ACT_ERRNO rules',
  includes: 'it comes from the Docker profile format; keep only the rules that apply, as plain rules',
  excludes: 'it comes from the Docker profile format; keep only the rules that apply, as plain rules',
  comment: 'v1beta1 has no comment field; use a YAML comment or an annotation',
  errno: 'it comes from the Docker profile format; use errnoRet with the number (EPERM is 1)',
  name: "a rule lists its syscalls in 'names' (a list)",
  seccomp: 'put the profile fields directly under spec',
};

const ajv = new Ajv({ allErrors: true, strict: false, allowUnionTypes: true });
ajv.addFormat('int64', true);
ajv.addFormat('date-time', true);
const checkSpec = ajv.compile<SeccompProfileSpec>(SpecSchema);

/** A field name as a path segment: plain when it is an identifier, else quoted, escaped and clipped. */
function segment(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name) ? `.${name}` : `[${JSON.stringify(clip(name))}]`;
}

/** Ajv's JSON pointer (`/syscalls/0/action`, with ~0 and ~1 escapes) → `spec.syscalls[0].action`. */
function fieldPath(instancePath: string, extra?: string): string {
  const parts = instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  let out = 'spec';
  for (const p of parts) out += /^\d{1,9}$/.test(p) ? `[${p}]` : segment(p);
  return out;
}

/**
 * User input as a message shows it: strings and numbers as JSON (escaped, clipped), lists and
 * mappings by their kind only, since they can be of any size and depth.
 */
function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(clip(v));
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (v !== null && typeof v === 'object') return 'a mapping';
  return String(v);
}

function valueAt(root: unknown, instancePath: string): unknown {
  let cur: unknown = root;
  for (const p of instancePath
    .split('/')
    .slice(1)
    .map((x) => x.replace(/~1/g, '/').replace(/~0/g, '~'))) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

function ajvFinding(e: ErrorObject, spec: unknown): Finding {
  const path = fieldPath(e.instancePath);
  const value = valueAt(spec, e.instancePath);
  switch (e.keyword) {
    case 'enum': {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map(String);
      return {
        severity: 'error',
        reason: 'InvalidValue',
        path,
        message: `${describeValue(value)} is not valid; use one of ${allowed.join(', ')}`,
      };
    }
    case 'additionalProperties': {
      const field = (e.params as { additionalProperty: string }).additionalProperty;
      const hint = FOREIGN_FIELDS[field];
      return {
        severity: 'error',
        reason: 'UnknownField',
        path: fieldPath(e.instancePath, field),
        message: `is not a field of SeccompProfile ${API_VERSION}${hint === undefined ? '' : ` (${hint})`}`,
      };
    }
    case 'required': {
      const field = (e.params as { missingProperty: string }).missingProperty;
      return {
        severity: 'error',
        reason: 'MissingField',
        path: fieldPath(e.instancePath, field),
        message: 'is required',
      };
    }
    case 'minItems':
      return { severity: 'error', reason: 'EmptyList', path, message: 'must list at least one entry' };
    case 'maxItems':
      return { severity: 'error', reason: 'TooMany', path, message: `${e.message ?? 'has too many entries'}` };
    case 'minimum':
    case 'maximum':
      return {
        severity: 'error',
        reason: 'OutOfRange',
        path,
        message: `${describeValue(value)} ${e.message ?? 'is out of range'}`,
      };
    default:
      return {
        severity: 'error',
        reason: 'InvalidValue',
        path,
        message: `${describeValue(value)} ${e.message ?? 'is invalid'}`,
      };
  }
}

/**
 * Ajv knows numbers, not bigints: validate a copy where bigints are plain numbers. The spec's
 * values sit at most 4 levels down (spec.syscalls[i].args[j].value); below 6 the input is wrong
 * anyway and is left as it is, so no nesting depth can exhaust the stack.
 */
function forSchemaCheck(v: unknown, depth = 0): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (depth > 6) return v;
  if (Array.isArray(v)) return v.map((x) => forSchemaCheck(x, depth + 1));
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, forSchemaCheck(x, depth + 1)]));
  }
  return v;
}

/** Edit distance, for "did you mean" on a misspelt syscall name. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_v, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] ?? 0;
      row[j] = Math.min(cur + 1, (row[j - 1] ?? 0) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length] ?? 0;
}

/** Names longer than any syscall's (the longest is 22 characters) get no suggestion. */
const MAX_SUGGESTED_LENGTH = 32;

/** The closest known name, or undefined; O(catalog × length²), so only for a few names per profile. */
function closest(name: string, names: readonly string[]): string | undefined {
  if (name.length > MAX_SUGGESTED_LENGTH) return undefined;
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const n of names) {
    const d = distance(name, n);
    if (d < bestD) {
      bestD = d;
      best = n;
    }
  }
  return best;
}

/** The checks the schema cannot express, over a spec that passed the schema. */
function semanticFindings(spec: SeccompProfileSpec, catalog: SyscallCatalog): Finding[] {
  const out: Finding[] = [];
  // "Did you mean" costs an edit distance against every known name: only the names a message
  // lists get one (boundFindings keeps the first MAX_LISTED_FINDINGS).
  let suggestions = 0;
  (spec.syscalls ?? []).forEach((rule, i) => {
    const at = `spec.syscalls[${i}]`;
    if (rule.errnoRet !== undefined && !ACTIONS_WITH_ERRNO.includes(rule.action)) {
      out.push({
        severity: 'error',
        reason: 'ErrnoRetNotAllowed',
        path: `${at}.errnoRet`,
        message: `is only valid with ${ACTIONS_WITH_ERRNO.join(' or ')}, not ${rule.action}`,
      });
    }
    const indexes = new Set<number>();
    (rule.args ?? []).forEach((arg, j) => {
      if (indexes.has(arg.index)) {
        out.push({
          severity: 'warning',
          reason: 'RepeatedArgIndex',
          path: `${at}.args[${j}].index`,
          message: `argument ${arg.index} is compared more than once in this rule: runc then adds each condition of the rule as a rule of its own, so it applies when any one of them holds, not when all do`,
        });
      }
      indexes.add(arg.index);
      if (arg.op !== 'SCMP_CMP_MASKED_EQ' && arg.valueTwo !== undefined && BigInt(arg.valueTwo) !== 0n) {
        out.push({
          severity: 'warning',
          reason: 'ValueTwoIgnored',
          path: `${at}.args[${j}].valueTwo`,
          message: `is only used by SCMP_CMP_MASKED_EQ; ${arg.op} ignores it`,
        });
      }
    });
    rule.names.forEach((name, j) => {
      if (!catalog.isKnown(name)) {
        const guess = suggestions++ < MAX_LISTED_FINDINGS ? closest(name, catalog.allNames()) : undefined;
        out.push({
          severity: 'error',
          reason: 'UnknownSyscall',
          path: `${at}.names[${j}]`,
          message: `${describeValue(name)} is not a syscall on any architecture${guess === undefined ? '' : ` (did you mean "${guess}"?)`}; runc would skip it silently, so it is refused`,
        });
      }
    });
  });
  if (spec.state !== undefined && spec.disabled !== undefined && (spec.state === 'Disabled') !== spec.disabled) {
    out.push({
      severity: 'error',
      reason: 'StateConflict',
      path: 'spec.disabled',
      message: `is ${spec.disabled} but spec.state is ${spec.state}; use state: Disabled with disabled: true, state: Enabled with disabled: false, or only one of them`,
    });
  }
  out.push(
    ...runtimeFindings(spec, { endianness: catalog.nodeEndianness ?? 'little', isKnown: (n) => catalog.isKnown(n) }),
  );
  return out;
}

/** Validates a spec that came in as unknown data; returns the findings (empty when valid). */
export function validateSpec(spec: unknown, catalog: SyscallCatalog): Finding[] {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    return [{ severity: 'error', reason: 'MissingField', path: 'spec', message: 'is required and must be an object' }];
  }
  if (!checkSpec(forSchemaCheck(spec))) {
    return (checkSpec.errors ?? []).map((e) => ajvFinding(e, spec));
  }
  return semanticFindings(spec as SeccompProfileSpec, catalog);
}

/** The result of reading one document as a SeccompProfile (namespace '' when cluster-scoped). */
export type ProfileCheck =
  | { ok: true; profile: SeccompProfile; warnings: Finding[] }
  | { ok: false; ref: string; namespace: string; name: string; errors: Finding[]; warnings: Finding[] };

/**
 * Where a document's profile lives. From the API server the layout says it (`Cluster`: no
 * namespace; `Namespaced`: the object's own, `defaultNamespace` when absent). From a file
 * (`layout` left out): a v1 document without metadata.namespace is cluster-scoped, as the reference
 * operator's v1 profiles are; any other takes `defaultNamespace`, as kubectl does with the current
 * namespace.
 */
export interface ProfileScope {
  layout?: Layout;
  defaultNamespace?: string;
}

/** Validates a whole SeccompProfile object (apiVersion, kind, metadata and spec). */
export function validateProfile(doc: unknown, catalog: SyscallCatalog, scope: ProfileScope = {}): ProfileCheck {
  const obj = (doc !== null && typeof doc === 'object' ? doc : {}) as Record<string, unknown>;
  const meta = (obj['metadata'] !== null && typeof obj['metadata'] === 'object' ? obj['metadata'] : {}) as Record<
    string,
    unknown
  >;
  const name = typeof meta['name'] === 'string' ? meta['name'] : '';
  const given = typeof meta['namespace'] === 'string' ? meta['namespace'] : undefined;
  const clusterScoped =
    scope.layout === 'Cluster' ||
    (scope.layout === undefined && given === undefined && obj['apiVersion'] === `${API_GROUP}/${API_VERSION_V1}`);
  const namespace = clusterScoped ? CLUSTER_NAMESPACE : (given ?? scope.defaultNamespace ?? 'default');
  // A name that could be valid is kept whole (the ref keys the profile); one that is too long or
  // holds control characters is shown escaped and clipped.
  const refPart = (s: string, max: number): string =>
    s.length <= max && /^[\x20-\x7e]*$/.test(s) ? s : JSON.stringify(clip(s));
  const refName = name === '' ? '<no name>' : refPart(name, 253);
  const ref = clusterScoped ? refName : `${refPart(namespace, 63)}/${refName}`;
  const nameProblem = objectNameProblem(name);
  const fileNameProblem = nameProblem === undefined ? profileNameProblem(name) : undefined;
  const nsProblem = clusterScoped ? undefined : namespaceProblem(namespace);
  const findings: Finding[] = [];
  const apiVersion = obj['apiVersion'];
  const accepted = PROFILE_VERSIONS.map((v) => `${API_GROUP}/${v}`);
  if (typeof apiVersion !== 'string' || !accepted.includes(apiVersion)) {
    findings.push({
      severity: 'error',
      reason: 'WrongApiVersion',
      path: 'apiVersion',
      message: `${describeValue(apiVersion)} is not supported; use ${accepted.join(' or ')}`,
    });
  }
  if (obj['kind'] !== KIND) {
    findings.push({ severity: 'error', reason: 'WrongKind', path: 'kind', message: `must be ${KIND}` });
  }
  if (nameProblem !== undefined) {
    findings.push({ severity: 'error', reason: 'InvalidName', path: 'metadata.name', message: nameProblem });
  }
  if (fileNameProblem !== undefined) {
    findings.push({ severity: 'error', reason: 'NameTooLong', path: 'metadata.name', message: fileNameProblem });
  }
  if (nsProblem !== undefined) {
    findings.push({ severity: 'error', reason: 'InvalidName', path: 'metadata.namespace', message: nsProblem });
  }
  findings.push(...validateSpec(obj['spec'], catalog));
  const bounded = boundFindings(findings);
  const errors = bounded.filter((f) => f.severity === 'error');
  const warnings = bounded.filter((f) => f.severity === 'warning');
  if (errors.length > 0) return { ok: false, ref, namespace, name, errors, warnings };
  const { namespace: _given, ...rest } = meta as { namespace?: unknown };
  const profile: SeccompProfile = {
    apiVersion: apiVersion as string,
    kind: KIND,
    metadata: { ...(rest as object), name, namespace },
    spec: obj['spec'] as SeccompProfileSpec,
  };
  return { ok: true, profile, warnings };
}

/** The key of a checked document: `<name>` or `<namespace>/<name>` (layout.ts). */
export const checkKey = (c: ProfileCheck): string =>
  c.ok ? profileKey(c.profile.metadata.namespace, c.profile.metadata.name) : profileKey(c.namespace, c.name);
