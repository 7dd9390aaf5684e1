// Cluster mode, failures (R2 of docs/reliability.md): an API server outage of 60 s, a watch that
// must relist on 410 (its resourceVersion compacted away while the node was cut off), and a watch
// whose connection is cut silently (a proxy that stops forwarding without closing). In each, no file
// is removed or changed during the fault, and every node converges on what changed after it. The
// time from the end of each fault (or from the change, when it is made after the fault) to every
// file being right is printed (t.comment), not asserted: a figure for the table, not a timing test.
// The agents run with the production backoff (DEFAULT_TIMING), which is what those figures depend on.
import t from 'tap';
import {
  createNodes,
  describeProfiles,
  fileOf,
  getProfile,
  NS,
  readMaybe,
  simpleProfile,
  renderYaml,
  startAgent,
  startBed,
  startDelayProxy,
  startProxy,
  waitFor,
  workshopYaml,
  WORKSHOP_FILES,
  type AgentProc,
} from './sync-helpers.js';
import { repoPath } from '../testbed/cluster.js';
import { DEFAULT_TIMING } from '../../agent/src/kube/reflector.js';
import { DEFAULT_CLUSTER_TIMING } from '../../agent/src/cluster/index.js';

const cp = await startBed(t);
await createNodes(cp, ['node-1', 'node-2', 'node-3']);
const proxy = await startProxy(t, cp);
const link = await startDelayProxy(t, cp);
const backoff = {
  backoffInitialMs: DEFAULT_TIMING.backoffInitialMs,
  backoffMaxMs: DEFAULT_TIMING.backoffMaxMs,
  shortBackoffMaxMs: DEFAULT_TIMING.shortBackoffMaxMs,
  // and the production election and heartbeat: what finds a silently cut watch
  electionLeaseSeconds: DEFAULT_CLUSTER_TIMING.electionLeaseSeconds,
  electionRenewMs: DEFAULT_CLUSTER_TIMING.electionRenewMs,
  electionJitterMs: DEFAULT_CLUSTER_TIMING.electionJitterMs,
  heartbeatSilenceMs: DEFAULT_CLUSTER_TIMING.heartbeatSilenceMs,
};
const agents: AgentProc[] = await Promise.all([
  startAgent(t, { node: 'node-1', kubeconfig: cp.kubeconfig, timing: backoff }),
  // node-2 talks through a proxy that can cut it off from the API server (its network gone).
  startAgent(t, { node: 'node-2', kubeconfig: link.kubeconfig, timing: backoff }),
  // node-3 talks through the proxy, with the production watchdog (11 min) and watch timeout (5-10
  // min): only the heartbeat (the aggregator Lease watch gone silent) can bring a cut watch back
  // within the test.
  startAgent(t, {
    node: 'node-3',
    kubeconfig: proxy.kubeconfig,
    timing: {
      ...backoff,
      watchTimeoutSeconds: DEFAULT_TIMING.watchTimeoutSeconds,
      watchdogMs: DEFAULT_TIMING.watchdogMs,
    },
  }),
]);
for (const f of WORKSHOP_FILES) await cp.kubectl(['apply', '-f', repoPath('profiles', f)]);
const expected = renderYaml(await workshopYaml());

/** What every node must hold: profile key → file content (undefined: no file). */
const want = new Map<string, string | undefined>(expected);

async function snapshot(of: readonly AgentProc[] = agents): Promise<Map<string, string | undefined>> {
  const out = new Map<string, string | undefined>();
  for (const a of of) {
    for (const key of want.keys()) {
      const [ns = '', name = ''] = key.split('/');
      out.set(`${a.node} ${key}`, await readMaybe(fileOf(a.root, ns, name)));
    }
  }
  return out;
}

/** The node files that differ from `want` (empty when converged). */
async function differences(of: readonly AgentProc[] = agents): Promise<string[]> {
  const out: string[] = [];
  for (const [k, v] of await snapshot(of)) {
    const w = want.get(k.split(' ')[1] ?? '');
    if (v !== w)
      out.push(`${k}: ${v === undefined ? 'missing' : 'differs'}${w === undefined ? ' (should be gone)' : ''}`);
  }
  return out;
}

