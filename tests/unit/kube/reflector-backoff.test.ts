// The reflector's retry cap after a failure depends on whether the API server answered: a server that
// cannot be reached (connection refused: down, restarting) is retried within the short
// `unreachableBackoffMaxMs`, so a node converges soon after it is back (issue 10, R2); a server that
// answers with an error (busy: 429, 5xx) gets the long `backoffMaxMs`. Real client, real loopback
// sockets: a port nobody listens on, and an HTTP server that answers 500.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { KubeClient } from '../../../agent/src/kube/client.js';
import { Reflector } from '../../../agent/src/kube/reflector.js';
import { pollUntil } from '../../testbed/exec.js';

const listen = (s: Server): Promise<number> =>
  new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));

/** A port that refuses connections: bound once, then closed. */
async function refusedPort(): Promise<number> {
  const s = createServer();
  const port = await listen(s);
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Runs a reflector against `server` until it has logged `retries` failed attempts; returns their delays. */
async function retryDelays(server: string, retries: number): Promise<number[]> {
  const delays: number[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line === '') continue;
        const rec = JSON.parse(line) as { retryInMs?: unknown };
        if (typeof rec.retryInMs === 'number') delays.push(rec.retryInMs);
      }
      done();
    },
  });
  const client = new KubeClient({ server, insecureSkipTlsVerify: true, token: 'x' });
  const r = new Reflector<{ key: string }>({
    name: 'test',
    client,
    path: '/api/v1/pods',
    transform: () => undefined,
    keyOf: (o) => o.key,
    onChange: () => {},
    timing: { backoffInitialMs: 5, backoffMaxMs: 400, unreachableBackoffMaxMs: 40 },
    log: pino({ level: 'warn' }, sink),
  });
  r.start();
  try {
    const got = await pollUntil(() => Promise.resolve(delays.length >= retries ? true : undefined), 60_000);
    if (got === undefined) throw new Error(`fewer than ${retries} retries in 60 s: ${delays.join(', ')}`);
  } finally {
    await r.stop();
    client.close();
  }
  return delays;
}

t.test('an API server that cannot be reached is retried within the short cap', async (t) => {
  const delays = await retryDelays(`http://127.0.0.1:${await refusedPort()}`, 10);
  t.ok(
    delays.every((d) => d <= 40),
    `every delay within unreachableBackoffMaxMs (40): ${delays.join(', ')}`,
  );
});

t.test('an API server that answers with an error backs off to the long cap', async (t) => {
  const s = createServer((_req, res) => {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end('{"kind":"Status","message":"busy","reason":"InternalError"}');
  });
  const port = await listen(s);
  t.teardown(() => new Promise<void>((resolve) => s.close(() => resolve())));
  const delays = await retryDelays(`http://127.0.0.1:${port}`, 10);
  t.ok(
    delays.some((d) => d > 40),
    `some delay beyond the short cap: ${delays.join(', ')}`,
  );
  t.ok(
    delays.every((d) => d <= 400),
    'and none beyond backoffMaxMs (400)',
  );
});
