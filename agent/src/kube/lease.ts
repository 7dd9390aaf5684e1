/**
 * Liveness of the agents: each agent holds a coordination.k8s.io Lease `seccomp-agent-<node>` in
 * the agent's namespace and renews it periodically. Another agent counts a node as alive while its
 * Node object exists and its Lease is fresh; entries of other nodes are ignored, so a node that
 * vanished never holds a profile's status or deletion back.
 */
import type { Logger } from 'pino';
import { messageOf } from '../../../shared/errors.js';
import { isKubeApiError, type KubeClient } from './client.js';

/** The label that marks the agents' leases (the lease watch selects on it). */
export const LEASE_LABEL = 'seccomp-agent.security-profiles-operator.x-k8s.io/lease';

export const leaseName = (node: string): string => `seccomp-agent-${node}`;

/** Kubernetes MicroTime: RFC 3339 with microseconds. */
export const microTime = (ms: number): string => new Date(ms).toISOString().replace(/Z$/, '000Z');

/** What the agent keeps of a lease. */
export interface LeaseView {
  key: string;
  node: string;
  /** Epoch ms until which the holder counts as alive. */
  expiresAt: number;
}

/** A lease object to the view; leases not held by an agent are dropped. */
export function leaseView(raw: Record<string, unknown>): LeaseView | undefined {
  const meta = raw['metadata'] as { name?: string; namespace?: string } | undefined;
  const spec = raw['spec'] as
    { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number } | undefined;
  if (meta?.name === undefined || spec?.holderIdentity === undefined) return undefined;
  const renewed = Date.parse(spec.renewTime ?? '');
  const duration = spec.leaseDurationSeconds ?? 0;
  return {
    key: `${meta.namespace ?? ''}/${meta.name}`,
    node: spec.holderIdentity,
    expiresAt: Number.isFinite(renewed) ? renewed + duration * 1000 : 0,
  };
}

/** Creates and renews this node's lease until stopped. */
export class LeaseKeeper {
  readonly #client: KubeClient;
  readonly #namespace: string;
  readonly #node: string;
  readonly #durationSeconds: number;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #renewing: Promise<void> = Promise.resolve();
  renewals = 0;
  failures = 0;
  /** Why the last renewal failed; undefined once one succeeded. */
  problem: string | undefined = 'the node Lease has not been written yet';

  constructor(client: KubeClient, namespace: string, node: string, durationSeconds: number, log: Logger) {
    this.#client = client;
    this.#namespace = namespace;
    this.#node = node;
    this.#durationSeconds = durationSeconds;
    this.#log = log;
  }

  start(): void {
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#renewing;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#renewing = this.#renew().then(
        () => {
          this.problem = undefined;
          this.#schedule((this.#durationSeconds * 1000) / 3);
        },
        (e: unknown) => {
          this.failures++;
          this.problem = `cannot renew its Lease ${this.#namespace}/${leaseName(this.#node)}: ${messageOf(e)}`;
          this.#log.warn({ err: messageOf(e) }, 'could not renew the agent lease; retrying');
          this.#schedule(Math.min(2000, (this.#durationSeconds * 1000) / 6));
        },
      );
    }, ms);
  }

  async #renew(): Promise<void> {
    const path = `/apis/coordination.k8s.io/v1/namespaces/${this.#namespace}/leases`;
    const name = leaseName(this.#node);
    const spec = {
      holderIdentity: this.#node,
      leaseDurationSeconds: this.#durationSeconds,
      renewTime: microTime(Date.now()),
    };
    try {
      await this.#client.request({
        method: 'PATCH',
        path: `${path}/${name}`,
        body: { spec },
        contentType: 'application/merge-patch+json',
        timeoutMs: 10_000,
      });
    } catch (e: unknown) {
      if (!isKubeApiError(e) || e.status !== 404) throw e;
      await this.#client.request({
        method: 'POST',
        path,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace: this.#namespace, labels: { [LEASE_LABEL]: 'node' } },
          spec: { ...spec, acquireTime: spec.renewTime },
        },
        timeoutMs: 10_000,
      });
    }
    this.renewals++;
  }
}
