/**
 * The one seam to the API server: plain HTTPS requests and watch streams, with credentials and TLS
 * from a kubeconfig file or the in-cluster service account (./kubeconfig.ts).
 * Every request has a timeout, so a black-holed connection can never hang the agent; watches have
 * no fixed timeout and are guarded by the reflector's watchdog instead.
 */
import { readFile } from 'node:fs/promises';
import type { Agent as HttpAgentType, IncomingMessage } from 'node:http';
import type { RequestOptions } from 'node:https';
import { createSecureContext } from 'node:tls';
import { inClusterCredentials, loadKubeconfig, type KubeCredentials } from './kubeconfig.js';

// The CommonJS objects: an ES module namespace of node:http reads its lazy WebSocket getters,
// which load undici (12 MiB of RSS, 100 ms and more at start).
const { Agent: HttpAgent, request: httpRequest } = process.getBuiltinModule('node:http');
const { Agent, request: httpsRequest } = process.getBuiltinModule('node:https');

/** An answer from the API server that is not 2xx, or a transport failure (status 0). */
export class KubeApiError extends Error {
  readonly status: number;
  /** The Status object's reason (`NotFound`, `Conflict`, `Expired`, ...), when there is one. */
  readonly reason: string | undefined;
  /**
   * When the server said to come back (its `Retry-After` header, else the Status's
   * `details.retryAfterSeconds`), in milliseconds from when the answer arrived; undefined when it
   * did not say.
   */
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    status: number,
    reason?: string,
    options?: { cause?: unknown; retryAfterMs?: number | undefined },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KubeApiError';
    this.status = status;
    this.reason = reason;
    this.retryAfterMs = options?.retryAfterMs;
  }
}

export const isKubeApiError = (e: unknown): e is KubeApiError => e instanceof KubeApiError;

export interface KubeRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  accept?: string;
  timeoutMs?: number;
}

/** One line of a watch stream. */
export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: Record<string, unknown>;
}

export interface WatchHandle {
  /** Resolves when the server ends the stream; rejects on a transport error or a non-200 answer. */
  done: Promise<void>;
  /** Ends the stream from our side (the watchdog, or stop); `done` then resolves. */
  abort: () => void;
}

/** Counts what went over the wire, for /v1/cluster and the benchmarks. */
export interface ClientStats {
  requests: number;
  failures: number;
  watchesOpened: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function buildUrl(server: string, path: string, query: KubeRequest['query']): URL {
  const url = new URL(server.replace(/\/$/, '') + path);
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
  return url;
}

interface StatusFields {
  message?: string;
  reason?: string;
  retryAfterSeconds?: number;
}

function statusOf(body: string): StatusFields {
  try {
    const s = JSON.parse(body) as { message?: unknown; reason?: unknown; details?: { retryAfterSeconds?: unknown } };
    const retry = s.details?.retryAfterSeconds;
    return {
      ...(typeof s.message === 'string' ? { message: s.message } : {}),
      ...(typeof s.reason === 'string' ? { reason: s.reason } : {}),
      ...(typeof retry === 'number' && Number.isFinite(retry) && retry >= 0 ? { retryAfterSeconds: retry } : {}),
    };
  } catch {
    return {};
  }
}

/**
 * A `Retry-After` header (delay-seconds or an HTTP-date, RFC 9110 10.2.3) in milliseconds from
 * `now`, else the Status's `retryAfterSeconds`; undefined when neither says.
 */
export function retryAfterMs(
  header: string | string[] | undefined,
  s: { retryAfterSeconds?: number },
  now: number,
): number | undefined {
  const h = (Array.isArray(header) ? header[0] : header)?.trim();
  if (h !== undefined && h !== '') {
    if (/^\d+$/.test(h)) return Number(h) * 1000;
    const at = Date.parse(h);
    if (Number.isFinite(at)) return Math.max(0, at - now);
  }
  return s.retryAfterSeconds === undefined ? undefined : s.retryAfterSeconds * 1000;
}

/** The error for a non-2xx answer, with the Status's reason and the server's Retry-After. */
function answerError(message: string, res: IncomingMessage, s: StatusFields): KubeApiError {
  return new KubeApiError(message, res.statusCode ?? 0, s.reason, {
    retryAfterMs: retryAfterMs(res.headers['retry-after'], s, Date.now()),
  });
}

/** A token file is re-read at most this often (kubelet rotates projected tokens well before expiry). */
const TOKEN_REFRESH_MS = 60_000;

export class KubeClient {
  readonly #creds: KubeCredentials;
  readonly #server: string;
  readonly #agent: HttpAgentType;
  readonly #request: typeof httpsRequest;
  #token: { value: string; readAt: number } | undefined;
  readonly stats: ClientStats = { requests: 0, failures: 0, watchesOpened: 0 };

  constructor(creds: KubeCredentials) {
    this.#creds = creds;
    this.#server = creds.server;
    const tls = new URL(creds.server).protocol === 'https:';
    this.#request = tls ? httpsRequest : httpRequest;
    // One secure context for every connection: given the CA and keys instead, each new connection
    // would parse them again (a few ms of CPU each).
    this.#agent = tls
      ? new Agent({
          keepAlive: true,
          maxSockets: 32,
          rejectUnauthorized: !creds.insecureSkipTlsVerify,
          secureContext: createSecureContext({
            ...(creds.ca === undefined ? {} : { ca: creds.ca }),
            ...(creds.cert === undefined ? {} : { cert: creds.cert }),
            ...(creds.key === undefined ? {} : { key: creds.key }),
          }),
          ...(creds.tlsServerName === undefined ? {} : { servername: creds.tlsServerName }),
        })
      : new HttpAgent({ keepAlive: true, maxSockets: 32 });
  }

