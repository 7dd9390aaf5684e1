/**
 * What the elected agent runs while it leads: informers on the nodes' reports, the node Leases and
 * the Node names (nobody else watches these), the live-node set, and the aggregator. Started on
 * election, torn down when the lease is lost; the aggregator writes nothing before all three
 * informers have listed once (a release decided on a partial list could free a profile in use).
 */
import type { Logger } from 'pino';
import type { NodeReportBody } from '../../../shared/profile/schema.js';
import type { KubeClient } from '../kube/client.js';
import { LEASE_LABEL, leaseView, type LeaseView } from '../kube/lease.js';
import { Reflector, type ReflectorStats, type ReflectorTiming } from '../kube/reflector.js';
import { Aggregator, type AggregatorDeps } from './aggregator.js';
import { LiveNodes } from './liveness.js';
import { REPORTS_PATH } from './node-report.js';

export interface LeadershipDeps {
  client: KubeClient;
  node: string;
  namespace: string;
  timing: Partial<ReflectorTiming>;
  random: () => number;
  log: Logger;
  aggregator: Omit<AggregatorDeps, 'api' | 'log'>;
}

/** The public face of a reflector, whatever it holds. */
interface Informer {
  readonly synced: boolean;
  readonly stats: ReflectorStats;
  start(): void;
  stop(): Promise<void>;
  restartWatch(silent?: boolean): void;
}

export class Leadership {
  readonly aggregator: Aggregator;
  readonly #live: LiveNodes;
  readonly #informers: Informer[];

  constructor(d: LeadershipDeps) {
    const log = d.log.child({ component: 'aggregator' });
    this.aggregator = new Aggregator({ ...d.aggregator, api: d.client, log });
    this.#live = new LiveNodes(d.aggregator.clock, d.node, (live) => this.aggregator.setLive(live));
    const common = { client: d.client, timing: d.timing, log: log.child({ component: 'informer' }), random: d.random };
    const synced = (): void => {
      if (this.#informers.every((r) => r.synced)) {
        this.#live.check();
        this.aggregator.start(this.#live.live);
      }
    };
    const reports = new Reflector<NodeReportBody>({
      ...common,
      name: 'seccompnodereports',
      path: REPORTS_PATH,
      transform: (raw) => (typeof raw['nodeName'] === 'string' ? (raw as unknown as NodeReportBody) : undefined),
      keyOf: (r) => r.nodeName,
      onChange: (_t, key, cur) => this.aggregator.setReport(key, cur),
      onSynced: synced,
    });
    const leases = new Reflector<LeaseView>({
      ...common,
      name: 'leases',
      path: `/apis/coordination.k8s.io/v1/namespaces/${d.namespace}/leases`,
      labelSelector: LEASE_LABEL,
      transform: leaseView,
      keyOf: (l) => l.key,
      onChange: (_t, key, cur) => this.#live.setLease(key, cur),
      onSynced: synced,
    });
    const nodes = new Reflector<{ key: string }>({
      ...common,
      name: 'nodes',
      path: '/api/v1/nodes',
      metadataOnly: true,
      transform: (raw) => {
        const name = (raw['metadata'] as { name?: string } | undefined)?.name;
        return name === undefined ? undefined : { key: name };
      },
      keyOf: (n) => n.key,
      onChange: (_t, key, cur) => this.#live.setNode(key, cur !== undefined),
      onSynced: synced,
    });
    this.#informers = [reports, leases, nodes];
    for (const r of this.#informers) r.start();
  }

  stats(): Record<string, ReflectorStats> {
    const [reports, leases, nodes] = this.#informers;
    return {
      ...(reports === undefined ? {} : { seccompnodereports: { ...reports.stats } }),
      ...(leases === undefined ? {} : { leases: { ...leases.stats } }),
      ...(nodes === undefined ? {} : { nodes: { ...nodes.stats } }),
    };
  }

  restartWatches(silent = false): void {
    for (const r of this.#informers) r.restartWatch(silent);
  }

  async stop(): Promise<void> {
    this.aggregator.stop();
    this.#live.stop();
    await Promise.all(this.#informers.map((r) => r.stop()));
  }
}
