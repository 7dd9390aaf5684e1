// The agent's node flags and environment have one source (scripts/agent-runtime.json): the image
// (Dockerfile.agent's ENTRYPOINT and ENV) must carry exactly those, or the image users run is not
// the agent the benchmarks measured. scripts/agent.mjs reads the file itself.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { agentRuntime, repoRoot } from '../helpers/shared.js';

const dockerfile = readFileSync(join(repoRoot, 'Dockerfile.agent'), 'utf8');
/** The last stage: what the image runs. */
const runtimeStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));

t.test('the image runs node with the flags of agent-runtime.json, then main.js', async (t) => {
  const m = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(runtimeStage);
  t.ok(m, 'the runtime stage has an exec-form ENTRYPOINT');
  const argv = JSON.parse(m?.[1] ?? '[]') as string[];
  t.equal(argv[0], 'node');
  t.same(argv.slice(1, -1), agentRuntime().nodeFlags);
  t.match(argv.at(-1), /\/dist\/agent\/src\/main\.js$/);
});

t.test('the image sets the environment of agent-runtime.json', async (t) => {
  const env = new Map<string, string>();
  for (const m of runtimeStage.matchAll(/^ENV\s+(\w+)=(\S+)\s*$/gm)) env.set(m[1] ?? '', m[2] ?? '');
  for (const [k, v] of Object.entries(agentRuntime().env)) t.equal(env.get(k), v, `ENV ${k}=${v}`);
});
