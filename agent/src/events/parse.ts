/**
 * Parsing of seccomp audit records. Pure functions over single lines, in every form the node
 * writes them (see ../shared/node-facts/):
 *
 *   auditd ENRICHED  type=SECCOMP msg=audit(1795867209.801:61933): auid=... code=0x7ffc0000<0x1d>AUID="unset" ...
 *   auditd RAW       the same without the 0x1d part
 *   /dev/kmsg        5,347,555905776,-;audit: type=1326 audit(1795867123.853:61799): auid=...
 *   dmesg            [  555.905776] audit: type=1326 audit(...): ...
 *   syslog           <syslog prefix> kernel: [  555.905776] audit: type=1326 audit(...): ...
 *
 * Hand-written scanning rather than one big regular expression: the ingest benchmark reads a million
 * lines, and most lines of a syslog file are not audit records at all.
 */
import type { AuditSyscall } from '../../../shared/syscalls/index.js';

/** What a seccomp filter decided, named as profiles name actions. */
export type SeccompAction =
  | 'SCMP_ACT_KILL_PROCESS'
  | 'SCMP_ACT_KILL_THREAD'
  | 'SCMP_ACT_TRAP'
  | 'SCMP_ACT_ERRNO'
  | 'SCMP_ACT_NOTIFY'
  | 'SCMP_ACT_TRACE'
  | 'SCMP_ACT_LOG'
  | 'SCMP_ACT_ALLOW'
  | 'UNKNOWN';

/** `code=` split into the action and its 16-bit data (include/uapi/linux/seccomp.h). */
export interface DecodedCode {
  readonly action: SeccompAction;
  /** The low 16 bits: the errno for ERRNO, the trace or trap value otherwise. */
  readonly data: number;
  /** The errno an ERRNO action returned; null for every other action. */
  readonly errno: number | null;
}

const ACTION_BY_VALUE: ReadonlyMap<number, SeccompAction> = new Map([
  [0x80000000, 'SCMP_ACT_KILL_PROCESS'],
  [0x00000000, 'SCMP_ACT_KILL_THREAD'],
  [0x00030000, 'SCMP_ACT_TRAP'],
  [0x00050000, 'SCMP_ACT_ERRNO'],
  [0x7fc00000, 'SCMP_ACT_NOTIFY'],
  [0x7ff00000, 'SCMP_ACT_TRACE'],
  [0x7ffc0000, 'SCMP_ACT_LOG'],
  [0x7fff0000, 'SCMP_ACT_ALLOW'],
]);

/** Decodes a seccomp return value as the kernel does: SECCOMP_RET_ACTION_FULL is the high 16 bits. */
export function decodeCode(code: number): DecodedCode {
  const value = code >>> 0;
  const action = ACTION_BY_VALUE.get((value & 0xffff0000) >>> 0) ?? 'UNKNOWN';
  const data = value & 0xffff;
  return { action, data, errno: action === 'SCMP_ACT_ERRNO' ? data : null };
}

/** Resolves an audit `arch=` hex and `syscall=` number (shared/syscalls' resolveAuditSyscall). */
export type SyscallResolver = (auditArchHex: string, nr: number) => AuditSyscall | undefined;

/** One SECCOMP audit record, every field the kernel writes, plus what we derive from them. */
export interface SeccompRecord {
  /** Event time, epoch milliseconds, from `audit(<sec>.<ms>:...)`. */
  readonly time: number;
  readonly serial: number;
  /** `<sec>.<ms>:<serial>`, the id ausearch shows and `ausearch -a` takes. */
  readonly auditId: string;
  readonly auid: number | null;
  readonly uid: number | null;
  readonly gid: number | null;
  readonly ses: number | null;
  /** The host pid. */
  readonly pid: number;
  readonly comm: string | null;
  readonly exe: string | null;
  readonly sig: number | null;
  /** The `arch=` field as written, lower case, e.g. `c000003e`. */
  readonly auditArch: string;
  /** Our arch name (x86_64, x86, x32, ...), or null when the audit arch is not one we know. */
  readonly arch: string | null;
  readonly syscallNr: number;
  /** The syscall's name in its arch's table, or null when the table has no such number. */
  readonly syscall: string | null;
  readonly compat: number | null;
  readonly ip: string | null;
  readonly code: number;
  readonly action: SeccompAction;
  readonly errno: number | null;
  readonly data: number;
}

