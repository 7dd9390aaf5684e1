/**
 * Renders SeccompProfile YAML to node files with our agent's CLI, the way the node tests get their
 * profiles: `node dist/agent/src/main.js --profiles-dir DIR --kubelet-root TMP --once`.
 * dist/ comes from `npm run build` (`npm test` builds first).
 */
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exec } from './exec.js';
import type { TestLike } from './node.js';

/** The repository root (this file is tests/testbed/agent-cli.ts). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The workshop's profiles, as users apply them. */
export const WORKSHOP_PROFILES_DIR = path.join(REPO_ROOT, 'profiles');

/** Where the node profiles of a namespace land under a kubelet root. */
export function operatorDir(kubeletRoot: string, namespace: string): string {
  return path.join(kubeletRoot, 'seccomp', 'operator', namespace);
}

/** What one `--once` run of the agent produced. */
export interface RenderResult {
  readonly kubeletRoot: string;
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the agent once over `profilesDir` into a fresh temporary kubelet root (removed at teardown).
 * Throws if dist/ has not been built; a non-zero exit is returned for the caller to assert on.
 */
export async function renderProfiles(t: TestLike, profilesDir: string): Promise<RenderResult> {
  const main = path.join(REPO_ROOT, 'dist', 'agent', 'src', 'main.js');
  await fs.access(main).catch(() => {
    throw new Error(`node test bed: ${main} is missing; run 'npm run build' first (npm test does)`);
  });
  const kubeletRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'seccomp-agent-kubelet-'));
  t.teardown(() => fs.rm(kubeletRoot, { recursive: true, force: true }));
  // process.execPath is the Node 24 that runs the tests (tap runs under the `node` devDependency).
  const r = await exec(
    process.execPath,
    [main, '--profiles-dir', profilesDir, '--kubelet-root', kubeletRoot, '--once'],
    { cwd: REPO_ROOT, timeoutMs: 60_000 },
  );
  return { kubeletRoot, exitCode: r.code, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Renders the workshop's profiles (repo `profiles/`) and returns the kubelet root; the files are under
 * `<root>/seccomp/operator/seccomp-test/`. Throws with the agent's output if it fails.
 */
export async function renderWorkshop(t: TestLike): Promise<string> {
  const r = await renderProfiles(t, WORKSHOP_PROFILES_DIR);
  if (r.exitCode !== 0) {
    throw new Error(
      `agent --once over ${WORKSHOP_PROFILES_DIR} exited ${r.exitCode}: ${r.stderr.trim() || r.stdout.trim()}`,
    );
  }
  return r.kubeletRoot;
}
