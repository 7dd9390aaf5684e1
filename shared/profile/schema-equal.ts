/**
 * "Did this object change?" asked once, from the schema: an equality compiled from a TypeBox/JSON
 * schema, so a field added to the schema is compared without anyone touching a list of fields.
 *
 * What counts as the same:
 * - objects: every property the schema declares, and only those (undeclared properties, such as
 *   ones an older or newer writer added, do not count); a property whose name is in `ignore` is
 *   skipped at any depth;
 * - arrays: element by element with the items schema, in order (order matters: the API server keeps
 *   it, and `kubectl get` shows it);
 * - string, integer, number, boolean (enums included): `===`; a bigint equals a bigint or an
 *   integral number of the same value (YAML read with intAsBigInt gives bigints, JSON numbers);
 * - absent, `undefined` and `null` are the same: the API server prunes a `null` from a field whose
 *   schema is not nullable (none of ours is), so the stored object has the field absent either way;
 * - an empty array or object is NOT the same as an absent one: server-side apply treats them
 *   differently (`[]` sets the field to an empty list the manager owns; leaving it out gives up
 *   ownership and removes the field), and the stored object shows the difference;
 * - a value of the wrong shape (a string where the schema says object) equals only itself.
 *
 * A schema part it cannot compare faithfully (unions of objects, maps, tuples, references) makes
 * compilation throw, naming the path, rather than compare it loosely.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { NodeReportSchema, StatusSchema, type NodeReportBody, type SeccompProfileStatus } from './schema.js';

/** How `equalBySchema` compares. */
export interface SchemaEqualOptions {
  /** Property names skipped at any depth (timestamps, watermarks); each must be declared somewhere in the schema. */
  readonly ignore?: readonly string[];
}

/** Whether two values of a schema say the same thing; `undefined` stands for an absent value. */
export type SchemaEquality<T> = (a: T | undefined, b: T | undefined) => boolean;

type Eq = (a: unknown, b: unknown) => boolean;
type SchemaNode = Readonly<Record<string, unknown>>;

const PRIMITIVE_TYPES: ReadonlySet<unknown> = new Set(['string', 'integer', 'number', 'boolean', 'null']);

const isAbsent = (v: unknown): v is undefined | null => v === undefined || v === null;

const isRecord = (v: unknown): v is Readonly<Record<string, unknown>> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const isSchemaNode = (v: unknown): v is SchemaNode => isRecord(v);

function asBigInt(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v;
  return typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : undefined;
}

const samePrimitive: Eq = (a, b) => {
  if (a === b) return true;
  if (isAbsent(a) || isAbsent(b)) return isAbsent(a) && isAbsent(b);
  if (typeof a === 'bigint' || typeof b === 'bigint') {
    const x = asBigInt(a);
    return x !== undefined && x === asBigInt(b);
  }
  // NaN is no JSON value, but an equality has to stay reflexive.
  return typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b);
};

function objectEquality(fields: readonly (readonly [string, Eq])[]): Eq {
  return (a, b) => {
    if (a === b) return true;
    if (isAbsent(a) || isAbsent(b)) return isAbsent(a) && isAbsent(b);
    if (!isRecord(a) || !isRecord(b)) return false;
    for (const [key, eq] of fields) {
      // Own properties only: a declared name such as `constructor` must not read the prototype.
      if (!eq(Object.hasOwn(a, key) ? a[key] : undefined, Object.hasOwn(b, key) ? b[key] : undefined)) return false;
    }
    return true;
  };
}

function arrayEquality(item: Eq): Eq {
  return (a, b) => {
    if (a === b) return true;
    if (isAbsent(a) || isAbsent(b)) return isAbsent(a) && isAbsent(b);
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!item(a[i], b[i])) return false;
    return true;
  };
}

function unsupported(path: string, what: string): Error {
  return new Error(`schema-equal: cannot compare ${path}: ${what}`);
}