/** The outcome of parsing one line. */
export type ParsedLine =
  | { readonly kind: 'seccomp'; readonly record: SeccompRecord }
  /** An audit record of another type, or (outside strict mode) a line that is not an audit record. */
  | { readonly kind: 'other' }
  /** The kernel dropped this many records (`kauditd_printk_skb: N callbacks suppressed`). */
  | { readonly kind: 'lost'; readonly count: number }
  | { readonly kind: 'malformed'; readonly reason: string };

export interface ParseOptions {
  readonly resolve: SyscallResolver;
  /**
   * Every line must be an audit record (auditd's own log): anything else is malformed. Off for
   * syslog files and the kernel log, where most lines are about something else.
   */
  readonly strict?: boolean;
}

const OTHER: ParsedLine = Object.freeze({ kind: 'other' });
const SUPPRESSED = 'kauditd_printk_skb: ';
const SUPPRESSED_TAIL = ' callbacks suppressed';
const GS = '\x1d';
/** The largest epoch millisecond a Date holds (ECMA-262 TimeClip). */
const MAX_DATE_MS = 8.64e15;

/** A piece of the line quoted in a reason: short (reasons are logged). */
const clip = (s: string): string => (s.length <= 24 ? s : `${s.slice(0, 24)}…`);

function malformed(reason: string): ParsedLine {
  return { kind: 'malformed', reason };
}

/** Unsigned decimal digits only; NaN otherwise (Number() would also take '', ' 1', '0x1', '1e3'). */
function decimal(s: string): number {
  if (s.length === 0 || s.length > 20) return NaN;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) {
      // A leading minus: the kernel prints some fields signed (e.g. syscall=-1 on odd paths).
      if (i === 0 && c === 45 && s.length > 1) continue;
      return NaN;
    }
  }
  return Number(s);
}

