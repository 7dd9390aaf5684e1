/**
 * Where the API server is and how to authenticate to it: a kubeconfig file (its current context),
 * or the in-cluster service account. This is all the agent needs from a kubeconfig, so it does not
 * load @kubernetes/client-node at run time (that import alone costs about 1.5 s of CPU and 80 MiB
 * per process, which a DaemonSet pays on every node and every restart).
 *
 * Supported: `server`, `certificate-authority(-data)`, `insecure-skip-tls-verify`,
 * `tls-server-name`, `token`, `tokenFile`, `client-certificate(-data)`, `client-key(-data)`,
 * `username`/`password`. Exec and auth-provider plugins are refused with a message saying so.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { agentError, messageOf } from '../../../shared/errors.js';

/** Connection settings and credentials for one API server. */
export interface KubeCredentials {
  /** e.g. `https://10.96.0.1:443` */
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecureSkipTlsVerify: boolean;
  tlsServerName?: string;
  /** A bearer token given inline. */
  token?: string;
  /** A file holding the bearer token; re-read now and then (projected tokens rotate). */
  tokenFile?: string;
  /** Basic authentication, as kubeconfig allows it. */
  basic?: { username: string; password: string };
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

const bad = (detail: string, cause?: unknown): Error =>
  agentError('SECCOMP_AGENT_ERR_BAD_CONFIG', { setting: 'kubeconfig', detail }, cause);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (o: Obj, k: string): string | undefined => (typeof o[k] === 'string' ? (o[k] as string) : undefined);

/** The `name`d entry of a kubeconfig list (`clusters`, `users`), unwrapped (`cluster`, `user`). */
function named(doc: Obj, list: string, field: string, name: string, file: string): Obj {
  const items = Array.isArray(doc[list]) ? (doc[list] as unknown[]) : [];
  const hit = items.find((i) => isObj(i) && i['name'] === name);
  if (!isObj(hit) || !isObj(hit[field])) throw bad(`${file}: no ${field} named "${name}" in ${list}`);
  return hit[field];
}

/** Parses a kubeconfig's text (JSON or YAML) and picks its current context. */
export function credentialsFromKubeconfig(text: string, file: string): KubeCredentials {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e: unknown) {
    throw bad(`${file} is not YAML: ${messageOf(e)}`, e);
  }
  if (!isObj(doc)) throw bad(`${file} is not a kubeconfig (not a mapping)`);
  const current = str(doc, 'current-context');
  if (current === undefined || current === '') throw bad(`${file} has no current-context`);
  const context = named(doc, 'contexts', 'context', current, file);
  const cluster = named(doc, 'clusters', 'cluster', str(context, 'cluster') ?? '', file);
  const userName = str(context, 'user');
  const user = userName === undefined || userName === '' ? {} : named(doc, 'users', 'user', userName, file);
  const base = dirname(file);
  const path = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  const material = (o: Obj, fileKey: string, dataKey: string): Buffer | undefined => {
    const data = str(o, dataKey);
    if (data !== undefined && data !== '') return Buffer.from(data, 'base64');
    const f = str(o, fileKey);
    if (f === undefined || f === '') return undefined;
    try {
      return readFileSync(path(f));
    } catch (e: unknown) {
      throw bad(`${file}: cannot read ${fileKey} ${f}: ${messageOf(e)}`, e);
    }
  };
  const server = str(cluster, 'server');
  if (server === undefined || server === '')
    throw bad(`${file}: cluster "${str(context, 'cluster') ?? ''}" has no server`);
  if (user['exec'] !== undefined || user['auth-provider'] !== undefined) {
    throw bad(
      `${file}: user "${userName ?? ''}" uses an exec or auth-provider plugin, which the agent does not run; give it a token, a tokenFile or a client certificate`,
    );
  }
  const creds: KubeCredentials = { server, insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true };
  const ca = material(cluster, 'certificate-authority', 'certificate-authority-data');
  if (ca !== undefined) creds.ca = ca;
  const tlsServerName = str(cluster, 'tls-server-name');
  if (tlsServerName !== undefined && tlsServerName !== '') creds.tlsServerName = tlsServerName;
  const cert = material(user, 'client-certificate', 'client-certificate-data');
  const key = material(user, 'client-key', 'client-key-data');
  if (cert !== undefined) creds.cert = cert;
  if (key !== undefined) creds.key = key;
  const token = str(user, 'token');
  const tokenFile = str(user, 'tokenFile');
  if (token !== undefined && token !== '') creds.token = token;
  else if (tokenFile !== undefined && tokenFile !== '') creds.tokenFile = path(tokenFile);
  const username = str(user, 'username');
  const password = str(user, 'password');
  if (username !== undefined && password !== undefined) creds.basic = { username, password };
  return creds;
}

export function loadKubeconfig(file: string): KubeCredentials {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e: unknown) {
    throw bad(`cannot read ${file}: ${messageOf(e)}`, e);
  }
  return credentialsFromKubeconfig(text, file);
}

/** The service account a pod runs as: KUBERNETES_SERVICE_HOST/PORT, its CA and its token file. */
export function inClusterCredentials(
  env: NodeJS.ProcessEnv = process.env,
  dir: string = SERVICE_ACCOUNT_DIR,
): KubeCredentials {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  if (host === undefined || host === '' || port === undefined || port === '') {
    throw bad(
      'no --kubeconfig given and not in a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set)',
    );
  }
  let ca: Buffer;
  try {
    ca = readFileSync(resolve(dir, 'ca.crt'));
  } catch (e: unknown) {
    throw bad(`in-cluster: cannot read the service account CA: ${messageOf(e)}`, e);
  }
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca,
    insecureSkipTlsVerify: false,
    tokenFile: resolve(dir, 'token'),
  };
}
