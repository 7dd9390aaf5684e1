// The standalone agent under faults and awkward inputs, as a user meets them: the real CLI on real
// directories (a read-only mount, a ConfigMap-style tree, a slow first sync, files that break).
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import t from 'tap';
import { profileYaml, requireBuiltAgent, startAgent, until } from '../../helpers/standalone-agent.js';

await requireBuiltAgent();

interface ProfilesBody {
  items: { namespace: string; name: string; state: string; message?: string; sha256?: string }[];
  problems: { file: string; document: number; message: string }[];
}

t.test(
  'item 15: the endpoint listens before the first sync; /readyz answers 503 with the reason until it is done',
  async (t) => {
    // 1,000 profiles: the first sync takes seconds, long enough to ask while it runs.
    const many = Array.from({ length: 1000 }, (_, i) => profileYaml('t1', `p-${i}`, '  defaultAction: SCMP_ACT_LOG\n'));
    const dir = t.testdir({ profiles: { 'many.yaml': many.join('---\n') }, kubelet: {} });
    const agent = await startAgent(t, path.join(dir, 'profiles'), path.join(dir, 'kubelet'), [
      '--recheck-interval',
      '30',
    ]);
    const health = await fetch(`${agent.base}/healthz`);
    const ready = await fetch(`${agent.base}/readyz`);
    const syncedBefore = agent.logs().some((l) => l['msg'] === 'first sync done');
    t.notOk(syncedBefore, 'the first sync was still running when the endpoint answered');
    t.equal(health.status, 200, '/healthz answers 200 at once');
    t.equal(ready.status, 503, '/readyz answers 503 during the first sync');
    t.match(await ready.json(), { status: 'not ready', reason: /first sync .* not done/ }, '... with the reason');
    const done = await until(
      '/readyz 200',
      async () => ((await fetch(`${agent.base}/readyz`)).status === 200 ? true : undefined),
      120_000,
    );
    t.ok(done.value, `/readyz answers 200 once the first sync is done (${done.ms.toFixed(0)} ms later)`);
    const body = (await (await fetch(`${agent.base}/v1/profiles`)).json()) as ProfilesBody;
    t.equal(body.items.filter((i) => i.state === 'Installed').length, 1000, 'all 1,000 installed');
    await agent.stop();
  },
);
