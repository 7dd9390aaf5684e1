/**
 * This node's SeccompNodeReport: a watermark of the profiles it has processed plus only its
 * exceptions (failures, profiles in use), written with server-side apply. It does not grow with
 * the profiles installed cleanly, and only the elected aggregator watches the reports.
 *
 * When to write: the body (without the watermark) changed; a plan applied a spec change (the
 * aggregator waits for the watermark to pass the spec's revision); or a profile's status names a
 * specRevision above the watermark last written, which this node has reached (an aggregator that
 * took over and did not know when a spec changed uses the object's resourceVersion: this answers
 * it). One write in flight, at least `minGapMs` apart.
 */
import type { Logger } from 'pino';
import { messageOf } from '../../../shared/errors.js';
import { REPORT_GROUP, REPORT_KIND, REPORT_PLURAL, REPORT_VERSION } from '../../../shared/profile/enums.js';
import type { NodeReportBody } from '../../../shared/profile/schema.js';
import { sameNodeReport } from '../../../shared/profile/schema-equal.js';
import { Reasons } from '../../../shared/profile/status.js';
import type { ProfileReport } from '../profiles/reconciler.js';
import { isKubeApiError } from '../kube/client.js';
import type { Clock, TimerHandle } from './clock.js';
import { APPLY_PATCH, type KubeApi } from './kube-api.js';

export const REPORTS_PATH = `/apis/${REPORT_GROUP}/${REPORT_VERSION}/${REPORT_PLURAL}`;
export const REPORT_FIELD_MANAGER = 'seccomp-agent';

/** Failure messages in a report are cut here: the report is for kubectl, the Events carry the rest. */
const MAX_MESSAGE = 1024;

export interface ReportInput {
  node: string;
  /** The plan's watermark (NaN before the first plan). */
  appliedRevision: number;
  reports: ReadonlyMap<string, ProfileReport>;
  /** The generation the plan saw, and whether validation refused it, by key. */
  verdict: (key: string) => { generation: number; invalid: string | undefined } | undefined;
  /** Profile keys pods on this node use, and the pods. */
  inUse: readonly { profile: string; pods: string[] }[];
}

/** The report body: counts, failures and uses only; nothing per profile installed cleanly. */
export function buildReport(i: ReportInput): NodeReportBody {
  const failed: NodeReportBody['failed'] = [];
  let installed = 0;
  for (const [key, r] of i.reports) {
    if (r.state === 'Installed') installed++;
    if (r.state !== 'Error') continue;
    const v = i.verdict(key);
    failed.push({
      profile: key,
      generation: v?.generation ?? 0,
      reason: v?.invalid !== undefined ? Reasons.ProfileInvalid : Reasons.InstallFailed,
      message: (r.message ?? 'failed').slice(0, MAX_MESSAGE),
    });
  }
  return {
    nodeName: i.node,
    appliedRevision: Number.isFinite(i.appliedRevision) ? String(i.appliedRevision) : '0',
    installed,
    failedCount: failed.length,
    inUseCount: i.inUse.length,
    failed: failed.sort((a, b) => a.profile.localeCompare(b.profile)),
    inUse: [...i.inUse],
  };
}

export interface NodeReportDeps {
  api: KubeApi;
  clock: Clock;
  node: string;
  minGapMs: number;
  retryMs: number;
  log: Logger;
  /** The report as it stands now (watermark included). */
  build: () => NodeReportBody;
}

export class NodeReportWriter {
  readonly #d: NodeReportDeps;
  #written: NodeReportBody | undefined;
  #writtenRevision = NaN;
  /** The watermark of the write in flight (NaN when none is). */
  #inFlightRevision = NaN;
  #wanted = false;
  #timer: TimerHandle | undefined;
  #writing: Promise<void> | undefined;
  #lastWrite = -Infinity;
  #stopped = false;
  #owner: { uid: string } | null | undefined;
  /** Why the last write failed; undefined once one succeeded. */
  problem: string | undefined = 'the node report has not been written yet';
  writes = 0;
  failures = 0;

