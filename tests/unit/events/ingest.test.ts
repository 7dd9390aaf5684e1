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

t.test('lines as bytes (what the file tailer gives) are ingested exactly as lines as strings', async (t) => {
  const corpus = (name: string): string => readFileSync(join(sharedDir(), 'node-facts', 'corpus', name), 'latin1');
  const odd = [
    '',
    'type=SYSCALL msg=audit(1.000:1): arch=c000003e',
    'type=SECCOMP msg=audit(1.000:2): pid=1 arch=c000003e syscall=39 code=0x7ffc0000',
    'type=SECCOMPX msg=audit(1.000:3): pid=1',
    'type=1326 audit(1.000:4): pid=2 arch=c000003e syscall=1 code=0x50001',
    'type=CWD',
    'type=CWD no header',
    'Dec  2 03:00:00 host kernel: [  555.905776] audit: type=1326 audit(1795867123.853:61799): auid=0 uid=0 gid=0 ses=1 pid=5 comm="sh" exe="/bin/sh" sig=0 arch=c000003e syscall=39 compat=0 ip=0x1 code=0x7ffc0000',
    'Dec  2 03:00:00 host kernel: kauditd_printk_skb: 17 callbacks suppressed',
    'Dec  2 03:00:00 host systemd[1]: Started something.',
    'xtype=SECCOMP msg=audit(1.000:5): pid=1',
    '5,347,555905776,-;audit: type=1326 audit(1795867123.853:61799): pid=7 arch=c000003e syscall=39 code=0x7ffc0000',
    '\x1d\xff binary junk type= here',
  ].join('\n');
  const inputs: [string, string][] = [
    ['audit-enriched.log', corpus('audit-enriched.log')],
    ['audit-raw.log', corpus('audit-raw.log')],
    ['kmsg.log', corpus('kmsg.log')],
    ['kmsg-raw.log', corpus('kmsg-raw.log')],
    ['odd lines', odd],
  ];
  const run = (text: string, strict: boolean, asBytes: boolean) => {
    const store = new EventStore({ ringSize: 10_000 });
    const reported: string[] = [];
    const ingest = new Ingest({
      node: 'n',
      resolve: resolveAuditSyscall,
      strict,
      attributor: new Attributor({
        podIndex: EMPTY_POD_INDEX,
        proc: { stat: () => undefined, cgroup: () => undefined, bootTimeMs: () => 0 },
      }),
      store,
      onMalformed: (line, reason) => reported.push(`${line} ${reason}`),
      now: () => 0,
    });
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    // Batches of 7 lines, as reads would cut them.
    for (let i = 0; i < lines.length; i += 7) {
      const batch = lines.slice(i, i + 7);
      if (asBytes) ingest.bytes(Buffer.from(batch.map((l) => `${l}\n`).join(''), 'latin1'));
      else ingest.lines(batch);
    }
    return { events: store.events({}, 10_000), aggregates: store.aggregates({}), stats: ingest.stats, reported };
  };
  for (const [name, text] of inputs) {
    for (const strict of [true, false]) {
      const want = run(text, strict, false);
      t.strictSame(run(text, strict, true), want, `${name}, ${strict ? 'strict' : 'not strict'}`);
    }
  }
});
