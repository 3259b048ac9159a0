// `tsctl image save -o FILE NAME…`: the images as one tar that is both what `docker save`
// writes (manifest.json with Config, RepoTags, Layers; repositories) and an OCI image layout
// (oci-layout, index.json, a manifest per image), as docker 25 writes it: `docker load`,
// `skopeo copy docker-archive:` / `oci-archive:` and `tsctl image load` all read it. Blobs
// are plain tars named by digest (a layer a pull kept gzipped is unpacked and checked), each written once however many images share it. The file
// appears whole or not at all: built under a temp name, renamed at the end.
import { createWriteStream, mkdtempSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import type { NatsConnection } from 'nats';
import * as tar from 'tar';
import { CliError } from './client.js';
import { MEDIA } from './registry/manifest.js';
import { blobStream, imageStore, lookupImages, storedImage, type StoredImage } from './image-blobs.js';

const LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';

/**
 * The OCI manifest of a stored image, its layers as given: plain tars (each digest the layer's
 * diff_id) unless a layer is given as the gzip blob a pull kept. Pure.
 */
export function ociManifest(img: { config: Buffer; configDigest: string }, layers: { digest: string; size: number; gzip?: unknown }[]): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MEDIA.ociManifest,
    config: { mediaType: OCI_CONFIG, digest: img.configDigest, size: img.config.length },
    layers: layers.map((l) => ({ mediaType: l.gzip ? `${LAYER_TAR}+gzip` : LAYER_TAR, digest: l.digest, size: l.size })),
  }));
}

/** docker's tag of a cluster name: app → app:latest; host:5000/team/app:1 stays. Pure. */
export function repoTag(name: string): { repo: string; tag: string } {
  const slash = name.lastIndexOf('/'), colon = name.lastIndexOf(':');
  return colon > slash ? { repo: name.slice(0, colon), tag: name.slice(colon + 1) } : { repo: name, tag: 'latest' };
}

/** Writes the archive of `names` to `file` ('-': the stream `stdout`). */
export async function saveImages(nc: NatsConnection, names: string[], file: string, stdout?: NodeJS.WritableStream): Promise<void> {
  const found = await lookupImages(nc, names);
  const os = await imageStore(nc);
  const images: StoredImage[] = [];
  for (const i of found) images.push(await storedImage(os, i));
  const where = file === '-' ? tmpdir() : dirname(file);
  let work: string;
  // the temp dir beside the archive: the final rename stays on one filesystem
  try { work = mkdtempSync(join(where, '.tsctl-save-')); } catch (err) { throw new CliError(`image save: ${where}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`); }
  const tmp = `${work}.tar`;
  try {
    const blobs = join(work, 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    const written = new Set<string>();
    // the tars' sizes (a layer kept as its gzip blob is written unpacked: its tar's size is known once written)
    const sizes = new Map<string, number>();
    const put = (digest: string, bytes: Buffer) => { if (!written.has(digest)) { writeFileSync(join(blobs, digest.slice(7)), bytes); written.add(digest); } };
    const manifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
    const index: object[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    for (const img of images) {
      for (const l of img.layers) {
        if (written.has(l.digest)) continue;
        // every byte hashed on its way to the disk: an edited store fails the save here
        await pipeline(blobStream(os, l.digest), createWriteStream(join(blobs, l.digest.slice(7))));
        written.add(l.digest);
        sizes.set(l.digest, statSync(join(blobs, l.digest.slice(7))).size);
      }
      put(img.configDigest, img.config);
      const m = ociManifest(img, img.layers.map((l) => ({ digest: l.digest, size: sizes.get(l.digest)! })));
      const md = `sha256:${createHash('sha256').update(m).digest('hex')}`;
      put(md, m);
      const { repo, tag } = repoTag(img.name);
      manifest.push({ Config: `blobs/sha256/${img.configDigest.slice(7)}`, RepoTags: [`${repo}:${tag}`], Layers: img.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`) });
      (repositories[repo] ??= {})[tag] = img.layers[img.layers.length - 1]!.digest.slice(7);
      index.push({ mediaType: MEDIA.ociManifest, digest: md, size: m.length, annotations: { 'io.containerd.image.name': `${repo}:${tag}`, 'org.opencontainers.image.ref.name': tag } });
    }
    writeFileSync(join(work, 'manifest.json'), JSON.stringify(manifest));
    writeFileSync(join(work, 'repositories'), JSON.stringify(repositories));
    writeFileSync(join(work, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(join(work, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: index }));
    // portable: no owner names or host uids in the headers; the same images give the same bytes
    const entries = ['oci-layout', 'index.json', 'manifest.json', 'repositories', 'blobs'];
    if (file === '-') {
      await pipeline(tar.c({ cwd: work, portable: true, mtime: new Date(0) }, entries) as unknown as NodeJS.ReadableStream, stdout ?? process.stdout);
      return;
    }
    await tar.c({ cwd: work, portable: true, mtime: new Date(0), file: tmp }, entries);
    renameSync(tmp, file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code && e.path) throw new CliError(`image save: ${e.path}: ${e.code}`);
    throw err;
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(tmp, { force: true });
  }
}
