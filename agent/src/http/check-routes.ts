/**
 * `/v1/check`: what a candidate profile would do to the calls this node's containers really made.
 *
 *   GET  /v1/check?profile=<namespace>/<name>   a profile this node installed (`<name>`: cluster-scoped)
 *   POST /v1/check                              a SeccompProfile document (YAML or JSON) as the body
 *
 * Both take `namespace`, `pod`, `container`, `containerId` to narrow the containers, and
 * `format=table`. The verdicts are shared/profile/check.ts's; this plugin gathers the calls from
 * the store's per-container aggregates and says them. A fastify plugin, registered next to the
 * event routes.
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { formatMessage } from '../../../shared/errors.js';
import {
  compileProfile,
  describeVerdict,
  verdictFor,
  type CompiledProfile,
  type ObservedCall,
  type Verdict,
  type Would,
} from '../../../shared/profile/check.js';
import { ARCHES, syscallNumber, type Arch } from '../../../shared/syscalls/index.js';
import type { ContainerAggregate, EventStore } from '../events/store.js';
import type { Candidate, CandidateResolver } from '../profiles/candidate.js';
import { BadQuery, badRequest, filterOf, readQuery, type Query } from './query.js';

export interface CheckRoutesOptions {
  readonly store: EventStore;
  readonly node: string;
  /** The node's own architecture: it is in every filter (libseccomp adds it). */
  readonly nativeArch: Arch;
  readonly candidates: CandidateResolver;
  readonly now?: () => number;
  /** Largest body POST takes. Default 4 MiB (the largest profile a CRD object can hold is smaller). */
  readonly bodyLimit?: number;
}

/** One observed call the candidate would not simply allow. */
export interface CheckedCall {
  readonly arch: Arch;
  /** null: the architecture's table has no name for `nr`. */
  readonly syscall: string | null;
  readonly nr: number;
  /** Calls seen of this name (over every architecture it was seen on). */
  readonly count: number;
  readonly would: Would;
  readonly said: string;
  readonly because: Verdict['because'];
  readonly rules: readonly number[];
  readonly conditional?: Verdict['conditional'];
}

export interface CheckedContainer {
  readonly namespace: string | null;
  readonly pod: string | null;
  readonly container: string | null;
  readonly containerId: string;
  /** Distinct (architecture, call) pairs seen. */
  readonly observed: number;
  /** The actions the calls were logged with: what the container's current profile did. */
  readonly loggedAs: readonly string[];
  readonly calls: readonly CheckedCall[];
}

export interface CheckReport {
  readonly node: string;
  readonly profile: string;
  readonly localhostProfile?: string;
  readonly nodeArch: Arch;
  readonly containers: readonly CheckedContainer[];
  readonly summary: {
    readonly containers: number;
    readonly observed: number;
    readonly notAllowed: number;
    readonly by: Readonly<Partial<Record<Would, number>>>;
  };
  readonly note: string;
}

const KNOWN_ARCHES: ReadonlySet<string> = new Set(ARCHES);
const isArch = (s: string): s is Arch => KNOWN_ARCHES.has(s);

/** The calls of one container as the check reads them. */
function observedCalls(a: ContainerAggregate): { call: ObservedCall; count: number }[] {
  const out: { call: ObservedCall; count: number }[] = [];
  for (const s of a.syscalls.values()) {
    for (const arch of s.arches) {
      if (!isArch(arch)) continue;
      const nr = syscallNumber(arch, s.name);
      if (nr !== undefined) out.push({ call: { arch, nr, name: s.name }, count: s.count });
    }
  }
  for (const [key, count] of a.unresolved) {
    const i = key.lastIndexOf(':');
    const arch = key.slice(0, i);
    const nr = Number(key.slice(i + 1));
    if (isArch(arch) && Number.isInteger(nr)) out.push({ call: { arch, nr, name: undefined }, count });
  }
  return out;
}

/** Named calls by name, then unnamed ones by number; then by arch. */
function byCall(x: CheckedCall, y: CheckedCall): number {
  if ((x.syscall === null) !== (y.syscall === null)) return x.syscall === null ? 1 : -1;
  const a = x.syscall ?? '';
  const b = y.syscall ?? '';
  if (a !== b) return a < b ? -1 : 1;
  if (x.nr !== y.nr) return x.nr - y.nr;
  return x.arch < y.arch ? -1 : x.arch > y.arch ? 1 : 0;
}

const NOTE =
  'Only calls that were logged are seen: a call the container’s current profile allows is never logged (only LOG and the KILL actions are). The answer is complete for containers that ran under a profile that logs every call (loggedAs only SCMP_ACT_LOG), such as the workshop’s complainer.';

/** The report for `profile` over `aggs` (containers only: the host bucket is left out). Pure. */
export function checkReport(
  aggs: readonly ContainerAggregate[],
  profile: CompiledProfile,
  meta: { node: string; profile: string; localhostProfile?: string },
): CheckReport {
  const containers: CheckedContainer[] = [];
  const by: Partial<Record<Would, number>> = {};
  let observed = 0;
  let notAllowed = 0;
  for (const a of aggs) {
    if (a.containerId === null) continue;
    const seen = observedCalls(a);
    const calls: CheckedCall[] = [];
    for (const { call, count } of seen) {
      const v = verdictFor(profile, call);
      if (v.would === 'allow') continue;
      by[v.would] = (by[v.would] ?? 0) + 1;
      calls.push({
        arch: call.arch,
        syscall: call.name ?? null,
        nr: call.nr,
        count,
        would: v.would,
        said: describeVerdict(v),
        because: v.because,
        rules: v.rules,
        ...(v.conditional === undefined ? {} : { conditional: v.conditional }),
      });
    }
    calls.sort(byCall);
    observed += seen.length;
    notAllowed += calls.length;
    const loggedAs = new Set<string>();
    for (const s of a.syscalls.values()) for (const act of s.actions) loggedAs.add(act);
    containers.push({
      namespace: a.namespace,
      pod: a.pod,
      container: a.container,
      containerId: a.containerId,
      observed: seen.length,
      loggedAs: [...loggedAs].sort(),
      calls,
    });
  }
  return {
    node: meta.node,
    profile: meta.profile,
    ...(meta.localhostProfile === undefined ? {} : { localhostProfile: meta.localhostProfile }),
    nodeArch: profile.native,
    containers,
    summary: { containers: containers.length, observed, notAllowed, by },
    note: NOTE,
  };
}

