// The reflector's retry delay after a failure depends on what the API server said (agent/src/kube/retry.ts,
// issue 10 R2): a server that cannot be reached, or that says it will serve soon (503; 429 or 5xx
// with Retry-After: what a starting kube-apiserver answers), is retried within the short `shortBackoffMaxMs`, and not
// sooner than its Retry-After; a server that answers with any other error (500, 429 without
// Retry-After) gets the long `backoffMaxMs`. The count of failures in a row restarts when a request
// succeeds and when the server answers after answering nothing. Real client, real loopback sockets:
// a port nobody listens on, and HTTP servers that answer what a kube-apiserver answers. The delays
// are read from the reflector's log (`retryInMs`), never timed.
import t, { type Test } from 'tap';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { KubeClient } from '../../../agent/src/kube/client.js';
import { Reflector, type ReflectorTiming } from '../../../agent/src/kube/reflector.js';
import { pollUntil } from '../../testbed/exec.js';

const listen = (s: Server, port = 0): Promise<number> =>
  new Promise((resolve) => s.listen(port, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
const close = (s: Server): Promise<void> => new Promise((resolve) => s.close(() => resolve()));

/** A port that refuses connections: bound once, then closed. */
async function refusedPort(): Promise<number> {
  const s = createServer();
  const port = await listen(s);
  await close(s);
  return port;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** An HTTP server with `handler`, closed with the test; resolves to its port. */
async function answering(t: Test, handler: Handler, port = 0): Promise<number> {
  const s = createServer(handler);
  const got = await listen(s, port);
  t.teardown(() => close(s));
  return got;
}

/** A Status answer, as kube-apiserver writes it. */
const status =
  (code: number, reason: string, message: string, retryAfterSeconds?: number): Handler =>
  (_req, res) => {
    res.writeHead(code, {
      'content-type': 'application/json',
      ...(retryAfterSeconds === undefined ? {} : { 'retry-after': String(retryAfterSeconds) }),
    });
    res.end(
      JSON.stringify({
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        message,
        reason,
        ...(retryAfterSeconds === undefined ? {} : { details: { retryAfterSeconds } }),
        code,
      }),
    );
  };

/** One logged retry: its delay, the kind of failure, and the error's message. */
interface Retry {
  delay: number;
  failure: string;
  err: string;
}

const TIMING: Partial<ReflectorTiming> = { backoffInitialMs: 5, backoffMaxMs: 400, shortBackoffMaxMs: 40 };

/** Starts a reflector against `port`, stopped with the test; the retries it logs land in the array. */
function reflect(t: Test, port: number, timing: Partial<ReflectorTiming> = TIMING): Retry[] {
  const retries: Retry[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line === '') continue;
        const rec = JSON.parse(line) as { retryInMs?: unknown; failure?: unknown; err?: unknown };
        if (typeof rec.retryInMs === 'number')
          retries.push({ delay: rec.retryInMs, failure: String(rec.failure), err: String(rec.err) });
      }
      done();
    },
  });
  const client = new KubeClient({ server: `http://127.0.0.1:${port}`, insecureSkipTlsVerify: true, token: 'x' });
  const r = new Reflector<{ key: string }>({
    name: 'test',
    client,
    path: '/api/v1/pods',
    transform: () => undefined,
    keyOf: (o) => o.key,
    onChange: () => {},
    timing,
    log: pino({ level: 'warn' }, sink),
  });
  r.start();
  t.teardown(async () => {
    await r.stop();
    client.close();
  });
  return retries;
}

const delays = (rs: Retry[]): string => rs.map((r) => r.delay).join(', ');

/** Waits until `retries` holds `n` entries that pass `which`; returns them. */
async function first(retries: Retry[], n: number, which: (r: Retry) => boolean = () => true): Promise<Retry[]> {
  const got = await pollUntil(() => {
    const hits = retries.filter(which);
    return Promise.resolve(hits.length >= n ? hits.slice(0, n) : undefined);
  }, 60_000);
  if (got === undefined)
    throw new Error(`fewer than ${n} such retries in 60 s; delays ${delays(retries.slice(0, 50))}`);
  return got;
}

