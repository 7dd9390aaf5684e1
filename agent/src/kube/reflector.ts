/**
 * An informer we own end to end: list (paginated) → watch from the list's resourceVersion → keep a
 * local store, and tell the caller what changed. The parts client-node's ListWatch leaves to us
 * (its issues #364, #596, #2432):
 *
 * - a 410 Gone (or an ERROR event with code 410) relists; nothing else does;
 * - any other failure restarts the watch from the last resourceVersion after a capped, jittered
 *   backoff (./retry.ts: short while the server is down or says it will serve soon, long while it
 *   answers with other errors), forever, until stop();
 * - a watchdog aborts a watch that has been silent for too long (a cut connection that never says
 *   so) and restarts it; the server is asked for bookmarks and a timeout shorter than the watchdog,
 *   so a healthy watch is never silent that long;
 * - a failed list or watch never empties the store: objects only go away on a DELETED event, or
 *   when a list that succeeded no longer holds them.
 */
import type { Logger } from 'pino';
import { messageOf } from '../../../shared/errors.js';
import { isKubeApiError, type KubeClient, type WatchEvent } from './client.js';
import { Backoff, type BackoffTiming } from './retry.js';

/**
 * The timing knobs; the defaults suit a real cluster, tests shorten them. The backoff ones
 * (./retry.ts): 0.5 s doubling to 15 s for a server that answers with an error; to 4 s while it
 * cannot be reached, or says it will serve soon (503; 429 or 5xx with Retry-After).
 */
export interface ReflectorTiming extends BackoffTiming {
  /** Server-side watch timeout, randomised between this and twice this. Default 300 s. */
  watchTimeoutSeconds: number;
  /** A watch with no byte for this long is aborted and restarted. Default: twice the max timeout. */
  watchdogMs: number;
  /** Page size of the list. */
  pageSize: number;
}

export const DEFAULT_TIMING: ReflectorTiming = {
  watchTimeoutSeconds: 300,
  watchdogMs: 660_000,
  backoffInitialMs: 500,
  backoffMaxMs: 15_000,
  shortBackoffMaxMs: 4_000,
  pageSize: 500,
};

export type ChangeType = 'add' | 'update' | 'delete';

export interface ReflectorOptions<T> {
  name: string;
  client: KubeClient;
  /** The collection path, e.g. `/api/v1/pods`. */
  path: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** Ask for PartialObjectMetadata only (names, labels, timestamps): much less to parse and keep. */
  metadataOnly?: boolean;
  /** Keeps only what the caller needs from a raw object; undefined drops it. */
  transform: (raw: Record<string, unknown>) => T | undefined;
  /** The store key of a kept object. */
  keyOf: (obj: T) => string;
  onChange: (type: ChangeType, key: string, obj: T | undefined, old: T | undefined) => void;
  /** Called after each successful list (the first one is the initial sync). */
  onSynced?: () => void;
  timing?: Partial<ReflectorTiming>;
  log: Logger;
  random?: () => number;
}

export interface ReflectorStats {
  lists: number;
  relistsOn410: number;
  watchRestarts: number;
  watchdogRestarts: number;
  failures: number;
  events: number;
}

interface RawList {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: Record<string, unknown>[];
}

const META_ACCEPT_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json';
const META_ACCEPT_WATCH = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';

const sleep = (ms: number, signal: { stopped: boolean; wake?: (() => void) | undefined }): Promise<void> =>
  new Promise((res) => {
    const timer = setTimeout(() => {
      signal.wake = undefined;
      res();
    }, ms);
    signal.wake = () => {
      clearTimeout(timer);
      res();
    };
  });

export class Reflector<T> {
  readonly #o: ReflectorOptions<T>;
  readonly #t: ReflectorTiming;
  readonly #store = new Map<string, T>();
  /** resourceVersion (as a number; NaN when unknown) of each stored object. */
  readonly #versions = new Map<string, number>();
  readonly #random: () => number;
  #rv = '';
  #synced = false;
  readonly #state: { stopped: boolean; wake?: (() => void) | undefined } = { stopped: false };
  #abortWatch: (() => void) | undefined;
  #activityAt: number | undefined;
  #silentRestart = false;
  #loop: Promise<void> | undefined;
  readonly stats: ReflectorStats = {
    lists: 0,
    relistsOn410: 0,
    watchRestarts: 0,
    watchdogRestarts: 0,
    failures: 0,
    events: 0,
  };

  constructor(o: ReflectorOptions<T>) {
    this.#o = o;
    this.#t = { ...DEFAULT_TIMING, ...o.timing };
    this.#random = o.random ?? Math.random;
  }

  get synced(): boolean {
    return this.#synced;
  }

  get(key: string): T | undefined {
    return this.#store.get(key);
  }