  constructor(d: NodeReportDeps) {
    this.#d = d;
  }

  /** The watermark of the last report written (NaN before the first). */
  get writtenRevision(): number {
    return this.#writtenRevision;
  }

  /**
   * The watermark of the last report written or of the one being written, whichever is higher
   * (NaN before the first). An ask for a revision this covers needs no write of its own: the write
   * in flight already carries it, and should it fail the retry carries a watermark at least as high.
   */
  get coveredRevision(): number {
    const w = this.#writtenRevision;
    const f = this.#inFlightRevision;
    return Number.isNaN(f) ? w : Number.isNaN(w) ? f : Math.max(w, f);
  }

  /**
   * Something changed: `force` writes even when only the watermark moved (a spec change was
   * applied, or an aggregator asks for a revision this node has reached).
   */
  update(force: boolean): void {
    if (this.#stopped) return;
    if (!force && this.#written !== undefined && sameNodeReport(this.#d.build(), this.#written)) return;
    this.#wanted = true;
    this.#arm();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    await this.#writing;
  }

  #arm(delay = 0): void {
    if (this.#stopped || this.#timer !== undefined || this.#writing !== undefined || !this.#wanted) return;
    const wait = Math.max(delay, this.#lastWrite + this.#d.minGapMs - this.#d.clock.now());
    this.#timer = this.#d.clock.after(wait, () => {
      this.#timer = undefined;
      this.#wanted = false;
      this.#writing = this.#write()
        .then(
          () => {
            this.problem = undefined;
            return 0;
          },
          (e: unknown) => {
            this.failures++;
            this.problem = `cannot write its SeccompNodeReport: ${messageOf(e)}`;
            this.#d.log.warn({ err: messageOf(e) }, 'could not write the node report; retrying');
            this.#wanted = true;
            return this.#d.retryMs;
          },
        )
        .then((next) => {
          this.#writing = undefined;
          this.#arm(next);
        });
    });
  }

  async #write(): Promise<void> {
    const body = this.#d.build();
    this.#lastWrite = this.#d.clock.now();
    this.#inFlightRevision = Number(body.appliedRevision);
    try {
      await this.#apply(body);
    } finally {
      this.#inFlightRevision = NaN;
    }
    this.writes++;
    this.#written = body;
    this.#writtenRevision = Number(body.appliedRevision);
  }

  async #apply(body: NodeReportBody): Promise<void> {
    const owner = await this.#ownerRef();
    await this.#d.api.request({
      method: 'PATCH',
      path: `${REPORTS_PATH}/${this.#d.node}`,
      query: { fieldManager: REPORT_FIELD_MANAGER, force: true },
      body: {
        apiVersion: `${REPORT_GROUP}/${REPORT_VERSION}`,
        kind: REPORT_KIND,
        metadata: {
          name: this.#d.node,
          ...(owner === null
            ? {}
            : { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: this.#d.node, uid: owner.uid }] }),
        },
        ...body,
      },
      contentType: APPLY_PATCH,
      timeoutMs: 10_000,
    });
  }

  /**
   * The Node as owner, so the garbage collector removes the report with its node. Read once; no
   * Node object (an agent outside a real node) means no owner, never a made-up uid (the collector
   * would delete the report at once).
   */
  async #ownerRef(): Promise<{ uid: string } | null> {
    if (this.#owner !== undefined) return this.#owner;
    try {
      const n = await this.#d.api.request<{ metadata?: { uid?: string } }>({
        method: 'GET',
        path: `/api/v1/nodes/${this.#d.node}`,
        timeoutMs: 10_000,
      });
      this.#owner = n.metadata?.uid === undefined ? null : { uid: n.metadata.uid };
    } catch (e: unknown) {
      if (!isKubeApiError(e) || (e.status !== 404 && e.status !== 403)) throw e;
      this.#d.log.warn({ status: e.status }, 'cannot read this Node: the report has no owner and outlives the node');
      this.#owner = null;
    }
    return this.#owner;
  }
}