t.test('an API server that cannot be reached is retried within the short cap', async (t) => {
  const rs = await first(reflect(t, await refusedPort()), 10);
  t.ok(
    rs.every((r) => r.delay <= 40 && r.failure === 'unreachable'),
    `every delay within shortBackoffMaxMs (40): ${delays(rs)}`,
  );
});

for (const [what, handler] of [
  ['500 InternalError', status(500, 'InternalError', 'busy')],
  ['429 without Retry-After', status(429, 'TooManyRequests', 'too many requests')],
] as const) {
  t.test(`an API server that answers ${what} backs off to the long cap`, async (t) => {
    const rs = await first(reflect(t, await answering(t, handler)), 10);
    t.ok(
      rs.some((r) => r.delay > 40),
      `some delay beyond the short cap: ${delays(rs)}`,
    );
    t.ok(
      rs.every((r) => r.delay <= 400 && r.failure === 'error'),
      'and none beyond backoffMaxMs (400)',
    );
  });
}

t.test('a starting API server (503, Retry-After: 5) is retried at the short cap', async (t) => {
  const port = await answering(
    t,
    status(
      503,
      'ServiceUnavailable',
      'the request has been made before all known HTTP paths have been installed, please try again',
      5,
    ),
  );
  const rs = await first(reflect(t, port), 10);
  t.ok(
    rs.every((r) => r.delay === 40 && r.failure === 'unavailable'),
    `every delay is its Retry-After bounded by shortBackoffMaxMs (40): ${delays(rs)}`,
  );
});

t.test('a 503 without Retry-After gets the short cap', async (t) => {
  const rs = await first(reflect(t, await answering(t, status(503, 'ServiceUnavailable', 'unavailable'))), 10);
  t.ok(
    rs.every((r) => r.delay <= 40),
    `every delay within shortBackoffMaxMs (40): ${delays(rs)}`,
  );
});

t.test('a 429 with Retry-After is retried no sooner than it says, within the short cap', async (t) => {
  const port = await answering(t, status(429, 'TooManyRequests', 'storage is (re)initializing', 1));
  const rs = await first(reflect(t, port, { ...TIMING, backoffMaxMs: 4000, shortBackoffMaxMs: 2000 }), 3);
  t.ok(
    rs.every((r) => r.delay >= 1000 && r.delay <= 2000 && r.failure === 'unavailable'),
    `every delay in [Retry-After (1000), shortBackoffMaxMs (2000)]: ${delays(rs)}`,
  );
});

t.test('the first answer after a run of refused connections starts the backoff afresh', async (t) => {
  const port = await refusedPort();
  const retries = reflect(t, port);
  // Enough refusals to have reached the cap: 5 ms doubling, the 7th is capped.
  await first(retries, 8);
  // While RBAC's informers fill, a starting API server answers a ServiceAccount with 403.
  await answering(t, status(403, 'Forbidden', 'pods is forbidden'), port);
  const [answered] = await first(retries, 1, (r) => r.err.includes(' 403 '));
  t.ok(
    answered !== undefined && answered.delay <= 5,
    `the first 403 is retried within backoffInitialMs (5): ${JSON.stringify(answered)}`,
  );
});

t.test('a list that succeeds starts the backoff afresh', async (t) => {
  let lists = 0;
  const failing = status(500, 'InternalError', 'busy');
  const port = await answering(t, (req, res) => {
    if (req.url?.includes('watch=true') === true) return failing(req, res);
    if (++lists <= 8) return failing(req, res);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[]}');
  });
  const retries = reflect(t, port);
  const rs = await first(retries, 9);
  const listed = rs.slice(0, 8);
  const watched = rs[8];
  t.ok(
    listed.some((r) => r.delay > 5) && listed.every((r) => r.err.startsWith('GET ')),
    `the failed lists backed off: ${delays(listed)}`,
  );
  t.ok(
    watched !== undefined && watched.err.startsWith('watch ') && watched.delay <= 5,
    `the first failed watch after the list is retried within backoffInitialMs (5): ${JSON.stringify(watched)}`,
  );
});
