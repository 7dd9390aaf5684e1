// The one status/report equality, derived from the schema. The walk test takes every field from the
// schema itself (a full sample, then one mutation after another at each field), so a field added to
// StatusSchema or NodeReportSchema is covered without touching this file, and a comparator that
// missed it would fail here.
import { Type, type TSchema } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import t from 'tap';
import { ArgSchema, NodeReportSchema, StatusSchema } from '../../../shared/profile/schema.js';
import {
  equalBySchema,
  sameNodeReport,
  sameNodeReportIncludingRevision,
  sameStatus,
  schemaEqual,
  type SchemaEquality,
} from '../../../shared/profile/schema-equal.js';
import {
  describePath,
  enumOf,
  schemaArbitrary,
  schemaPositions,
  schemaSample,
  type SchemaPosition,
  type ValuePath,
} from '../../helpers/schema-values.js';

interface Comparator {
  readonly name: string;
  readonly eq: SchemaEquality<never>;
  readonly schema: TSchema;
  /** What the comparator is meant to skip: the contract, written out on purpose. */
  readonly ignore: readonly string[];
  /** Where those names occur in the schema today; a new field of an ignored name shows up here. */
  readonly ignoredPaths: readonly string[];
}

const statusComparator: Comparator = {
  name: 'sameStatus',
  eq: sameStatus,
  schema: StatusSchema,
  ignore: ['lastTransitionTime'],
  ignoredPaths: ['$.conditions[0].lastTransitionTime'],
};

const COMPARATORS: readonly Comparator[] = [
  statusComparator,
  {
    name: 'sameNodeReport',
    eq: sameNodeReport,
    schema: NodeReportSchema,
    ignore: ['appliedRevision'],
    ignoredPaths: ['$.appliedRevision'],
  },
  {
    name: 'sameNodeReportIncludingRevision',
    eq: sameNodeReportIncludingRevision,
    schema: NodeReportSchema,
    ignore: [],
    ignoredPaths: [],
  },
];

const call = (eq: SchemaEquality<never>, a: unknown, b: unknown): boolean =>
  (eq as (a: unknown, b: unknown) => boolean)(a, b);

type Container = Record<string | number, unknown>;

/** A copy of `root` with `change` applied to the container holding `path`'s last step. */
function changedAt(root: unknown, path: ValuePath, change: (parent: Container, key: string | number) => void): unknown {
  const copy = structuredClone(root);
  let parent = copy as Container;
  for (const step of path.slice(0, -1)) parent = parent[step] as Container;
  const last = path.at(-1);
  if (last === undefined) throw new Error('a position has a non-empty path');
  change(parent, last);
  return copy;
}

interface Mutation {
  readonly what: string;
  readonly value: unknown;
}

/** Every way of changing the field at `p` that a reader of the object would notice. */
function mutations(sample: unknown, p: SchemaPosition): Mutation[] {
  const out: Mutation[] = [];
  const set = (what: string, f: (old: unknown) => unknown): void => {
    out.push({ what, value: changedAt(sample, p.path, (o, k) => (o[k] = f(o[k]))) });
  };
  if (p.name !== undefined) {
    out.push({
      what: p.required ? 'required field removed' : 'optional field removed',
      value: changedAt(sample, p.path, (o, k) => delete o[k]),
    });
  }
  switch (p.schema['type']) {
    case 'string': {
      const members = enumOf(p.schema);
      if (members === undefined) set('string changed', (v) => `${String(v)}~`);
      else for (const m of members.slice(1)) set(`enum member → ${m}`, () => m);
      break;
    }
    case 'integer':
    case 'number':
      set('number + 1', (v) => (v as number) + 1);
      break;
    case 'boolean':
      set('boolean flipped', (v) => !(v as boolean));
      break;
    case 'array':
      set('array grown', (v) => [...(v as unknown[]), structuredClone((v as unknown[])[0])]);
      set('array emptied', () => []);
      break;
    case 'object':
      set('object emptied', () => ({}));
      break;
    default:
      throw new Error(`${describePath(p.path)}: no mutation for ${JSON.stringify(p.schema)}`);
  }
  return out;
}

const ajv = new Ajv({ strict: false });
ajv.addFormat('int64', true);
ajv.addFormat('date-time', true);

