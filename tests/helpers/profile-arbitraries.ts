/**
 * fast-check generators of would-be SeccompProfiles for fuzzing the validator: any JSON, any value,
 * profile-shaped objects whose fields are sometimes valid and sometimes not, and the real and
 * workshop profiles with a few parts replaced or removed. Shared by the unit test (10^4 inputs) and
 * the bench (10^6).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseAllDocuments } from 'yaml';
import { ACTIONS, ARCHITECTURES, FLAGS, OPERATORS } from '../../shared/profile/enums.js';
import { knownSyscallNames } from '../../shared/syscalls/index.js';
import { repoRoot, sharedDir } from './shared.js';

/** The SeccompProfile documents of the workshop and of ../shared/real-profiles, as the agent reads them. */
export function realProfileDocs(): unknown[] {
  const docs: unknown[] = [];
  for (const dir of [join(sharedDir(), 'real-profiles'), join(repoRoot, 'profiles')]) {
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.yaml') && !x.endsWith('.original.yaml'))) {
      for (const d of parseAllDocuments(readFileSync(join(dir, f), 'utf8'), { intAsBigInt: true })) {
        const v: unknown = d.toJS();
        if (v !== null && typeof v === 'object' && (v as { kind?: unknown }).kind === 'SeccompProfile') docs.push(v);
      }
    }
  }
  return docs;
}

/** Sometimes one of `valid`, sometimes anything. */
const mostly = <T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: fc.anything() });

const names = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...knownSyscallNames()) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
);

const uint64ish = fc.oneof(
  fc.nat(),
  fc.bigInt({ min: 0n, max: 2n ** 66n }),
  fc.integer({ min: -5, max: 5 }),
  fc.double(),
);

const arg = fc.record(
  {
    index: mostly(fc.integer({ min: -1, max: 7 })),
    value: mostly(uint64ish),
    valueTwo: mostly(uint64ish),
    op: mostly(fc.constantFrom(...OPERATORS)),
  },
  { requiredKeys: [] },
);

const rule = fc.record(
  {
    names: mostly(fc.array(names, { maxLength: 8 })),
    action: mostly(fc.constantFrom(...ACTIONS)),
    errnoRet: mostly(fc.oneof(fc.integer({ min: -2, max: 70_000 }), fc.nat())),
    args: mostly(fc.array(arg, { maxLength: 7 })),
  },
  { requiredKeys: [] },
);

const spec = fc.record(
  {
    defaultAction: mostly(fc.constantFrom(...ACTIONS)),
    architectures: mostly(fc.array(fc.constantFrom(...ARCHITECTURES), { maxLength: 6 })),
    flags: mostly(fc.array(fc.constantFrom(...FLAGS), { maxLength: 2 })),
    listenerPath: mostly(fc.string()),
    listenerMetadata: mostly(fc.string()),
    baseProfileName: mostly(fc.string({ maxLength: 20 })),
    disabled: mostly(fc.boolean()),
    syscalls: mostly(fc.array(rule, { maxLength: 12 })),
  },
  { requiredKeys: [] },
);

const name = fc.oneof(
  fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?$/),
  fc.string({ maxLength: 300 }),
  fc.constant('a'.repeat(240)),
);

/** A profile-shaped object: apiVersion, kind, metadata and spec, each mostly valid. */
export const profileShaped: fc.Arbitrary<unknown> = fc.record(
  {
    apiVersion: mostly(fc.constant('security-profiles-operator.x-k8s.io/v1beta1')),
    kind: mostly(fc.constant('SeccompProfile')),
    metadata: mostly(fc.record({ name: mostly(name), namespace: mostly(name) }, { requiredKeys: [] })),
    spec: mostly(spec),
  },
  { requiredKeys: [] },
);

/** Every [container, key] in a JSON-like tree (objects and arrays), the root's children first. */
function slots(root: unknown): [Record<string, unknown> | unknown[], string | number][] {
  const out: [Record<string, unknown> | unknown[], string | number][] = [];
  const walk = (v: unknown, depth: number): void => {
    if (depth > 8 || v === null || typeof v !== 'object') return;
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        out.push([v, i]);
        walk(x, depth + 1);
      });
      return;
    }
    for (const [k, x] of Object.entries(v)) {
      out.push([v as Record<string, unknown>, k]);
      walk(x, depth + 1);
    }
  };
  walk(root, 0);
  return out;
}

/** A real or workshop profile with up to 4 parts replaced by any value, removed, or duplicated. */
export function mutatedReal(docs: readonly unknown[]): fc.Arbitrary<unknown> {
  const edit = fc.tuple(fc.nat(), fc.constantFrom('replace', 'delete', 'duplicate'), fc.anything());
  return fc.tuple(fc.constantFrom(...docs), fc.array(edit, { minLength: 1, maxLength: 4 })).map(([doc, edits]) => {
    const copy = structuredClone(doc);
    for (const [at, how, value] of edits) {
      const all = slots(copy);
      const slot = all[at % Math.max(1, all.length)];
      if (slot === undefined) continue;
      const [container, key] = slot;
      if (Array.isArray(container) && typeof key === 'number') {
        if (how === 'delete') container.splice(key, 1);
        else if (how === 'duplicate') container.splice(key, 0, structuredClone(container[key]));
        else container[key] = value;
      } else if (!Array.isArray(container) && typeof key === 'string') {
        if (how === 'delete') delete container[key];
        else container[key] = how === 'duplicate' ? structuredClone(container[key]) : value;
      }
    }
    return copy;
  });
}

/** Every kind of input, weighted towards the ones that get past the schema. */
export function anyProfileInput(docs: readonly unknown[]): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.jsonValue() },
    { weight: 1, arbitrary: fc.anything() },
    { weight: 3, arbitrary: profileShaped },
    { weight: 3, arbitrary: mutatedReal(docs) },
  );
}

/** The size limits every check result must keep, whatever the input. */
export const MAX_FINDING_BYTES = 1024;
export const MAX_FINDINGS_PER_SEVERITY = 11;
