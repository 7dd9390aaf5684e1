import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  constants,
  copyFileSync,
  mkdirSync,
  openSync,
  symlinkSync,
  existsSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { FileTailer, type TailEvent, type TailFrom } from '../../../agent/src/events/tail-file.js';
import { LineSplitter, MAX_LINE_BYTES } from '../../../agent/src/events/lines.js';

/** Polls `cond` (bounded) so a test waits for the tailer without asserting on time. */
async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Harness {
  path: string;
  lines: string[];
  events: TailEvent[];
  tailer: FileTailer;
}

async function tail(
  t: Test,
  opts: { from?: TailFrom; poll?: number; content?: string; create?: boolean; prepare?: (path: string) => void } = {},
): Promise<Harness> {
  const dir = t.testdir({});
  const path = join(dir, 'audit.log');
  if (opts.prepare !== undefined) opts.prepare(path);
  else if (opts.create !== false) writeFileSync(path, opts.content ?? '');
  const lines: string[] = [];
  const events: TailEvent[] = [];
  const tailer = new FileTailer({
    path,
    from: opts.from ?? 'end',
    onLines: (ls) => lines.push(...ls),
    onEvent: (e) => events.push(e),
    pollIntervalMs: opts.poll ?? 60_000,
    drainGraceMs: 200,
  });
  t.teardown(() => tailer.stop());
  // Bounded: a start that never resolves (an open blocked on a FIFO) fails here, not by timeout.
  let guard: NodeJS.Timeout | undefined;
  await Promise.race([
    tailer.start(),
    new Promise((_, reject) => {
      guard = setTimeout(() => reject(new Error('FileTailer.start() did not resolve within 5 s')), 5000);
    }),
  ]).finally(() => clearTimeout(guard));
  return { path, lines, events, tailer };
}

/** auditd's rotation: .N-1 -> .N, audit.log -> .1, new audit.log, the oldest beyond numLogs deleted. */
function rotate(path: string, numLogs: number): void {
  const oldest = `${path}.${numLogs - 1}`;
  if (existsSync(oldest)) rmSync(oldest);
  for (let n = numLogs - 2; n >= 1; n--) if (existsSync(`${path}.${n}`)) renameSync(`${path}.${n}`, `${path}.${n + 1}`);
  renameSync(path, `${path}.1`);
  writeFileSync(path, '');
}

const rec = (i: number): string =>
  `type=SECCOMP msg=audit(1795867209.801:${i}): pid=1 arch=c000003e syscall=0 code=0x7ffc0000\n`;

function checkExactlyOnce(t: Test, lines: string[], n: number): void {
  t.equal(lines.length, n, `${n} lines delivered`);
  const serials = lines.map((l) => Number(/:(\d+)\)/.exec(l)?.[1]));
  t.equal(new Set(serials).size, n, 'no line delivered twice');
  t.same(
    [...serials].sort((a, b) => a - b),
    Array.from({ length: n }, (_, i) => i),
    'every line delivered',
  );
}

t.test('LineSplitter holds back an incomplete last line', async (t) => {
  const s = new LineSplitter();
  t.same(s.push(Buffer.from('ab')), []);
  t.same(s.push(Buffer.from('c\nde')), ['abc']);
  t.equal(s.pendingBytes, 2);
  t.same(s.push(Buffer.from('f\ng\nh\n')), ['def', 'g', 'h']);
  t.equal(s.flush(), undefined);
  s.push(Buffer.from('tail'));
  t.equal(s.flush(), 'tail');
});

