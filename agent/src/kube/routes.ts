/**
 * `GET /v1/cluster`: the cluster agent's counters (status writes per profile, informer restarts,
 * live nodes, ...). The tests and the benchmarks read it; an operator can too. Registered through
 * buildServer's `extend`.
 */
import type { FastifyInstance } from 'fastify';

export interface ClusterRoutesDeps {
  stats: () => unknown;
}

export function clusterRoutes(deps: ClusterRoutesDeps): (app: FastifyInstance) => Promise<void> {
  return async (app) => {
    app.get('/v1/cluster', async () => deps.stats());
  };
}
