/**
 * The /proc reads attribution needs, behind one seam. Synchronous on purpose: procfs reads do not
 * touch a disk and take microseconds, and a record must be attributed before its process exits.
 * Tests point `root` at a directory tree of their own.
 */
import { existsSync, readFileSync } from 'node:fs';

export interface ProcReader {
  /** /proc/<pid>/stat, or undefined when the process is gone. */
  stat(pid: number): string | undefined;
  /** /proc/<pid>/cgroup, or undefined when the process is gone. */
  cgroup(pid: number): string | undefined;
  /** Boot time, epoch milliseconds (`btime` of /proc/stat). */
  bootTimeMs(): number;
}

function readOrUndefined(path: string): string | undefined {
  // Most pids of a busy log are gone by the time their records are read: asking first costs one
  // syscall, where a failed read costs an exception (tens of microseconds each).
  if (!existsSync(path)) return undefined;
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
}

/** Reads a real (or test) proc tree. */
export function procReader(root = '/proc'): ProcReader {
  let boot: number | undefined;
  return {
    stat: (pid) => readOrUndefined(`${root}/${pid}/stat`),
    cgroup: (pid) => readOrUndefined(`${root}/${pid}/cgroup`),
    bootTimeMs: () => {
      if (boot === undefined) {
        const m = /^btime (\d+)$/m.exec(readOrUndefined(`${root}/stat`) ?? '');
        boot = m?.[1] === undefined ? 0 : Number(m[1]) * 1000;
      }
      return boot;
    },
  };
}

/**
 * Field 22 of /proc/<pid>/stat: start time in clock ticks after boot. comm (field 2) may hold spaces
 * and parentheses, so fields are counted from the last ')'.
 */
export function startTimeFromStat(stat: string): number | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  // After ")" come fields 3.. separated by single spaces; field 22 is the 20th of them.
  const rest = stat.slice(close + 2).split(' ');
  const v = rest[19];
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}
