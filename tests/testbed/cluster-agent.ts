/**
 * The cluster agent as a process, for the cluster tests and benchmarks: the same wiring main.ts
 * does for cluster mode, plus test-only timing knobs from SECCOMP_AGENT_TEST_TIMING (JSON of
 * ClusterTiming fields) so a test does not wait out production lease and watch timeouts.
 * Prints `listening <url>` on stdout once the HTTP endpoint is up.
 * Run from dist: `node dist/tests/testbed/cluster-agent.js --kubeconfig K --node-name N ...`.
 */
import { hostname } from 'node:os';
import { destination } from 'pino';
import { messageOf } from '../../shared/errors.js';
import { SYSCALL_CATALOG } from '../../shared/syscalls/index.js';
import { startCluster, type ClusterTiming } from '../../agent/src/cluster.js';
import { parseConfig } from '../../agent/src/config.js';
import { buildServer } from '../../agent/src/http/server.js';
import { KubeClient } from '../../agent/src/kube/client.js';
import { clusterRoutes } from '../../agent/src/kube/routes.js';
import { createLogger } from '../../agent/src/logger.js';
import { realFs } from '../../agent/src/profiles/fs.js';
import { toView } from '../../agent/src/standalone.js';

try {
  const parsed = parseConfig(process.argv.slice(2), process.env, hostname());
  if (parsed.kind !== 'config') throw new Error('no config');
  const config = parsed.config;
  const log = createLogger(config.logLevel, config.nodeName, destination(2));
  const timingEnv = process.env['SECCOMP_AGENT_TEST_TIMING'];
  const timing = (timingEnv === undefined ? {} : JSON.parse(timingEnv)) as Partial<ClusterTiming>;
  const cluster = await startCluster({
    client: KubeClient.load(config.kubeconfig),
    nodeName: config.nodeName,
    namespace: config.namespace,
    kubeletRoot: config.kubeletRoot,
    catalog: SYSCALL_CATALOG,
    fs: realFs,
    log,
    chownAllowed: process.getuid?.() === 0,
    timing,
  });
  const app = await buildServer({
    logger: log.child({ component: 'http' }),
    node: config.nodeName,
    profiles: () => cluster.reports().map(toView),
    readiness: () => cluster.readiness(),
    extend: async (a) => {
      await clusterRoutes({ stats: () => cluster.stats() })(a);
      a.post('/v1/test/restart-watches', async () => {
        cluster.restartWatches();
        return { ok: true };
      });
    },
  });
  const url = await app.listen({ host: config.listen.host, port: config.listen.port });
  process.stdout.write(`listening ${url}\n`);
  const shutdown = async (): Promise<void> => {
    await app.close();
    await cluster.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown());
  process.once('SIGINT', () => void shutdown());
} catch (e: unknown) {
  process.stderr.write(`cluster-agent: ${messageOf(e)}\n`);
  process.exit(1);
}
