/**
 * Reading SeccompProfiles out of YAML or JSON text: multi-document YAML, `kind: List`, other kinds
 * (Namespace, Pod, ...) ignored. Pure: text in, profiles and problems out.
 */
import { parseAllDocuments } from 'yaml';
import { formatMessage, messageOf } from '../../../shared/errors.js';
import type { KnownProfile } from '../../../shared/profile/desired.js';
import { KIND } from '../../../shared/profile/enums.js';
import { validateProfile, type SyscallCatalog } from '../../../shared/profile/validate.js';

/** yaml's limit on alias uses while building one document's value: the defence against alias bombs. */
export const MAX_ALIAS_COUNT = 100;

/** A problem with one document of one file, for the log and for --once. */
export interface SourceProblem {
  file: string;
  /** 1-based document number in the file; 0 when the file as a whole is at fault. */
  doc: number;
  message: string;
}

export interface ParsedFile {
  profiles: { doc: number; profile: KnownProfile }[];
  problems: SourceProblem[];
  /** False when the file could not be read as YAML at all (so it says nothing about its profiles). */
  readable: boolean;
}

/** Integers come from YAML as bigint so 64-bit argument values keep every bit; small ones go back to number. */
function normalizeInts(v: unknown): unknown {
  if (typeof v === 'bigint')
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (Array.isArray(v)) return v.map(normalizeInts);
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalizeInts(x)]));
  return v;
}

const problem = (file: string, doc: number, detail: string): SourceProblem => ({
  file,
  doc,
  message: formatMessage('SECCOMP_AGENT_ERR_SOURCE_DOCUMENT', { file, doc: String(doc), detail }),
});

/** Parses one file's text. `file` is only used in messages. */
export function parseSourceText(file: string, text: string, catalog: SyscallCatalog): ParsedFile {
  const out: ParsedFile = { profiles: [], problems: [], readable: true };
  const docs = parseAllDocuments(text, { intAsBigInt: true, uniqueKeys: true, prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    const n = i + 1;
    if (doc.errors.length > 0) {
      out.readable = false;
      out.problems.push(
        problem(file, n, `not valid YAML: ${doc.errors.map((e) => e.message.split('\n')[0]).join('; ')}`),
      );
      return;
    }
    let js: unknown;
    try {
      js = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (e: unknown) {
      // yaml's alias-bomb defence ("Excessive alias count ..."), or another failure to build the value.
      out.readable = false;
      const detail = /alias count/i.test(messageOf(e))
        ? `refused: its aliases expand too far (more than ${MAX_ALIAS_COUNT} alias uses, as in a "billion laughs" alias bomb)`
        : `not valid YAML: ${messageOf(e).split('\n')[0] ?? ''}`;
      out.problems.push(problem(file, n, detail));
      return;
    }
    const value = normalizeInts(js);
    if (value === null || value === undefined) return; // an empty document, e.g. after a trailing ---
    if (typeof value !== 'object' || Array.isArray(value)) {
      out.problems.push(problem(file, n, 'is not a Kubernetes object (expected a mapping with apiVersion and kind)'));
      return;
    }
    const obj = value as Record<string, unknown>;
    const items = obj['kind'] === 'List' && Array.isArray(obj['items']) ? (obj['items'] as unknown[]) : [obj];
    for (const item of items) {
      const kind = item !== null && typeof item === 'object' ? (item as Record<string, unknown>)['kind'] : undefined;
      if (kind !== KIND) continue;
      const check = validateProfile(item, catalog);
      if (check.ok) {
        out.profiles.push({ doc: n, profile: { ok: true, profile: check.profile, warnings: check.warnings } });
        continue;
      }
      out.profiles.push({
        doc: n,
        profile: {
          ok: false,
          namespace: check.namespace,
          name: check.name,
          errors: check.errors,
          warnings: check.warnings,
        },
      });
      out.problems.push(
        problem(file, n, check.errors.map((e) => `SeccompProfile ${check.ref}: ${e.path}: ${e.message}`).join('; ')),
      );
    }
  });
  return out;
}
