/**
 * From the profiles the agent knows to what each node should hold: for every profile, the bytes to
 * install, or why it is not installed. Pure: the same input gives the same plan, in both the
 * standalone and the cluster mode.
 */
import { describeFindings, type Finding } from './findings.js';
import { resolveSpec } from './merge.js';
import { renderSpec } from './render.js';
import { profileKey, specDisabled } from './layout.js';
import type { SeccompProfile, SeccompProfileSpec } from './schema.js';

export { profileKey } from './layout.js';

export type Desired =
  | {
      kind: 'install';
      namespace: string;
      name: string;
      content: string;
      bases: string[];
      warnings: Finding[];
    }
  | { kind: 'disabled'; namespace: string; name: string; warnings: Finding[] }
  | { kind: 'error'; namespace: string; name: string; message: string; findings: Finding[]; bases: string[] };

/** A profile as the source gave it: valid (with warnings) or refused (with errors). */
export type KnownProfile =
  | { ok: true; profile: SeccompProfile; warnings: Finding[] }
  | { ok: false; namespace: string; name: string; errors: Finding[]; warnings: Finding[] };

/**
 * Bytes of specs that have no base profile, by spec object. The cluster agent recomputes the plan
 * from every profile on each change; with hundreds of profiles, rendering them all again was most
 * of a plan's cost. Validated specs are never mutated, so the object identifies its bytes.
 */
const renderedAlone = new WeakMap<SeccompProfileSpec, string>();

/** The plan for every known profile, keyed by `<namespace>/<name>` (`<name>` when cluster-scoped). */
export function computeDesired(known: readonly KnownProfile[]): Map<string, Desired> {
  const specs = new Map<string, SeccompProfileSpec>();
  const invalid = new Set<string>();
  for (const k of known) {
    if (k.ok) specs.set(profileKey(k.profile.metadata.namespace, k.profile.metadata.name), k.profile.spec);
    else invalid.add(profileKey(k.namespace, k.name));
  }
  const out = new Map<string, Desired>();
  for (const k of known) {
    if (!k.ok) {
      out.set(profileKey(k.namespace, k.name), {
        kind: 'error',
        namespace: k.namespace,
        name: k.name,
        findings: k.errors,
        bases: [],
        message: describeFindings(profileKey(k.namespace, k.name), k.errors),
      });
      continue;
    }
    const { namespace, name } = k.profile.metadata;
    const key = profileKey(namespace, name);
    if (specDisabled(k.profile.spec)) {
      out.set(key, { kind: 'disabled', namespace, name, warnings: k.warnings });
      continue;
    }
    const resolution = resolveSpec(namespace, name, k.profile.spec, (ns, n) => specs.get(profileKey(ns, n)));
    if (!resolution.ok) {
      const missing = resolution.bases[resolution.bases.length - 1];
      const error =
        resolution.error.reason === 'BaseProfileNotFound' &&
        missing !== undefined &&
        invalid.has(profileKey(namespace, missing))
          ? {
              ...resolution.error,
              reason: 'BaseProfileInvalid',
              message: `base profile "${missing}" is itself invalid, so this profile cannot be built`,
            }
          : resolution.error;
      out.set(key, {
        kind: 'error',
        namespace,
        name,
        findings: [error],
        bases: resolution.bases,
        message: describeFindings(key, [error]),
      });
      continue;
    }
    const alone = resolution.bases.length === 0;
    let content = alone ? renderedAlone.get(k.profile.spec) : undefined;
    if (content === undefined) {
      content = renderSpec(resolution.spec);
      if (alone) renderedAlone.set(k.profile.spec, content);
    }
    out.set(key, {
      kind: 'install',
      namespace,
      name,
      content,
      bases: resolution.bases,
      warnings: k.warnings,
    });
  }
  return out;
}
