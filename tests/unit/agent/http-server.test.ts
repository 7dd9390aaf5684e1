// The node's HTTP endpoint through inject(): /v1/profiles refuses parameters it does not take, as every
// other endpoint does, and lists source problems; /v1/suggest's name check and its message agree.
import { pino } from 'pino';
import t from 'tap';
import { EventStore } from '../../../agent/src/events/store.js';
import { eventsRoutes } from '../../../agent/src/http/events-routes.js';
import { buildServer, type ServerDeps } from '../../../agent/src/http/server.js';

const build = (extra: Partial<ServerDeps> = {}) =>
  buildServer({
    logger: pino({ level: 'silent' }),
    node: 'n1',
    profiles: () => [],
    readiness: () => ({ ready: true, reason: 'first sync done' }),
    extend: async (app) => {
      await app.register(eventsRoutes, { store: new EventStore({ ringSize: 10 }), node: 'n1' });
    },
    ...extra,
  });

t.test('item 17: /v1/profiles?bogus=1 answers 400 naming the parameter', async (t) => {
  const app = await build();
  t.teardown(() => app.close());
  const r = await app.inject('/v1/profiles?bogus=1');
  t.equal(r.statusCode, 400, '400, as /v1/events?bogus=1 answers');
  t.match(r.json(), { code: 'SECCOMP_AGENT_ERR_BAD_QUERY', message: /bogus/ }, 'names the parameter');
  const events = await app.inject('/v1/events?bogus=1');
  t.equal(events.statusCode, 400, 'the event routes do the same');
  const ok = await app.inject('/v1/profiles');
  t.equal(ok.statusCode, 200, 'without parameters: 200');
  t.same(ok.json(), { node: 'n1', items: [], problems: [] }, 'items and (no) problems');
});

t.test('item 17: /v1/suggest?name= refuses what its message says is refused, and only that', async (t) => {
  const app = await build();
  t.teardown(() => app.close());
  const bad = await app.inject('/v1/suggest?namespace=a&pod=b&name=my_prof');
  t.equal(bad.statusCode, 400, 'my_prof is not an object name: 400');
  const message = String((bad.json() as { message: string }).message);
  t.match(message, /"my_prof"/, 'names the value');
  t.notMatch(message, /'_'/, "does not say '_' is allowed");
  t.match(message, /lower-case letters, digits, '-' and '\.'/, 'gives the real rule for object names');
  for (const name of ['my-prof', 'my.prof', 'a']) {
    const r = await app.inject(`/v1/suggest?namespace=a&pod=b&name=${name}`);
    t.equal(r.statusCode, 404, `${name} is accepted (404: no events for the pod)`);
  }
  for (const name of ['My-Prof', '-x', 'x'.repeat(254)]) {
    const r = await app.inject(`/v1/suggest?namespace=a&pod=b&name=${name}`);
    t.equal(r.statusCode, 400, `${name.slice(0, 20)} is refused`);
  }
});
