/**
 * Leader election over one coordination.k8s.io Lease, `seccomp-agent-aggregator` in the agent
 * namespace, as client-go's leaderelection does it: the holder renews every `renewMs`; a candidate
 * takes the lease only when it has not changed for a whole `leaseDurationMs` by the candidate's own
 * clock (no trust in other nodes' clocks), after a random jitter so thousands of candidates do not
 * all try at once; every write carries the resourceVersion it read, so only one candidate wins. A
 * holder that could not renew for `leaseDurationMs - renewGraceMs` stops leading before anyone can
 * take over. A stopping holder releases the lease (empty holder), so another takes over at once.
 *
 * Every agent watches this one object (the wiring feeds `observe`), never the other agents' leases.
 */
import type { Logger } from 'pino';
import { messageOf } from '../../../shared/errors.js';
import { isKubeApiError } from '../kube/client.js';
import { microTime, type Clock, type TimerHandle } from './clock.js';
import type { KubeApi } from './kube-api.js';

export const AGGREGATOR_LEASE = 'seccomp-agent-aggregator';

export interface RawLease {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface ElectionOptions {
  api: KubeApi;
  clock: Clock;
  random: () => number;
  log: Logger;
  namespace: string;
  identity: string;
  leaseDurationMs: number;
  renewMs: number;
  jitterMs: number;
  /** Called when this agent starts and stops leading. */
  onStart: () => void;
  onStop: () => void;
}

/** Stop leading this long before the lease could expire for the others. */
const RENEW_GRACE_MS = 2000;
/** After a failed write, the next one waits this long (at most renewMs): never a tight loop against a failing server. */
const RETRY_MS = 1000;

export class Election {
  readonly #o: ElectionOptions;
  #lease: RawLease | undefined;
  /** Local time at which the lease was last seen to change (holder or renewTime). */
  #observedAt = 0;
  #known = false;
  #leading = false;
  #lastRenew = 0;
  #failedAt = -Infinity;
  #timer: TimerHandle | undefined;
  #busy: Promise<void> | undefined;
  #stopped = false;
  /** No attempt before this (local ms): after a failed one, so candidates never spin on a lease they cannot take. */
  #notBefore = 0;
  readonly stats = { attempts: 0, renewals: 0, failures: 0 };

  constructor(o: ElectionOptions) {
    this.#o = o;
  }

  get leading(): boolean {
    return this.#leading;
  }

  get holder(): string {
    return this.#lease?.spec?.holderIdentity ?? '';
  }

  get #path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.#o.namespace}/leases`;
  }