  values(): IterableIterator<T> {
    return this.#store.values();
  }

  keys(): IterableIterator<string> {
    return this.#store.keys();
  }

  get size(): number {
    return this.#store.size;
  }

  /** The resourceVersion the cache is at: every event up to it has been applied. */
  get resourceVersion(): string {
    return this.#rv;
  }

  /** The resourceVersion (a number) of a stored object; NaN when unknown. */
  versionOf(key: string): number {
    return this.#versions.get(key) ?? NaN;
  }

  /**
   * Puts an object we just got back from a write into the store, if it is newer than what we hold
   * (resourceVersions are compared as numbers, as etcd issues them), so decisions made before the
   * watch catches up see our own write. Only an object the store holds is replaced: the answer to a
   * write can arrive after the watch's DELETED event for that object (a loaded node, or API server),
   * and putting it back would keep a deleted object, and its file, for as long as the agent runs.
   * Objects only enter the store from a list or a watch.
   */
  offer(raw: Record<string, unknown>): void {
    const obj = this.#o.transform(raw);
    if (obj === undefined) return;
    const key = this.#o.keyOf(obj);
    const old = this.#store.get(key);
    if (old === undefined) return;
    const rv = versionOf(raw);
    if (!newer(rv, this.#versions.get(key))) return;
    this.#put(key, obj, rv);
    this.#o.onChange('update', key, obj, old);
  }

  #put(key: string, obj: T, rv: number): void {
    this.#store.set(key, obj);
    this.#versions.set(key, rv);
  }

  #drop(key: string): void {
    this.#store.delete(key);
    this.#versions.delete(key);
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#state.stopped = true;
    this.#state.wake?.();
    this.#abortWatch?.();
    await this.#loop;
  }

