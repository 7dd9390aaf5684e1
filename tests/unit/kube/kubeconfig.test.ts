import t from 'tap';
import { join } from 'node:path';
import { isAgentError } from '../../../shared/errors.js';
import { credentialsFromKubeconfig, inClusterCredentials, loadKubeconfig } from '../../../agent/src/kube/kubeconfig.js';

const YAML = `apiVersion: v1
kind: Config
current-context: two
clusters:
  - name: c1
    cluster:
      server: https://one.example:6443
  - name: c2
    cluster:
      server: https://127.0.0.1:8443
      certificate-authority: certs/ca.crt
      tls-server-name: kubernetes
users:
  - name: u1
    user:
      token: not-this-one
  - name: u2
    user:
      client-certificate-data: ${Buffer.from('CERT').toString('base64')}
      client-key: /abs/key.pem
      tokenFile: tok
contexts:
  - name: one
    context: { cluster: c1, user: u1 }
  - name: two
    context: { cluster: c2, user: u2 }
`;

t.test('the current context of a YAML kubeconfig, paths relative to the file', (t) => {
  const dir = t.testdir({ certs: { 'ca.crt': 'CA' }, 'config.yaml': YAML });
  const file = join(dir, 'config.yaml');
  const err = ((): unknown => {
    try {
      loadKubeconfig(file);
      return undefined;
    } catch (e: unknown) {
      return e;
    }
  })();
  // client-key points at a file that does not exist: the message names it
  t.ok(isAgentError(err) && /client-key \/abs\/key\.pem/.test(err.message), String(err));

  const ok = credentialsFromKubeconfig(YAML.replace('client-key: /abs/key.pem', `client-key: certs/ca.crt`), file);
  t.equal(ok.server, 'https://127.0.0.1:8443');
  t.equal(ok.ca?.toString(), 'CA');
  t.equal(ok.cert?.toString(), 'CERT');
  t.equal(ok.key?.toString(), 'CA');
  t.equal(ok.tlsServerName, 'kubernetes');
  t.equal(ok.token, undefined);
  t.equal(ok.tokenFile, join(dir, 'tok'));
  t.equal(ok.insecureSkipTlsVerify, false);
  t.end();
});

t.test('a JSON kubeconfig with an inline token', (t) => {
  const c = credentialsFromKubeconfig(
    JSON.stringify({
      'current-context': 'x',
      clusters: [{ name: 'x', cluster: { server: 'https://h:1', 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'x', user: { token: 'abc' } }],
      contexts: [{ name: 'x', context: { cluster: 'x', user: 'x' } }],
    }),
    '/k/config',
  );
  t.same(c, { server: 'https://h:1', insecureSkipTlsVerify: true, token: 'abc' });
  t.end();
});

t.test('what the agent cannot use is refused with the reason', (t) => {
  const msg = (text: string): string => {
    try {
      credentialsFromKubeconfig(text, '/k/config');
      return '';
    } catch (e: unknown) {
      return e instanceof Error ? e.message : String(e);
    }
  };
  t.match(msg('current-context: ""\n'), /no current-context/);
  t.match(msg('current-context: a\ncontexts: []\n'), /no context named "a"/);
  t.match(
    msg(
      'current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: "https://h"}}]\nusers: [{name: u, user: {exec: {command: aws}}}]\n',
    ),
    /exec or auth-provider plugin/,
  );
  t.match(
    msg('current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\nclusters: [{name: c, cluster: {}}]\n'),
    /has no server/,
  );
  t.end();
});

t.test('in-cluster: the service host and the service account files', (t) => {
  const dir = t.testdir({ 'ca.crt': 'SA-CA', token: 'tok\n' });
  const c = inClusterCredentials({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, dir);
  t.equal(c.server, 'https://[fd00::1]:443');
  t.equal(c.ca?.toString(), 'SA-CA');
  t.equal(c.tokenFile, join(dir, 'token'));
  t.throws(() => inClusterCredentials({}, dir), /not in a pod/);
  t.end();
});
