/**
 * The byte path of the parser: reads a SECCOMP record's fields straight from the bytes a file read
 * gave, without decoding the line. Numbers are read in place, `comm` and `exe` are decoded only
 * when their bytes differ from the last value seen, and the audit arch is kept as a number.
 *
 * It takes only lines it can answer exactly as parseLine would, in a form the store's columns hold
 * exactly: a line starting `type=SECCOMP ` or `type=1326 `, a canonical `audit(<sec>.<ms3>:<serial>)`
 * header, and the fields in any order. Anything else (a malformed line, a syslog prefix, an `ip` not
 * as the kernel prints it, a pid over 32 bits, ...) is left to parseLine (`scan` returns false), so
 * malformed lines are reported as before and every answer stays parseLine's
 * (tests/unit/events/scan.test.ts compares the two on the corpus and on generated lines).
 * Pure: no I/O.
 */
import { decodeUntrusted } from './parse.js';

const GS = 0x1d;
const SP = 0x20;
const EQ = 0x3d;
/** The largest epoch millisecond a Date holds (ECMA-262 TimeClip). */
const MAX_DATE_MS = 8.64e15;

/** `type=SECCOMP ` and `type=1326 `, then optionally `msg=`, then `audit(`. */
const TYPE_SECCOMP = Buffer.from('type=SECCOMP ', 'latin1');
const TYPE_1326 = Buffer.from('type=1326 ', 'latin1');
const MSG = Buffer.from('msg=', 'latin1');
const AUDIT = Buffer.from('audit(', 'latin1');
const COMPAT = Buffer.from('compat', 'latin1');
const SIG_EQ = Buffer.from('sig=', 'latin1');
const ARCH_EQ = Buffer.from(' arch=', 'latin1');
const SYSCALL_EQ = Buffer.from(' syscall=', 'latin1');
const COMPAT_EQ = Buffer.from(' compat=', 'latin1');
const IP_EQ = Buffer.from(' ip=0x', 'latin1');
const CODE_EQ = Buffer.from(' code=0x', 'latin1');
const SYSCALL = Buffer.from('syscall', 'latin1');

const K_NONE = 0;
const K_IP = 1;
const K_PID = 2;
const K_UID = 3;
const K_GID = 4;
const K_SES = 5;
const K_SIG = 6;
const K_EXE = 7;
const K_ARCH = 8;
const K_CODE = 9;
const K_COMM = 10;
const K_AUID = 11;
const K_COMPAT = 12;
const K_SYSCALL = 13;
/** Keys of the process's fields (what the remembered region may set). */
const PROC_KEY: readonly boolean[] = [
  false,
  false,
  true,
  true,
  true,
  true,
  false,
  true,
  false,
  false,
  true,
  true,
  false,
  false,
];

/** Which field buf[p, eq) names (the key before '='); K_NONE for any other. */
function keyOf(buf: Buffer, p: number, eq: number): number {
  const k0 = buf[p];
  const k1 = buf[p + 1];
  const k2 = buf[p + 2];
  switch (eq - p) {
    case 2:
      return k0 === 0x69 && k1 === 0x70 ? K_IP : K_NONE;
    case 3:
      if (k1 === 0x69 && k2 === 0x64) return k0 === 0x70 ? K_PID : k0 === 0x75 ? K_UID : k0 === 0x67 ? K_GID : K_NONE;
      if (k0 === 0x73 && k1 === 0x65 && k2 === 0x73) return K_SES;
      if (k0 === 0x73 && k1 === 0x69 && k2 === 0x67) return K_SIG;
      if (k0 === 0x65 && k1 === 0x78 && k2 === 0x65) return K_EXE;
      return K_NONE;
    case 4: {
      const k3 = buf[p + 3];
      if (k0 === 0x61 && k1 === 0x72 && k2 === 0x63 && k3 === 0x68) return K_ARCH;
      if (k0 === 0x63 && k1 === 0x6f && k2 === 0x64 && k3 === 0x65) return K_CODE;
      if (k0 === 0x63 && k1 === 0x6f && k2 === 0x6d && k3 === 0x6d) return K_COMM;
      if (k0 === 0x61 && k1 === 0x75 && k2 === 0x69 && k3 === 0x64) return K_AUID;
      return K_NONE;
    }
    case 6:
      return at(buf, p, eq, COMPAT) ? K_COMPAT : K_NONE;
    case 7:
      return at(buf, p, eq, SYSCALL) ? K_SYSCALL : K_NONE;
    default:
      return K_NONE;
  }
}