/** s[from..] is one or more hex digits. */
function isHexDigits(s: string, from: number): boolean {
  if (s.length <= from) return false;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function isHex(s: string): boolean {
  if (s.length === 0 || s.length % 2 !== 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/**
 * An untrusted string field (comm=, exe=): `"text"` when printable, hex when it holds a space, a
 * quote or a non-printable byte (the kernel's audit_log_untrustedstring), `(null)` when absent.
 */
export function decodeUntrusted(v: string): string | null {
  if (v.length >= 2 && v.charCodeAt(0) === 34 && v.charCodeAt(v.length - 1) === 34) return v.slice(1, -1);
  if (v === '(null)' || v === '?') return null;
  if (isHex(v)) return Buffer.from(v, 'hex').toString('utf8');
  return v;
}

/** Like decimal() over line[from, to), without making a substring. */
function decimalAt(line: string, from: number, to: number): number {
  const len = to - from;
  if (len <= 0 || len > 20) return NaN;
  let i = from;
  let neg = false;
  if (line.charCodeAt(i) === 45 && len > 1) {
    neg = true;
    i++;
  }
  let n = 0;
  for (; i < to; i++) {
    const c = line.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return NaN;
    n = n * 10 + c;
  }
  return neg ? -n : n;
}

/** Informative number fields: null when absent or unparsable. */
const orNull = (n: number): number | null => (Number.isNaN(n) ? null : n);

const KMSG_PREFIX = /^(\d+),\d+,\d+,[^;]*;/;

/**
 * Where the message starts: after a /dev/kmsg `prio,seq,usec,flags;` prefix, 0 otherwise; -1 for a
 * kmsg record from a facility other than the kernel (someone writing to /dev/kmsg), which must not
 * be taken for an audit record. prio is facility << 3 | level.
 */
function messageStart(line: string): number {
  const c0 = line.charCodeAt(0);
  if (c0 < 48 || c0 > 57) return 0;
  const m = KMSG_PREFIX.exec(line);
  if (m === null) return 0;
  return Number(m[1]) >> 3 === 0 ? m[0].length : -1;
}

/** Where the record's `type=` token starts at or after `from`; -1 when there is none. */
function recordStart(line: string, from: number): number {
  if (line.startsWith('type=', from)) return from;
  const i = line.indexOf('type=', from);
  if (i < 0) return -1;
  // The token must start a word: "xtype=" is not a record.
  return line.charCodeAt(i - 1) === 32 ? i : -1;
}

/** Answers of each resolver by audit arch and number: a node sees a few hundred pairs at most. */
const resolvedBy = new WeakMap<SyscallResolver, Map<string, Map<number, AuditSyscall | undefined>>>();
/** Numbers kept per arch (the tables have about 500; anything past that is asked every time). */
const MAX_CACHED_NUMBERS = 1024;

/** `resolve(auditArch, nr)`, remembered per resolver (the byte path names its calls with it too). */
export function resolveCached(resolve: SyscallResolver, auditArch: string, nr: number): AuditSyscall | undefined {
  let byArch = resolvedBy.get(resolve);
  if (byArch === undefined) {
    byArch = new Map();
    resolvedBy.set(resolve, byArch);
  }
  let byNr = byArch.get(auditArch);
  if (byNr === undefined) {
    if (byArch.size >= 64) return resolve(auditArch, nr);
    byNr = new Map();
    byArch.set(auditArch, byNr);
  }
  if (byNr.has(nr)) return byNr.get(nr);
  const r = resolve(auditArch, nr);
  if (byNr.size < MAX_CACHED_NUMBERS) byNr.set(nr, r);
  return r;
}

/** Parses one line (without its newline). Never throws. */
export function parseLine(line: string, opts: ParseOptions): ParsedLine {
  const msg = messageStart(line);
  if (msg < 0) return OTHER;
  const start = recordStart(line, msg);
  if (start < 0) {
    const s = line.indexOf(SUPPRESSED, msg);
    if (s >= 0 && line.endsWith(SUPPRESSED_TAIL)) {
      const n = decimal(line.slice(s + SUPPRESSED.length, line.length - SUPPRESSED_TAIL.length));
      if (n >= 0) return { kind: 'lost', count: n };
    }
    if (opts.strict === true && line.length > 0) return malformed('not an audit record');
    return OTHER;
  }
  const typeEnd = line.indexOf(' ', start);
  let h = typeEnd + 1;
  if (line.startsWith('msg=', h)) h += 4;
  if (typeEnd < 0 || !line.startsWith('audit(', h))
    return opts.strict === true ? malformed('no audit(...) header') : OTHER;
  const typeLen = typeEnd - start - 5;
  const isSeccomp =
    (typeLen === 7 && line.startsWith('SECCOMP', start + 5)) ||
    (typeLen === 4 && line.startsWith('1326', start + 5)) ||
    (typeLen === 13 && line.startsWith('UNKNOWN[1326]', start + 5));
  if (!isSeccomp) return OTHER;

  // audit(<sec>.<ms>:<serial>):
  const open = h + 6;
  const close = line.indexOf('):', open);
  if (close < 0) return malformed('unterminated audit(...) header');
  const dot = line.indexOf('.', open);
  const colon = line.indexOf(':', open);
  const sec = decimalAt(line, open, dot);
  const ms = decimalAt(line, dot + 1, colon);
  const serial = decimalAt(line, colon + 1, close);
  if (
    dot < 0 ||
    colon < dot + 2 ||
    colon > close ||
    Number.isNaN(sec) ||
    Number.isNaN(ms) ||
    Number.isNaN(serial) ||
    sec < 0 ||
    ms < 0 ||
    serial < 0
  ) {
    return malformed(`bad audit id "${clip(line.slice(open, close))}"`);
  }
  const id = line.slice(open, close);
  // The kernel prints milliseconds with three digits; scale anything else.
  const msDigits = colon - dot - 1;
  const time = sec * 1000 + (msDigits === 3 ? ms : Math.round(ms * 10 ** (3 - msDigits)));
  // A time no Date can hold (anyone can write such a line to a syslog file) is one bad line:
  // formatting it later would throw.
  if (!(time <= MAX_DATE_MS)) return malformed(`audit time "${clip(line.slice(open, dot))}" out of range`);

  // Fields run to the end of the line or to auditd's enrichment separator.
  let end = line.indexOf(GS, close);
  if (end < 0) end = line.length;
  // Numbers are read in place (no substrings: a million lines make a lot of garbage); NaN = absent
  // or not a number.
  let pid = NaN;
  let syscallNr = NaN;
  let auid = NaN;
  let uid = NaN;
  let gid = NaN;
  let ses = NaN;
  let sig = NaN;
  let compat = NaN;
  let archS: string | undefined;
  let codeS: string | undefined;
  let commS: string | undefined;
  let exeS: string | undefined;
  let ipS: string | undefined;
  let p = close + 2;
  while (p < end) {
    if (line.charCodeAt(p) === 32) {
      p++;
      continue;
    }
    // One pass over the token: where it ends and where its first '=' is (two indexOf calls per
    // token cost more than the scan).
    let q = p;
    let eq = -1;
    for (; q < end; q++) {
      const c = line.charCodeAt(q);
      if (c === 32) break;
      if (c === 61 && eq < 0) eq = q;
    }
    if (eq > p) {
      const v = eq + 1;
      switch (eq - p) {
        case 2:
          if (line.startsWith('ip', p)) ipS = line.slice(v, q);
          break;
        case 3:
          if (line.startsWith('pid', p)) pid = decimalAt(line, v, q);
          else if (line.startsWith('uid', p)) uid = decimalAt(line, v, q);
          else if (line.startsWith('gid', p)) gid = decimalAt(line, v, q);
          else if (line.startsWith('ses', p)) ses = decimalAt(line, v, q);
          else if (line.startsWith('sig', p)) sig = decimalAt(line, v, q);
          else if (line.startsWith('exe', p)) exeS = line.slice(v, q);
          break;
        case 4:
          if (line.startsWith('arch', p)) archS = line.slice(v, q);
          else if (line.startsWith('code', p)) codeS = line.slice(v, q);
          else if (line.startsWith('comm', p)) commS = line.slice(v, q);
          else if (line.startsWith('auid', p)) auid = decimalAt(line, v, q);
          break;
        case 6:
          if (line.startsWith('compat', p)) compat = decimalAt(line, v, q);
          break;
        case 7:
          if (line.startsWith('syscall', p)) syscallNr = decimalAt(line, v, q);
          break;
        default:
          break;
      }
    }
    p = q + 1;
  }

  if (Number.isNaN(pid) || pid < 0) return malformed('missing or bad pid=');
  if (archS === undefined || archS.length > 8 || !isHexDigits(archS, 0)) return malformed('missing or bad arch=');
  if (Number.isNaN(syscallNr)) return malformed('missing or bad syscall=');
  const code =
    codeS !== undefined && codeS.length <= 10 && codeS.startsWith('0x') && isHexDigits(codeS, 2) ? Number(codeS) : NaN;
  if (Number.isNaN(code)) return malformed('missing or bad code=');

  const auditArch = archS.length === 8 && archS === archS.toLowerCase() ? archS : archS.toLowerCase().padStart(8, '0');
  const resolved = resolveCached(opts.resolve, auditArch, syscallNr);
  const decoded = decodeCode(code);
  const record: SeccompRecord = {
    time,
    serial,
    auditId: id,
    auid: orNull(auid),
    uid: orNull(uid),
    gid: orNull(gid),
    ses: orNull(ses),
    pid,
    comm: commS === undefined ? null : decodeUntrusted(commS),
    exe: exeS === undefined ? null : decodeUntrusted(exeS),
    sig: orNull(sig),
    auditArch,
    arch: resolved?.arch ?? null,
    syscallNr,
    syscall: resolved?.name ?? null,
    compat: orNull(compat),
    ip: ipS ?? null,
    code,
    action: decoded.action,
    errno: decoded.errno,
    data: decoded.data,
  };
  return { kind: 'seccomp', record };
}

/** `code` as the kernel prints it: 0x7ffc0000, 0x0. */
export function formatCode(code: number): string {
  return `0x${(code >>> 0).toString(16)}`;
}
