/**
 * The node's HTTP endpoint. `buildServer` returns a fastify instance that is not listening; main
 * calls `listen`, tests call `inject()`.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Authenticator } from './auth.js';

/** One installed (or refused) profile as /v1/profiles shows it. */
export interface ProfileView {
  namespace: string;
  name: string;
  state: string;
  path: string;
  localhostProfile: string;
  sha256?: string;
  message?: string;
  warnings: string[];
}

export interface ServerDeps {
  logger: Logger;
  node: string;
  /** The profiles this node knows, for /v1/profiles. */
  profiles: () => ProfileView[];
  /** Whether the first full sync is done (for /readyz), and why not when it is not. */
  readiness: () => { ready: boolean; reason: string };
  /** Checks every request but the health probes (set when listening on a non-loopback address). */
  auth?: Authenticator;
  /** More routes (the event path's plugin), registered before the server starts. */
  extend?: (app: FastifyInstance) => Promise<void>;
}

export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  // Probes and curls would flood the log: request lines are not logged, errors still are.
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  const auth = deps.auth;
  if (auth !== undefined) {
    app.addHook('onRequest', async (req, reply) => {
      const path = req.url.split('?')[0];
      if (path === '/healthz' || path === '/readyz') return;
      const r = await auth.check(req.headers.authorization, req.url);
      if (!r.ok)
        return reply
          .code(r.status)
          .send({ error: r.status === 401 ? 'Unauthorized' : 'Forbidden', message: r.message });
    });
  }
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const r = deps.readiness();
    return reply.code(r.ready ? 200 : 503).send({ status: r.ready ? 'ready' : 'not ready', reason: r.reason });
  });
  app.get('/v1/profiles', async () => ({ node: deps.node, items: deps.profiles() }));
  if (deps.extend !== undefined) await deps.extend(app);
  return app;
}
