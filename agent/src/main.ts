#!/usr/bin/env node
/**
 * seccomp-agent: wiring only. config → logger → metrics → profile sync (standalone directory or
 * cluster) → event path → HTTP endpoint.
 */
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { destination, type Logger } from 'pino';
import { agentError, messageOf } from '../../shared/errors.js';
import { SYSCALL_CATALOG } from '../../shared/syscalls/index.js';
import { parseConfig, usage, type Config } from './config.js';
import { createEventPipeline, type EventPipeline, type PendingEventPipeline } from './events/pipeline.js';
import type { PodIndex } from './events/pod-index.js';
import { eventsRoutes } from './http/events-routes.js';
import { createMetrics, metricsRoutes, pipelineGauges } from './http/metrics.js';
import { isLoopback, kubeAuthenticator, type Authenticator } from './http/auth.js';
import { buildServer, type ServerDeps } from './http/server.js';
import { createLogger } from './logger.js';
import { realFs } from './profiles/fs.js';
import type { Standalone } from './standalone.js';

/** `--once`: one sync of the directory, a line per profile, exit 0 only when all were written. */
async function runOnce(config: Config, profilesDir: string, log: Logger): Promise<number> {
  const { startStandalone } = await import('./standalone.js');
  const agent = await startStandalone({
    profilesDir,
    kubeletRoot: config.kubeletRoot,
    catalog: SYSCALL_CATALOG,
    fs: realFs,
    log,
    chownAllowed: process.getuid?.() === 0,
    follow: false,
  });
  const failed = agent.first.reports.filter((r) => r.state === 'Error');
  const problems = agent.first.snapshot.problems;
  for (const r of agent.first.reports) {
    process.stdout.write(`${r.state.padEnd(9)} ${r.path}${r.state === 'Installed' ? '' : `  (${r.message ?? ''})`}\n`);
  }
  const installed = agent.first.reports.length - failed.length;
  process.stdout.write(
    `${installed} profile(s) installed under ${config.kubeletRoot}, ${failed.length} failed, ${problems.length} problem(s) in ${profilesDir}\n`,
  );
  const strays = agent.first.sweepFailures;
  if (strays.length > 0)
    process.stdout.write(`${strays.length} stray file(s) under the operator directory could not be removed\n`);
  if (failed.length === 0 && problems.length === 0 && strays.length === 0) return 0;
  for (const p of problems) process.stderr.write(`seccomp-agent: ${p.message}\n`);
  for (const f of strays) process.stderr.write(`seccomp-agent: ${f.message}\n`);
  for (const r of failed) {
    if (!problems.some((p) => p.message.includes(`${r.namespace}/${r.name}:`))) {
      process.stderr.write(`seccomp-agent: ${r.message ?? r.path}\n`);
    }
  }
  return 1;
}