t.test('item 10: a line without a newline is capped, counted once, and skipped to its newline', async (t) => {
  let overlong = 0;
  const s = new LineSplitter({ onOverlong: () => overlong++ });
  t.same(s.push(Buffer.from('before\n')), ['before']);
  // 1 MiB of one line in 4 KiB writes, as a writer that never ends its line would: nothing held
  // beyond the cap, however long the line grows.
  const block = Buffer.alloc(4096, 0x61);
  let maxPending = 0;
  for (let i = 0; i < 256; i++) {
    t.same(s.push(block), []);
    maxPending = Math.max(maxPending, s.pendingBytes);
  }
  t.ok(maxPending <= MAX_LINE_BYTES, `held back at most ${maxPending} bytes (cap ${MAX_LINE_BYTES})`);
  t.equal(s.pendingBytes, 0, 'nothing held once over the cap');
  t.equal(overlong, 1, 'one overlong line');
  t.same(s.push(Buffer.from('aaa end of the long line\nafter\n')), ['after'], 'the next line is whole');
  t.equal(overlong, 1);
  // A complete line over the cap inside one chunk is dropped too; lines at the cap are kept.
  const atCap = 'b'.repeat(MAX_LINE_BYTES);
  t.same(s.push(Buffer.from(`x\n${'c'.repeat(MAX_LINE_BYTES + 1)}\n${atCap}\ny\n`)), ['x', atCap, 'y']);
  t.equal(overlong, 2);
});

t.test('item 10: the tailer skips an overlong line and reports it; the lines around it arrive', async (t) => {
  const h = await tail(t, { from: 'end' });
  appendFileSync(h.path, 'first\n');
  await until(() => h.lines.length === 1, 'first');
  for (let i = 0; i < 8; i++) appendFileSync(h.path, 'z'.repeat(64 * 1024));
  h.tailer.kick();
  await h.tailer.idle();
  appendFileSync(h.path, 'z\nsecond\n');
  await until(() => h.lines.length === 2, 'second');
  t.same(h.lines, ['first', 'second']);
  t.equal(h.events.filter((e) => e.type === 'overlong').length, 1, 'one overlong line reported');
});

/** A FIFO at `path`; on teardown a writer opens it, so that a reader blocked in open() returns. */
function fifo(t: Test, path: string): void {
  execFileSync('mkfifo', [path]);
  t.teardown(() => {
    try {
      closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // No reader blocked on it (ENXIO), or no FIFO any more.
    }
  });
}

t.test(
  'item 4: a FIFO at the path is refused without blocking, once; a regular file replacing it is read',
  async (t) => {
    let at = '';
    const h = await tail(t, {
      from: 'end',
      poll: 20,
      prepare: (p) => {
        at = p;
        fifo(t, p);
      },
    });
    t.equal(h.path, at);
    for (let i = 0; i < 5; i++) {
      h.tailer.kick();
      await h.tailer.idle();
    }
    await new Promise((r) => setTimeout(r, 100)); // a few fallback polls
    const refused = h.events.filter((e) => e.type === 'refused');
    t.equal(refused.length, 1, 'refused once, not on every poll');
    t.match(refused[0], { reason: /is a FIFO, not a regular file/ });
    t.same(
      h.events.filter((e) => e.type === 'error'),
      [],
      'no read error (ESPIPE) at all',
    );
    rmSync(h.path);
    writeFileSync(h.path, 'after the fifo\n');
    await until(() => h.lines.length === 1, 'the regular file');
    t.same(h.lines, ['after the fifo'], 'read from its start');
  },
);

t.test('item 4: a regular file replaced by a FIFO, then by a regular file again: recovers', async (t) => {
  const h = await tail(t, { from: 'end', poll: 20 });
  appendFileSync(h.path, 'one\n');
  await until(() => h.lines.length === 1, 'one');
  rmSync(h.path);
  fifo(t, h.path);
  await until(() => h.events.some((e) => e.type === 'refused'), 'refused');
  rmSync(h.path);
  writeFileSync(h.path, 'two\n');
  await until(() => h.lines.length === 2, 'two');
  t.same(h.lines, ['one', 'two']);
  t.same(
    h.events.filter((e) => e.type === 'error'),
    [],
  );
});

t.test('item 11: a symlink at the path to a file outside its directory is refused, nothing read', async (t) => {
  let secret = '';
  const h = await tail(t, {
    from: 'start',
    poll: 20,
    prepare: (p) => {
      const outside = join(p, '..', 'etc');
      mkdirSync(outside);
      secret = join(outside, 'shadow');
      writeFileSync(secret, 'root:$6$salt$hash:19000:0:99999:7:::\n');
      symlinkSync(secret, p);
    },
  });
  await new Promise((r) => setTimeout(r, 100));
  t.same(h.lines, [], 'not one line of the target');
  const refused = h.events.filter((e) => e.type === 'refused');
  t.equal(refused.length, 1);
  t.match(refused[0], { reason: /is a symlink to .*etc\/shadow, outside .*; not following it/ });
});

