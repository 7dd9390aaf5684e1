// The revision at which each profile's current spec was first seen, from watch events and lists.
import t from 'tap';
import { profileObj, type ProfileObj } from '../../../agent/src/cluster/profile-obj.js';
import { SpecRevisions } from '../../../agent/src/cluster/spec-revisions.js';

function obj(o: {
  rv: number;
  generation?: number;
  spec?: Record<string, unknown>;
  deleting?: boolean;
  status?: { observedGeneration?: number; specRevision?: string };
}): ProfileObj {
  const p = profileObj({
    metadata: {
      name: 'p',
      namespace: 'ns',
      uid: 'u1',
      generation: o.generation ?? 1,
      resourceVersion: String(o.rv),
      ...(o.deleting === true ? { deletionTimestamp: '2025-01-01T00:00:00Z' } : {}),
    },
    spec: o.spec ?? { defaultAction: 'SCMP_ACT_ERRNO' },
    ...(o.status === undefined ? {} : { status: o.status }),
  });
  if (p === undefined) throw new Error('bad profile');
  return p;
}

t.test('the spec revision of a profile', async (t) => {
  type Step = { o: Parameters<typeof obj>[0]; listed: boolean };
  const cases: { name: string; steps: Step[]; want: number }[] = [
    { name: 'a watch event: its resourceVersion', steps: [{ o: { rv: 20 }, listed: false }], want: 20 },
    {
      name: 'a status-only change keeps the revision of the spec',
      steps: [
        { o: { rv: 20 }, listed: false },
        { o: { rv: 25, status: { observedGeneration: 1, specRevision: '20' } }, listed: false },
      ],
      want: 20,
    },
    {
      name: 'a spec change: the event’s revision',
      steps: [
        { o: { rv: 20 }, listed: false },
        { o: { rv: 30, generation: 2, spec: { defaultAction: 'SCMP_ACT_LOG' } }, listed: false },
      ],
      want: 30,
    },
    {
      name: 'deletion starts: a new revision',
      steps: [
        { o: { rv: 20 }, listed: false },
        { o: { rv: 40, generation: 2, deleting: true }, listed: false },
      ],
      want: 40,
    },
    {
      name: 'first seen in a list, status for the current generation: its specRevision',
      steps: [{ o: { rv: 50, generation: 3, status: { observedGeneration: 3, specRevision: '42' } }, listed: true }],
      want: 42,
    },
    {
      name: 'first seen in a list, status for an older generation: the object’s resourceVersion',
      steps: [{ o: { rv: 50, generation: 3, status: { observedGeneration: 2, specRevision: '42' } }, listed: true }],
      want: 50,
    },
    {
      name: 'first seen in a list, no specRevision in the status: the object’s resourceVersion',
      steps: [{ o: { rv: 50, generation: 3, status: { observedGeneration: 3, specRevision: '' } }, listed: true }],
      want: 50,
    },
    {
      name: 'first seen in a list, no status',
      steps: [{ o: { rv: 50 }, listed: true }],
      want: 50,
    },
    {
      name: 'a relist of the same spec keeps what the watch saw',
      steps: [
        { o: { rv: 20 }, listed: false },
        { o: { rv: 60, status: { observedGeneration: 1, specRevision: '15' } }, listed: true },
      ],
      want: 20,
    },
    {
      name: 'a relist with a spec changed meanwhile: the object’s resourceVersion, not the status',
      steps: [
        { o: { rv: 20 }, listed: false },
        {
          o: {
            rv: 70,
            generation: 2,
            spec: { defaultAction: 'SCMP_ACT_LOG' },
            status: { observedGeneration: 2, specRevision: '65' },
          },
          listed: true,
        },
      ],
      want: 70,
    },
  ];
  for (const c of cases) {
    const s = new SpecRevisions();
    for (const step of c.steps) {
      const p = obj(step.o);
      s.seen(p, Number(p.resourceVersion), step.listed);
    }
    t.equal(s.get('ns/p'), c.want, c.name);
  }
});

t.test('forget, and an unknown key', async (t) => {
  const s = new SpecRevisions();
  t.ok(Number.isNaN(s.get('ns/p')));
  s.seen(obj({ rv: 20 }), 20, false);
  s.forget('ns/p');
  t.ok(Number.isNaN(s.get('ns/p')));
  s.seen(obj({ rv: 20 }), 20, true);
  t.equal(s.get('ns/p'), 20, 'seen afresh after forget');
});
