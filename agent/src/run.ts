/**
 * The agent once it listens: config → logger → metrics → profile sync (standalone directory or
 * cluster) → event path → HTTP endpoint, which takes over the early server main started. Loaded by
 * main after listen, so none of this (fastify, pino, prom-client, the profile and event paths) stands
 * between process start and the first `/healthz`.
 */
import type { FastifyInstance } from 'fastify';
import { destination, type Logger } from 'pino';
import { SYSCALL_CATALOG } from '../../shared/syscalls/index.js';
import type { Config } from './config.js';
import type { LoggedCalls } from './cluster/types.js';
import { loggedCalls } from './events/logged.js';
import { createEventPipeline, type EventPipeline, type PendingEventPipeline } from './events/pipeline.js';
import type { PodIndex } from './events/pod-index.js';
import type { EarlyServer } from './http/early.js';
import { archOfProcess, checkRoutes } from './http/check-routes.js';
import { eventsRoutes } from './http/events-routes.js';
import { createMetrics, metricsRoutes, pipelineGauges } from './http/metrics.js';
import { isLoopback, kubeAuthenticator, type Authenticator } from './http/auth.js';
import { buildServer, type ServerDeps } from './http/server.js';
import { createLogger } from './logger.js';
import { realFs } from './profiles/fs.js';
import type { CandidateResolver } from './profiles/candidate.js';
import type { Standalone } from './standalone.js';

/** The one root logger (JSON lines on stderr). */
export const rootLogger = (config: Config): Logger => createLogger(config.logLevel, config.nodeName, destination(2));

/** `--once`: one sync of the directory, a line per profile, exit 0 only when all were written. */
export async function runOnce(config: Config, profilesDir: string, log: Logger): Promise<number> {
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

/** /v1/check's profiles; the YAML and validation path loads on the first check, not at start. */
function lazyCandidates(profiles: ServerDeps['profiles']): CandidateResolver {
  let made: Promise<CandidateResolver> | undefined;
  const resolver = (): Promise<CandidateResolver> =>
    (made ??= import('./profiles/candidate.js').then((m) =>
      m.candidateResolver({ profiles, readFile: (p) => realFs.readFile(p, 'utf8'), catalog: SYSCALL_CATALOG }),
    ));
  return {
    installed: async (key) => (await resolver()).installed(key),
    posted: async (text) => (await resolver()).posted(text),
  };
}

/** The long-running agent: profiles, events and the HTTP endpoint until SIGTERM. */
export async function runAgent(config: Config, log: Logger, early: EarlyServer): Promise<void> {
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
  // main refused a non-loopback address in standalone mode before it listened.
  const open = !isLoopback(config.listen.host);
  const extensions: ((app: FastifyInstance) => Promise<void>)[] = [];
  let loggedOf: LoggedCalls | undefined;
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
    early.reason = 'waiting for the SeccompProfile API (its CRD) on the API server';
    // startCluster returns at once: the first lists run behind it, and readiness says when they are done.
    const cluster = await startCluster({
      ...common,
      client,
      nodeName: config.nodeName,
      namespace: config.namespace,
      // The event store is made below; until it is (or with no audit source) nothing is logged.
      logged: (containers) => loggedOf?.(containers) ?? { names: [], pods: [] },
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
    loggedOf = (containers) => loggedCalls(store, containers);
    extensions.push(async (app) => {
      await app.register(eventsRoutes, { store, node: config.nodeName });
    });
    const nativeArch = archOfProcess(process.arch);
    if (nativeArch === undefined)
      log.warn({ arch: process.arch }, '/v1/check is off: no syscall table for this architecture');
    else {
      const candidates = lazyCandidates(() => profiles.profiles());
      extensions.push(async (app) => {
        await app.register(checkRoutes, { store, node: config.nodeName, nativeArch, candidates });
      });
    }
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
    // fastify answers on the server main listens with already (it does not listen itself).
    serverFactory: (handler) => {
      early.handOver(handler);
      return early.server;
    },
  });
  await app.ready();
  // As fastify's listen says it; "listening" on stdout means every route answers now.
  log.info(`Server listening at ${early.url}`);
  process.stdout.write(`seccomp-agent listening ${early.url}\n`);
  const shutdown = async (signal: string): Promise<void> => {
    log.info({ signal }, 'shutting down');
    await app.close();
    await early.close();
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
