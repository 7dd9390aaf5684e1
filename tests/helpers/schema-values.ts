/**
 * Values generated from a TypeBox/JSON schema, so tests cover every field the schema declares
 * without a hand-kept list: a full sample (every optional field, one element in each array, a
 * distinct value in each leaf), the positions of every field in it, and a fast-check arbitrary of
 * values that conform. Knows the schema kinds shared/profile/schema.ts uses (objects, arrays, string
 * enums, strings, integers, numbers, booleans) and throws on any other, so a new kind fails the tests.
 */
import type { TSchema } from '@sinclair/typebox';
import fc from 'fast-check';

/** A schema node as plain JSON schema. */
export type SchemaNode = Readonly<Record<string, unknown>>;
/** A path into a value: property names and array indexes. */
export type ValuePath = readonly (string | number)[];

/** One field (a declared property or an array element) of a schema's full sample. */
export interface SchemaPosition {
  readonly path: ValuePath;
  readonly schema: SchemaNode;
  /** The property name; undefined for an array element. */
  readonly name: string | undefined;
  /** Whether the enclosing object's schema requires the property (array elements: true). */
  readonly required: boolean;
}

const node = (v: unknown, where: string): SchemaNode => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${where}: not a schema`);
  return v as SchemaNode;
};

const props = (s: SchemaNode, where: string): [string, SchemaNode][] =>
  Object.entries(node(s['properties'] ?? {}, where)).map(([k, v]) => [k, node(v, `${where}.${k}`)]);

const requiredOf = (s: SchemaNode): ReadonlySet<string> =>
  new Set(Array.isArray(s['required']) ? s['required'].filter((x): x is string => typeof x === 'string') : []);

const pathText = (p: ValuePath): string => `$${p.map((x) => (typeof x === 'number' ? `[${x}]` : `.${x}`)).join('')}`;

const kindOf = (s: SchemaNode, where: ValuePath): 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean' => {
  const t = s['type'];
  if (t === 'object' || t === 'array' || t === 'string' || t === 'integer' || t === 'number' || t === 'boolean') {
    return t;
  }
  throw new Error(`schema-values: ${pathText(where)}: no generator for schema ${JSON.stringify(s)}`);
};

/** The string enum's members, or undefined for a free string. */
export const enumOf = (s: SchemaNode): readonly string[] | undefined =>
  Array.isArray(s['enum']) ? s['enum'].filter((x): x is string => typeof x === 'string') : undefined;

function stringSample(s: SchemaNode, path: ValuePath): string {
  const members = enumOf(s);
  if (members !== undefined) {
    if (members[0] === undefined) throw new Error(`schema-values: ${pathText(path)}: an empty enum`);
    return members[0];
  }
  if (s['format'] === 'date-time') return '2024-05-06T07:08:09Z';
  return `s${pathText(path)}`;
}

/**
 * A full value of `schema`: every property (optional ones too), one element in every array, and in
 * each leaf a value distinct from the other leaves' (strings name their path, integers count up).
 */
export function schemaSample(schema: TSchema): unknown {
  let counter = 0;
  const walk = (s: SchemaNode, path: ValuePath): unknown => {
    switch (kindOf(s, path)) {
      case 'object':
        return Object.fromEntries(props(s, pathText(path)).map(([k, sub]) => [k, walk(sub, [...path, k])]));
      case 'array':
        return [walk(node(s['items'], pathText(path)), [...path, 0])];
      case 'string':
        return stringSample(s, path);
      case 'integer':
        return ++counter;
      case 'number':
        return ++counter + 0.5;
      case 'boolean':
        return true;
    }
  };
  return walk(schema, []);
}

/** Every field of `schemaSample(schema)`, parents before children, array elements at index 0. */
export function schemaPositions(schema: TSchema): SchemaPosition[] {
  const out: SchemaPosition[] = [];
  const walk = (s: SchemaNode, path: ValuePath): void => {
    const kind = kindOf(s, path);
    if (kind === 'object') {
      const required = requiredOf(s);
      for (const [k, sub] of props(s, pathText(path))) {
        out.push({ path: [...path, k], schema: sub, name: k, required: required.has(k) });
        walk(sub, [...path, k]);
      }
    } else if (kind === 'array') {
      const items = node(s['items'], pathText(path));
      out.push({ path: [...path, 0], schema: items, name: undefined, required: true });
      walk(items, [...path, 0]);
    }
  };
  walk(schema, []);
  return out;
}

/** `pathText` for messages: `$.conditions[0].type`. */
export const describePath = pathText;

/**
 * Values of `schema`'s shape (types, enums, required properties; not minLength and the like), drawn from small domains (a few strings per field, small
 * integers, arrays of up to 3) so that two draws are often equal in some fields or entirely.
 * Optional properties are sometimes left out, never set to undefined.
 */
export function schemaArbitrary(schema: TSchema): fc.Arbitrary<unknown> {
  const walk = (s: SchemaNode, path: ValuePath): fc.Arbitrary<unknown> => {
    switch (kindOf(s, path)) {
      case 'object': {
        const entries = props(s, pathText(path));
        const model = Object.fromEntries(entries.map(([k, sub]) => [k, walk(sub, [...path, k])]));
        const requiredKeys = [...requiredOf(s)].filter((k) => k in model);
        return fc.record(model, { requiredKeys });
      }
      case 'array':
        return fc.array(walk(node(s['items'], pathText(path)), [...path, 0]), { maxLength: 3 });
      case 'string': {
        const members = enumOf(s);
        return members !== undefined ? fc.constantFrom(...members) : fc.constantFrom('a', 'b', 'é', '');
      }
      case 'integer':
        return fc.integer({ min: 0, max: 2 });
      case 'number':
        return fc.constantFrom(0, 0.5, 1);
      case 'boolean':
        return fc.boolean();
    }
  };
  return walk(schema, []);
}