function compile(s: SchemaNode, path: string, ignore: ReadonlySet<string>, ignored: Set<string>): Eq {
  for (const key of ['$ref', 'allOf', 'not', 'if', 'patternProperties', 'prefixItems']) {
    if (s[key] !== undefined) throw unsupported(path, `the schema uses ${key}`);
  }
  const branches = s['anyOf'] ?? s['oneOf'];
  if (branches !== undefined) {
    // A union of primitives (literals, enums) compares as a primitive; anything else has no one shape.
    if (!Array.isArray(branches) || !branches.every(isSchemaNode)) throw unsupported(path, 'a malformed union');
    for (const [i, b] of branches.entries()) {
      if (compile(b, `${path}|${i}`, ignore, ignored) !== samePrimitive) {
        throw unsupported(path, 'a union with a non-primitive member');
      }
    }
    return samePrimitive;
  }
  const type = s['type'];
  if (type === 'object') {
    if (s['additionalProperties'] !== undefined && typeof s['additionalProperties'] !== 'boolean') {
      throw unsupported(path, 'a map (additionalProperties with a schema)');
    }
    const properties = s['properties'] ?? {};
    if (!isSchemaNode(properties)) throw unsupported(path, 'malformed properties');
    const fields: (readonly [string, Eq])[] = [];
    for (const [key, sub] of Object.entries(properties)) {
      if (!isSchemaNode(sub)) throw unsupported(`${path}.${key}`, 'a malformed schema');
      if (ignore.has(key)) ignored.add(key);
      else fields.push([key, compile(sub, `${path}.${key}`, ignore, ignored)]);
    }
    return objectEquality(fields);
  }
  if (type === 'array') {
    const items = s['items'];
    if (!isSchemaNode(items)) throw unsupported(path, 'an array without one items schema (a tuple?)');
    return arrayEquality(compile(items, `${path}[]`, ignore, ignored));
  }
  if (Array.isArray(type) ? type.every((t) => PRIMITIVE_TYPES.has(t)) : PRIMITIVE_TYPES.has(type)) {
    return samePrimitive;
  }
  if (type === undefined && (s['enum'] !== undefined || s['const'] !== undefined)) return samePrimitive;
  throw unsupported(path, `type ${JSON.stringify(type) ?? 'missing'}`);
}

/**
 * Compiles the equality of `schema` once (the walk is precompiled into closures, so the returned
 * function does no schema lookups). Throws when the schema has a part it cannot compare or when an
 * `ignore` name is declared nowhere in it (a typo would otherwise ignore nothing).
 */
export function equalBySchema<S extends TSchema>(schema: S, opts: SchemaEqualOptions = {}): SchemaEquality<Static<S>> {
  const ignore = new Set(opts.ignore ?? []);
  const ignored = new Set<string>();
  const eq = compile(schema, '$', ignore, ignored);
  const unknownNames = [...ignore].filter((n) => !ignored.has(n));
  if (unknownNames.length > 0) {
    throw new Error(`schema-equal: ignore names ${unknownNames.join(', ')}, which the schema declares nowhere`);
  }
  return eq;
}

/** One-off form of `equalBySchema` (compiles on every call; hot paths keep a compiled comparator). */
export function schemaEqual(schema: TSchema, a: unknown, b: unknown, opts?: SchemaEqualOptions): boolean {
  return equalBySchema(schema, opts)(a, b);
}

/** Whether two profile statuses say the same thing; conditions' lastTransitionTime does not count. */
export const sameStatus: SchemaEquality<SeccompProfileStatus> = equalBySchema(StatusSchema, {
  ignore: ['lastTransitionTime'],
});

/** Whether two node reports say the same thing apart from the watermark (appliedRevision). */
export const sameNodeReport: SchemaEquality<NodeReportBody> = equalBySchema(NodeReportSchema, {
  ignore: ['appliedRevision'],
});

/** Whether two node reports are the same, appliedRevision included. */
export const sameNodeReportIncludingRevision: SchemaEquality<NodeReportBody> = equalBySchema(NodeReportSchema);