/** What the walk finds wrong with `c`: each field mutation it misjudges. Empty when `c` is right. */
function walkFindings(c: Comparator): { wrong: string[]; checked: number; fields: number } {
  const sample = schemaSample(c.schema);
  const positions = schemaPositions(c.schema);
  const isIgnored = (p: SchemaPosition): boolean => p.path.some((s) => typeof s === 'string' && c.ignore.includes(s));
  const wrong: string[] = [];
  let checked = 0;
  for (const p of positions) {
    const expectSame = isIgnored(p);
    for (const m of mutations(sample, p)) {
      checked++;
      if (JSON.stringify(m.value) === JSON.stringify(sample))
        wrong.push(`${describePath(p.path)} ${m.what}: no change`);
      if (call(c.eq, sample, m.value) !== expectSame || call(c.eq, m.value, sample) !== expectSame) {
        wrong.push(`${describePath(p.path)} ${m.what}: said ${expectSame ? 'changed' : 'same'}`);
      }
    }
    // A property the schema does not declare never counts.
    if (p.schema['type'] === 'object') {
      checked++;
      const extra = changedAt(sample, p.path, (o, k) => ((o[k] as Container)['undeclared'] = 'x'));
      if (!call(c.eq, sample, extra)) wrong.push(`${describePath(p.path)}: an undeclared property counted`);
    }
  }
  checked++;
  if (!call(c.eq, sample, { ...(sample as object), undeclared: 1 })) wrong.push('$: an undeclared property counted');
  return { wrong, checked, fields: positions.length };
}

for (const c of COMPARATORS) {
  t.test(`${c.name}: every field the schema declares counts, except ${c.ignore.join(', ') || 'none'}`, async (t) => {
    const sample = schemaSample(c.schema);
    t.ok(ajv.validate(c.schema, sample), 'the generated sample is a valid object', { errors: ajv.errors });
    t.ok(call(c.eq, sample, structuredClone(sample)), 'the sample equals its copy');
    t.same(
      schemaPositions(c.schema)
        .filter((p) => p.name !== undefined && c.ignore.includes(p.name))
        .map((p) => describePath(p.path)),
      c.ignoredPaths,
      'the ignored names occur exactly where expected',
    );
    const { wrong, checked, fields } = walkFindings(c);
    t.same(wrong, [], `${checked} mutations over ${fields} fields`);
    t.ok(fields >= 8, `${fields} fields walked`);
  });
}

t.test('the walk catches a comparator that misses a field (as a hand-kept list would)', async (t) => {
  // A comparator built before specRevision existed, standing in for a hand list nobody updated.
  const blind = equalBySchema(Type.Omit(StatusSchema, ['specRevision']), { ignore: ['lastTransitionTime'] });
  const { wrong } = walkFindings({ ...statusComparator, name: 'blind', eq: blind });
  t.same(wrong, ['$.specRevision optional field removed: said same', '$.specRevision string changed: said same']);
});

t.test('table: what counts as a change of a profile status', async (t) => {
  const ready = {
    type: 'Ready',
    status: 'True' as const,
    reason: 'Installed',
    message: 'installed on every node running the agent (3)',
    lastTransitionTime: '2024-05-06T07:08:09Z',
    observedGeneration: 2,
  };
  const base = {
    status: 'Installed' as const,
    localhostProfile: 'operator/ns/p.json',
    conditions: [ready],
    observedGeneration: 2,
    activeWorkloads: ['ns/a', 'ns/b'],
    installedNodes: '3/3',
    specRevision: '1200',
  };
  const cases: [string, unknown, unknown, boolean][] = [
    ['both absent', undefined, undefined, true],
    ['absent vs empty status', undefined, {}, false],
    [
      'only lastTransitionTime differs',
      base,
      { ...base, conditions: [{ ...ready, lastTransitionTime: 'later' }] },
      true,
    ],
    [
      'lastTransitionTime absent on one side',
      base,
      { ...base, conditions: [{ ...ready, lastTransitionTime: undefined }] },
      true,
    ],
    ['condition message differs', base, { ...base, conditions: [{ ...ready, message: 'other' }] }, false],
    ['installedNodes differs', base, { ...base, installedNodes: '2/3' }, false],
    ['specRevision differs', base, { ...base, specRevision: '1201' }, false],
    ['activeWorkloads in another order', base, { ...base, activeWorkloads: ['ns/b', 'ns/a'] }, false],
    [
      'activeWorkloads empty vs absent (SSA treats them differently)',
      { ...base, activeWorkloads: [] },
      { ...base, activeWorkloads: undefined },
      false,
    ],
    [
      'explicit undefined vs absent',
      { ...base, installedNodes: undefined },
      (({ installedNodes: _, ...r }) => r)(base),
      true,
    ],
    ['null vs absent (the API server prunes nulls)', { ...base, path: null }, base, true],
    ['an undeclared field', base, { ...base, nodes: [{ nodeName: 'n1' }] }, true],
    ['a wrong shape equals only itself', { ...base, conditions: 'x' }, { ...base, conditions: 'y' }, false],
  ];
  for (const [what, a, b, same] of cases) {
    t.equal(schemaEqual(StatusSchema, a, b, { ignore: ['lastTransitionTime'] }), same, what);
    t.equal(sameStatus(a as never, b as never), same, `${what} (sameStatus)`);
  }
});