/** The long-running agent: profiles, events and the HTTP endpoint until SIGTERM. */
async function runAgent(config: Config, log: Logger): Promise<void> {
  const metrics = createMetrics({ node: config.nodeName });
  const common = {
    kubeletRoot: config.kubeletRoot,
    catalog: SYSCALL_CATALOG,
    fs: realFs,
    log,
    chownAllowed: process.getuid?.() === 0,
    observer: metrics.profiles,
  };
  let profiles: Pick<ServerDeps, 'profiles' | 'problems' | 'readiness'>;
  let stopProfiles: (() => Promise<void>) | undefined;
  /** Standalone: the first sync, started once the endpoint listens (it can take seconds). */
  let startProfiles: (() => Promise<void>) | undefined;
  let podIndex: PodIndex | undefined;
  let auth: Authenticator | undefined;
  const open = !isLoopback(config.listen.host);
  if (open && config.profilesDir !== undefined) {
    throw agentError('SECCOMP_AGENT_ERR_BAD_FLAG', {
      detail: `--listen ${config.listen.host} is not a loopback address: that needs cluster mode, where callers' tokens are checked with the API server`,
    });
  }
  const extensions: ((app: FastifyInstance) => Promise<void>)[] = [];
  if (config.profilesDir !== undefined) {
    const profilesDir = config.profilesDir;
    let agent: Standalone | undefined;
    let toView: typeof import('./standalone.js').toView | undefined;
    profiles = {
      profiles: () => (toView === undefined ? [] : (agent?.reports().map(toView) ?? [])),
      problems: () => agent?.problems() ?? [],
      readiness: () =>
        agent === undefined
          ? { ready: false, reason: `the first sync of ${profilesDir} is not done yet` }
          : { ready: true, reason: 'first sync done' },
    };
    startProfiles = async () => {
      // The profile path (YAML, schema validation) loads after listen: /healthz does not wait for it.
      const m = await import('./standalone.js');
      toView = m.toView;
      agent = await m.startStandalone({
        ...common,
        profilesDir,
        follow: true,
        recheckIntervalMs: config.recheckIntervalMs,
      });
      stopProfiles = agent.stop;
    };
  } else {
    // Cluster mode only: none of this is loaded for a directory of profiles.
    const [{ startCluster }, { KubeClient }, { clusterRoutes }, { toView }] = await Promise.all([
      import('./cluster/index.js'),
      import('./kube/client.js'),
      import('./kube/routes.js'),
      import('./standalone.js'),
    ]);
    const client = KubeClient.load(config.kubeconfig);
    if (open) auth = kubeAuthenticator(client);
    // startCluster returns at once: the first lists run behind it, and readiness says when they are done.
    const cluster = await startCluster({
      ...common,
      client,
      nodeName: config.nodeName,
      namespace: config.namespace,
      ...(config.testTiming === undefined ? {} : { timing: config.testTiming }),
    });
    profiles = { profiles: () => cluster.reports().map(toView), readiness: () => cluster.readiness() };
    stopProfiles = cluster.stop;
    podIndex = cluster.podIndex;
    extensions.push(clusterRoutes({ stats: () => cluster.stats() }));
  }

  // The store exists now and the source opens after listen: a long first read of the audit log
  // (--audit-from start) must not keep /healthz from answering.
  let pending: PendingEventPipeline | undefined;
  let events: EventPipeline | undefined;
  if (config.auditSource !== 'none') {
    pending = createEventPipeline({
      node: config.nodeName,
      source: config.auditSource,
      auditLog: config.auditLog,
      from: config.auditFrom,
      ringSize: config.eventRingSize,
      maxContainers: config.eventMaxContainers,
      logger: log,
      metrics: metrics.events,
      ...(podIndex === undefined ? {} : { podIndex }),
    });
    const store = pending.store;
    extensions.push(async (app) => {
      await app.register(eventsRoutes, { store, node: config.nodeName });
    });
  }
  extensions.push(async (app) => {
    await app.register(metricsRoutes, { registry: metrics.registry });
  });

  const app = await buildServer({
    logger: log.child({ component: 'http' }),
    node: config.nodeName,
    ...profiles,
    ...(auth === undefined ? {} : { auth }),
    extend: async (app) => {
      for (const extend of extensions) await extend(app);
    },
  });
  // Listen before the first sync: /healthz answers at once, /readyz says 503 (and why) until it is done.
  const url = await app.listen({ host: config.listen.host, port: config.listen.port });
  process.stdout.write(`seccomp-agent listening ${url}\n`);
  const shutdown = async (signal: string): Promise<void> => {
    log.info({ signal }, 'shutting down');
    await app.close();
    await events?.stop();
    await stopProfiles?.();
    process.exit(0);
  };
  process.once('SIGTERM', (s) => void shutdown(s));
  process.once('SIGINT', (s) => void shutdown(s));
  if (pending !== undefined) {
    events = await pending.start();
    metrics.setPipelineGauges(pipelineGauges(events));
  }
  await startProfiles?.();
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
  const log = createLogger(config.logLevel, config.nodeName, destination(2));
  try {
    if (config.once && config.profilesDir !== undefined) process.exit(await runOnce(config, config.profilesDir, log));
    await runAgent(config, log);
  } catch (e: unknown) {
    process.stderr.write(`seccomp-agent: ${messageOf(e)}\n`);
    process.exit(1);
  }
}

await main();
