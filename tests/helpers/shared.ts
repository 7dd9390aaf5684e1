/** Where the tests find the shared material that sits beside the repository (`../shared`). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests may run from dist/ or from the sources). */
export const repoRoot = ((): string => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || dir.endsWith('/dist')) {
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root not found');
    dir = up;
  }
  return dir;
})();

/** `../shared` beside the repository; throws a clear error when it is missing. */
export function sharedDir(): string {
  const dir = resolve(repoRoot, '..', 'shared');
  if (!existsSync(join(dir, 'seed', 'workshop-security-profiles-operator.md'))) {
    throw new Error(
      `shared material not found at ${dir}: these tests need ../shared (the workshop seed, real profiles, node facts) beside the repository`,
    );
  }
  return dir;
}

/** The profile files the workshop prints with `cat`, by profile name, exactly as printed. */
export function seedPrintedProfiles(): Map<string, string> {
  const lines = readFileSync(join(sharedDir(), 'seed', 'workshop-security-profiles-operator.md'), 'utf8').split('\n');
  const printed = new Map<string, string>();
  lines.forEach((line, i) => {
    const m = /^cat \/var\/lib\/kubelet\/seccomp\/operator\/seccomp-test\/(\S+)\.json$/.exec(line);
    if (m?.[1] === undefined) return;
    // The JSON is the next line starting with `{` (one of them lacks its opening code fence).
    const json = lines.slice(i + 1).find((l) => l.startsWith('{'));
    if (json === undefined) throw new Error(`seed line ${i + 1}: no JSON after the cat of ${m[1]}`);
    printed.set(m[1], json);
  });
  return printed;
}

/** The file sizes the workshop's `ls -al` listings show, by file name. */
export function seedListedSizes(): Map<string, number> {
  const text = readFileSync(join(sharedDir(), 'seed', 'workshop-security-profiles-operator.md'), 'utf8');
  const sizes = new Map<string, number>();
  for (const m of text.matchAll(/^-rw-r--r-- 1 65535 65535 +(\d+) .* (\S+\.json)$/gm)) {
    if (m[1] !== undefined && m[2] !== undefined && !sizes.has(m[2])) sizes.set(m[2], Number(m[1]));
  }
  return sizes;
}

/** How the agent's node runs (scripts/agent-runtime.json): the image's flags and environment. */
export interface AgentRuntime {
  readonly nodeFlags: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

export function agentRuntime(): AgentRuntime {
  const r = JSON.parse(readFileSync(join(repoRoot, 'scripts', 'agent-runtime.json'), 'utf8')) as Partial<AgentRuntime>;
  if (!Array.isArray(r.nodeFlags) || typeof r.env !== 'object' || r.env === null) {
    throw new Error('scripts/agent-runtime.json: want { "nodeFlags": [...], "env": { ... } }');
  }
  return { nodeFlags: r.nodeFlags, env: r.env };
}
