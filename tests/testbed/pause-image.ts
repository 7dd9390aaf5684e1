/**
 * A stopgap pause image for the real node until the image builder (tests/testbed/images.ts) offers
 * one: tests/fixtures/bin/pause.c compiled with `gcc -static`, written as a one-layer OCI image
 * layout tar that `ctr images import --index-name` takes. Cached next to the static programs.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { repoRoot } from './cluster.js';
import { mustExec } from './exec.js';
import { ensureStaticProgram, testbedCacheDir } from './rootfs.js';

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** The stopgap pause image's reference. */
export const PAUSE_IMAGE = 'localhost/pause:3.10';

/** An OCI layout tar holding the pause image (entrypoint /pause), and its reference. */
export async function pauseImage(): Promise<{ archive: string; ref: string }> {
  return { archive: await pauseImageTar(), ref: PAUSE_IMAGE };
}

async function pauseImageTar(): Promise<string> {
  const bin = await ensureStaticProgram(path.join(repoRoot, 'tests/fixtures/bin/pause.c'));
  const out = path.join(testbedCacheDir(), 'images', `pause-${path.basename(bin).replace(/^pause-/, '')}.oci.tar`);
  if (
    await fs.access(out).then(
      () => true,
      () => false,
    )
  )
    return out;
  const work = await fs.mkdtemp(path.join(testbedCacheDir(), 'pause-'));
  try {
    await fs.mkdir(path.join(work, 'root'));
    await fs.copyFile(bin, path.join(work, 'root', 'pause'));
    await fs.chmod(path.join(work, 'root', 'pause'), 0o755);
    const layerTar = path.join(work, 'layer.tar');
    await mustExec('tar', [
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--mtime=@0',
      '-C',
      path.join(work, 'root'),
      '-cf',
      layerTar,
      'pause',
    ]);
    const layer = await fs.readFile(layerTar);
    const blobs = path.join(work, 'layout', 'blobs', 'sha256');
    await fs.mkdir(blobs, { recursive: true });
    const put = async (data: Buffer | string): Promise<{ digest: string; size: number }> => {
      const digest = sha256(data);
      await fs.writeFile(path.join(blobs, digest), data);
      return { digest: `sha256:${digest}`, size: Buffer.byteLength(data) };
    };
    const l = await put(layer);
    const config = await put(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Entrypoint: ['/pause'], User: '65535:65535' },
        rootfs: { type: 'layers', diff_ids: [l.digest] },
      }),
    );
    const manifest = await put(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l }],
      }),
    );
    const layout = path.join(work, 'layout');
    await fs.writeFile(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await fs.writeFile(
      path.join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            ...manifest,
            platform: { architecture: 'amd64', os: 'linux' },
          },
        ],
      }),
    );
    const tmp = `${out}.tmp-${process.pid}`;
    await fs.mkdir(path.dirname(out), { recursive: true });
    await mustExec('tar', ['--owner=0', '--group=0', '--numeric-owner', '-C', layout, '-cf', tmp, '.']);
    await fs.rename(tmp, out);
    return out;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
