/**
 * What the profiles in use logged: for a set of containers (namespace, pod, container), the
 * syscall names they made that their profile logged (SCMP_ACT_LOG) and the pods that made them,
 * from the store's per-container aggregates. The cluster path puts it in the node's report, where
 * the aggregator turns it into a complain profile's WouldBlock status. Pure over the store.
 */
import type { EventStore } from './store.js';

const LOG = 'SCMP_ACT_LOG';

/** The names (sorted) and pods (`ns/pod`, sorted) of the logged calls of `containers`. */
export function loggedCalls(
  store: EventStore,
  containers: readonly { namespace: string; pod: string; container: string }[],
): { names: string[]; pods: string[] } {
  const names = new Set<string>();
  const pods = new Set<string>();
  for (const c of containers) {
    for (const a of store.aggregates({ namespace: c.namespace, pod: c.pod, container: c.container })) {
      for (const s of a.syscalls.values()) {
        if (!s.actions.has(LOG)) continue;
        names.add(s.name);
        pods.add(`${c.namespace}/${c.pod}`);
      }
    }
  }
  return { names: [...names].sort(), pods: [...pods].sort() };
}
