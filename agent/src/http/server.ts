/**
 * The node's HTTP endpoint. `buildServer` returns a fastify instance that is not listening; main
 * calls `listen`, tests call `inject()`.
 */
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerFactory,
} from 'fastify';
import type { Logger } from 'pino';
import { agentError } from '../../../shared/errors.js';
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

/** A problem with a source file as a whole or one of its documents (standalone mode), for /v1/profiles. */
export interface SourceProblemView {
  file: string;
  /** 1-based document number; 0 when the file as a whole is at fault. */
  document: number;
  message: string;
}

export interface ServerDeps {
  logger: Logger;
  node: string;
  /** The profiles this node knows, for /v1/profiles. */
  profiles: () => ProfileView[];
  /** Problems with the profile source that belong to no one profile (a file that is not YAML, a duplicate). */
  problems?: () => SourceProblemView[];
  /** Whether the first full sync is done (for /readyz), and why not when it is not. */
  readiness: () => { ready: boolean; reason: string };
  /** Checks every request but the health probes (set when listening on a non-loopback address). */
  auth?: Authenticator;
  /** More routes (the event path's plugin), registered before the server starts. */
  extend?: (app: FastifyInstance) => Promise<void>;
  /** A server that listens already (main's early one): fastify answers on it instead of its own. */
  serverFactory?: FastifyServerFactory;
}

/**
 * No route declares a schema: fastify's default compilers would load ajv and fast-json-stringify
 * (90 ms at start) for nothing. A route that declares one fails at start, saying so.
 */
const NO_SCHEMA_COMPILERS = {
  buildValidator: () => () => {
    throw new Error('the agent registers no validation schemas (buildServer loads no schema compiler)');
  },
  buildSerializer: () => () => {
    throw new Error('the agent registers no response schemas (buildServer loads no schema compiler)');
  },
};

export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  // Probes and curls would flood the log: request lines are not logged, errors still are.
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    schemaController: { compilersFactory: NO_SCHEMA_COMPILERS },
    ...(deps.serverFactory === undefined ? {} : { serverFactory: deps.serverFactory }),
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
  app.get('/v1/profiles', async (req, reply) => {
    // It takes no parameters; a typo must not pass silently (the event routes answer 400 too).
    const unknown = Object.keys((req.query ?? {}) as Record<string, unknown>)[0];
    if (unknown !== undefined) {
      const e = agentError('SECCOMP_AGENT_ERR_BAD_QUERY', {
        param: unknown,
        detail: 'unknown parameter; /v1/profiles takes none',
      });
      return reply.code(400).send({ statusCode: 400, error: 'Bad Request', code: e.code, message: e.message });
    }
    return { node: deps.node, items: deps.profiles(), problems: deps.problems?.() ?? [] };
  });
  if (deps.extend !== undefined) await deps.extend(app);
  return app;
}