function at(buf: Buffer, i: number, e: number, w: Buffer): boolean {
  if (i + w.length > e) return false;
  for (let k = 0; k < w.length; k++) if (buf[i + k] !== w[k]) return false;
  return true;
}

/** parseLine's decimalAt over bytes: digits with an optional leading minus; NaN otherwise. */
function decimalAt(buf: Buffer, from: number, to: number): number {
  const len = to - from;
  if (len <= 0 || len > 20) return NaN;
  let i = from;
  let neg = false;
  if (buf[i] === 45 && len > 1) {
    neg = true;
    i++;
  }
  let n = 0;
  for (; i < to; i++) {
    const c = (buf[i] ?? 0) - 48;
    if (c < 0 || c > 9) return NaN;
    n = n * 10 + c;
  }
  return neg ? -n : n;
}

/** A hex digit's value, -1 for anything else; `lower` allows only lower case. */
function hexDigit(c: number, lower: boolean): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (!lower && c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** A decoded untrusted string (comm=, exe=) and the bytes it came from. */
class UntrustedCache {
  private bytes = Buffer.alloc(64);
  private len = -1;
  private value: string | null = null;

  /** decodeUntrusted of buf[a, b), reusing the last answer when the bytes are the same. */
  decode(buf: Buffer, a: number, b: number): string | null {
    const n = b - a;
    if (n === this.len) {
      let same = true;
      for (let k = 0; k < n; k++)
        if (buf[a + k] !== this.bytes[k]) {
          same = false;
          break;
        }
      if (same) return this.value;
    }
    this.value = decodeUntrusted(buf.toString('latin1', a, b));
    if (n > this.bytes.length) this.bytes = Buffer.alloc(Math.max(n, this.bytes.length * 2));
    buf.copy(this.bytes, 0, a, b);
    this.len = n;
    return this.value;
  }
}

/** Reads SECCOMP records from bytes into its own fields (one scanner per Ingest; not reentrant). */
export class RecordScanner {
  /** Epoch ms (a whole number). */
  time = 0;
  /** The audit serial, at most 32 bits. */
  serial = 0;
  /** At most 32 bits. */
  pid = 0;
  auid: number | null = null;
  uid: number | null = null;
  gid: number | null = null;
  ses: number | null = null;
  sig: number | null = null;
  compat: number | null = null;
  syscallNr = 0;
  code = 0;
  /** `arch=` as a number (its text is `archText`). */
  arch = 0;
  comm: string | null = null;
  exe: string | null = null;
  /** No `ip=` field. */
  ipNull = true;
  ipHi = 0;
  ipLo = 0;
  private readonly comms = new UntrustedCache();
  private readonly exes = new UntrustedCache();
  private archValue = -1;
  private archString = '';
  /**
   * The bytes from the first field to the `sig=` token of the last record scanned whole, and what
   * its tokens set. The same process writes the same `auid= uid= gid= ses= pid= comm= exe= `
   * record after record: when the next line starts with the same bytes, one native compare stands
   * for reading them.
   */
  private region = Buffer.alloc(512);
  private regionLen = 0;
  private rAuid = NaN;
  private rUid = NaN;
  private rGid = NaN;
  private rSes = NaN;
  private rPid = NaN;
  private rComm: string | null | undefined;
  private rExe: string | null | undefined;

  /** `arch=` as parseLine gives it: eight lower-case hex digits. */
  get archText(): string {
    if (this.arch !== this.archValue) {
      this.archValue = this.arch;
      this.archString = this.arch.toString(16).padStart(8, '0');
    }
    return this.archString;
  }

  /**
   * Reads the line buf[s, e) (without its newline). True when it is a SECCOMP record this path
   * answers exactly; false when the line must go to parseLine (the fields are then undefined).
   */
  scan(buf: Buffer, s: number, e: number): boolean {
    let h: number;
    if (at(buf, s, e, TYPE_SECCOMP)) h = s + TYPE_SECCOMP.length;
    else if (at(buf, s, e, TYPE_1326)) h = s + TYPE_1326.length;
    else return false;
    if (at(buf, h, e, MSG)) h += MSG.length;
    if (!at(buf, h, e, AUDIT)) return false;

    // audit(<sec>.<ms>:<serial>): in the one form whose text the store rebuilds from the numbers:
    // no leading zeros, three digits of milliseconds, a 32-bit serial.
    let p = h + AUDIT.length;
    const secFrom = p;
    let sec = 0;
    for (; p < e; p++) {
      const c = (buf[p] ?? 0) - 48;
      if (c < 0 || c > 9) break;
      sec = sec * 10 + c;
    }
    const secLen = p - secFrom;
    if (secLen === 0 || secLen > 13 || (secLen > 1 && buf[secFrom] === 48) || buf[p] !== 0x2e) return false;
    const d0 = (buf[p + 1] ?? 0) - 48;
    const d1 = (buf[p + 2] ?? 0) - 48;
    const d2 = (buf[p + 3] ?? 0) - 48;
    if (d0 < 0 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9 || buf[p + 4] !== 0x3a || p + 4 >= e) return false;
    p += 5;
    const serialFrom = p;
    let serial = 0;
    for (; p < e; p++) {
      const c = (buf[p] ?? 0) - 48;
      if (c < 0 || c > 9) break;
      serial = serial * 10 + c;
    }
    const serialLen = p - serialFrom;
    if (serialLen === 0 || serialLen > 10 || (serialLen > 1 && buf[serialFrom] === 48) || serial > 0xffffffff)
      return false;
    if (buf[p] !== 0x29 || buf[p + 1] !== 0x3a || p + 1 >= e) return false;
    const time = sec * 1000 + d0 * 100 + d1 * 10 + d2;
    if (!(time <= MAX_DATE_MS)) return false;
    p += 2;

    // The fields, as parseLine reads them: space-separated tokens up to auditd's 0x1d separator
    // (or the end), key up to the first '=', the last of a repeated key wins.
    let pid = NaN;
    let syscallNr = NaN;
    let auid = NaN;
    let uid = NaN;
    let gid = NaN;
    let ses = NaN;
    let sig = NaN;
    let compat = NaN;
    let archA = -1;
    let archB = -1;
    let codeA = -1;
    let codeB = -1;
    let commA = -1;
    let commB = -1;
    let exeA = -1;
    let exeB = -1;
    let ipA = -1;
    let ipB = -1;
    let end = e;
    // comm and exe decoded from the remembered region (undefined: not in it).
    let commR: string | null | undefined;
    let exeR: string | null | undefined;
    const f0 = p;
    const rl = this.regionLen;
    let regionEnd = -1;
    if (rl > 0 && f0 + rl < e && buf.compare(this.region, 0, rl, f0, f0 + rl) === 0) {
      auid = this.rAuid;
      uid = this.rUid;
      gid = this.rGid;
      ses = this.rSes;
      pid = this.rPid;
      commR = this.rComm;
      exeR = this.rExe;
      p = f0 + rl;
      // The rest as the kernel writes it (audit_seccomp): read without looking for keys.
      if (this.callFields(buf, p, e)) {
        sig = this.tSig;
        archA = this.tArchA;
        archB = this.tArchB;
        syscallNr = this.tSyscall;
        compat = this.tCompat;
        ipA = this.tIpA;
        ipB = this.tIpB;
        codeA = this.tCodeA;
        codeB = this.tCodeB;
        p = end;
      }
    } else regionEnd = 0;
    while (p < end) {
      const c0 = buf[p];
      if (c0 === SP) {
        p++;
        continue;
      }
      if (c0 === GS) break;
      let q = p;
      let eq = -1;
      for (; q < end; q++) {
        const c = buf[q];
        if (c === SP) break;
        if (c === GS) {
          end = q;
          break;
        }
        if (c === EQ && eq < 0) eq = q;
      }
      if (eq > p) {
        const v = eq + 1;
        const key = keyOf(buf, p, eq);
        if (regionEnd === 0) {
          // Recording: the region ends at the first `sig=` and holds only the process's fields.
          if (key === K_SIG) regionEnd = p;
          else if (key !== K_NONE && !PROC_KEY[key]) regionEnd = -1;
        } else if (regionEnd > 0 && PROC_KEY[key]) regionEnd = -1; // the region's values would not be the last
        switch (key) {
          case K_IP:
            ipA = v;
            ipB = q;
            break;
          case K_PID:
            pid = decimalAt(buf, v, q);
            break;
          case K_UID:
            uid = decimalAt(buf, v, q);
            break;
          case K_GID:
            gid = decimalAt(buf, v, q);
            break;
          case K_SES:
            ses = decimalAt(buf, v, q);
            break;
          case K_SIG:
            sig = decimalAt(buf, v, q);
            break;
          case K_EXE:
            exeA = v;
            exeB = q;
            break;
          case K_ARCH:
            archA = v;
            archB = q;
            break;
          case K_CODE:
            codeA = v;
            codeB = q;
            break;
          case K_COMM:
            commA = v;
            commB = q;
            break;
          case K_AUID:
            auid = decimalAt(buf, v, q);
            break;
          case K_COMPAT:
            compat = decimalAt(buf, v, q);
            break;
          case K_SYSCALL:
            syscallNr = decimalAt(buf, v, q);
            break;
          default:
            break;
        }
      }
      p = q + 1;
    }

    // What parseLine calls malformed, or what the columns cannot hold: parseLine decides.
    if (!(pid >= 0 && pid <= 0xffffffff) || Number.isNaN(syscallNr)) return false;
    const archLen = archB - archA;
    if (archA < 0 || archLen === 0 || archLen > 8) return false;
    let arch = 0;
    for (let i = archA; i < archB; i++) {
      const d = hexDigit(buf[i] ?? 0, false);
      if (d < 0) return false;
      arch = arch * 16 + d;
    }
    const codeLen = codeB - codeA;
    if (codeA < 0 || codeLen < 3 || codeLen > 10 || buf[codeA] !== 0x30 || buf[codeA + 1] !== 0x78) return false;
    let code = 0;
    for (let i = codeA + 2; i < codeB; i++) {
      const d = hexDigit(buf[i] ?? 0, false);
      if (d < 0) return false;
      code = code * 16 + d;
    }
    // ip: only as the kernel prints it (0x, lower case, no leading zero, 64 bits), else parseLine's
    // string is kept whole by the store.
    let ipHi = 0;
    let ipLo = 0;
    if (ipA >= 0) {
      const n = ipB - ipA;
      if (n < 3 || n > 18 || buf[ipA] !== 0x30 || buf[ipA + 1] !== 0x78 || (n > 3 && buf[ipA + 2] === 0x30))
        return false;
      for (let i = ipA + 2; i < ipB; i++) {
        const d = hexDigit(buf[i] ?? 0, true);
        if (d < 0) return false;
        ipHi = ((ipHi << 4) | (ipLo >>> 28)) >>> 0;
        ipLo = ((ipLo << 4) | d) >>> 0;
      }
    }

    this.time = time;
    this.serial = serial;
    this.pid = pid;
    this.auid = Number.isNaN(auid) ? null : auid;
    this.uid = Number.isNaN(uid) ? null : uid;
    this.gid = Number.isNaN(gid) ? null : gid;
    this.ses = Number.isNaN(ses) ? null : ses;
    this.sig = Number.isNaN(sig) ? null : sig;
    this.compat = Number.isNaN(compat) ? null : compat;
    this.syscallNr = syscallNr;
    this.code = code;
    this.arch = arch;
    this.comm = commA >= 0 ? this.comms.decode(buf, commA, commB) : (commR ?? null);
    this.exe = exeA >= 0 ? this.exes.decode(buf, exeA, exeB) : (exeR ?? null);
    if (regionEnd > f0) this.remember(buf, f0, regionEnd, auid, uid, gid, ses, pid);
    this.ipNull = ipA < 0;
    this.ipHi = ipHi;
    this.ipLo = ipLo;
    return true;
  }

  private tSig = NaN;
  private tArchA = -1;
  private tArchB = -1;
  private tSyscall = NaN;
  private tCompat = NaN;
  private tIpA = -1;
  private tIpB = -1;
  private tCodeA = -1;
  private tCodeB = -1;

  /**
   * `sig=<d> arch=<8 hex> syscall=<d> compat=<d> ip=0x<hex> code=0x<hex>` at p, then 0x1d or the
   * end of the line: exactly what the token loop would read from there (every value one token of
   * digits or hex, ending where the loop ends it). False for anything else (the loop reads it).
   */
  private callFields(buf: Buffer, p: number, e: number): boolean {
    let q = p;
    if (!at(buf, q, e, SIG_EQ)) return false;
    q += SIG_EQ.length;
    let a = q;
    let n = 0;
    for (; q < e; q++) {
      const c = (buf[q] ?? 0) - 48;
      if (c < 0 || c > 9) break;
      n = n * 10 + c;
    }
    if (q === a || q - a > 15 || !at(buf, q, e, ARCH_EQ)) return false;
    this.tSig = n;
    q += ARCH_EQ.length;
    a = q;
    for (; q < e && hexDigit(buf[q] ?? 0, false) >= 0; q++);
    if (q - a !== 8 || !at(buf, q, e, SYSCALL_EQ)) return false;
    this.tArchA = a;
    this.tArchB = q;
    q += SYSCALL_EQ.length;
    a = q;
    n = 0;
    for (; q < e; q++) {
      const c = (buf[q] ?? 0) - 48;
      if (c < 0 || c > 9) break;
      n = n * 10 + c;
    }
    if (q === a || q - a > 15 || !at(buf, q, e, COMPAT_EQ)) return false;
    this.tSyscall = n;
    q += COMPAT_EQ.length;
    a = q;
    n = 0;
    for (; q < e; q++) {
      const c = (buf[q] ?? 0) - 48;
      if (c < 0 || c > 9) break;
      n = n * 10 + c;
    }
    if (q === a || q - a > 15 || !at(buf, q, e, IP_EQ)) return false;
    this.tCompat = n;
    q += IP_EQ.length;
    a = q;
    for (; q < e && hexDigit(buf[q] ?? 0, false) >= 0; q++);
    if (q === a || !at(buf, q, e, CODE_EQ)) return false;
    this.tIpA = a - 2;
    this.tIpB = q;
    q += CODE_EQ.length;
    a = q;
    for (; q < e && hexDigit(buf[q] ?? 0, false) >= 0; q++);
    if (q === a || (q < e && buf[q] !== GS)) return false;
    this.tCodeA = a - 2;
    this.tCodeB = q;
    return true;
  }

  private remember(
    buf: Buffer,
    a: number,
    b: number,
    auid: number,
    uid: number,
    gid: number,
    ses: number,
    pid: number,
  ): void {
    const n = b - a;
    if (n > this.region.length) {
      this.regionLen = 0;
      return;
    }
    buf.copy(this.region, 0, a, b);
    this.regionLen = n;
    this.rAuid = auid;
    this.rUid = uid;
    this.rGid = gid;
    this.rSes = ses;
    this.rPid = pid;
    this.rComm = this.comm;
    this.rExe = this.exe;
  }
}
