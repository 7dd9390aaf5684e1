/**
 * The informers every agent runs: SeccompProfiles (all namespaces, or the cluster's), the pods bound to this node,
 * and the one aggregator Lease (the election). What the aggregator alone watches is in leadership.ts.
 */
import type { Logger } from 'pino';
import type { KubeClient } from '../kube/client.js';
import { podUse, type PodUse } from '../kube/pods.js';
import { Reflector, type ChangeType, type ReflectorTiming } from '../kube/reflector.js';
import { AGGREGATOR_LEASE, type RawLease } from './election.js';
import type { ProfileApi } from '../../../shared/profile/layout.js';
import { profileObj, type ProfileObj } from './profile-obj.js';

type OnChange<T> = (type: ChangeType, key: string, cur: T | undefined, old: T | undefined) => void;

export interface NodeInformerDeps {
  client: KubeClient;
  node: string;
  namespace: string;
  /** The discovered SeccompProfile API (layout and version). */
  profileApi: ProfileApi;
  timing: Partial<ReflectorTiming>;
  random: () => number;
  log: Logger;
  onProfile: OnChange<ProfileObj>;
  onPod: OnChange<PodUse>;
  onElectionLease: (lease: RawLease | undefined) => void;
  /** After each successful list of profiles or pods (a plan is due). */
  onSynced: () => void;
}

export interface NodeInformers {
  profiles: Reflector<ProfileObj>;
  pods: Reflector<PodUse>;
  electionLease: Reflector<RawLease>;
}

export function nodeInformers(d: NodeInformerDeps): NodeInformers {
  const common = { client: d.client, timing: d.timing, log: d.log, random: d.random };
  const electionLease: Reflector<RawLease> = new Reflector<RawLease>({
    ...common,
    name: 'aggregator-lease',
    path: `/apis/coordination.k8s.io/v1/namespaces/${d.namespace}/leases`,
    fieldSelector: `metadata.name=${AGGREGATOR_LEASE}`,
    transform: (raw) => raw as RawLease,
    keyOf: () => AGGREGATOR_LEASE,
    onChange: (_t, _k, cur) => d.onElectionLease(cur),
    onSynced: () => d.onElectionLease(electionLease.get(AGGREGATOR_LEASE)),
  });
  return {
    profiles: new Reflector<ProfileObj>({
      ...common,
      name: 'seccompprofiles',
      path: d.profileApi.listPath,
      transform: (raw) => profileObj(raw, d.profileApi),
      keyOf: (p) => p.key,
      onChange: d.onProfile,
      onSynced: d.onSynced,
    }),
    pods: new Reflector<PodUse>({
      ...common,
      name: 'pods',
      path: '/api/v1/pods',
      fieldSelector: `spec.nodeName=${d.node}`,
      transform: podUse,
      keyOf: (p) => p.key,
      onChange: d.onPod,
      onSynced: d.onSynced,
    }),
    electionLease,
  };
}
