// The endpoint before fastify: main listens with node:http alone and answers the probes while the
// rest loads, then fastify takes the same server over. What a client sees before and after, and
// that the real agent in cluster mode answers /healthz while it waits for the CRD (it used to not
// listen at all until then).
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { listenEarly } from '../../../agent/src/http/early.js';
import { buildServer } from '../../../agent/src/http/server.js';
import { agentEnv, MAIN, requireBuiltAgent, until } from '../../helpers/standalone-agent.js';

const ask = async (url: string, method = 'GET'): Promise<{ status: number; type: string; body: unknown }> => {
  const r = await fetch(url, { method });
  const text = await r.text();
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: text === '' ? '' : JSON.parse(text) };
};

t.test('before the hand-over: the probes answer, everything else is 503 without data', async (t) => {
  const early = await listenEarly({ host: '127.0.0.1', port: 0, reason: 'the agent is starting' });
  t.teardown(() => early.close());
  const starting = { statusCode: 503, error: 'Service Unavailable', message: 'starting: the agent is starting' };
  const table: [string, string, number, unknown][] = [
    ['GET', '/healthz', 200, { status: 'ok' }],
    ['GET', '/healthz?x=1', 200, { status: 'ok' }],
    ['GET', '/readyz', 503, { status: 'not ready', reason: 'the agent is starting' }],
    ['HEAD', '/healthz', 200, ''],
    ['GET', '/v1/profiles', 503, starting],
    ['GET', '/v1/events?limit=1', 503, starting],
    ['GET', '/metrics', 503, starting],
    ['POST', '/healthz', 503, starting],
  ];
  for (const [method, path, status, body] of table) {
    const r = await ask(`${early.url}${path}`, method);
    t.equal(r.status, status, `${method} ${path}: ${status}`);
    t.same(r.body, body, `${method} ${path}: body`);
    t.equal(r.type, 'application/json; charset=utf-8', `${method} ${path}: JSON, as fastify answers`);
  }
  early.reason = 'waiting for the SeccompProfile API (its CRD) on the API server';
  t.same((await ask(`${early.url}/readyz`)).body, { status: 'not ready', reason: early.reason }, 'says the new reason');
});

t.test('after the hand-over fastify answers on the same port, and closing frees it', async (t) => {
  const early = await listenEarly({ host: '127.0.0.1', port: 0, reason: 'starting' });
  let ready = false;
  const app = await buildServer({
    logger: pino({ level: 'silent' }),
    node: 'n1',
    profiles: () => [],
    readiness: () => ({ ready, reason: ready ? 'first sync done' : 'the first sync is not done yet' }),
    serverFactory: (handler) => {
      early.handOver(handler);
      return early.server;
    },
  });
  await app.ready();
  const table: [string, number, unknown][] = [
    ['/healthz', 200, { status: 'ok' }],
    ['/readyz', 503, { status: 'not ready', reason: 'the first sync is not done yet' }],
    ['/v1/profiles', 200, { node: 'n1', items: [], problems: [] }],
  ];
  for (const [path, status, body] of table) {
    const r = await ask(`${early.url}${path}`);
    t.equal(r.status, status, `${path}: ${status}`);
    t.same(r.body, body, `${path}: fastify's answer`);
  }
  ready = true;
  t.equal((await ask(`${early.url}/readyz`)).status, 200, '/readyz 200 once ready');
  t.equal((await ask(`${early.url}/nope`)).status, 404, 'unknown paths: fastify 404');
  await app.close();
  await early.close();
  await t.rejects(fetch(`${early.url}/healthz`), 'no longer listening');
});

t.test('cluster mode: /healthz answers while the agent waits for the CRD; /readyz says why not', async (t) => {
  await requireBuiltAgent();
  // An API server that serves no SeccompProfile group (404 for every path): a cluster before the
  // CRD is installed, as far as discovery can tell.
  const api = createHttpServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => api.close(() => r())).then(() => undefined));
  t.teardown(() => api.closeAllConnections());
  const addr = api.address();
  const apiPort = typeof addr === 'object' && addr !== null ? addr.port : 0;
  const dir = t.testdir({});
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters: [{name: c, cluster: {server: "http://127.0.0.1:' + apiPort + '"}}]',
      'users: [{name: u, user: {token: t}}]',
      'contexts: [{name: x, context: {cluster: c, user: u}}]',
      'current-context: x',
      '',
    ].join('\n'),
  );
  const port = await new Promise<number>((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
  const child = spawn(
    process.execPath,
    [MAIN, '--kubeconfig', kubeconfig, '--kubelet-root', join(dir, 'kubelet'), '--node-name', 'n1'].concat([
      '--listen',
      `127.0.0.1:${port}`,
      '--audit-source',
      'none',
      '--log-level',
      'error',
    ]),
    { env: agentEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const health = await until('/healthz to answer', async () => {
    const r = await ask(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
    return r?.status === 200 ? r : undefined;
  });
  t.same(health.value.body, { status: 'ok' }, '/healthz 200 before the API is there');
  const ready = await until('/readyz to name the CRD', async () => {
    const r = await ask(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    return r !== undefined && /CRD/.test(JSON.stringify(r.body)) ? r : undefined;
  });
  t.equal(ready.value.status, 503, '/readyz 503');
  t.match(ready.value.body, { status: 'not ready', reason: /SeccompProfile API/ }, 'and why');
  t.notMatch(stdout, /listening/, 'it does not say it listens (with every route) until the API is there');
});
