import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  constants,
  existsSync,
  openSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { chooseSource, startEventPipeline, type EventPipelineDeps } from '../../../agent/src/events/pipeline.js';
import { procReader } from '../../../agent/src/events/proc.js';
import { realFs } from '../../../agent/src/events/fs.js';
import { createMetrics, pipelineGauges } from '../../../agent/src/http/metrics.js';
import { isAgentError } from '../../../shared/errors.js';

const here = dirname(fileURLToPath(import.meta.url));
const corpusDir = join(here, '..', '..', '..', '..', 'shared', 'node-facts', 'corpus');
const lines = (name: string): string[] =>
  readFileSync(join(corpusDir, name), 'latin1')
    .split('\n')
    .filter((l) => l !== '');
const SECCOMP = lines('audit-enriched.log').filter((l) => l.startsWith('type=SECCOMP '));

function logger(t: Test) {
  const records: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n'))
        if (l !== '') records.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  t.teardown(() => sink.destroy());
  return { log: pino({ level: 'debug' }, sink), records };
}

/** One test dir: the log file (created empty unless `create` is false) and a /proc tree. */
async function pipeline(t: Test, file: string, over: Partial<EventPipelineDeps>) {
  const { log, records } = logger(t);
  const dir = t.testdir({ proc: { stat: 'btime 1795860000\n' }, [file]: '' });
  const procRoot = join(dir, 'proc');
  const path = join(dir, file);
  const p = await startEventPipeline({
    node: 'node1',
    logger: log,
    proc: procReader(procRoot),
    pollIntervalMs: 60_000,
    auditLog: path,
    ...over,
  });
  t.teardown(() => p.stop());
  return { p, logs: records, procRoot, path };
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

t.test('chooseSource: explicit settings and paths', async (t) => {
  t.match(await chooseSource('auditd', undefined), { kind: 'auditd', path: '/var/log/audit/audit.log' });
  t.match(await chooseSource('kmsg', undefined), { kind: 'kmsg', path: '/dev/kmsg' });
  t.match(await chooseSource('auto', '/host/var/log/audit/audit.log'), {
    kind: 'auditd',
    path: '/host/var/log/audit/audit.log',
  });
  t.match(await chooseSource('auto', '/host/var/log/kern.log'), { kind: 'syslog' });
  t.match(await chooseSource('syslog', '/x/messages'), { kind: 'syslog', path: '/x/messages' });
  const auto = await chooseSource('auto', undefined);
  t.ok(['auditd', 'syslog', 'kmsg'].includes(auto.kind), `auto picked ${auto.kind}: ${auto.reason}`);
  const dir = t.testdir({});
  const noSyslog = await chooseSource('syslog', undefined, {
    open: () => Promise.reject(new Error('unused')),
    stat: (p) => Promise.reject(Object.assign(new Error(`ENOENT ${p} (${dir})`), { code: 'ENOENT' })),
    lstat: () => Promise.reject(new Error('unused')),
    realpath: () => Promise.reject(new Error('unused')),
    watch: () => {
      throw new Error('unused');
    },
  }).catch((e: unknown) => e);
  t.ok(isAgentError(noSyslog));
  t.match(
    (noSyslog as Error).message,
    /audit source syslog: none of \/var\/log\/syslog, \/var\/log\/kern.log, \/var\/log\/messages exists; give the file with --audit-log/,
  );
});

t.test('a generated audit.log: every corpus SECCOMP line becomes one named event', async (t) => {
  const { p, logs, path } = await pipeline(t, 'audit.log', { source: 'auditd' });
  t.match(logs, [{ msg: 'audit source chosen', source: 'auditd', from: 'end' }]);
  appendFileSync(path, lines('audit-enriched.log').join('\n') + '\n');
  await until(() => p.stats().records === 321, '321 records');
  const st = p.stats();
  t.equal(st.lines, 412);
  t.equal(st.malformed, 0);
  t.equal(st.unattributed, 321, 'the corpus pids do not exist in this test proc tree');
  const evs = p.store.events({}, 10_000);
  t.equal(evs.length, 321);
  t.ok(
    evs.every((e) => e.syscall !== null),
    'every one named',
  );
  t.equal(new Set(evs.map((e) => e.auditId)).size, 321, 'no record twice');
});

t.test('malformed lines are counted, logged a few times, and skipped', async (t) => {
  const { p, logs, path } = await pipeline(t, 'audit.log', { source: 'auditd' });
  const good = SECCOMP[0] ?? '';
  appendFileSync(path, [good, 'not an audit line', good.slice(0, 70), good].join('\n') + '\n');
  await until(() => p.stats().lines === 4, '4 lines');
  t.match(p.stats(), { records: 2, malformed: 2 });
  t.equal(logs.filter((l) => l['msg'] === 'malformed audit line skipped').length, 2);
});

t.test('item 3: an out-of-range audit time is one malformed line, never the rest of the read', async (t) => {
  const { p, logs, path } = await pipeline(t, 'audit.log', { source: 'auditd' });
  const good = SECCOMP.slice(0, 6);
  const bad = (id: string): string => (SECCOMP[0] ?? '').replace(/audit\([^)]*\)/, `audit(${id})`);
  // One write, so that the bad lines and the good ones after them arrive in the same read.
  appendFileSync(
    path,
    [good[0], bad('99999999999999999.999:2'), good[1], good[2], bad('9000000000000.000:3'), ...good.slice(3)].join(
      '\n',
    ) + '\n',
  );
  await until(() => p.stats().lines === 8, '8 lines');
  t.match(p.stats(), { records: 6, malformed: 2 });
  t.equal(p.store.events({}, 100).length, 6, 'every good line of the read is an event');
  t.same(
    logs.filter((l) => l['msg'] === 'reading the audit log failed; retrying'),
    [],
    'no read failed',
  );
});

