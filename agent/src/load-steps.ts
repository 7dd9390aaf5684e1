/**
 * Loading the agent's modules in small steps, with the event loop turning between them, so that
 * the early endpoint (http/early.ts) answers a probe within one step rather than after the whole
 * graph (about 270 ms of CPU: fastify 100, prom-client 80, pino 40, the agent's own 60). Loading a
 * module is synchronous: a request that arrives during a step waits for it to end. The steps only
 * fill the module caches ahead of `import('./run.js')`; a name that does not resolve (a dependency
 * that moved in a later release) is skipped, it then simply loads with its parent.
 */
import { createRequire } from 'node:module';

/** One step: a package (CommonJS), optionally as seen from another package's directory, or one of our modules. */
export type LoadStep = { pkg: string; from?: string } | { own: string };

/** The steps before run.js, biggest dependencies cut into their parts (measured with process.cpuUsage). */
export const AGENT_LOAD_STEPS: readonly LoadStep[] = [
  { pkg: 'pino' },
  { pkg: '@opentelemetry/api', from: 'prom-client' },
  { pkg: 'tdigest', from: 'prom-client' },
  { pkg: 'prom-client' },
  { pkg: 'semver', from: 'fastify' },
  { pkg: 'find-my-way', from: 'fastify' },
  { pkg: 'avvio', from: 'fastify' },
  { pkg: 'light-my-request', from: 'fastify' },
  { pkg: '@fastify/proxy-addr', from: 'fastify' },
  { pkg: 'fastify' },
  { own: '../../shared/syscalls/index.js' },
  { own: './events/pipeline.js' },
];

/** Two turns of the loop: one to accept a waiting connection, one to read and answer its request. */
async function turn(): Promise<void> {
  for (let i = 0; i < 2; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Loads `steps` in order, turning the loop before each. `base` resolves `own` steps (import.meta.url). */
export async function loadInSteps(steps: readonly LoadStep[], base: string): Promise<void> {
  const require = createRequire(base);
  for (const s of steps) {
    await turn();
    try {
      if ('own' in s) await import(new URL(s.own, base).href);
      else if (s.from === undefined) require(s.pkg);
      else createRequire(require.resolve(s.from))(s.pkg);
    } catch (e: unknown) {
      // Only a missing module is skipped; a module that fails to load fails the start as it would.
      if (!(e instanceof Error && 'code' in e && e.code === 'MODULE_NOT_FOUND')) throw e;
    }
  }
  await turn();
}