t.test('item 11: a symlink within the directory is followed, and says so', async (t) => {
  const h = await tail(t, {
    from: 'start',
    prepare: (p) => {
      writeFileSync(`${p}.0`, 'through the link\n');
      symlinkSync('audit.log.0', p);
    },
  });
  await until(() => h.lines.length === 1, 'line');
  t.same(h.lines, ['through the link']);
  t.match(
    h.events.find((e) => e.type === 'opened'),
    { via: /audit\.log\.0$/ },
  );
});

t.test('item 8: lag bytes show how far behind the reader is during a long read', async (t) => {
  const dir = t.testdir({});
  const path = join(dir, 'audit.log');
  writeFileSync(path, '');
  const samples: number[] = [];
  let lines = 0;
  const tailer: FileTailer = new FileTailer({
    path,
    from: 'end',
    pollIntervalMs: 60_000,
    onLines: (ls) => {
      lines += ls.length;
      samples.push(tailer.lagBytes);
    },
  });
  t.teardown(() => tailer.stop());
  await tailer.start();
  // One burst of 8 MiB (32 reads of 256 KiB) after the file was opened and read to its end.
  const burst = rec(1).repeat(Math.ceil((8 * 1024 * 1024) / rec(1).length));
  appendFileSync(path, burst);
  tailer.kick();
  await tailer.idle();
  t.equal(lines, burst.length / rec(1).length, 'every line read');
  const max = Math.max(...samples);
  t.ok(max > 7 * 1024 * 1024, `lag seen while reading: up to ${max} bytes`);
  t.ok(
    samples.every((v, i) => i === 0 || v <= (samples[i - 1] ?? 0)),
    'and it falls as the reader catches up',
  );
  t.equal(tailer.lagBytes, 0, 'none once caught up');
});

t.test('from end: existing lines are skipped, appended ones delivered (inotify only, no poll)', async (t) => {
  const h = await tail(t, { from: 'end', content: 'old 1\nold 2\n' });
  appendFileSync(h.path, 'new 1\n');
  await until(() => h.lines.length === 1, 'new 1');
  appendFileSync(h.path, 'new 2\nnew 3\n');
  await until(() => h.lines.length === 3, 'new 3');
  t.same(h.lines, ['new 1', 'new 2', 'new 3']);
});

t.test('from start: existing lines are delivered', async (t) => {
  const h = await tail(t, { from: 'start', content: 'old 1\nold 2\n' });
  await until(() => h.lines.length === 2, 'old lines');
  t.same(h.lines, ['old 1', 'old 2']);
});

t.test('from end starts after the last complete line; an incomplete line waits for its newline', async (t) => {
  const h = await tail(t, { from: 'end', content: 'old 1\nhalf a rec' });
  appendFileSync(h.path, 'ord');
  await h.tailer.idle();
  h.tailer.kick();
  await h.tailer.idle();
  t.same(h.lines, [], 'nothing delivered while the line is incomplete');
  appendFileSync(h.path, '\nnext\n');
  await until(() => h.lines.length === 2, 'completed line');
  t.same(h.lines, ['half a record', 'next']);
});

t.test('a file that does not exist yet is waited for', async (t) => {
  const h = await tail(t, { create: false, from: 'end' });
  t.match(h.events, [{ type: 'waiting' }]);
  writeFileSync(h.path, 'first\n');
  await until(() => h.lines.length === 1, 'first line');
  t.same(h.lines, ['first'], 'a file created after start is read from its start');
});

t.test('20 auditd-style rotations while writing: every record exactly once', async (t) => {
  const h = await tail(t, { from: 'end' });
  let i = 0;
  for (let r = 0; r < 20; r++) {
    for (let k = 0; k < 25; k++) appendFileSync(h.path, rec(i++));
    // Part of the records land just before the rename, unread: they must come from the old inode.
    rotate(h.path, 5);
    for (let k = 0; k < 5; k++) appendFileSync(h.path, rec(i++));
    await until(() => h.lines.length === i, `record ${i}`);
  }
  checkExactlyOnce(t, h.lines, i);
  t.equal(h.events.filter((e) => e.type === 'rotated').length, 20, '20 rotations seen');
});

