// An agent listening on a non-loopback address checks every caller's bearer token with the real API
// server (TokenReview) and authorizes the path (SubjectAccessReview, non-resource URL, verb get).
// Health probes stay open. Standalone mode refuses a non-loopback --listen.
import t from 'tap';
import { exec } from '../testbed/exec.js';
import { AGENT_MAIN, createNodes, startAgent, startBed, waitFor } from './sync-helpers.js';

const cp = await startBed(t);
await createNodes(cp, ['auth-node']);
const agent = await startAgent(t, { node: 'auth-node', kubeconfig: cp.kubeconfig, listen: '0.0.0.0:0' });
const port = new URL(agent.url).port;
const base = `http://127.0.0.1:${port}`;

await cp.apply(`
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader, namespace: default}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: nobody, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: seccomp-agent-reader}
rules:
- nonResourceURLs: ["/v1/*", "/metrics"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: seccomp-agent-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: seccomp-agent-reader}
subjects:
- {kind: ServiceAccount, name: reader, namespace: default}
`);
const reader = await cp.mintToken('default', 'reader');
const nobody = await cp.mintToken('default', 'nobody');

const get = async (path: string, token?: string): Promise<{ status: number; body: string }> => {
  const r = await fetch(`${base}${path}`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, body: await r.text() };
};

t.test('health probes need no token', async (t) => {
  t.equal((await get('/healthz')).status, 200);
  await waitFor('readyz', async () => ((await get('/readyz')).status === 200 ? true : undefined), 60_000);
  t.pass('/readyz 200 without a token');
});

t.test('no token or a bad token: 401 naming what to send', async (t) => {
  const none = await get('/v1/profiles');
  t.equal(none.status, 401);
  t.match(none.body, /Authorization: Bearer <token>/);
  const bad = await get('/v1/syscalls', 'not-a-token');
  t.equal(bad.status, 401);
  t.match(bad.body, /did not accept the token/);
});

t.test('a valid token without the right: 403 naming the user and the path', async (t) => {
  const r = await get('/v1/syscalls?format=table', nobody);
  t.equal(r.status, 403);
  t.match(r.body, /system:serviceaccount:default:nobody may not get \/v1\/syscalls/);
});

t.test('a token allowed to get /v1/* reads the endpoint', async (t) => {
  const profiles = await get('/v1/profiles', reader);
  t.equal(profiles.status, 200, profiles.body);
  t.match(JSON.parse(profiles.body), { node: 'auth-node', items: [] });
  t.equal((await get('/v1/cluster', reader)).status, 200);
  t.equal((await get('/metrics', reader)).status, 200);
});

t.test('standalone mode refuses a non-loopback --listen', async (t) => {
  const dir = t.testdir({ 'p.yaml': '' });
  const r = await exec(
    process.execPath,
    [AGENT_MAIN, '--profiles-dir', dir, '--listen', '0.0.0.0:0', '--kubelet-root', dir, '--audit-source', 'none'],
    { timeoutMs: 30_000 },
  );
  t.not(r.code, 0);
  t.match(r.stderr, /--listen 0\.0\.0\.0 is not a loopback address: that needs cluster mode/);
});
