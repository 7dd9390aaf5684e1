// The client's errors carry when the API server said to come back (`retryAfterMs`): its
// Retry-After header (delay-seconds or an HTTP-date), else the Status's details.retryAfterSeconds,
// which is what the reflector's backoff follows (issue 10 R2). Real client, a real loopback server
// answering as a starting kube-apiserver does.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isKubeApiError, KubeClient, retryAfterMs } from '../../../agent/src/kube/client.js';

t.test('Retry-After: delay-seconds, an HTTP-date, the Status, or nothing', async (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  t.equal(retryAfterMs('5', {}, now), 5000, 'delay-seconds');
  t.equal(retryAfterMs(['1', '9'], {}, now), 1000, 'the first of repeated headers');
  t.equal(retryAfterMs('Thu, 01 Jan 2026 00:00:03 GMT', {}, now), 3000, 'an HTTP-date');
  t.equal(retryAfterMs('Wed, 31 Dec 2025 23:00:00 GMT', {}, now), 0, 'an HTTP-date in the past: now');
  t.equal(retryAfterMs(undefined, { retryAfterSeconds: 2 }, now), 2000, 'no header: the Status details');
  t.equal(retryAfterMs('7', { retryAfterSeconds: 2 }, now), 7000, 'the header wins over the Status');
  t.equal(retryAfterMs('soon', {}, now), undefined, 'not a delay nor a date');
  t.equal(retryAfterMs(undefined, {}, now), undefined, 'nothing said');
});

const listen = (s: Server): Promise<number> =>
  new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));

t.test('a request and a watch answered 503 with Retry-After carry it', async (t) => {
  let retryHeader = true;
  const s = createServer((_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json', ...(retryHeader ? { 'retry-after': '5' } : {}) });
    res.end(
      '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the request has been made before all known HTTP paths have been installed, please try again","reason":"ServiceUnavailable","details":{"retryAfterSeconds":4},"code":503}',
    );
  });
  const port = await listen(s);
  t.teardown(() => new Promise<void>((resolve) => s.close(() => resolve())));
  const client = new KubeClient({ server: `http://127.0.0.1:${port}`, insecureSkipTlsVerify: true, token: 'x' });
  t.teardown(() => client.close());

  const caught = async (p: Promise<unknown>): Promise<unknown> =>
    p.then(
      () => undefined,
      (e: unknown) => e,
    );
  const req = await caught(client.request({ method: 'GET', path: '/apis/x/v1/things' }));
  t.ok(isKubeApiError(req) && req.status === 503 && req.reason === 'ServiceUnavailable', 'request: a 503 KubeApiError');
  t.equal(isKubeApiError(req) ? req.retryAfterMs : 'no', 5000, 'request: retryAfterMs from the header');

  const handle = await client.watch(
    '/apis/x/v1/things',
    { resourceVersion: '1' },
    () => {},
    () => {},
  );
  const watch = await caught(handle.done);
  t.equal(isKubeApiError(watch) ? watch.retryAfterMs : 'no', 5000, 'watch: retryAfterMs from the header');

  retryHeader = false;
  const bare = await caught(client.request({ method: 'GET', path: '/apis/x/v1/things' }));
  t.equal(isKubeApiError(bare) ? bare.retryAfterMs : 'no', 4000, 'no header: from the Status details');
});

t.test('an answer that says nothing of retrying carries no retryAfterMs', async (t) => {
  const s = createServer((_req, res) => {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end('{"kind":"Status","message":"boom","reason":"InternalError","code":500}');
  });
  const port = await listen(s);
  t.teardown(() => new Promise<void>((resolve) => s.close(() => resolve())));
  const client = new KubeClient({ server: `http://127.0.0.1:${port}`, insecureSkipTlsVerify: true, token: 'x' });
  t.teardown(() => client.close());
  const e = await client.request({ method: 'GET', path: '/api/v1/pods' }).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.ok(isKubeApiError(e) && e.status === 500 && e.retryAfterMs === undefined, 'status 500, no retryAfterMs');
});

t.test('a request has one deadline, also when the answer trickles in', async (t) => {
  // Headers at once, then a byte every 50 ms forever: the socket is never idle for the timeout.
  const timers: NodeJS.Timeout[] = [];
  const s = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"items":[');
    timers.push(setInterval(() => res.write(' '), 50));
  });
  const port = await listen(s);
  t.teardown(() => {
    for (const x of timers) clearInterval(x);
    s.closeAllConnections();
    s.close();
  });
  const c = new KubeClient({ server: `http://127.0.0.1:${port}`, insecureSkipTlsVerify: false });
  t.teardown(() => c.close());
  const e: unknown = await c.request({ method: 'GET', path: '/api/v1/pods', timeoutMs: 300 }).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.ok(isKubeApiError(e), 'the request failed');
  t.match(String(e), /no answer within 300 ms/, 'with the deadline as the reason');
});

t.test('resetConnections drops kept-alive sockets: the next request opens a fresh connection', async (t) => {
  let connections = 0;
  const s = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
  s.on('connection', () => connections++);
  const port = await listen(s);
  t.teardown(() => {
    s.closeAllConnections();
    s.close();
  });
  const c = new KubeClient({ server: `http://127.0.0.1:${port}`, insecureSkipTlsVerify: false });
  t.teardown(() => c.close());
  await c.request({ method: 'GET', path: '/a' });
  await c.request({ method: 'GET', path: '/b' });
  t.equal(connections, 1, 'kept alive: one connection for two requests');
  c.resetConnections();
  await c.request({ method: 'GET', path: '/c' });
  t.equal(connections, 2, 'after the reset a new connection, and the client still works');
});
