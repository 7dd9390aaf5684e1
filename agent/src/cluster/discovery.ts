/**
 * Which SeccompProfile API this cluster serves, from the API server's discovery documents (no RBAC
 * beyond what every authenticated client has): `/apis/<group>` lists the served versions, and
 * `/apis/<group>/<version>` says whether `seccompprofiles` is namespaced. The layout follows the
 * installed CRD's scope, so no flag can disagree with it; the version is the newest we read that is
 * served (v1 in the Cluster layout, v1beta1 in the Namespaced one).
 */
import type { Logger } from 'pino';
import { messageOf } from '../../../shared/errors.js';
import { API_GROUP, PLURAL } from '../../../shared/profile/enums.js';
import { PROFILE_VERSIONS, profileApi, type ProfileApi } from '../../../shared/profile/layout.js';
import type { Clock } from './clock.js';
import type { KubeApi } from './kube-api.js';

interface ApiGroupDoc {
  versions?: { version?: string }[];
}
interface ResourceListDoc {
  resources?: { name?: string; namespaced?: boolean }[];
}

/** One look: the API, or why there is none yet (the CRD is not installed or not established). */
export async function discoverProfileApi(api: KubeApi): Promise<ProfileApi | { problem: string }> {
  let group: ApiGroupDoc;
  try {
    group = await api.request<ApiGroupDoc>({ method: 'GET', path: `/apis/${API_GROUP}` });
  } catch (e: unknown) {
    return {
      problem: `the API group ${API_GROUP} is not served (is the SeccompProfile CRD installed?): ${messageOf(e)}`,
    };
  }
  const served = new Set((group.versions ?? []).map((v) => v.version));
  for (const version of PROFILE_VERSIONS) {
    if (!served.has(version)) continue;
    const list = await api.request<ResourceListDoc>({ method: 'GET', path: `/apis/${API_GROUP}/${version}` });
    const r = (list.resources ?? []).find((x) => x.name === PLURAL);
    if (r !== undefined) return profileApi(r.namespaced === false ? 'Cluster' : 'Namespaced', version);
  }
  return {
    problem: `${API_GROUP} serves ${[...served].join(', ') || 'no version'}, none of ${PROFILE_VERSIONS.join(', ')} with ${PLURAL}`,
  };
}

/** Looks until the API is there: every `retryMs`, doubling up to `maxRetryMs`. */
export async function awaitProfileApi(
  api: KubeApi,
  o: { clock: Clock; log: Logger; retryMs: number; maxRetryMs: number },
): Promise<ProfileApi> {
  let wait = o.retryMs;
  for (;;) {
    const found = await discoverProfileApi(api).catch((e: unknown) => ({ problem: messageOf(e) }));
    if (!('problem' in found)) {
      o.log.info({ layout: found.layout, version: found.version }, 'SeccompProfile API discovered');
      return found;
    }
    o.log.warn({ retryMs: wait }, `waiting for the SeccompProfile API: ${found.problem}`);
    await new Promise<void>((resolve) => o.clock.after(wait, resolve));
    wait = Math.min(wait * 2, o.maxRetryMs);
  }
}