t.test('table: node reports and their watermark', async (t) => {
  const report = {
    nodeName: 'n1',
    appliedRevision: '1200',
    installed: 4,
    failedCount: 1,
    inUseCount: 1,
    failed: [{ profile: 'ns/bad', generation: 3, reason: 'ProfileInvalid' as const, message: 'no such syscall' }],
    inUse: [{ profile: 'ns/p', pods: ['ns/a'] }],
  };
  const later = { ...report, appliedRevision: '1300' };
  t.ok(sameNodeReport(report, later), 'a new watermark alone is not a change of the body');
  t.notOk(sameNodeReportIncludingRevision(report, later), 'but it is a change of the report');
  t.notOk(sameNodeReport(report, { ...report, inUse: [{ profile: 'ns/p', pods: ['ns/a', 'ns/b'] }] }), 'a new pod');
  t.notOk(sameNodeReport(report, { ...report, failed: [] }), 'a failure cleared');
  const failure = report.failed[0];
  if (failure === undefined) throw new Error('unreachable');
  t.notOk(sameNodeReport(report, { ...report, failed: [{ ...failure, reason: 'InstallFailed' }] }), 'another reason');
});

t.test('table: uint64 values compare by value, bigint or number', async (t) => {
  const eq = equalBySchema(ArgSchema);
  const arg = (value: number | bigint): { index: number; op: 'SCMP_CMP_EQ'; value: number | bigint } => ({
    index: 0,
    op: 'SCMP_CMP_EQ',
    value,
  });
  t.ok(eq(arg(5n), arg(5n)), 'equal bigints (distinct values of the same number)');
  t.ok(eq(arg(5n), arg(5)), 'a bigint and the same number');
  t.notOk(eq(arg(5n), arg(5.5)), 'not a fraction');
  t.notOk(eq(arg(2n ** 64n - 1n), arg(2n ** 64n - 2n)), 'the last bit counts above 2^53');
  t.ok(eq(arg(2n ** 60n), arg(2 ** 60)), 'a number above 2^53 and its exact bigint');
  t.notOk(eq(arg(5n), arg(6)), 'different values');
});

t.test('compilation refuses what it cannot compare faithfully', async (t) => {
  t.throws(
    () => equalBySchema(StatusSchema, { ignore: ['lastTransitionTim'] }),
    /ignore names lastTransitionTim, which the schema declares nowhere/,
    'a misspelt ignore name',
  );
  t.throws(
    () => equalBySchema(Type.Object({ m: Type.Record(Type.String(), Type.String()) })),
    /cannot compare \$\.m: /,
    'a map',
  );
  t.throws(
    () => equalBySchema(Type.Object({ u: Type.Union([Type.Object({ a: Type.String() }), Type.String()]) })),
    /cannot compare \$\.u: a union with a non-primitive member/,
    'a union of an object and a string',
  );
  t.throws(() => equalBySchema(Type.Tuple([Type.String()])), /a tuple/, 'a tuple');
  t.throws(() => equalBySchema(Type.Any()), /cannot compare \$: type missing/, 'an untyped schema');
  const literals = equalBySchema(Type.Object({ u: Type.Union([Type.Literal('a'), Type.Literal('b')]) }));
  t.ok(literals({ u: 'a' }, { u: 'a' }), 'a union of literals compares as a primitive');
  t.notOk(literals({ u: 'a' }, { u: 'b' }));
});

/** JSON with sorted keys and the ignored names dropped at any depth: the oracle for conforming values. */
function canonical(v: unknown, ignore: readonly string[]): string {
  const strip = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(strip);
    if (typeof x !== 'object' || x === null) return x;
    const entries = Object.entries(x).filter(([k]) => !ignore.includes(k));
    return Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, y]) => [k, strip(y)]));
  };
  return JSON.stringify(strip(v));
}

for (const c of COMPARATORS) {
  t.test(`${c.name}: fuzz against sorted-key JSON of conforming values`, async (t) => {
    const one = schemaArbitrary(c.schema);
    // Independent draws differ almost always; copies and top-level mixes give the equal and the near cases.
    const pair = fc.oneof(
      fc.tuple(one, one),
      one.map((a) => [a, structuredClone(a)] as const),
      fc.tuple(one, one, fc.infiniteStream(fc.boolean())).map(([a, b, pick]) => {
        const mixed: Record<string, unknown> = {};
        for (const k of new Set([...Object.keys(a as object), ...Object.keys(b as object)])) {
          const from = (pick.next().value ? a : b) as Record<string, unknown>;
          if (k in from) mixed[k] = structuredClone(from[k]);
        }
        return [a, mixed] as const;
      }),
    );
    let same = 0;
    let different = 0;
    fc.assert(
      fc.property(pair, ([a, b]) => {
        const said = call(c.eq, a, b);
        if (said !== (canonical(a, c.ignore) === canonical(b, c.ignore))) return false;
        if (said) same++;
        else different++;
        return call(c.eq, a, structuredClone(a)) && call(c.eq, b, a) === said;
      }),
      { numRuns: 3000 },
    );
    t.ok(same > 300 && different > 300, `${same} same, ${different} different`);
  });
}