t.test('several rotations before the tailer runs: files rotated in between are read once, in order', async (t) => {
  const h = await tail(t, { from: 'end' });
  let i = 0;
  // All synchronous: the tailer cannot run until the loop ends, so it finds 6 rotations at once.
  for (let r = 0; r < 6; r++) {
    for (let k = 0; k < 10; k++) appendFileSync(h.path, rec(i++));
    rotate(h.path, 10);
  }
  for (let k = 0; k < 3; k++) appendFileSync(h.path, rec(i++));
  await until(() => h.lines.length === i, `record ${i}`);
  checkExactlyOnce(t, h.lines, i);
  const serials = h.lines.map((l) => Number(/:(\d+)\)/.exec(l)?.[1]));
  t.same(
    serials,
    [...serials].sort((a, b) => a - b),
    'in write order',
  );
  t.match(
    h.events.find((e) => e.type === 'rotated'),
    { intermediates: 5 },
  );
});

t.test('inode numbers reused by rotation do not confuse the tailer', async (t) => {
  // num_logs=2: each rotation deletes the previous .1, whose inode the next audit.log often gets.
  const h = await tail(t, { from: 'end' });
  let i = 0;
  const inodes = new Set<number>();
  for (let r = 0; r < 20; r++) {
    for (let k = 0; k < 5; k++) appendFileSync(h.path, rec(i++));
    await until(() => h.lines.length === i, `record ${i}`);
    rotate(h.path, 2);
    inodes.add(statSync(h.path).ino);
    appendFileSync(h.path, rec(i++));
    await until(() => h.lines.length === i, `record ${i}`);
  }
  checkExactlyOnce(t, h.lines, i);
  t.comment(`${inodes.size} distinct inode numbers over 20 new files`);
});

t.test('copy-truncate: unread lines are taken from the copy, nothing twice', async (t) => {
  const h = await tail(t, { from: 'end' });
  let i = 0;
  for (let k = 0; k < 10; k++) appendFileSync(h.path, rec(i++));
  await until(() => h.lines.length === i, 'first 10');
  for (let r = 0; r < 5; r++) {
    // Synchronously: append (unread), copy, truncate, append again.
    for (let k = 0; k < 7; k++) appendFileSync(h.path, rec(i++));
    copyFileSync(h.path, `${h.path}.1`);
    truncateSync(h.path, 0);
    for (let k = 0; k < 3; k++) appendFileSync(h.path, rec(i++));
    await until(() => h.lines.length === i, `record ${i}`);
  }
  checkExactlyOnce(t, h.lines, i);
  const tr = h.events.filter((e) => e.type === 'truncated');
  t.equal(tr.length, 5);
  t.ok(
    tr.every((e) => e.type === 'truncated' && e.recoveredBytes > 0 && !e.possibleLoss),
    'each recovered from the copy',
  );
});

t.test('truncated and rewritten past the old size (no copy): the new content is read from its start', async (t) => {
  const h = await tail(t, { from: 'end' });
  appendFileSync(h.path, 'a1\na2\n');
  await until(() => h.lines.length === 2, 'a lines');
  writeFileSync(h.path, 'b1 is a longer line\nb2 is a longer line\n'); // O_TRUNC then write: larger than before
  await until(() => h.lines.length === 4, 'b lines');
  t.same(h.lines, ['a1', 'a2', 'b1 is a longer line', 'b2 is a longer line']);
  t.match(
    h.events.find((e) => e.type === 'truncated'),
    { possibleLoss: true },
  );
});

t.test('a writer that still appends to the rotated-away file is read during the grace period', async (t) => {
  const h = await tail(t, { from: 'end' });
  appendFileSync(h.path, 'before\n');
  await until(() => h.lines.length === 1, 'before');
  renameSync(h.path, `${h.path}.1`);
  writeFileSync(h.path, 'new file\n');
  await until(() => h.lines.length === 2, 'new file line');
  appendFileSync(`${h.path}.1`, 'late write to old file\n'); // logrotate without copytruncate, HUP not yet sent
  h.tailer.kick();
  await until(() => h.lines.length === 3, 'late line');
  t.same(h.lines, ['before', 'new file', 'late write to old file']);
});