t.test('item 10: a 1 MiB line with no record in it is one malformed line', async (t) => {
  const { p, logs, path } = await pipeline(t, 'audit.log', { source: 'auditd' });
  appendFileSync(path, `${SECCOMP[0]}\n${'x'.repeat(1024 * 1024)}\n${SECCOMP[1]}\n`);
  await until(() => p.stats().lines === 3, '3 lines');
  t.match(p.stats(), { records: 2, malformed: 1 });
  t.match(
    logs.find((l) => l['msg'] === 'malformed audit line skipped'),
    { reason: /line longer than 16384 bytes/ },
  );
});

t.test('item 11: a malformed line is logged as a short escaped prefix, never whole', async (t) => {
  const { p, logs, path } = await pipeline(t, 'audit.log', { source: 'auditd' });
  const secret = 'root:$6$5ecret5alt$' + 'H'.repeat(86) + ':19000:0:99999:7:::';
  appendFileSync(path, `${secret}\n\x1b[31mred\ttab\\\n`);
  await until(() => p.stats().lines === 2, '2 lines');
  const warned = logs.filter((l) => l['msg'] === 'malformed audit line skipped');
  t.equal(warned.length, 2);
  t.same(warned[0], { ...warned[0], prefix: 'root:$6$5ecret5alt$HHHHHHHHHHHHH…', length: secret.length });
  t.equal(warned[1]?.['prefix'], '\\x1b[31mred\\x09tab\\x5c');
  t.notOk(JSON.stringify(logs).includes('H'.repeat(40)), 'the line itself is in no log record');
});

t.test('item 11: a symlink at the audit path leading out of its directory is refused loudly', async (t) => {
  const { log, records } = logger(t);
  const dir = t.testdir({ log: {}, etc: { shadow: 'root:$6$x$y:1:0:99999:7:::\n' } });
  symlinkSync(join(dir, 'etc', 'shadow'), join(dir, 'log', 'audit.log'));
  const p = await startEventPipeline({
    node: 'node1',
    logger: log,
    proc: procReader(join(dir, 'proc')),
    pollIntervalMs: 60_000,
    source: 'auditd',
    auditLog: join(dir, 'log', 'audit.log'),
    from: 'start',
  });
  t.teardown(() => p.stop());
  t.equal(p.stats().lines, 0);
  t.match(records, [
    { msg: 'audit source chosen' },
    { level: 50, msg: 'audit log refused; waiting for a regular file at the path', reason: /outside/ },
  ]);
});

