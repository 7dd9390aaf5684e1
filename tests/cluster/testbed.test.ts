// The control-plane fixture itself: identities, an apiserver outage with etcd kept, and teardown.
import t from 'tap';
import { existsSync } from 'node:fs';
import { request } from 'node:https';
import { startControlPlane, type ControlPlane } from '../testbed/cluster.js';

const cp: ControlPlane = await startControlPlane(t);

/** Polls `fn` (for caches that settle, such as RBAC) until it returns true or 30 s pass. */
async function eventually(fn: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  while (!(await fn())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 250));
  }
  return true;
}

/** Whether anything accepts TLS connections at `url` (any HTTP status counts). */
function answers(url: string): Promise<boolean> {
  return new Promise((res) => {
    const req = request(url, { rejectUnauthorized: false, timeout: 2000 }, (r) => {
      r.resume();
      res(true);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => res(false));
    req.end();
  });
}

t.test('the admin kubeconfig is a system:masters user, verified by the apiserver CA', async (t) => {
  const who = await cp.kubectl(['auth', 'whoami', '-o', 'json']);
  t.equal(who.code, 0, who.stderr);
  const status = JSON.parse(who.stdout) as { status?: { userInfo?: { username?: string; groups?: string[] } } };
  t.equal(status.status?.userInfo?.username, 'admin');
  t.ok(status.status?.userInfo?.groups?.includes('system:masters'), 'in system:masters');
  const can = await cp.kubectl(['auth', 'can-i', '*', '*', '--all-namespaces']);
  t.equal(can.stdout.trim(), 'yes');
});

t.test('a minted ServiceAccount token is subject to RBAC', async (t) => {
  await cp.apply(`
apiVersion: v1
kind: Namespace
metadata: {name: tb}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader, namespace: tb}
`);
  const token = await cp.mintToken('tb', 'reader');
  t.match(token, /^ey[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT');
  const kubeconfig = await cp.kubeconfigFor(token);

  const who = await cp.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig });
  t.equal(who.code, 0, who.stderr);
  t.match(who.stdout, '"username": "system:serviceaccount:tb:reader"');

  const denied = await cp.kubectl(['get', 'pods', '-n', 'tb'], { kubeconfig });
  t.not(denied.code, 0, 'no permission without a binding');
  t.match(denied.stderr, /Forbidden|forbidden/);
  t.match(denied.stderr, 'system:serviceaccount:tb:reader');

  await cp.apply(`
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: tb}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: tb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects:
- {kind: ServiceAccount, name: reader, namespace: tb}
`);
  t.ok(
    await eventually(async () => (await cp.kubectl(['get', 'pods', '-n', 'tb'], { kubeconfig })).code === 0),
    'allowed once bound',
  );
  const other = await cp.kubectl(['get', 'pods', '-n', 'default'], { kubeconfig });
  t.not(other.code, 0, 'still denied in another namespace');
});

t.test('the apiserver can go away and come back on the same port with the same data', async (t) => {
  await cp.apply(`
apiVersion: v1
kind: ConfigMap
metadata: {name: survivor, namespace: default}
data: {k: v}
`);
  const saToken = await cp.mintToken('tb', 'reader');
  await cp.stopApiServer();
  t.notOk(await answers(`${cp.server}/readyz`), 'nothing listens while stopped');
  const during = await cp.kubectl(['get', 'configmap', 'survivor', '-n', 'default']);
  t.not(during.code, 0, 'kubectl fails during the outage');
  t.match(during.stderr, /refused/);

  await cp.startApiServer();
  const after = await cp.kubectl(['get', 'configmap', 'survivor', '-n', 'default', '-o', 'jsonpath={.data.k}']);
  t.equal(after.code, 0, after.stderr);
  t.equal(after.stdout, 'v', 'data kept in etcd');
  const who = await cp.kubectl(['auth', 'whoami'], { kubeconfig: await cp.kubeconfigFor(saToken) });
  t.equal(who.code, 0, `a token minted before the restart still works: ${who.stderr}`);
});

t.test('kubectl and helm keep their state in the control plane temp dir', async (t) => {
  const env = await cp.helm(['env']);
  t.equal(env.code, 0, env.stderr);
  for (const key of ['HELM_CACHE_HOME', 'HELM_CONFIG_HOME', 'HELM_DATA_HOME']) {
    t.match(env.stdout, `${key}="${cp.dataDir}/`, key);
  }
  const cfg = await cp.kubectl(['config', 'view', '--minify', '-o', 'jsonpath={.clusters[0].cluster.server}']);
  t.equal(cfg.stdout, cp.server);
});

t.test('an apiserver that cannot start fails the fixture with its log', async (t) => {
  const err: unknown = await startControlPlane(t, { apiServerArgs: ['--no-such-flag=1'] }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, Error, 'startControlPlane rejects');
  const message = err instanceof Error ? err.message : '';
  t.match(message, /kube-apiserver exited \(code 1\) before it was ready; tail of \S+kube-apiserver\.log:\n/);
  t.match(message, 'unknown flag: --no-such-flag', "the apiserver's own complaint");
  const dir = /tail of (\S+)\/kube-apiserver\.log/.exec(message)?.[1] ?? '';
  t.match(dir, /seccomp-agent-cp-/);
  t.notOk(existsSync(dir), 'its temp dir is removed');
});

t.test('stop() kills etcd and the apiserver and removes the temp dir', async (t) => {
  const other = await startControlPlane(t);
  t.ok(await answers(`${other.server}/readyz`), 'second control plane is up');
  t.not(other.server, cp.server, 'on its own port');
  await other.stop();
  t.notOk(existsSync(other.dataDir), 'temp dir removed');
  t.notOk(await answers(`${other.server}/readyz`), 'apiserver gone');
  const etcdGone = await fetch(`${other.etcdUrl}/health`).then(
    () => false,
    () => true,
  );
  t.ok(etcdGone, 'etcd gone');
  await other.stop(); // idempotent; the teardown calls it again too
});
