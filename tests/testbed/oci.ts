/**
 * Reading OCI image archives back (the layouts BuildKit writes): the index, manifest and config,
 * and the root file system unpacked layer by layer. Used by the images' tests and by images.ts for
 * the digests it reports.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { mustExec } from './exec.js';

/** The parts of an OCI image config the tests read. */
export interface OciImageConfig {
  readonly architecture: string;
  readonly os: string;
  readonly config: {
    readonly User?: string;
    readonly Entrypoint?: readonly string[] | null;
    readonly Cmd?: readonly string[] | null;
    readonly Env?: readonly string[];
    readonly WorkingDir?: string;
    readonly ExposedPorts?: Readonly<Record<string, unknown>>;
    readonly StopSignal?: string;
  };
  readonly rootfs: { readonly type: string; readonly diff_ids: readonly string[] };
}

/** An image read back from its OCI layout (tar or directory). */
export interface OciImage {
  readonly manifestDigest: string;
  /** `io.containerd.image.name` of the index entry, when BuildKit wrote one. */
  readonly name: string | undefined;
  readonly config: OciImageConfig;
  /** Layer digests and media types, bottom first. */
  readonly layers: readonly { readonly digest: string; readonly mediaType: string }[];
}

interface Descriptor {
  mediaType: string;
  digest: string;
  annotations?: Record<string, string>;
}

async function readMember(layout: string, member: string): Promise<Buffer> {
  if ((await fs.stat(layout)).isDirectory()) return fs.readFile(path.join(layout, member));
  const r = spawnSync('tar', ['-xOf', layout, member], { maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`images: ${member} not in ${layout}: ${r.stderr.toString()}`);
  return r.stdout;
}

const blob = (digest: string): string => `blobs/${digest.replace(':', '/')}`;

/** Reads index.json, the one manifest and its config from an OCI layout (tar or directory). */
export async function readOciImage(layout: string): Promise<OciImage> {
  const index = JSON.parse((await readMember(layout, 'index.json')).toString()) as { manifests: Descriptor[] };
  if (index.manifests.length !== 1 || !index.manifests[0]) {
    throw new Error(`images: ${layout} holds ${index.manifests.length} manifests, not one`);
  }
  const desc = index.manifests[0];
  const manifest = JSON.parse((await readMember(layout, blob(desc.digest))).toString()) as {
    config: Descriptor;
    layers: Descriptor[];
  };
  const config = JSON.parse((await readMember(layout, blob(manifest.config.digest))).toString()) as OciImageConfig;
  return {
    manifestDigest: desc.digest,
    name: desc.annotations?.['io.containerd.image.name'],
    config,
    layers: manifest.layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType })),
  };
}

/**
 * Unpacks an image's layers, bottom first, into `dest` (a new directory), as a runtime would:
 * whiteouts (`.wh.<name>`, `.wh..wh..opq`) remove what lower layers had. For tests that run an
 * image's root file system with runc.
 */
export async function unpackOciImage(layout: string, dest: string): Promise<void> {
  const img = await readOciImage(layout);
  await fs.mkdir(dest, { recursive: true });
  await fs.chmod(dest, 0o755);
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'seccomp-agent-unpack-'));
  try {
    for (const l of img.layers) {
      let file: string;
      if ((await fs.stat(layout)).isDirectory()) file = path.join(layout, blob(l.digest));
      else {
        file = path.join(work, 'layer');
        await mustExec('tar', ['-xf', layout, '-C', work, blob(l.digest)]);
        await fs.rename(path.join(work, blob(l.digest)), file);
      }
      const gz = l.mediaType.endsWith('+gzip') || l.mediaType.endsWith('.gzip');
      const list = await mustExec('tar', [gz ? '-tzf' : '-tf', file]);
      for (const entry of list.stdout.split('\n')) {
        const base = path.posix.basename(entry.replace(/\/$/, ''));
        const dir = path.posix.dirname(entry.replace(/\/$/, ''));
        if (base === '.wh..wh..opq') {
          const d = path.join(dest, dir);
          for (const n of await fs.readdir(d).catch(() => [] as string[])) {
            await fs.rm(path.join(d, n), { recursive: true, force: true });
          }
        } else if (base.startsWith('.wh.')) {
          await fs.rm(path.join(dest, dir, base.slice(4)), { recursive: true, force: true });
        }
      }
      await mustExec(
        'tar',
        [gz ? '-xzf' : '-xf', file, '-C', dest, '--numeric-owner', '--same-permissions', '--exclude=*.wh.*'],
        { timeoutMs: 300_000 },
      );
      if (!(await fs.stat(layout)).isDirectory()) await fs.rm(file, { force: true });
    }
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