t.test(
  'item 4: a FIFO at the audit path: the pipeline starts, says why once, and reads the file replacing it',
  async (t) => {
    const { log, records } = logger(t);
    const dir = t.testdir({ log: {} });
    const path = join(dir, 'log', 'audit.log');
    execFileSync('mkfifo', [path]);
    t.teardown(() => {
      try {
        closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK)); // frees an open blocked on it
      } catch {
        // nobody blocked on it
      }
    });
    let guard: NodeJS.Timeout | undefined;
    const p = await Promise.race([
      startEventPipeline({
        node: 'node1',
        logger: log,
        proc: procReader(join(dir, 'proc')),
        pollIntervalMs: 20,
        source: 'auditd',
        auditLog: path,
      }),
      new Promise<never>((_, reject) => {
        guard = setTimeout(() => reject(new Error('startEventPipeline did not resolve within 5 s')), 5000);
      }),
    ]).finally(() => clearTimeout(guard));
    t.teardown(() => p.stop());
    await new Promise((r) => setTimeout(r, 200)); // ten polls
    const refused = records.filter((l) => l['msg'] === 'audit log refused; waiting for a regular file at the path');
    t.equal(refused.length, 1, 'said once');
    t.match(refused[0], { level: 50, reason: /is a FIFO, not a regular file/ });
    t.same(
      records.filter((l) => l['msg'] === 'reading the audit log failed; retrying'),
      [],
      'no ESPIPE',
    );
    rmSync(path);
    writeFileSync(path, `${SECCOMP[0]}\n`);
    await until(() => p.stats().records === 1, 'the record of the regular file');
  },
);

t.test('item 4: a failure that persists is logged once a minute, not on every poll', async (t) => {
  const { log, records } = logger(t);
  const dir = t.testdir({ 'audit.log': '' });
  const path = join(dir, 'audit.log');
  const eio = Object.assign(new Error(`EIO: i/o error, stat '${path}'`), { code: 'EIO' });
  const p = await startEventPipeline({
    node: 'node1',
    logger: log,
    proc: procReader(join(dir, 'proc')),
    pollIntervalMs: 20,
    source: 'auditd',
    auditLog: path,
    fs: { ...realFs, stat: (f) => (f === path ? Promise.reject(eio) : realFs.stat(f)) },
  });
  t.teardown(() => p.stop());
  await new Promise((r) => setTimeout(r, 200));
  const failed = records.filter((l) => l['msg'] === 'reading the audit log failed; retrying');
  t.equal(failed.length, 1, `logged once over about ten polls`);
  t.match(failed[0], { err: /EIO/ });
});

t.test('20 rotations of a generated log (rename + create, as auditd does) while writing: exact count', async (t) => {
  const { p, logs, path } = await pipeline(t, 'audit.log', { source: 'auditd' });
  let serial = 100_000;
  const write = (n: number): void => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const src = SECCOMP[serial % SECCOMP.length] ?? '';
      out.push(src.replace(/audit\((\d+\.\d+):\d+\)/, `audit($1:${serial++})`));
    }
    appendFileSync(path, out.join('\n') + '\n');
  };
  const rotate = (): void => {
    const numLogs = 5;
    if (existsSync(`${path}.${numLogs - 1}`)) rmSync(`${path}.${numLogs - 1}`);
    for (let n = numLogs - 2; n >= 1; n--)
      if (existsSync(`${path}.${n}`)) renameSync(`${path}.${n}`, `${path}.${n + 1}`);
    renameSync(path, `${path}.1`);
    writeFileSync(
      path,
      `type=DAEMON_ROTATE msg=audit(1795867210.486:${serial}): op=rotate-logs auid=0 uid=0 ses=4294967295 pid=1 res=success\n`,
    );
  };
  let written = 0;
  for (let r = 0; r < 20; r++) {
    write(37);
    written += 37;
    if (r % 2 === 0) await new Promise((res) => setImmediate(res)); // let the tailer catch up on half of them
    rotate();
    write(13);
    written += 13;
    await until(() => p.stats().records === written, `${written} records`);
  }
  t.equal(p.stats().records, 1000);
  const ids = p.store.events({}, 10_000).map((e) => e.auditId);
  t.equal(ids.length, 1000);
  t.equal(new Set(ids).size, 1000, 'no record read twice');
  t.equal(logs.filter((l) => l['msg'] === 'audit log rotated; switched to the new file').length, 20);
  t.equal(p.stats().malformed, 0, 'no record cut at a rotation');
});

