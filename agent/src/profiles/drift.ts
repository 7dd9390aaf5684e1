/**
 * Drift repair: watches the operator directory and restores a rendered file that someone edits or
 * deletes (usually within tens of milliseconds). The writer's compare-before-write makes our own
 * writes no-ops when they come back as events. inotify does not always report a change of mode or
 * owner alone, so every profile is also re-checked on a slow period.
 */
import { basename, dirname, relative, sep } from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import type { Logger } from 'pino';
import { messageOf } from '../../../shared/errors.js';
import type { Reconciler } from './reconciler.js';

export class DriftGuard {
  readonly #watcher: FSWatcher;
  readonly #timer: NodeJS.Timeout;

  constructor(operatorDir: string, reconciler: Reconciler, keys: () => string[], log: Logger, recheckMs = 30_000) {
    // One queued repair per profile at most: a re-check period shorter than a round over every
    // profile (thousands of them, a busy node) would otherwise queue rounds without bound.
    // A change seen while its repair is queued or running gets one more repair after it (that one
    // may have read the file before the change).
    const pending = new Set<string>();
    const again = new Set<string>();
    const repair = (key: string): void => {
      if (pending.has(key)) {
        again.add(key);
        return;
      }
      pending.add(key);
      reconciler
        .repair(key)
        .catch((e: unknown) => log.error({ profile: key, err: messageOf(e) }, 'drift repair failed'))
        .finally(() => {
          pending.delete(key);
          if (again.delete(key)) repair(key);
        });
    };
    // write-file-atomic's temp files (`<name>.json.<number>`) come and go with every write we
    // make; following them only cost each write a few more stats.
    this.#watcher = chokidar.watch(operatorDir, { ignoreInitial: true, depth: 2, ignored: /\.json\.\d+$/ });
    this.#watcher.on('all', (event, path) => {
      const rel = relative(operatorDir, path);
      if (rel === '' || rel.startsWith('..')) return;
      const parts = rel.split(sep);
      if (parts.length === 1 && path.endsWith('.json') && event !== 'addDir' && event !== 'unlinkDir') {
        // operator/<name>.json: a cluster-scoped profile's file (key <name>)
        repair(basename(path, '.json'));
        return;
      }
      if (event === 'unlinkDir' || (parts.length === 1 && event !== 'addDir')) {
        // a whole namespace directory (or the tree) went away: check every profile in it
        for (const key of keys()) if (key.startsWith(`${parts[0] ?? ''}/`)) repair(key);
        return;
      }
      if (parts.length !== 2 || !path.endsWith('.json')) return;
      repair(`${basename(dirname(path))}/${basename(path, '.json')}`);
    });
    this.#watcher.on('error', (e: unknown) =>
      log.error({ err: messageOf(e) }, 'watching the operator directory failed'),
    );
    this.#timer = setInterval(() => {
      for (const key of keys()) repair(key);
    }, recheckMs);
    this.#timer.unref();
  }

  /** Resolves once the watcher has scanned the directory and will report changes. */
  ready(): Promise<void> {
    return new Promise((res) => this.#watcher.once('ready', () => res()));
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#watcher.close();
  }
}
