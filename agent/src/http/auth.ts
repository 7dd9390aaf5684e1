/**
 * Authentication for an endpoint bound to a non-loopback address, the way kube-rbac-proxy does it:
 * the caller's bearer token is checked with the API server (TokenReview), and the user it names must
 * be allowed `get` on the request path as a non-resource URL (SubjectAccessReview). Grant it with a
 * ClusterRole rule `nonResourceURLs: ["/v1/*", "/metrics"], verbs: ["get"]`. Answers are cached for a
 * short while so a busy client does not cost two API calls per request.
 */
import { agentError, messageOf } from '../../../shared/errors.js';

/** The two API calls, behind a seam (the cluster client implements it). */
export interface ReviewClient {
  request<T>(req: { method: 'POST'; path: string; body: unknown }): Promise<T>;
}

export type AuthResult = { ok: true; user: string } | { ok: false; status: 401 | 403; message: string };

export interface Authenticator {
  check(authorization: string | undefined, path: string): Promise<AuthResult>;
}

interface TokenReview {
  status?: {
    authenticated?: boolean;
    error?: string;
    user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  };
}
interface AccessReview {
  status?: { allowed?: boolean; reason?: string };
}

/** Whether an address is on the loopback interface (no authentication needed there). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The path a request is authorized for: without the query, `/v1/...` kept as it is. */
const pathOf = (url: string): string => url.split('?')[0] ?? url;

export function kubeAuthenticator(client: ReviewClient, now: () => number = Date.now, ttlMs = 30_000): Authenticator {
  const cache = new Map<string, { at: number; result: AuthResult }>();
  return {
    async check(authorization, url) {
      const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
      const unauthorized = (detail: string): AuthResult => ({
        ok: false,
        status: 401,
        message: agentError('SECCOMP_AGENT_ERR_UNAUTHORIZED', { detail }).message,
      });
      if (m?.[1] === undefined)
        return unauthorized('send "Authorization: Bearer <token>" (a Kubernetes service account or user token)');
      const token = m[1];
      const path = pathOf(url);
      const key = `${token}\u0000${path}`;
      const hit = cache.get(key);
      if (hit !== undefined && now() - hit.at < ttlMs) return hit.result;
      let result: AuthResult;
      try {
        const review = await client.request<TokenReview>({
          method: 'POST',
          path: '/apis/authentication.k8s.io/v1/tokenreviews',
          body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } },
        });
        const user = review.status?.user;
        if (review.status?.authenticated !== true || user?.username === undefined) {
          result = unauthorized(
            `the API server did not accept the token${review.status?.error === undefined ? '' : `: ${review.status.error}`}`,
          );
        } else {
          const sar = await client.request<AccessReview>({
            method: 'POST',
            path: '/apis/authorization.k8s.io/v1/subjectaccessreviews',
            body: {
              apiVersion: 'authorization.k8s.io/v1',
              kind: 'SubjectAccessReview',
              spec: {
                user: user.username,
                ...(user.uid === undefined ? {} : { uid: user.uid }),
                groups: user.groups ?? [],
                ...(user.extra === undefined ? {} : { extra: user.extra }),
                nonResourceAttributes: { path, verb: 'get' },
              },
            },
          });
          result =
            sar.status?.allowed === true
              ? { ok: true, user: user.username }
              : {
                  ok: false,
                  status: 403,
                  message: agentError('SECCOMP_AGENT_ERR_UNAUTHORIZED', {
                    detail: `${user.username} may not get ${path} (grant nonResourceURLs ["${path}"] verb get)`,
                  }).message,
                };
        }
      } catch (e: unknown) {
        // Not cached: the next request asks again.
        return {
          ok: false,
          status: 401,
          message: agentError('SECCOMP_AGENT_ERR_UNAUTHORIZED', {
            detail: `could not check the token: ${messageOf(e)}`,
          }).message,
        };
      }
      if (cache.size > 10_000) cache.clear();
      cache.set(key, { at: now(), result });
      return result;
    },
  };
}