t.test('a syslog file with kernel-log lines: records parsed, "callbacks suppressed" counted as lost', async (t) => {
  const { p, path } = await pipeline(t, 'kern.log', { source: 'syslog' });
  const syslogLines = lines('kmsg.log').map((l) => `Nov 28 12:00:00 node1 kernel: ${l}`);
  appendFileSync(path, ['Nov 28 12:00:00 node1 sshd[1]: something else', ...syslogLines].join('\n') + '\n');
  await until(() => p.stats().lines === 31, '31 lines');
  t.match(p.stats(), { records: 23, lost: 90, malformed: 0 });
});

t.test('attribution through the pipeline: a live pid in a container cgroup', async (t) => {
  const { p, procRoot, path } = await pipeline(t, 'audit.log', { source: 'auditd' });
  const id = 'f'.repeat(64);
  mkdirSync(join(procRoot, '18105'));
  writeFileSync(join(procRoot, '18105', 'stat'), '18105 (uname) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0');
  writeFileSync(
    join(procRoot, '18105', 'cgroup'),
    `0::/kubepods/besteffort/pod0b7e3f8a-1111-2222-3333-444455556666/${id}\n`,
  );
  const unameLines = SECCOMP.filter((l) => l.includes(' pid=18105 '));
  appendFileSync(path, unameLines.join('\n') + '\n');
  await until(() => p.stats().records === unameLines.length, 'uname records');
  const evs = p.store.events({ containerId: id }, 100);
  t.equal(evs.length, unameLines.length);
  t.match(evs[0], {
    containerId: id,
    podUid: '0b7e3f8a-1111-2222-3333-444455556666',
    attribution: 'container',
    comm: 'uname',
  });
});

t.test('metrics: the pipeline counts into prom-client and its gauges are read at scrape time', async (t) => {
  const metrics = createMetrics({ node: 'node1', processMetrics: false });
  const { p, path } = await pipeline(t, 'audit.log', { source: 'auditd', metrics: metrics.events, ringSize: 100 });
  metrics.setPipelineGauges(pipelineGauges(p));
  appendFileSync(path, lines('audit-enriched.log').join('\n') + '\nbroken line\n');
  await until(() => p.stats().lines === 413, 'all lines');
  const text = await metrics.registry.metrics();
  t.match(text, /^seccomp_agent_audit_lines_total 413$/m);
  t.match(text, /^seccomp_agent_audit_malformed_lines_total 1$/m);
  t.match(text, /^seccomp_agent_audit_events_total\{attribution="unknown"\} 321$/m);
  t.match(text, /^seccomp_agent_events_in_ring 100$/m, 'the ring holds its size');
  t.match(text, /^seccomp_agent_containers_tracked 1$/m);
  t.match(text, /^seccomp_agent_audit_tail_lag_bytes 0$/m);
  t.match(text, /^seccomp_agent_audit_tail_lag_seconds \d+/m);
  t.match(
    text,
    /^security_profiles_operator_seccomp_profile_audit_total\{node="node1",namespace="",pod="",container="",syscall="openat"\} \d+$/m,
  );
  metrics.profiles.operation('update');
  metrics.profiles.error('WriteFailed');
  const after = await metrics.registry.metrics();
  t.match(after, /^security_profiles_operator_seccomp_profile_total\{operation="update"\} 1$/m);
  t.match(after, /^security_profiles_operator_seccomp_profile_error_total\{reason="WriteFailed"\} 1$/m);
});
