/**
 * How long a failed list or watch waits before it is tried again. The reflector owns the loop; this
 * owns the choice, from what the API server said and how often it has failed in a row.
 *
 * What a kube-apiserver (v1.36) answers while it starts, in order, measured on the test bed: first
 * no answer at all (connection refused); then, for a CRD's path, `503 ServiceUnavailable` "the
 * request has been made before all known HTTP paths have been installed" with `Retry-After: 5`;
 * for a ServiceAccount, `403 Forbidden` for about 0.2 s (RBAC's informers are not synced yet);
 * `429 TooManyRequests` "storage is (re)initializing" with `Retry-After: 1` while the watch cache
 * fills; then 200, about a second before /readyz says ok. So three kinds of failure:
 *
 * - `unreachable`: no HTTP answer (refused, reset, timed out). Retrying costs a server that is down
 *   nothing, and the first retry after it is back decides how soon the node converges: short cap.
 * - `unavailable`: a 503, or a 429 or 5xx with `Retry-After`. The server (or a proxy in front of
 *   it) says it will serve soon: short cap, and never sooner than its Retry-After (bounded by the
 *   cap). A server that sheds load with 429 + Retry-After (priority and fairness) is followed the
 *   same way, as client-go's request retries follow it (for those codes only).
 * - `error`: any other answer (500, 504, 403, ...): a server that is failing or refusing us; the
 *   long cap, so an overloaded server is not kept busy by every node.
 *
 * The attempt count restarts when a request succeeds, and when the server answers at all after
 * answering nothing (it is back: a 403 while its RBAC cache fills must not wait out the delay that
 * a minute of refused connections built up).
 */
import { isKubeApiError } from './client.js';

/** What kind of failure a list or watch ended in (see the module comment). */
export type FailureKind = 'unreachable' | 'unavailable' | 'error';

/** The backoff knobs (a part of ReflectorTiming). */
export interface BackoffTiming {
  /** First retry delay after a failure; doubles with each failure in a row. */
  backoffInitialMs: number;
  /** The cap for `error` failures. */
  backoffMaxMs: number;
  /** The cap for `unreachable` and `unavailable` failures (never above `backoffMaxMs`). */
  shortBackoffMaxMs: number;
}

/** The kind of a failure, from the error a list or watch threw. */
export function failureKind(e: unknown): FailureKind {
  // Not a KubeApiError (a token file that cannot be read, an answer cut off mid-body): no word from the server.
  if (!isKubeApiError(e) || e.status === 0) return 'unreachable';
  if (e.status === 503) return 'unavailable';
  if ((e.status === 429 || e.status >= 500) && e.retryAfterMs !== undefined) return 'unavailable';
  return 'error';
}

/**
 * The delay before retry number `attempt` (0 for the first failure in a row): a jittered
 * exponential backoff, drawn in [cap/2, cap], with the cap of the failure's kind; when the server
 * named a Retry-After, at least that (bounded by the same cap). `random` returns a number in [0, 1).
 */
export function retryDelayMs(
  kind: FailureKind,
  retryAfterMs: number | undefined,
  attempt: number,
  t: BackoffTiming,
  random: () => number,
): number {
  const maxMs = kind === 'error' ? t.backoffMaxMs : Math.min(t.backoffMaxMs, t.shortBackoffMaxMs);
  const cap = Math.min(maxMs, t.backoffInitialMs * 2 ** Math.min(attempt, 20));
  const jittered = Math.round(cap / 2 + (cap / 2) * random());
  return retryAfterMs === undefined ? jittered : Math.max(jittered, Math.min(retryAfterMs, maxMs));
}

/** The retry state of one list/watch loop: failures in a row, and the kind of the last one. */
export class Backoff {
  readonly #t: BackoffTiming;
  readonly #random: () => number;
  #attempt = 0;
  #last: FailureKind | undefined;

  constructor(t: BackoffTiming, random: () => number) {
    this.#t = t;
    this.#random = random;
  }

  /** The delay before the next try after the failure `e`, with its kind (for the log). */
  next(e: unknown): { delayMs: number; kind: FailureKind } {
    const kind = failureKind(e);
    if (this.#last === 'unreachable' && kind !== 'unreachable') this.#attempt = 0;
    this.#last = kind;
    const retryAfterMs = kind === 'unavailable' && isKubeApiError(e) ? e.retryAfterMs : undefined;
    return { delayMs: retryDelayMs(kind, retryAfterMs, this.#attempt++, this.#t, this.#random), kind };
  }

  /** The delay after a watch the server ended at once without an event: counted as an `error`. */
  nextEmpty(): number {
    this.#last = 'error';
    return retryDelayMs('error', undefined, this.#attempt++, this.#t, this.#random);
  }

  /** A request succeeded: the next failure starts from the first delay again. */
  reset(): void {
    this.#attempt = 0;
    this.#last = undefined;
  }
}
