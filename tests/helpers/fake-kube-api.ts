/**
 * A KubeApi (agent/src/cluster/kube-api.ts) for unit tests: records every request and answers
 * from a table of routes, each a method and a path (exact, or a RegExp) with a handler that returns
 * the answer (or a promise of it) or throws, typically `kubeError(409)`. The last route added that
 * matches wins, so a test can override an answer for one step. Unmatched requests get a 404.
 */
import type { Clock } from '../../agent/src/cluster/clock.js';
import type { KubeApi } from '../../agent/src/cluster/kube-api.js';
import { KubeApiError, type KubeRequest } from '../../agent/src/kube/client.js';

export type Method = KubeRequest['method'];

/** One request as the code under test made it. */
export interface RecordedRequest {
  method: Method;
  path: string;
  query: KubeRequest['query'];
  body: unknown;
  contentType: string | undefined;
  /** The fake clock's time when it was made (NaN without a clock). */
  at: number;
}

export type Handler = (req: RecordedRequest) => unknown;

interface Route {
  method: Method;
  path: string | RegExp;
  handler: Handler;
}

/** The error the real client throws for an answer with this status. */
export const kubeError = (status: number, reason?: string): KubeApiError =>
  new KubeApiError(`fake API server answered ${status}${reason === undefined ? '' : ` (${reason})`}`, status, reason);

export class FakeKubeApi implements KubeApi {
  readonly requests: RecordedRequest[] = [];
  readonly #routes: Route[] = [];
  readonly #clock: Clock | undefined;

  constructor(clock?: Clock) {
    this.#clock = clock;
  }

  /** Adds a route; `answer` is a handler, or a value returned as is (cloned) for every match. */
  on(method: Method, path: string | RegExp, answer: Handler | Record<string, unknown>): this {
    const handler: Handler = typeof answer === 'function' ? answer : () => structuredClone(answer);
    this.#routes.push({ method, path, handler });
    return this;
  }

  /** The requests made so far, optionally only those of one method (and path). */
  calls(method?: Method, path?: string | RegExp): RecordedRequest[] {
    return this.requests.filter((r) => (method === undefined || r.method === method) && matches(path, r.path));
  }

  async request<T>(req: KubeRequest): Promise<T> {
    const rec: RecordedRequest = {
      method: req.method,
      path: req.path,
      query: req.query === undefined ? undefined : { ...req.query },
      body: req.body === undefined ? undefined : structuredClone(req.body),
      contentType: req.contentType,
      at: this.#clock?.now() ?? NaN,
    };
    this.requests.push(rec);
    await Promise.resolve();
    for (let i = this.#routes.length - 1; i >= 0; i--) {
      const r = this.#routes[i];
      if (r !== undefined && r.method === req.method && matches(r.path, req.path)) {
        return (await r.handler(rec)) as T;
      }
    }
    throw kubeError(404, 'NotFound');
  }
}

function matches(pattern: string | RegExp | undefined, path: string): boolean {
  if (pattern === undefined) return true;
  return typeof pattern === 'string' ? pattern === path : pattern.test(path);
}
