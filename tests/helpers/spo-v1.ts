/**
 * The reference operator's v1.0.0 examples (../shared/spo-v1/examples/) that are SeccompProfiles,
 * with the bytes it writes for each: ../shared/real-profiles/<name>.expected.json where that
 * exists, else Go's encoding/json of the OCI spec fields in their struct order (defaultAction,
 * architectures, syscalls[{names, action}]; these examples have no args, errnoRet or flags, and
 * nothing Go escapes).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { sharedDir } from './shared.js';

export interface SpoExample {
  /** The example file it comes from (several profiles share one). */
  file: string;
  name: string;
  /** The document as the file has it. */
  doc: Record<string, unknown>;
  /** The text of the document alone, unchanged, for kubectl apply. */
  yaml: string;
  expected: string;
}

interface ExampleSpec {
  defaultAction: string;
  architectures?: string[];
  syscalls?: { names: string[]; action: string }[];
}

export const spoExamplesDir = (): string => join(sharedDir(), 'spo-v1', 'examples');

function goJson(spec: ExampleSpec): string {
  const out: Record<string, unknown> = { defaultAction: spec.defaultAction };
  if (spec.architectures !== undefined && spec.architectures.length > 0) out['architectures'] = spec.architectures;
  if (spec.syscalls !== undefined && spec.syscalls.length > 0) {
    out['syscalls'] = spec.syscalls.map((r) => ({ names: r.names, action: r.action }));
  }
  return JSON.stringify(out);
}

export function spoExamples(): SpoExample[] {
  const dir = spoExamplesDir();
  const real = join(sharedDir(), 'real-profiles');
  const out: SpoExample[] = [];
  for (const file of readdirSync(dir).sort()) {
    const text = readFileSync(join(dir, file), 'utf8');
    for (const d of parseAllDocuments(text)) {
      const doc = d.toJS() as Record<string, unknown> | null;
      if (doc === null || doc['kind'] !== 'SeccompProfile') continue;
      const name = (doc['metadata'] as { name: string }).name;
      const expectedFile = join(real, `${name}.expected.json`);
      const expected = existsSync(expectedFile)
        ? readFileSync(expectedFile, 'utf8').trimEnd()
        : goJson(doc['spec'] as ExampleSpec);
      out.push({ file, name, doc, yaml: d.toString(), expected });
    }
  }
  return out;
}
