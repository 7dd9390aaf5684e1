/**
 * Kubernetes Events (events.k8s.io/v1) on a profile, one per node and happening: installed,
 * refused, removed, kept for pods in use. Events are best effort: a token bucket keeps a burst (the
 * first sync of thousands of profiles) from flooding the API server; what it drops is counted.
 * At most MAX_IN_FLIGHT are sent at once, the rest wait in order (at most a burst of them): a burst
 * sent all at once opened one kept-alive connection per event up to the client's socket cap (32),
 * and kept them, so every node held ~32 idle connections to the API server after its first sync.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { messageOf } from '../../../shared/errors.js';
import type { KubeClient } from './client.js';
import { microTime } from './lease.js';

export const REPORTING_CONTROLLER = 'seccomp-agent';

export interface EventTarget {
  namespace: string;
  name: string;
  uid: string;
}

export interface EventStats {
  sent: number;
  dropped: number;
  failed: number;
}

/** Events sent at once; the others queue behind them, at most a burst of them (then dropped). */
const MAX_IN_FLIGHT = 2;

export class EventRecorder {
  readonly #client: KubeClient;
  readonly #node: string;
  readonly #log: Logger;
  readonly #perSecond: number;
  readonly #burst: number;
  #tokens: number;
  #last = Date.now();
  readonly #queue: { path: string; body: unknown; reason: string }[] = [];
  #inFlight = 0;
  readonly stats: EventStats = { sent: 0, dropped: 0, failed: 0 };

  constructor(client: KubeClient, node: string, log: Logger, perSecond = 5, burst = 50) {
    this.#client = client;
    this.#node = node;
    this.#log = log;
    this.#perSecond = perSecond;
    this.#burst = burst;
    this.#tokens = burst;
  }

  #take(): boolean {
    const now = Date.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#perSecond);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Records one event; never throws, never waits for the API server. */
  record(target: EventTarget, type: 'Normal' | 'Warning', reason: string, action: string, note: string): void {
    if (this.#queue.length >= this.#burst || !this.#take()) {
      this.stats.dropped++;
      return;
    }
    // A cluster-scoped profile's Events go to `default`, as client-go's recorders put them.
    const namespace = target.namespace === '' ? 'default' : target.namespace;
    const body = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: `${target.name.slice(0, 230)}.${randomBytes(8).toString('hex')}`, namespace },
      eventTime: microTime(Date.now()),
      reportingController: REPORTING_CONTROLLER,
      reportingInstance: `${REPORTING_CONTROLLER}-${this.#node}`.slice(0, 128),
      action,
      reason,
      type,
      note: `${this.#node}: ${note}`.slice(0, 1000),
      regarding: {
        apiVersion: 'security-profiles-operator.x-k8s.io/v1beta1',
        kind: 'SeccompProfile',
        ...(target.namespace === '' ? {} : { namespace: target.namespace }),
        name: target.name,
        ...(target.uid === '' ? {} : { uid: target.uid }),
      },
    };
    this.#queue.push({ path: `/apis/events.k8s.io/v1/namespaces/${namespace}/events`, body, reason });
    this.#pump();
  }

  #pump(): void {
    while (this.#inFlight < MAX_IN_FLIGHT) {
      const e = this.#queue.shift();
      if (e === undefined) return;
      this.#inFlight++;
      this.#client
        .request({ method: 'POST', path: e.path, body: e.body, timeoutMs: 10_000 })
        .then(
          () => this.stats.sent++,
          (err: unknown) => {
            this.stats.failed++;
            if (this.stats.failed <= 3) {
              this.#log.warn({ err: messageOf(err), reason: e.reason }, 'could not record an event');
            }
          },
        )
        .finally(() => {
          this.#inFlight--;
          this.#pump();
        });
    }
  }
}
