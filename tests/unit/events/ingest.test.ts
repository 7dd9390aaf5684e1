import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { resolveAuditSyscall } from '../../../shared/syscalls/index.js';
import { Attributor } from '../../../agent/src/events/attribute.js';
import { Ingest } from '../../../agent/src/events/ingest.js';
import { EMPTY_POD_INDEX } from '../../../agent/src/events/pod-index.js';
import { EventStore } from '../../../agent/src/events/store.js';
import { sharedDir } from '../../helpers/shared.js';

const SECCOMP = readFileSync(join(sharedDir(), 'node-facts', 'corpus', 'audit-enriched.log'), 'latin1')
  .split('\n')
  .filter((l) => l.startsWith('type=SECCOMP '));

t.test('item 3: an exception from one line (here /proc) costs that line only', async (t) => {
  const victim = SECCOMP[3] ?? '';
  const pid = Number(/ pid=(\d+)/.exec(victim)?.[1]);
  const attributor = new Attributor({
    podIndex: EMPTY_POD_INDEX,
    proc: {
      stat: (p) => {
        if (p === pid) throw new Error('a /proc read that throws');
        return undefined;
      },
      cgroup: () => undefined,
      bootTimeMs: () => 0,
    },
  });
  const store = new EventStore({ ringSize: 100 });
  const reported: string[] = [];
  const ingest = new Ingest({
    node: 'n',
    resolve: resolveAuditSyscall,
    strict: true,
    attributor,
    store,
    onMalformed: (_line, reason) => {
      reported.push(reason);
      throw new Error('and a logger that throws too');
    },
  });
  const batch = [SECCOMP[0] ?? '', victim, SECCOMP[10] ?? '', SECCOMP[20] ?? ''];
  const expected = batch.filter((l) => Number(/ pid=(\d+)/.exec(l)?.[1]) !== pid).length;
  t.doesNotThrow(() => ingest.lines(batch));
  t.equal(store.size, expected, 'every other line of the batch is an event');
  t.equal(ingest.stats.malformed, batch.length - expected);
  t.match(reported[0], /could not be ingested: a \/proc read that throws/);
});
