/**
 * The endpoint before fastify is loaded: main listens with node:http alone, so `/healthz` answers
 * within a bare node process's start, however long loading the rest, waiting for the CRD or the
 * first sync takes. Until `handOver` it answers `/healthz` 200, `/readyz` 503 with the reason it is
 * given, and every other path 503 (no data, so no authentication needed); then every request goes
 * to the handler fastify passes to its `serverFactory`. Loads nothing but node:http.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

// Not `import … from 'node:http'`: an ES module namespace of node:http reads every export, and its
// lazy WebSocket, CloseEvent and MessageEvent getters load undici (100 to 190 ms and several MiB);
// the CommonJS object does not.
const { createServer } = process.getBuiltinModule('node:http');

/** The listening server and how to hand it over. */
export interface EarlyServer {
  readonly server: Server;
  /** `http://host:port`, as fastify prints it. */
  readonly url: string;
  /** What `/readyz` says until the hand-over. */
  reason: string;
  /** From now on `handler` answers every request (fastify's `serverFactory` handler). */
  handOver(handler: (req: IncomingMessage, res: ServerResponse) => void): void;
  /** Stops listening, ends idle keep-alive connections, resolves when the last connection is gone. */
  close(): Promise<void>;
}

const JSON_TYPE = 'application/json; charset=utf-8';

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The answer of the early endpoint to one request (exported for tests). */
export function earlyAnswer(req: IncomingMessage, res: ServerResponse, reason: string): void {
  const path = (req.url ?? '/').split('?')[0];
  const get = req.method === 'GET' || req.method === 'HEAD';
  if (get && path === '/healthz') send(res, 200, { status: 'ok' });
  else if (get && path === '/readyz') send(res, 503, { status: 'not ready', reason });
  else {
    const body = { statusCode: 503, error: 'Service Unavailable', message: `starting: ${reason}` };
    send(res, 503, body, { 'retry-after': '1' });
  }
}

/** Listens on `host:port` (port 0: any) and answers the probes until handed over. */
export function listenEarly(o: { host: string; port: number; reason: string }): Promise<EarlyServer> {
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const early = { reason: o.reason };
  const server = createServer((req, res) => {
    if (handler !== undefined) handler(req, res);
    else earlyAnswer(req, res, early.reason);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: o.host, port: o.port }, () => {
      server.off('error', reject);
      const a = server.address();
      const port = typeof a === 'object' && a !== null ? a.port : o.port;
      const host = o.host.includes(':') ? `[${o.host}]` : o.host;
      resolve(
        Object.assign(early, {
          server,
          url: `http://${host}:${port}`,
          handOver: (h: (req: IncomingMessage, res: ServerResponse) => void) => {
            handler = h;
          },
          close: () =>
            new Promise<void>((res) => {
              server.close(() => res());
              server.closeIdleConnections();
            }),
        }),
      );
    });
  });
}