  /**
   * Aborts the current watch; `silent`: because it was found silent (another watch's heartbeat
   * stopped), so it counts as a watchdog restart. Also the tests' way to take the watchdog's path.
   */
  restartWatch(silent = false): void {
    if (this.#abortWatch === undefined) return;
    if (silent) this.#silentRestart = true;
    this.#abortWatch();
  }

  /** When the open watch last received a byte (or opened); undefined while no watch is open. */
  get watchActivityAt(): number | undefined {
    return this.#activityAt;
  }

  async #run(): Promise<void> {
    const backoff = new Backoff(this.#t, this.#random);
    while (!this.#state.stopped) {
      try {
        if (this.#rv === '') {
          await this.#list();
          backoff.reset();
        }
        const outcome = await this.#watchOnce();
        if (outcome === 'gone') {
          this.stats.relistsOn410++;
          this.#o.log.info({ informer: this.#o.name }, 'resourceVersion too old (410): relisting');
          this.#rv = '';
          backoff.reset();
          continue;
        }
        if (outcome === 'progress') backoff.reset();
        if (outcome === 'watchdog') {
          this.stats.watchdogRestarts++;
          this.#o.log.warn(
            { informer: this.#o.name, silentMs: this.#t.watchdogMs },
            'watch was silent too long: restarting it',
          );
          continue;
        }
        this.stats.watchRestarts++;
        if (outcome === 'progress' || outcome === 'closed') continue;
        // 'empty': the server closed at once without an event; back off a little anyway
        await sleep(backoff.nextEmpty(), this.#state);
      } catch (e: unknown) {
        if (this.#state.stopped) break;
        this.stats.failures++;
        if (isKubeApiError(e) && e.status === 410) {
          this.stats.relistsOn410++;
          this.#rv = '';
          continue;
        }
        const { delayMs, kind } = backoff.next(e);
        this.#o.log.warn(
          { informer: this.#o.name, err: messageOf(e), failure: kind, retryInMs: delayMs },
          'list/watch failed; the cache is kept, retrying',
        );
        await sleep(delayMs, this.#state);
      }
    }
  }

  async #list(): Promise<void> {
    const items: Record<string, unknown>[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.#o.client.request<RawList>({
        method: 'GET',
        path: this.#o.path,
        query: {
          limit: this.#t.pageSize,
          continue: cont,
          fieldSelector: this.#o.fieldSelector,
          labelSelector: this.#o.labelSelector,
        },
        ...(this.#o.metadataOnly === true ? { accept: META_ACCEPT_LIST } : {}),
        timeoutMs: 60_000,
      });
      for (const it of page.items ?? []) items.push(it);
      rv = page.metadata?.resourceVersion ?? rv;
      cont = page.metadata?.continue === '' ? undefined : page.metadata?.continue;
    } while (cont !== undefined && !this.#state.stopped);
    if (this.#state.stopped) return;
    this.stats.lists++;
    // The list succeeded: now, and only now, objects it does not hold are gone.
    const fresh = new Map<string, { obj: T; rv: number }>();
    for (const raw of items) {
      const obj = this.#o.transform(raw);
      if (obj !== undefined) fresh.set(this.#o.keyOf(obj), { obj, rv: versionOf(raw) });
    }
    for (const [key, old] of this.#store) {
      if (!fresh.has(key)) {
        this.#drop(key);
        this.#o.onChange('delete', key, undefined, old);
      }
    }
    for (const [key, { obj, rv }] of fresh) {
      const old = this.#store.get(key);
      // Newer than the list: our own write, offered while the list was on its way.
      const held = this.#versions.get(key);
      if (old !== undefined && held !== undefined && held > rv) continue;
      this.#put(key, obj, rv);
      this.#o.onChange(old === undefined ? 'add' : 'update', key, obj, old);
    }
    this.#rv = rv;
    this.#synced = true;
    this.#o.onSynced?.();
  }

  /** One watch, until it ends; says how it ended. */
  async #watchOnce(): Promise<'gone' | 'progress' | 'closed' | 'empty' | 'watchdog'> {
    const timeoutSeconds = Math.round(this.#t.watchTimeoutSeconds * (1 + this.#random()));
    let gone = false;
    let events = 0;
    const started = Date.now();
    let lastActivity = started;
    let watchdogFired = false;
    const handle = await this.#o.client.watch(
      this.#o.path,
      {
        resourceVersion: this.#rv,
        allowWatchBookmarks: true,
        timeoutSeconds,
        fieldSelector: this.#o.fieldSelector,
        labelSelector: this.#o.labelSelector,
      },
      (ev: WatchEvent) => {
        if (gone || this.#state.stopped) return;
        if (ev.type === 'ERROR') {
          const code = (ev.object as { code?: unknown }).code;
          if (code === 410) gone = true;
          else this.#o.log.warn({ informer: this.#o.name, status: ev.object }, 'watch sent an error');
          handle.abort();
          return;
        }
        events++;
        this.stats.events++;
        const raw = ev.object;
        const rv = (raw['metadata'] as { resourceVersion?: string } | undefined)?.resourceVersion;
        if (ev.type !== 'BOOKMARK') this.#apply(ev.type, raw);
        if (rv !== undefined && rv !== '') this.#rv = rv;
      },
      () => {
        lastActivity = Date.now();
        this.#activityAt = lastActivity;
      },
      this.#o.metadataOnly === true ? META_ACCEPT_WATCH : undefined,
    );
    this.#abortWatch = () => handle.abort();
    this.#activityAt = Date.now();
    const watchdog = setInterval(
      () => {
        if (Date.now() - lastActivity > this.#t.watchdogMs) {
          watchdogFired = true;
          handle.abort();
        }
      },
      Math.max(100, Math.min(5000, Math.floor(this.#t.watchdogMs / 5))),
    );
    try {
      await handle.done;
    } finally {
      clearInterval(watchdog);
      this.#abortWatch = undefined;
      this.#activityAt = undefined;
    }
    if (gone) return 'gone';
    const silent = this.#silentRestart;
    this.#silentRestart = false;
    if (watchdogFired || silent) return 'watchdog';
    if (events > 0) return 'progress';
    return Date.now() - started > 1000 ? 'closed' : 'empty';
  }

  #apply(type: 'ADDED' | 'MODIFIED' | 'DELETED', raw: Record<string, unknown>): void {
    const obj = this.#o.transform(raw);
    if (obj === undefined) {
      // filtered out now (e.g. a label changed): treat as gone if we held it
      return;
    }
    const key = this.#o.keyOf(obj);
    const old = this.#store.get(key);
    if (type === 'DELETED') {
      this.#drop(key);
      this.#o.onChange('delete', key, undefined, old ?? obj);
      return;
    }
    const rv = versionOf(raw);
    // An event older than what we hold (our own write, offered) would roll our view back: with
    // 20 agents writing one profile, a stale copy without our own entry made us write it again.
    if (old !== undefined && !newer(rv, this.#versions.get(key))) return;
    this.#put(key, obj, rv);
    this.#o.onChange(old === undefined ? 'add' : 'update', key, obj, old);
  }
}

/** A raw object's resourceVersion as a number (etcd's revision); NaN when it has none. */
function versionOf(raw: Record<string, unknown>): number {
  const rv = (raw['metadata'] as { resourceVersion?: string } | undefined)?.resourceVersion;
  return rv === undefined || rv === '' ? NaN : Number(rv);
}

/** Whether `rv` is newer than `held`; when either is unknown, the incoming object wins. */
function newer(rv: number, held: number | undefined): boolean {
  if (held === undefined || !Number.isFinite(rv) || !Number.isFinite(held)) return true;
  return rv > held;
}
