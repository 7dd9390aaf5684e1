/**
 * The event endpoints, as a fastify plugin: buildServer registers it with
 * `app.register(eventsRoutes, { store, node })`. Authentication is not this plugin's business: it
 * runs behind whatever onRequest hooks the server installs.
 *
 *   GET /v1/events    recent events, newest last; ?follow=true or Accept: text/event-stream streams
 *   GET /v1/syscalls  per-container aggregates; ?format=table for a terminal
 *   GET /v1/suggest   a SeccompProfile (YAML) allowing what a container was seen doing
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { agentError } from '../../../shared/errors.js';
import { objectNameProblem } from '../../../shared/profile/names.js';
import type { ContainerAggregate, EventFilter, EventStore, SyscallEvent } from '../events/store.js';
import { AnswerCache, etagMatches, type CachedAnswer } from './answer-cache.js';
import { BadQuery, badRequest, boolParam, FILTER_PARAMS, filterOf, intParam, readQuery, type Query } from './query.js';

export { parseSince } from './query.js';

/** Options of {@link eventsRoutes}. */
export interface EventsRoutesOptions {
  readonly store: EventStore;
  /** This node's name (in suggested profiles). */
  readonly node: string;
  readonly now?: () => number;
  /** SSE comment every this often, so proxies keep idle streams open. Default 15 s. */
  readonly heartbeatMs?: number;
  /** A follow client this far behind (bytes buffered) is disconnected. Default 1 MiB. */
  readonly maxStreamBufferBytes?: number;
  /** `limit` when none is given (not for follow). Default 1000. */
  readonly defaultLimit?: number;
  /** Serialized answers by query and store version (default: one of its own). */
  readonly cache?: AnswerCache;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** A cached answer, or 304 when the client holds it already. */
function sendCached(req: FastifyRequest, reply: FastifyReply, a: CachedAnswer): FastifyReply {
  // no-cache: clients may keep the answer but must ask (If-None-Match) before using it again.
  reply.header('etag', a.etag).header('cache-control', 'no-cache');
  if (etagMatches(req.headers['if-none-match'], a.etag)) return reply.code(304).send();
  return reply.type(a.contentType).send(a.body);
}

/** An aggregate as JSON. */
export function aggregateJson(a: ContainerAggregate): unknown {
  return {
    namespace: a.namespace,
    pod: a.pod,
    container: a.container,
    containerId: a.containerId,
    podUid: a.podUid,
    total: a.total,
    first: new Date(a.first).toISOString(),
    last: new Date(a.last).toISOString(),
    arches: [...a.arches].sort(),
    syscalls: [...a.syscalls.values()]
      .sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))
      .map((s) => ({
        name: s.name,
        count: s.count,
        actions: [...s.actions].sort(),
        arches: [...s.arches].sort(),
        first: new Date(s.first).toISOString(),
        last: new Date(s.last).toISOString(),
      })),
    unresolved: [...a.unresolved.entries()].map(([k, count]) => {
      const i = k.lastIndexOf(':');
      return { arch: k.slice(0, i), nr: Number(k.slice(i + 1)), count };
    }),
    unresolvedOther: a.unresolvedOther,
  };
}