/** `?format=table`. */
export function checkTable(r: CheckReport): string {
  const rows: string[][] = [['NAMESPACE', 'POD', 'CONTAINER', 'ARCH', 'SYSCALL', 'COUNT', 'WOULD']];
  for (const c of r.containers) {
    for (const call of c.calls) {
      rows.push([
        c.namespace ?? '-',
        c.pod ?? '-',
        c.container ?? c.containerId.slice(0, 12),
        call.arch,
        call.syscall ?? `?${call.nr}`,
        String(call.count),
        call.because === 'rule' || call.because === 'default action' ? call.said : `${call.said}: ${call.because}`,
      ]);
    }
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  const body = rows.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '));
  const s = r.summary;
  const under = [...new Set(r.containers.flatMap((c) => c.loggedAs))].sort();
  body.push(
    `${s.notAllowed} call${s.notAllowed === 1 ? '' : 's'} ${r.profile} would not allow, of ${s.observed} observed in ${s.containers} container${s.containers === 1 ? '' : 's'}` +
      (under.length === 0 ? '' : ` (logged as ${under.map((x) => x.replace(/^SCMP_ACT_/, '')).join(', ')})`),
  );
  if (under.some((x) => x !== 'SCMP_ACT_LOG'))
    body.push('calls the containers’ current profiles allow without logging are not seen here');
  return body.join('\n') + '\n';
}

const CHECK_PARAMS = ['namespace', 'pod', 'container', 'containerId', 'format'] as const;

/** The check routes. */
export const checkRoutes: FastifyPluginAsync<CheckRoutesOptions> = async (app, opts) => {
  const now = opts.now ?? Date.now;
  // The body is the profile's text: YAML or JSON, parsed by the profile path (bigints kept).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    '*',
    { parseAs: 'string', bodyLimit: opts.bodyLimit ?? 4 * 1024 * 1024 },
    (_req, body, done) => done(null, body),
  );

  const answer = async (reply: FastifyReply, q: Query, candidate: Candidate): Promise<FastifyReply> => {
    if (!candidate.ok) {
      const error =
        candidate.status === 404 ? 'Not Found' : candidate.status === 400 ? 'Bad Request' : 'Unprocessable Entity';
      return reply.code(candidate.status).send({
        statusCode: candidate.status,
        error,
        code: 'SECCOMP_AGENT_ERR_CHECK_PROFILE',
        message: candidate.message,
      });
    }
    const filter = filterOf(q, now());
    opts.store.settle();
    const report = checkReport(opts.store.aggregates(filter), compileProfile(candidate.spec, opts.nativeArch), {
      node: opts.node,
      profile: candidate.ref,
      ...(candidate.localhostProfile === undefined ? {} : { localhostProfile: candidate.localhostProfile }),
    });
    if (q['format'] === 'table') return reply.type('text/plain; charset=utf-8').send(checkTable(report));
    return reply.send(report);
  };

  const formatOf = (q: Query): void => {
    const f = q['format'] ?? 'json';
    if (f !== 'json' && f !== 'table') throw new BadQuery('format', `"${f}" is not json or table`);
  };

  app.get('/v1/check', async (req, reply) => {
    let q: Query;
    try {
      q = readQuery(req.query, ['profile', ...CHECK_PARAMS]);
      formatOf(q);
      if (q['profile'] === undefined || q['profile'] === '') {
        throw new BadQuery(
          'profile',
          'give profile=<namespace>/<name> (or <name> when cluster-scoped), or POST the profile',
        );
      }
    } catch (e: unknown) {
      if (e instanceof BadQuery) return badRequest(reply, e);
      throw e;
    }
    return answer(reply, q, await opts.candidates.installed(q['profile']));
  });

  app.post('/v1/check', async (req, reply) => {
    let q: Query;
    try {
      q = readQuery(req.query, CHECK_PARAMS);
      formatOf(q);
    } catch (e: unknown) {
      if (e instanceof BadQuery) return badRequest(reply, e);
      throw e;
    }
    if (typeof req.body !== 'string' || req.body.trim() === '') {
      return answer(reply, q, {
        ok: false,
        status: 400,
        message: formatMessage('SECCOMP_AGENT_ERR_CHECK_PROFILE', {
          profile: 'the request',
          detail: 'its body is empty; POST one SeccompProfile (YAML or JSON), e.g. curl --data-binary @profile.yaml',
        }),
      });
    }
    return answer(reply, q, await opts.candidates.posted(req.body));
  });
};

/** The node's architecture in our names, from Node's `process.arch`; undefined for others. */
export function archOfProcess(processArch: string): Arch | undefined {
  const m: Record<string, Arch> = {
    x64: 'x86_64',
    ia32: 'x86',
    arm64: 'aarch64',
    arm: 'arm',
    riscv64: 'riscv64',
    ppc64: 'ppc64le',
    s390x: 's390x',
  };
  return m[processArch];
}