  /** The lease as the watch (or the answer to our own write) shows it; undefined: there is none. */
  observe(lease: RawLease | undefined): void {
    const before = this.#lease;
    const rv = (l: RawLease | undefined): string => l?.metadata?.resourceVersion ?? '';
    if (lease !== undefined && before !== undefined && Number(rv(lease)) < Number(rv(before))) return;
    this.#known = true;
    this.#lease = lease;
    if (
      lease?.spec?.holderIdentity !== before?.spec?.holderIdentity ||
      lease?.spec?.renewTime !== before?.spec?.renewTime ||
      lease === undefined
    ) {
      this.#observedAt = this.#o.clock.now();
    }
    const holder = lease?.spec?.holderIdentity ?? '';
    if (this.#leading && holder !== this.#o.identity) this.#stepDown('another agent holds the aggregator lease');
    this.#plan();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    await this.#busy;
    if (this.#leading) {
      this.#leading = false;
      this.#o.onStop();
      await this.#release();
    }
  }

  /** Sets the one timer for what comes next: a renewal, or a try once the lease is free. */
  #plan(): void {
    if (this.#stopped || !this.#known || this.#busy !== undefined) return;
    this.#timer?.cancel();
    this.#timer = undefined;
    const now = this.#o.clock.now();
    let wait: number;
    if (this.#leading) {
      wait = Math.max(0, this.#lastRenew + this.#o.renewMs - now);
    } else {
      const holder = this.#lease?.spec?.holderIdentity ?? '';
      const jitter = this.#o.random() * this.#o.jitterMs;
      if (this.#lease === undefined || holder === '') wait = jitter;
      else if (holder === this.#o.identity)
        wait = 0; // ours, from before a restart: renew it
      else {
        const duration = (this.#lease.spec?.leaseDurationSeconds ?? 0) * 1000 || this.#o.leaseDurationMs;
        wait = Math.max(0, this.#observedAt + duration - now) + jitter;
      }
    }
    wait = Math.max(wait, this.#failedAt + this.#retryMs - now);
    if (!this.#leading) wait = Math.max(wait, this.#notBefore - now);
    this.#timer = this.#o.clock.after(wait, () => {
      this.#timer = undefined;
      this.#busy = (this.#leading ? this.#renew() : this.#tryAcquire()).finally(() => {
        this.#busy = undefined;
        this.#plan();
      });
    });
  }

  get #retryMs(): number {
    return Math.min(RETRY_MS, this.#o.renewMs);
  }

  #spec(acquire: boolean): NonNullable<RawLease['spec']> {
    const now = microTime(this.#o.clock.now());
    const prev = this.#lease?.spec;
    return {
      holderIdentity: this.#o.identity,
      leaseDurationSeconds: Math.round(this.#o.leaseDurationMs / 1000),
      acquireTime: acquire ? now : (prev?.acquireTime ?? now),
      renewTime: now,
      leaseTransitions: (prev?.leaseTransitions ?? 0) + (acquire && prev?.holderIdentity !== this.#o.identity ? 1 : 0),
    };
  }

  async #tryAcquire(): Promise<void> {
    // Still free or expired by our clock? (The watch may have brought a new holder meanwhile.)
    const holder = this.#lease?.spec?.holderIdentity ?? '';
    const now = this.#o.clock.now();
    const duration = (this.#lease?.spec?.leaseDurationSeconds ?? 0) * 1000 || this.#o.leaseDurationMs;
    if (this.#lease !== undefined && holder !== '' && holder !== this.#o.identity && now < this.#observedAt + duration)
      return;
    this.stats.attempts++;
    try {
      const body = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: {
          name: AGGREGATOR_LEASE,
          namespace: this.#o.namespace,
          ...(this.#lease?.metadata?.resourceVersion === undefined
            ? {}
            : { resourceVersion: this.#lease.metadata.resourceVersion }),
        },
        spec: this.#spec(holder !== this.#o.identity),
      };
      const res =
        this.#lease === undefined
          ? await this.#o.api.request<RawLease>({ method: 'POST', path: this.#path, body, timeoutMs: 10_000 })
          : await this.#o.api.request<RawLease>({
              method: 'PUT',
              path: `${this.#path}/${AGGREGATOR_LEASE}`,
              body,
              timeoutMs: 10_000,
            });
      this.#lastRenew = this.#o.clock.now();
      this.#lease = res;
      this.#observedAt = this.#lastRenew;
      this.#leading = true;
      this.#o.log.info({ holder: this.#o.identity }, 'became the aggregator');
      this.#o.onStart();
    } catch (e: unknown) {
      this.#failedAt = this.#o.clock.now();
      // 409: someone else won, or our copy was stale (a watch that is behind): read it once, so the
      // next try waits a whole duration from what the lease says now.
      if (isKubeApiError(e) && e.status === 409) {
        this.#notBefore = this.#o.clock.now() + this.#o.renewMs;
        await this.#refresh();
        return;
      }
      this.stats.failures++;
      this.#notBefore = this.#o.clock.now() + this.#o.renewMs + this.#o.random() * this.#o.jitterMs;
      this.#o.log.warn({ err: messageOf(e) }, 'could not take the aggregator lease');
    }
  }

  async #renew(): Promise<void> {
    try {
      const res = await this.#put(
        this.#spec(false),
        // Never past the moment this agent must stop leading.
        Math.max(
          1000,
          Math.min(this.#o.renewMs, this.#lastRenew + this.#o.leaseDurationMs - RENEW_GRACE_MS - this.#o.clock.now()),
        ),
      );
      this.stats.renewals++;
      this.#lastRenew = this.#o.clock.now();
      this.#lease = res;
      this.#observedAt = this.#lastRenew;
    } catch (e: unknown) {
      this.stats.failures++;
      this.#failedAt = this.#o.clock.now();
      if (isKubeApiError(e) && e.status === 409) {
        // Our copy is stale, or someone took it: the watch decides. Stop now if it could be theirs.
        this.#o.log.warn('renewing the aggregator lease conflicted');
      } else {
        this.#o.log.warn({ err: messageOf(e) }, 'could not renew the aggregator lease');
      }
      // Stop when the next try would come too late.
      if (this.#o.clock.now() + this.#retryMs - this.#lastRenew > this.#o.leaseDurationMs - RENEW_GRACE_MS) {
        this.#stepDown('could not renew the aggregator lease in time');
      }
    }
  }

  /** Updates the lease with the resourceVersion last seen (optimistic concurrency: 409 when stale). */
  #put(spec: NonNullable<RawLease['spec']>, timeoutMs: number): Promise<RawLease> {
    return this.#o.api.request<RawLease>({
      method: 'PUT',
      path: `${this.#path}/${AGGREGATOR_LEASE}`,
      body: {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: {
          name: AGGREGATOR_LEASE,
          namespace: this.#o.namespace,
          resourceVersion: this.#lease?.metadata?.resourceVersion,
        },
        spec,
      },
      timeoutMs,
    });
  }

  /**
   * Reads the lease (after a conflict); a failure leaves the view as it was. A list selected to the
   * one name, since the role grants list and watch, not get.
   */
  async #refresh(): Promise<void> {
    try {
      const found = await this.#o.api.request<{ items?: RawLease[] }>({
        method: 'GET',
        path: this.#path,
        query: { fieldSelector: `metadata.name=${AGGREGATOR_LEASE}` },
        timeoutMs: 10_000,
      });
      const l = found.items?.[0];
      if (l === undefined) {
        this.#lease = undefined;
        return;
      }
      const changed =
        l.spec?.holderIdentity !== this.#lease?.spec?.holderIdentity ||
        l.spec?.renewTime !== this.#lease?.spec?.renewTime;
      this.#lease = l;
      if (changed) this.#observedAt = this.#o.clock.now();
    } catch (e: unknown) {
      this.#o.log.debug({ err: messageOf(e) }, 'could not read the aggregator lease');
    }
  }

  #stepDown(why: string): void {
    if (!this.#leading) return;
    this.#leading = false;
    this.#notBefore = this.#o.clock.now() + this.#o.renewMs;
    this.#o.log.warn({ why }, 'no longer the aggregator');
    this.#o.onStop();
  }

  /** Gives the lease up (empty holder, 1 s) so a candidate takes it at once. Best effort. */
  async #release(): Promise<void> {
    try {
      await this.#put(
        {
          ...this.#lease?.spec,
          holderIdentity: '',
          leaseDurationSeconds: 1,
          renewTime: microTime(this.#o.clock.now()),
        },
        3000,
      );
    } catch (e: unknown) {
      this.#o.log.warn({ err: messageOf(e) }, 'could not release the aggregator lease; it expires by itself');
    }
  }
}