/** The plain-text table of `?format=table`. */
export function aggregatesTable(aggs: readonly ContainerAggregate[]): string {
  const rows: string[][] = [['NAMESPACE', 'POD', 'CONTAINER', 'CONTAINER ID', 'SYSCALL', 'COUNT', 'ACTIONS']];
  for (const a of aggs) {
    const names = [...a.syscalls.values()].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
    for (const s of names) {
      rows.push([
        a.namespace ?? '-',
        a.pod ?? '-',
        a.container ?? '-',
        a.containerId === null ? '(host)' : a.containerId.slice(0, 12),
        s.name,
        String(s.count),
        [...s.actions]
          .map((x) => x.replace(/^SCMP_ACT_/, ''))
          .sort()
          .join(','),
      ]);
    }
    for (const [k, c] of a.unresolved) {
      rows.push([
        a.namespace ?? '-',
        a.pod ?? '-',
        a.container ?? '-',
        a.containerId?.slice(0, 12) ?? '(host)',
        `?${k}`,
        String(c),
        '-',
      ]);
    }
    if (a.unresolvedOther > 0) {
      rows.push([
        a.namespace ?? '-',
        a.pod ?? '-',
        a.container ?? '-',
        a.containerId?.slice(0, 12) ?? '(host)',
        '?other',
        String(a.unresolvedOther),
        '-',
      ]);
    }
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return (
    rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n'
  );
}

/** The event endpoints. */
export const eventsRoutes: FastifyPluginAsync<EventsRoutesOptions> = async (app, opts) => {
  const store = opts.store;
  const now = opts.now ?? Date.now;
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const maxBuffer = opts.maxStreamBufferBytes ?? 1024 * 1024;
  const defaultLimit = Math.min(opts.defaultLimit ?? 1000, store.ringSize);
  const cache = opts.cache ?? new AnswerCache();
  /** The answer for a resolved query at the store's current version. */
  const cached = (key: unknown, make: () => { body: string; contentType: string }): CachedAnswer => {
    store.settle();
    return cache.get(JSON.stringify(key), store.version, make);
  };

  app.get('/v1/events', async (req, reply) => {
    let q: Query;
    let filter: EventFilter;
    let limit: number | undefined;
    let follow: boolean;
    let after: number | undefined;
    const sse = (req.headers.accept ?? '').includes('text/event-stream');
    try {
      q = readQuery(req.query, [...FILTER_PARAMS, 'limit', 'follow', 'after']);
      filter = filterOf(q, now());
      limit = intParam(q, 'limit', 1, store.ringSize);
      follow = boolParam(q, 'follow') ?? sse;
      after = intParam(q, 'after', 0, Number.MAX_SAFE_INTEGER);
      const lastId = req.headers['last-event-id'];
      if (after === undefined && typeof lastId === 'string' && /^\d+$/.test(lastId)) after = Number(lastId);
    } catch (e: unknown) {
      if (e instanceof BadQuery) return badRequest(reply, e);
      throw e;
    }
    if (after !== undefined) filter = { ...filter, afterSeq: after };
    if (!follow) {
      const n = limit ?? defaultLimit;
      const f = filter;
      return sendCached(
        req,
        reply,
        cached(['events', f, n], () => ({
          body: JSON.stringify({ items: store.events(f, n) }),
          contentType: JSON_TYPE,
        })),
      );
    }
    // A stream sends the backlog only when asked for (since, limit, after / Last-Event-ID).
    const backlog =
      limit !== undefined || filter.since !== undefined || after !== undefined
        ? store.events(filter, limit ?? store.ringSize)
        : [];
    stream(req, reply, filter, backlog, sse);
    return reply;
  });

  function stream(
    req: FastifyRequest,
    reply: FastifyReply,
    filter: EventFilter,
    backlog: SyscallEvent[],
    sse: boolean,
  ): void {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': sse ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    const frame = sse
      ? (ev: SyscallEvent) => `id: ${ev.seq}\ndata: ${JSON.stringify(ev)}\n\n`
      : (ev: SyscallEvent) => `${JSON.stringify(ev)}\n`;
    const live = { ...filter, afterSeq: undefined, since: undefined };
    let closed = false;
    let unsubscribe = (): void => {};
    let beat: NodeJS.Timeout | undefined;
    const close = (): void => {
      if (closed) return;
      closed = true;
      unsubscribe();
      if (beat !== undefined) clearInterval(beat);
      res.end();
    };
    const write = (text: string): void => {
      if (closed) return;
      if (res.writableLength > maxBuffer) {
        // Too slow to keep up: drop the client rather than buffer without bound.
        req.log.warn({ buffered: res.writableLength }, 'event stream client too slow; closing');
        close();
        return;
      }
      res.write(text);
    };
    res.write(sse ? ': seccomp-agent events\n\n' : '');
    for (const ev of backlog) write(frame(ev));
    if (closed) return;
    unsubscribe = store.subscribe((ev) => {
      if (store.matches(live, ev)) write(frame(ev));
    });
    if (sse) {
      beat = setInterval(() => write(': keep-alive\n\n'), heartbeatMs);
      beat.unref();
    }
    req.raw.on('close', close);
    res.on('close', close);
  }

  app.get('/v1/syscalls', async (req, reply) => {
    // The same URL at the same store version is the same answer: no query to parse or key to build
    // (a relative `since` moves with the clock, so such URLs take the long way).
    const byUrl = req.url.includes('since=') ? undefined : req.url;
    if (byUrl !== undefined) {
      store.settle();
      const hit = cache.peek(byUrl, store.version);
      if (hit !== undefined) return sendCached(req, reply, hit);
    }
    try {
      const q = readQuery(req.query, [...FILTER_PARAMS, 'format']);
      const filter = filterOf(q, now());
      const format = q['format'] ?? 'json';
      if (format !== 'json' && format !== 'table') throw new BadQuery('format', `"${format}" is not json or table`);
      const answer = cached(['syscalls', filter, format], () =>
        format === 'table'
          ? { body: aggregatesTable(store.aggregates(filter)), contentType: 'text/plain; charset=utf-8' }
          : { body: JSON.stringify({ items: store.aggregates(filter).map(aggregateJson) }), contentType: JSON_TYPE },
      );
      if (byUrl !== undefined) cache.remember(byUrl, store.version, answer);
      return sendCached(req, reply, answer);
    } catch (e: unknown) {
      if (e instanceof BadQuery) return badRequest(reply, e);
      throw e;
    }
  });

  app.get('/v1/suggest', async (req, reply) => {
    let q: Query;
    let filter: EventFilter;
    let format: string;
    let runtime: string;
    try {
      q = readQuery(req.query, ['namespace', 'pod', 'container', 'containerId', 'since', 'name', 'format', 'runtime']);
      filter = filterOf(q, now());
      const nameProblem = q['name'] === undefined ? undefined : objectNameProblem(q['name']);
      if (nameProblem !== undefined) throw new BadQuery('name', `the suggested profile's name ${nameProblem}`);
      format = q['format'] ?? 'yaml';
      if (format !== 'yaml' && format !== 'json') throw new BadQuery('format', `"${format}" is not yaml or json`);
      runtime = q['runtime'] ?? 'runc';
      if (runtime !== 'runc' && runtime !== 'none') throw new BadQuery('runtime', `"${runtime}" is not runc or none`);
      if (filter.pod === undefined && filter.containerId === undefined) {
        throw new BadQuery('pod', 'give pod (with namespace, and container for one container) or containerId');
      }
    } catch (e: unknown) {
      if (e instanceof BadQuery) return badRequest(reply, e);
      throw e;
    }
    const selector = Object.entries(q)
      .filter(([k]) => k !== 'name' && k !== 'format' && k !== 'runtime')
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    const aggs = store.aggregates(filter).filter((a) => a.containerId !== null);
    const named = aggs.reduce((n, a) => n + a.syscalls.size, 0);
    if (aggs.length === 0 || named === 0) {
      const e = agentError('SECCOMP_AGENT_ERR_NO_EVENTS', {
        selector,
        detail:
          aggs.length === 0
            ? 'no container matches; see GET /v1/syscalls for what was seen'
            : 'the matching containers made no call with a known name',
      });
      return reply.code(404).send({ statusCode: 404, error: 'Not Found', code: e.code, message: e.message });
    }
    // Loaded on first use: the YAML writer is not needed to start, nor by most nodes ever.
    const { suggestProfile } = await import('../events/suggest.js');
    const { profile, yaml } = suggestProfile(aggs, {
      name: q['name'],
      node: opts.node,
      now: new Date(now()),
      runtime: runtime === 'none' ? 'none' : 'runc',
    });
    if (format === 'json') return reply.send(profile);
    return reply.type('application/yaml; charset=utf-8').send(yaml);
  });
};