/** Waits until every node holds exactly `want`; returns the milliseconds it took from `since`. */
async function converge(what: string, since: number, of: readonly AgentProc[] = agents): Promise<number> {
  await waitFor(
    what,
    async () => ((await differences(of)).length === 0 ? true : undefined),
    90_000,
    // On a timeout: what differs, and the tail of each lagging agent's log.
    async () =>
      `${(await differences(of)).join('\n')}\n${of.map((a) => `--- ${a.node} log (tail):\n${a.log().slice(-4000)}`).join('\n')}`,
  );
  return Date.now() - since;
}

/** Watches for `ms` that no node file is removed or changed; returns [changes seen, checks made]. */
async function unchangedFor(ms: number, of: readonly AgentProc[] = agents): Promise<[number, number]> {
  const before = await snapshot(of);
  const until = Date.now() + ms;
  let checks = 0;
  let lost = 0;
  while (Date.now() < until) {
    const now = await snapshot(of);
    for (const [k, v] of before) if (now.get(k) !== v) lost++;
    checks++;
    await new Promise((r) => setTimeout(r, 500));
  }
  return [lost, checks];
}

const setDefault = (name: string, action: string): Promise<unknown> =>
  cp.kubectl([
    'patch',
    'sp',
    '-n',
    NS,
    name,
    '--type',
    'merge',
    '-p',
    JSON.stringify({ spec: { defaultAction: action } }),
  ]);

await converge('the workshop files on every node', Date.now());

t.test('a 60 s API server outage removes nothing; changes after it converge', async (t) => {
  await cp.stopApiServer();
  const [lost, checks] = await unchangedFor(60_000);
  t.equal(lost, 0, `no file removed or changed during the outage (${checks} checks of ${want.size * 3} files)`);
  await cp.startApiServer();
  const up = Date.now();

  await setDefault('profile-block-all', 'SCMP_ACT_KILL_PROCESS');
  await cp.kubectl(['delete', 'sp', '-n', NS, 'profile-allow-unsafe']);
  await cp.apply(simpleProfile('after-outage', 'SCMP_ACT_LOG'));
  const changed = Date.now();
  want.set(`${NS}/profile-block-all`, '{"defaultAction":"SCMP_ACT_KILL_PROCESS"}');
  want.set(`${NS}/profile-allow-unsafe`, undefined);
  want.set(`${NS}/after-outage`, '{"defaultAction":"SCMP_ACT_LOG"}');
  const ms = await converge('every node converged on the changes made after the outage', changed);
  t.pass('edit, delete and create after the outage reached every node; every other file as it was');
  t.comment(
    `R2 outage 60 s: converged ${ms} ms after the changes were accepted, ${Date.now() - up} ms after the API server was ready again`,
  );
  await waitFor(
    'status converged',
    async () => {
      const p = await getProfile(cp, NS, 'profile-block-all');
      const q = await getProfile(cp, NS, 'after-outage');
      return p?.status?.status === 'Installed' && p.status.observedGeneration === 2 && q?.status?.status === 'Installed'
        ? true
        : undefined;
    },
    90_000,
    () => describeProfiles(cp, NS),
  );
  t.pass('Installed at the new generation');
  for (const a of agents) {
    const s = await a.stats();
    t.comment(
      `${a.node}: informer failures ${s.informers['seccompprofiles']?.failures}, lists ${s.informers['seccompprofiles']?.lists}, relists on 410 ${s.informers['seccompprofiles']?.relistsOn410}`,
    );
  }
});

