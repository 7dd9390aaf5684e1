// The heartbeat that finds silently cut connections: the aggregator Lease watch silent for longer
// than silenceMs restarts every watch, once per silence; no open watch, no alarm.
import t from 'tap';
import { WatchHeartbeat } from '../../../agent/src/cluster/heartbeat.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const SILENCE = 4500;

t.test('a silence longer than the threshold raises one alarm until the watch shows life again', async (t) => {
  const clock = new FakeClock();
  let activity: number | undefined = clock.now();
  const alarms: number[] = [];
  const hb = new WatchHeartbeat(
    clock,
    () => activity,
    SILENCE,
    () => alarms.push(clock.now()),
  );
  hb.start();
  t.teardown(() => hb.stop());
  // Renewals every 3 s: never silent for 4.5 s.
  for (let i = 0; i < 10; i++) {
    await clock.advance(3000);
    activity = clock.now();
  }
  t.same(alarms, [], 'no alarm while the Lease is renewed every 3 s');
  const last = clock.now();
  await clock.advance(SILENCE + 1000);
  t.equal(alarms.length, 1, 'one alarm after the silence');
  t.ok(
    (alarms[0] ?? 0) - last > SILENCE && (alarms[0] ?? 0) - last <= SILENCE + SILENCE / 6 + 1,
    'soon after the threshold',
  );
  await clock.advance(SILENCE * 4);
  t.equal(alarms.length, 1, 'no second alarm for the same silence');
  activity = clock.now();
  await clock.advance(SILENCE + 1000);
  t.equal(alarms.length, 2, 'a new silence after new activity raises a new alarm');
  t.equal(hb.alarms, 2);
});

t.test('no open watch (the API server is down, or the watch is being reopened): no alarm', async (t) => {
  const clock = new FakeClock();
  let fired = 0;
  const hb = new WatchHeartbeat(
    clock,
    () => undefined,
    SILENCE,
    () => fired++,
  );
  hb.start();
  await clock.advance(SILENCE * 10);
  hb.stop();
  t.equal(fired, 0);
});
