/**
 * Opens the audit log for the tailer, refusing what must not be read as one:
 *
 * - Not a regular file (a FIFO, a socket, a device, a directory): a FIFO would block the open
 *   until a writer comes and then fail every positioned read (ESPIPE); a device never ends.
 *   Checked with lstat before opening, and the open is O_NONBLOCK, so nothing blocks even if the
 *   path is swapped between the two; fstat after opening decides.
 * - A symlink whose target is outside the link's own directory: a link at the audit path could
 *   otherwise make the agent read (and log pieces of) any file, /etc/shadow say. A link inside
 *   the directory (audit.log -> audit.log.0) is followed, and the target is named in the log.
 *   A file elsewhere is read only when named directly with --audit-log.
 *
 * Refusals are not fatal: the tailer keeps looking, and opens the path once it is acceptable.
 */
import { constants } from 'node:fs';
import { dirname } from 'node:path';
import { isErrnoException } from '../../../shared/errors.js';
import type { EventsFs, FileHandle, Stats } from './fs.js';

export type OpenLogOutcome =
  | {
      readonly kind: 'opened';
      readonly fh: FileHandle;
      readonly st: Stats;
      /** The symlink's target when the path is a link inside its directory. */
      readonly via?: string;
    }
  | { readonly kind: 'missing' }
  | { readonly kind: 'refused'; readonly reason: string };

/** What a non-regular file is, in words. */
export function fileKind(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symlink';
  return 'not a regular file';
}

const isMissing = (e: unknown): boolean => isErrnoException(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR');

/** Opens `path` for reading if it is a regular file (or a link to one beside it). */
export async function openLog(fs: EventsFs, path: string): Promise<OpenLogOutcome> {
  let lst: Stats;
  try {
    lst = await fs.lstat(path);
  } catch (e: unknown) {
    if (isMissing(e)) return { kind: 'missing' };
    throw e;
  }
  let target = path;
  let via: string | undefined;
  if (lst.isSymbolicLink()) {
    let real: string;
    let dir: string;
    try {
      real = await fs.realpath(path);
      dir = await fs.realpath(dirname(path));
    } catch (e: unknown) {
      if (isMissing(e)) return { kind: 'refused', reason: `${path} is a symlink to a file that does not exist` };
      throw e;
    }
    if (dirname(real) !== dir) {
      return {
        kind: 'refused',
        reason:
          `${path} is a symlink to ${real}, outside ${dir}; not following it (a link at the audit path ` +
          `could expose any file). Give --audit-log ${real} if that file really is the audit log`,
      };
    }
    target = real;
    via = real;
  } else if (!lst.isFile()) {
    return { kind: 'refused', reason: `${path} is ${fileKind(lst)}, not a regular file; the audit log must be one` };
  }
  let fh: FileHandle;
  try {
    fh = await fs.open(target, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (e: unknown) {
    if (isMissing(e)) return { kind: 'missing' };
    if (isErrnoException(e) && e.code === 'ELOOP')
      return { kind: 'refused', reason: `${target} became a symlink while being opened` };
    throw e;
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close().catch(() => {});
    return { kind: 'refused', reason: `${path} is ${fileKind(st)}, not a regular file; the audit log must be one` };
  }
  return via === undefined ? { kind: 'opened', fh, st } : { kind: 'opened', fh, st, via };
}
