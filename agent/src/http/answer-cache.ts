/**
 * Answers serialized once per change of what they are made from, served as bytes, with an ETag so
 * that a client holding the same answer gets a 304. The version is the event store's (it changes
 * with every write); the key is the resolved query. Bounded: the least recently used keys go first.
 */
import { randomBytes } from 'node:crypto';

/** One cached answer. */
export interface CachedAnswer {
  readonly body: Buffer;
  readonly contentType: string;
  /** A strong validator: `"<process>-<version>-<key hash>"`. */
  readonly etag: string;
}

/** Distinct queries cached at once. */
export const MAX_CACHED_ANSWERS = 64;

/** FNV-1a, 32 bits: tells keys apart in an ETag (the version and process id do the rest). */
function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(36);
}

/** Whether an If-None-Match header names `etag` (a list, or `*`). */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  for (const part of header.split(',')) {
    const t = part.trim();
    if (t === etag || t === `W/${etag}`) return true;
  }
  return false;
}

/** Sets `key` as the newest entry of `map` and drops the oldest beyond `max` (a Map keeps insertion order). */
function putNewest<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) {
    const oldest = map.keys().next();
    if (oldest.done === true) break;
    map.delete(oldest.value);
  }
}

/** The cache. `epoch` tells this process's ETags from another's (default: random per instance). */
export class AnswerCache {
  private readonly entries = new Map<string, { version: number; answer: CachedAnswer }>();
  private readonly urls = new Map<string, { version: number; answer: CachedAnswer }>();
  private readonly epoch: string;
  private readonly max: number;

  constructor(o: { epoch?: string; max?: number } = {}) {
    this.epoch = o.epoch ?? randomBytes(4).toString('hex');
    this.max = o.max ?? MAX_CACHED_ANSWERS;
  }

  /** The answer for `key` at `version`, made by `make` only when none is cached for that version. */
  get(key: string, version: number, make: () => { body: string | Buffer; contentType: string }): CachedAnswer {
    const hit = this.entries.get(key);
    if (hit !== undefined && hit.version === version) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.answer;
    }
    const m = make();
    const answer: CachedAnswer = {
      body: typeof m.body === 'string' ? Buffer.from(m.body) : m.body,
      contentType: m.contentType,
      etag: `"${this.epoch}-${version.toString(36)}-${fnv1a(key)}"`,
    };
    putNewest(this.entries, key, { version, answer }, this.max);
    return answer;
  }

  /**
   * The answer remembered under a raw request URL at `version`, if any: a route may look it up
   * before it parses the query (the URL says everything the answer depends on, besides the store).
   */
  peek(url: string, version: number): CachedAnswer | undefined {
    const hit = this.urls.get(url);
    return hit !== undefined && hit.version === version ? hit.answer : undefined;
  }

  /** Remembers `answer` under a raw request URL (bounded as the keys are: oldest first out). */
  remember(url: string, version: number, answer: CachedAnswer): void {
    putNewest(this.urls, url, { version, answer }, this.max);
  }

  /** Cached keys (tests). */
  get size(): number {
    return this.entries.size;
  }
}