  /** From a kubeconfig file, or the in-cluster service account when `kubeconfig` is undefined. */
  static load(kubeconfig: string | undefined): KubeClient {
    return new KubeClient(kubeconfig === undefined ? inClusterCredentials() : loadKubeconfig(kubeconfig));
  }

  get server(): string {
    return this.#server;
  }

  async #authorization(): Promise<string | undefined> {
    const c = this.#creds;
    if (c.token !== undefined) return `Bearer ${c.token}`;
    if (c.tokenFile !== undefined) {
      if (this.#token === undefined || Date.now() - this.#token.readAt > TOKEN_REFRESH_MS) {
        try {
          this.#token = { value: (await readFile(c.tokenFile, 'utf8')).trim(), readAt: Date.now() };
        } catch (e: unknown) {
          // Keep using the last token we read; without one, the request fails with the reason.
          if (this.#token === undefined) throw e;
        }
      }
      return `Bearer ${this.#token.value}`;
    }
    if (c.basic !== undefined) {
      return `Basic ${Buffer.from(`${c.basic.username}:${c.basic.password}`).toString('base64')}`;
    }
    return undefined;
  }

  /** The Authorization header, fresh for each request (token files rotate). */
  async #options(method: string, headers: Record<string, string>): Promise<RequestOptions> {
    const auth = await this.#authorization();
    return { method, headers: auth === undefined ? headers : { ...headers, authorization: auth }, agent: this.#agent };
  }

  /** Sends one request and returns the parsed JSON answer; throws KubeApiError when it is not 2xx. */
  async request<T>(req: KubeRequest): Promise<T> {
    this.stats.requests++;
    const url = buildUrl(this.#server, req.path, req.query);
    const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
    const headers: Record<string, string> = { accept: req.accept ?? 'application/json' };
    if (payload !== undefined) {
      headers['content-type'] = req.contentType ?? 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const opts = await this.#options(req.method, headers);
    const timeoutMs = req.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    try {
      return await new Promise<T>((resolveAnswer, rejectAnswer) => {
        // A deadline for the whole request. The socket's own timeout below only starts once a
        // socket is connected and restarts with every byte: a request queued for a socket, or an
        // answer that trickles, never ended (agents whose Lease renewal hung so stopped renewing
        // for good on an overloaded API server).
        const deadline = setTimeout(() => r.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        const resolve = (v: T): void => {
          clearTimeout(deadline);
          resolveAnswer(v);
        };
        const reject = (e: unknown): void => {
          clearTimeout(deadline);
          rejectAnswer(e);
        };
        const r = this.#request(url, opts, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              try {
                resolve((body === '' ? {} : JSON.parse(body)) as T);
              } catch (e: unknown) {
                reject(
                  new KubeApiError(`${req.method} ${req.path}: unreadable answer`, status, undefined, { cause: e }),
                );
              }
              return;
            }
            const s = statusOf(body);
            reject(answerError(`${req.method} ${req.path}: ${status} ${s.message ?? body.slice(0, 200)}`, res, s));
          });
        });
        r.setTimeout(timeoutMs, () => r.destroy(new Error(`no answer within ${timeoutMs} ms`)));
        r.on('error', (e: Error) =>
          reject(new KubeApiError(`${req.method} ${req.path}: ${e.message}`, 0, undefined, { cause: e })),
        );
        r.end(payload);
      });
    } catch (e: unknown) {
      this.stats.failures++;
      throw e;
    }
  }

  /**
   * Opens a watch and calls `onEvent` for each line. `onActivity` is called on every chunk (events
   * and bookmarks alike), which is what the watchdog measures silence by.
   */
  async watch(
    path: string,
    query: KubeRequest['query'],
    onEvent: (e: WatchEvent) => void,
    onActivity: () => void,
    accept?: string,
  ): Promise<WatchHandle> {
    this.stats.watchesOpened++;
    const url = buildUrl(this.#server, path, { ...query, watch: true });
    const opts = await this.#options('GET', { accept: accept ?? 'application/json' });
    let aborted = false;
    let req: ReturnType<typeof httpsRequest> | undefined;
    let response: IncomingMessage | undefined;
    const done = new Promise<void>((resolve, reject) => {
      req = this.#request(url, opts, (res) => {
        response = res;
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const s = statusOf(Buffer.concat(chunks).toString('utf8'));
            reject(answerError(`watch ${path}: ${status} ${s.message ?? ''}`, res, s));
          });
          res.on('error', reject);
          return;
        }
        onActivity();
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          onActivity();
          buf += chunk;
          let nl = buf.indexOf('\n');
          while (nl >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim() !== '') {
              let ev: WatchEvent | undefined;
              try {
                ev = JSON.parse(line) as WatchEvent;
              } catch {
                ev = undefined;
              }
              if (ev !== undefined) onEvent(ev);
            }
            nl = buf.indexOf('\n');
          }
        });
        res.on('end', () => resolve());
        res.on('close', () => resolve());
        res.on('error', (e: Error) => (aborted ? resolve() : reject(e)));
      });
      req.on('error', (e: Error) =>
        aborted ? resolve() : reject(new KubeApiError(`watch ${path}: ${e.message}`, 0, undefined, { cause: e })),
      );
      req.end();
    });
    return {
      done,
      abort: () => {
        aborted = true;
        response?.destroy();
        req?.destroy();
      },
    };
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    this.#agent.destroy();
  }

  /**
   * Drops every connection, idle or busy, so the next requests open fresh ones: for connections
   * found cut without a word (their requests fail and are retried; a kept-alive idle socket of a
   * black-holed path would otherwise take the next watch and hang it too). The client stays usable.
   */
  resetConnections(): void {
    this.#agent.destroy();
  }
}
