// Issue 15: the calls the profiles in use logged, as the node report carries them (WouldBlock).
import t from 'tap';
import { loggedCalls } from '../../../agent/src/events/logged.js';
import { EventStore } from '../../../agent/src/events/store.js';
import { podEvent } from '../../helpers/store-events.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);

t.test('logged names and pods of the given containers only, LOG actions only', async (t) => {
  const store = new EventStore({ ringSize: 100 });
  store.add(podEvent(A, 'web', 'nginx', 'x86_64', 'rseq'), 1);
  store.add(podEvent(A, 'web', 'nginx', 'x86_64', 'mkdirat'), 1);
  store.add(podEvent(A, 'web', 'nginx', 'x86_64', 'ptrace', undefined, 'SCMP_ACT_KILL_PROCESS'), 1);
  store.add(podEvent(B, 'web', 'sidecar', 'x86_64', 'getpid'), 1); // another container of the pod
  store.add(podEvent(C, 'api', 'app', 'x86_64', 'faccessat2'), 1);
  store.add(podEvent(C, 'api', 'app', 'x86_64', 'rseq'), 1);
  const cases: { name: string; containers: { namespace: string; pod: string; container: string }[]; want: unknown }[] =
    [
      { name: 'none', containers: [], want: { names: [], pods: [] } },
      {
        name: 'one container: its LOG calls (a KILL is not a call an enforcing version would block)',
        containers: [{ namespace: 'seccomp-test', pod: 'web', container: 'nginx' }],
        want: { names: ['mkdirat', 'rseq'], pods: ['seccomp-test/web'] },
      },
      {
        name: 'two pods: the union, sorted',
        containers: [
          { namespace: 'seccomp-test', pod: 'web', container: 'nginx' },
          { namespace: 'seccomp-test', pod: 'api', container: 'app' },
        ],
        want: { names: ['faccessat2', 'mkdirat', 'rseq'], pods: ['seccomp-test/api', 'seccomp-test/web'] },
      },
      {
        name: 'a container with no events',
        containers: [{ namespace: 'seccomp-test', pod: 'web', container: 'gone' }],
        want: { names: [], pods: [] },
      },
    ];
  for (const c of cases) t.same(loggedCalls(store, c.containers), c.want, c.name);
});