/** etcd's current revision, then a compaction of everything before it (etcd's v3 JSON gateway). */
async function compactEtcd(): Promise<number> {
  const post = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
    const r = await fetch(`${cp.etcdUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
    if (!r.ok) throw new Error(`etcd ${path}: ${r.status} ${await r.text()}`);
    return (await r.json()) as Record<string, unknown>;
  };
  const range = await post('/v3/kv/range', { key: Buffer.from('/').toString('base64') });
  const revision = Number((range['header'] as { revision?: string } | undefined)?.revision);
  if (!Number.isFinite(revision)) throw new Error(`etcd gave no revision: ${JSON.stringify(range)}`);
  await post('/v3/kv/compaction', { revision, physical: true });
  return revision;
}

t.test('a node cut off while its resourceVersion is compacted away relists on 410; nothing removed', async (t) => {
  const node2 = agents[1] as AgentProc;
  const relists = (await node2.stats()).informers['seccompprofiles']?.relistsOn410 ?? 0;
  link.down();
  // What node-2 misses while it is cut off.
  await setDefault('profile-block-all', 'SCMP_ACT_LOG');
  await cp.kubectl(['delete', 'sp', '-n', NS, 'after-outage']);
  await cp.apply(simpleProfile('while-cut-off', 'SCMP_ACT_ERRNO'));
  // Gone from etcd's history, and from the API server's watch cache (which a restart starts afresh
  // at etcd's revision): node-2's resourceVersion can only be answered with 410 Gone.
  const revision = await compactEtcd();
  t.comment(`etcd compacted at revision ${revision}`);
  await cp.stopApiServer();
  await cp.startApiServer();
  const [lost, checks] = await unchangedFor(5000, [node2]);
  t.equal(lost, 0, `node-2 removed or changed no file while cut off (${checks} checks)`);
  want.set(`${NS}/profile-block-all`, '{"defaultAction":"SCMP_ACT_LOG"}');
  want.set(`${NS}/after-outage`, undefined);
  want.set(`${NS}/while-cut-off`, '{"defaultAction":"SCMP_ACT_ERRNO"}');
  link.up();
  const back = Date.now();
  const ms = await converge('node-2 converged after it relisted', back, [node2]);
  t.comment(`R2 410: node-2 converged ${ms} ms after its link came back`);
  const after = (await node2.stats()).informers['seccompprofiles']?.relistsOn410 ?? 0;
  t.ok(after > relists, `node-2 relisted on 410 (${relists} → ${after})`);
  await converge('every node converged', back);
  t.pass('every other file as it was on every node');
});

t.test('a watch cut silently is restarted within seconds (the aggregator Lease heartbeat)', async (t) => {
  const node3 = agents[2] as AgentProc;
  const before = (await node3.stats()).informers['seccompprofiles']?.watchdogRestarts ?? 0;
  const cut = proxy.blackhole();
  t.ok(cut > 0, `cut ${cut} open connection(s) of node-3 silently`);
  const since = Date.now();
  await setDefault('complainer', 'SCMP_ACT_ERRNO');
  want.set(`${NS}/complainer`, '{"defaultAction":"SCMP_ACT_ERRNO"}');
  const ms = await converge('node-3 to get the change made after its watch was cut', since, [node3]);
  t.comment(
    `R2 silent cut: node-3 converged ${ms} ms after the change (heartbeat ${DEFAULT_CLUSTER_TIMING.heartbeatSilenceMs} ms, the Lease renewed every ${DEFAULT_CLUSTER_TIMING.electionRenewMs} ms; per-watch watchdog ${DEFAULT_TIMING.watchdogMs} ms)`,
  );
  // The file can also arrive through the answer to one of node-3's own status writes; what must
  // happen regardless is that the cut watch is found silent and restarted.
  const after = await waitFor(
    'the heartbeat to restart the cut profile watch',
    async () => {
      const n = (await node3.stats()).informers['seccompprofiles']?.watchdogRestarts ?? 0;
      return n > before ? n : undefined;
    },
    60_000,
  );
  t.ok(after > before, `the cut profile watch was restarted as silent (${before} → ${after})`);
  t.ok(((await node3.stats()).heartbeatAlarms ?? 0) > 0, 'by the heartbeat');
  await converge('every node converged', since);
  t.pass('every node has it, every other file as it was');
});
