// Which nodes the aggregator counts: Node object present and agent Lease fresh, in fake time.
import t from 'tap';
import { LiveNodes } from '../../../agent/src/cluster/liveness.js';
import type { LeaseView } from '../../../agent/src/kube/lease.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const lease = (node: string, expiresAt: number): LeaseView => ({
  key: `seccomp-agent/seccomp-agent-${node}`,
  node,
  expiresAt,
});

function world(): { clock: FakeClock; live: LiveNodes; changes: string[][] } {
  const clock = new FakeClock();
  const changes: string[][] = [];
  const live = new LiveNodes(clock, 'self', (l) => changes.push([...l]));
  return { clock, live, changes };
}

t.test('a node is live with both its Node and a fresh Lease; the aggregator always', async (t) => {
  const cases: { name: string; node: boolean; expiresIn: number | undefined; want: string[] }[] = [
    { name: 'Node and fresh Lease', node: true, expiresIn: 40_000, want: ['a', 'self'] },
    { name: 'Node, no Lease', node: true, expiresIn: undefined, want: ['self'] },
    { name: 'Lease, no Node', node: false, expiresIn: 40_000, want: ['self'] },
    { name: 'Node and an expired Lease', node: true, expiresIn: -1, want: ['self'] },
  ];
  for (const c of cases) {
    const { clock, live } = world();
    if (c.node) live.setNode('a', true);
    if (c.expiresIn !== undefined) live.setLease(lease('a', 0).key, lease('a', clock.now() + c.expiresIn));
    t.same(live.live, c.want, c.name);
    live.stop();
  }
});

t.test(
  'a lease that expires with nobody writing flips the live set, and onChange is called once per change',
  async (t) => {
    const { clock, live, changes } = world();
    live.setNode('a', true);
    live.setNode('b', true);
    t.same(changes, [], 'Nodes alone change nothing');
    live.setLease(lease('a', 0).key, lease('a', clock.now() + 40_000));
    live.setLease(lease('b', 0).key, lease('b', clock.now() + 60_000));
    t.same(changes, [
      ['a', 'self'],
      ['a', 'b', 'self'],
    ]);
    await clock.advance(39_999);
    t.equal(changes.length, 2);
    await clock.advance(1000);
    t.same(changes.at(-1), ['b', 'self'], 'a expired');
    t.equal(changes.length, 3, 'one call for it');
    // b renews before it expires: still live, no call.
    live.setLease(lease('b', 0).key, lease('b', clock.now() + 40_000));
    await clock.advance(30_000);
    t.equal(changes.length, 3);
    await clock.advance(20_000);
    t.same(changes.at(-1), ['self']);
    t.equal(changes.length, 4);
    t.equal(clock.pending, 0, 'no timer left once no lease is fresh');
    // a comes back; its Node goes away.
    live.setLease(lease('a', 0).key, lease('a', clock.now() + 40_000));
    t.same(changes.at(-1), ['a', 'self']);
    live.setNode('a', false);
    t.same(changes.at(-1), ['self']);
    live.setLease(lease('a', 0).key, undefined);
    t.equal(changes.length, 6, 'removing a lease of a node already gone changes nothing');
    live.stop();
    t.equal(clock.pending, 0);
  },
);
