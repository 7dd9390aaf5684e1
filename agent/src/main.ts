#!/usr/bin/env node
/** seccomp-agent: wiring only. config → logger → profile sync → HTTP endpoint. */
import { hostname } from 'node:os';
import { destination } from 'pino';
import { AgentError, isAgentError, messageOf } from '../../shared/errors.js';
import { SYSCALL_CATALOG } from '../../shared/syscalls/index.js';
import { parseConfig, usage, type Config } from './config.js';
import { buildServer } from './http/server.js';
import { createLogger } from './logger.js';
import { realFs } from './profiles/fs.js';
import { startStandalone, toView } from './standalone.js';

async function run(config: Config): Promise<number> {
  const log = createLogger(config.logLevel, config.nodeName, destination(2));
  const profilesDir = config.profilesDir ?? '';
  const agent = await startStandalone({
    profilesDir,
    kubeletRoot: config.kubeletRoot,
    catalog: SYSCALL_CATALOG,
    fs: realFs,
    log,
    chownAllowed: process.getuid?.() === 0,
    follow: !config.once,
    recheckIntervalMs: config.recheckIntervalMs,
  });
  if (config.once) {
    const failed = agent.first.reports.filter((r) => r.state === 'Error');
    const problems = agent.first.snapshot.problems;
    for (const r of agent.first.reports) {
      process.stdout.write(`${r.state.padEnd(9)} ${r.path}${r.state === 'Installed' ? '' : `  (${r.message ?? ''})`}\n`);
    }
    const installed = agent.first.reports.length - failed.length;
    process.stdout.write(`${installed} profile(s) installed under ${config.kubeletRoot}, ${failed.length} failed, ${problems.length} problem(s) in ${profilesDir}\n`);
    if (failed.length === 0 && problems.length === 0) return 0;
    for (const p of problems) process.stderr.write(`seccomp-agent: ${p.message}\n`);
    for (const r of failed) if (!problems.some((p) => p.message.includes(`${r.namespace}/${r.name}:`))) process.stderr.write(`seccomp-agent: ${r.message ?? r.path}\n`);
    return 1;
  }
  const app = await buildServer({
    logger: log.child({ component: 'http' }),
    node: config.nodeName,
    profiles: () => agent.reports().map(toView),
    readiness: () => ({ ready: true, reason: 'first sync done' }),
  });
  await app.listen({ host: config.listen.host, port: config.listen.port });
  const shutdown = async (signal: string): Promise<void> => {
    log.info({ signal }, 'shutting down');
    await app.close();
    await agent.stop();
    process.exit(0);
  };
  process.once('SIGTERM', (s) => void shutdown(s));
  process.once('SIGINT', (s) => void shutdown(s));
  return -1;
}

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
    const code = await run(config);
    if (code >= 0) process.exit(code);
  } catch (e: unknown) {
    const msg = isAgentError(e) ? `${(e as AgentError).message}` : messageOf(e);
    process.stderr.write(`seccomp-agent: ${msg}\n`);
    process.exit(1);
  }
}

await main();
