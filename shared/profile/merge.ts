/**
 * Base profiles. A profile with `baseProfileName` extends the named profile in its own namespace:
 *
 * - defaultAction is always the child's (it is required); architectures, flags, listenerPath and
 *   listenerMetadata are the child's when it sets them, otherwise inherited.
 * - Rules: the base's rules come first, then the child's. Where the child has a rule for a syscall
 *   with the same argument conditions as a base rule, the child wins: that name is removed from the
 *   base rule (a base rule left with no names is dropped). So the file never holds two rules for
 *   one syscall and one set of conditions, and the action taken is the one the child says.
 * - Bases may have bases, up to MAX_BASE_DEPTH; a missing base or a cycle is an error on the child.
 *
 * The reference operator instead unions names per action and drops argument conditions; we keep
 * conditions because dropping them turns a conditional allow into an unconditional one.
 */
import { MAX_BASE_DEPTH } from './enums.js';
import type { Finding } from './findings.js';
import type { SeccompProfileSpec, SyscallRule } from './schema.js';

/** Finds a profile's spec by namespace and name, among the profiles the agent knows. */
export type SpecLookup = (namespace: string, name: string) => SeccompProfileSpec | undefined;

export type Resolution =
  { ok: true; spec: SeccompProfileSpec; bases: string[] } | { ok: false; error: Finding; bases: string[] };

const conditionKey = (r: SyscallRule): string =>
  JSON.stringify((r.args ?? []).map((a) => [a.index, String(a.value ?? 0), String(a.valueTwo ?? 0), a.op]).sort());

/** Merges one base spec (already resolved) under a child spec. */
export function mergeOnto(base: SeccompProfileSpec, child: SeccompProfileSpec): SeccompProfileSpec {
  const childRules = child.syscalls ?? [];
  const overridden = new Set<string>();
  for (const r of childRules) for (const n of r.names) overridden.add(`${n}\u0000${conditionKey(r)}`);
  const baseRules: SyscallRule[] = [];
  for (const r of base.syscalls ?? []) {
    const key = conditionKey(r);
    const names = r.names.filter((n) => !overridden.has(`${n}\u0000${key}`));
    if (names.length > 0) baseRules.push({ ...r, names });
  }
  const merged: SeccompProfileSpec = { defaultAction: child.defaultAction };
  const architectures = child.architectures ?? base.architectures;
  if (architectures !== undefined) merged.architectures = architectures;
  const listenerPath = child.listenerPath ?? base.listenerPath;
  if (listenerPath !== undefined) merged.listenerPath = listenerPath;
  const listenerMetadata = child.listenerMetadata ?? base.listenerMetadata;
  if (listenerMetadata !== undefined) merged.listenerMetadata = listenerMetadata;
  const syscalls = [...baseRules, ...childRules];
  if (syscalls.length > 0) merged.syscalls = syscalls;
  const flags = child.flags ?? base.flags;
  if (flags !== undefined) merged.flags = flags;
  return merged;
}

/** The spec to render for `namespace/name`: its own, with its chain of base profiles merged in. */
export function resolveSpec(namespace: string, name: string, spec: SeccompProfileSpec, lookup: SpecLookup): Resolution {
  const chain: { name: string; spec: SeccompProfileSpec }[] = [{ name, spec }];
  const bases: string[] = [];
  let cur = spec;
  while (cur.baseProfileName !== undefined && cur.baseProfileName !== '') {
    const baseName = cur.baseProfileName;
    if (chain.some((c) => c.name === baseName)) {
      return {
        ok: false,
        bases,
        error: {
          severity: 'error',
          reason: 'BaseProfileCycle',
          path: 'spec.baseProfileName',
          message: `base profiles form a cycle: ${[...chain.map((c) => c.name), baseName].join(' -> ')}`,
        },
      };
    }
    if (bases.length >= MAX_BASE_DEPTH) {
      return {
        ok: false,
        bases,
        error: {
          severity: 'error',
          reason: 'BaseProfileTooDeep',
          path: 'spec.baseProfileName',
          message: `more than ${MAX_BASE_DEPTH} base profiles in a chain (${[...chain.map((c) => c.name), baseName].join(' -> ')})`,
        },
      };
    }
    const base = lookup(namespace, baseName);
    bases.push(baseName);
    if (base === undefined) {
      return {
        ok: false,
        bases,
        error: {
          severity: 'error',
          reason: 'BaseProfileNotFound',
          path: 'spec.baseProfileName',
          message: `base profile "${baseName}" was not found ${namespace === '' ? 'among the cluster-scoped profiles' : `in namespace ${namespace}`}${chain.length > 1 ? ` (chain ${[...chain.map((c) => c.name), baseName].join(' -> ')})` : ''}`,
        },
      };
    }
    chain.push({ name: baseName, spec: base });
    cur = base;
  }
  // Merge from the deepest base up, so each child overrides everything below it.
  let merged = chain[chain.length - 1]?.spec ?? spec;
  for (let i = chain.length - 2; i >= 0; i--) {
    const child = chain[i];
    if (child !== undefined) merged = mergeOnto(merged, child.spec);
  }
  const { baseProfileName: _drop, disabled: _off, state: _state, ...rest } = merged;
  return { ok: true, spec: rest, bases };
}
