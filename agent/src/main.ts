#!/usr/bin/env node
/**
 * seccomp-agent: wiring only. config → listen (node:http alone, answering the probes) → the rest
 * (run.ts: logger, metrics, profile sync, event path, fastify taking over the endpoint). What is
 * imported here is all that stands between process start and the first `/healthz`: keep it small.
 */
import { hostname } from 'node:os';
import { agentError, messageOf } from '../../shared/errors.js';
import { parseConfig, usage, type Config } from './config.js';
import { isLoopback } from './http/auth.js';
import { listenEarly } from './http/early.js';
import { AGENT_LOAD_STEPS, loadInSteps } from './load-steps.js';

async function main(): Promise<void> {
  let config: Config;
  try {
    const parsed = parseConfig(process.argv.slice(2), process.env, hostname());
    if (parsed.kind === 'help') {
      process.stdout.write(`${parsed.text}\n`);
      return;
    }
    config = parsed.config;
  } catch (e: unknown) {
    process.stderr.write(`seccomp-agent: ${messageOf(e)}\n\n${usage()}\n`);
    process.exit(2);
  }
  try {
    if (config.once && config.profilesDir !== undefined) {
      const run = await import('./run.js');
      process.exit(await run.runOnce(config, config.profilesDir, run.rootLogger(config)));
    }
    if (!isLoopback(config.listen.host) && config.profilesDir !== undefined) {
      throw agentError('SECCOMP_AGENT_ERR_BAD_FLAG', {
        detail: `--listen ${config.listen.host} is not a loopback address: that needs cluster mode, where callers' tokens are checked with the API server`,
      });
    }
    // Listen first: /healthz answers while fastify, the profile path and the first sync load.
    const early = await listenEarly({ ...config.listen, reason: 'the agent is starting' });
    await loadInSteps(AGENT_LOAD_STEPS, import.meta.url);
    const run = await import('./run.js');
    await run.runAgent(config, run.rootLogger(config), early);
  } catch (e: unknown) {
    process.stderr.write(`seccomp-agent: ${messageOf(e)}\n`);
    process.exit(1);
  }
}

await main();
