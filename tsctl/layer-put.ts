// One layer into the cluster's object store, verified as it streams and never whole in
// memory: the blob's bytes counted and hashed (when its digest is known: a registry's or an
// OCI layout's), gunzipped when compressed, then the tar hashed against the diff_id the
// image config lists (the object store's own digest of the stored bytes: hashed once,
// shared/nats/object-put.ts); any refusal comes before the object is visible, and its chunks are
// purged, so nothing partial stays. Used by `image pull`, `image load`, build and commit.
// `image pull` keeps a gzip layer it has no copy of as the blob itself (putCompressedLayer,
// shared/layer-object.ts): hashed once against the manifest, not unpacked.
import { createHash, type Hash } from 'node:crypto';
import { Transform, pipeline, type Duplex, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { NatsConnection, ObjectInfo, ObjectStore } from 'nats';
import { putObject } from '../shared/nats/object-put.js';
import { IMAGE_BUCKET } from '../shared/subjects.js';
import { gzipLayerMetadata, layerForm, objectDigest } from '../shared/layer-object.js';

export const objectKey = (digest: string) => digest.replace(':', '-');

export interface LayerSource {
  /** The compressed (or plain) blob as stored: its digest and size, when known. */
  blob?: { digest: string; size: number };
  gzip: boolean;
  diffId: string;
  /** How a refusal is reported (a RegistryError, a CliError naming the file). */
  fail: (message: string) => Error;
  /** The blob's first bytes came earlier (a resumed pull): their hash and count; `src` is the rest. */
  resume?: { hash: Hash; bytes: number };
  /** Told the chunk id of the put before its first chunk (a resumable pull records it). */
  onChunks?: (id: string) => void;
}

/**
 * An object's info, or null when there is none or only the marker a delete leaves: nats.js's
 * info returns that marker (no bytes, no digest), and a pull that took it for a copy already
 * there put a layer again as a gunzipped, twice-hashed tar instead of the registry's blob.
 */
export async function liveInfo(os: ObjectStore, key: string): Promise<ObjectInfo | null> {
  const i = await os.info(key);
  return i && !i.deleted ? i : null;
}

/** True when the store already holds `digest`'s bytes (a layer as its verified tar, a config). */
export async function hasObject(os: ObjectStore, digest: string): Promise<boolean> {
  const have = await liveInfo(os, objectKey(digest));
  return !!have && objectDigest(have.digest) === digest;
}

/** gzip's ID1, ID2 and CM (deflate): RFC 1952. */
export const GZIP_MAGIC = [0x1f, 0x8b, 0x08];

/**
 * A compressed layer blob kept as it is, under its diff_id: its bytes counted against the
 * manifest's size as they come (a longer body is refused at once) and hashed once, by the put,
 * against the blob's digest before the object is visible. The diff_id is not checked here
 * (shared/layer-object.ts says where it is).
 */
export async function putCompressedLayer(to: LayerStore, src: AsyncIterable<Uint8Array>, l: { blob: { digest: string; size: number }; diffId: string; fail: (message: string) => Error; onChunks?: (id: string) => void }): Promise<void> {
  const { digest, size } = l.blob;
  let n = 0;
  const head: number[] = [];
  async function* bounded(): AsyncGenerator<Uint8Array> {
    for await (const c of src) {
      // the gzip magic, checked as it comes (cheap): junk is refused by the pull, not later by a node
      for (let i = 0; head.length < 3 && i < c.length; i++) {
        head.push(c[i]);
        if (head[head.length - 1] !== GZIP_MAGIC[head.length - 1]) throw l.fail(`layer ${l.diffId} is not valid gzip: incorrect header check`);
      }
      n += c.length;
      if (n > size) throw l.fail(`blob ${digest} is longer than the ${size} bytes its manifest says: refused`);
      yield c;
    }
  }
  await putObject(to.nc, IMAGE_BUCKET, { name: objectKey(l.diffId), description: `layer ${l.diffId} (blob ${digest}, gzip)`, metadata: gzipLayerMetadata(digest) }, bounded(), {
    check: (got) => (n !== size ? l.fail(`blob ${digest} ended after ${n} of ${size} bytes: refused`) : got !== digest ? l.fail(`blob ${digest} arrived with digest ${got}: refused`) : undefined),
    store: to.os,
    ...(l.onChunks ? { onChunks: l.onChunks } : {}),
  });
}

/** Where layers go: the cluster's image bucket, and the connection its chunks are published on. */
export interface LayerStore { nc: NatsConnection; os: ObjectStore }

export async function putLayer(to: LayerStore, src: Readable, l: LayerSource): Promise<void> {
  const name = l.blob?.digest ?? l.diffId;
  const stages: Duplex[] = [];
  if (l.blob) stages.push(blobCheck(l.blob, l.fail, l.resume));
  let failure: Error | undefined;
  if (l.gzip) {
    // large output chunks: each is a piece putObject copies, fewer is cheaper
    const gz = createGunzip({ chunkSize: 256 << 10 });
    // an upstream refusal reaches gunzip too: keep it as it is
    gz.on('error', (e) => { failure ??= (e as { code?: string }).code?.startsWith('Z_') ? l.fail(`layer ${name} is not valid gzip: ${e.message}`) : e; });
    stages.push(gz);
  }
  const last = stages.length
    ? (pipeline as unknown as (...a: unknown[]) => Duplex)(src, ...stages, (err: Error | null) => { if (err) failure ??= err; })
    : src;
  if (!stages.length) src.on('error', (e) => { failure ??= e; });
  try {
    // the stored bytes' digest is the tar's: checked before the object becomes visible
    await putObject(to.nc, IMAGE_BUCKET, { name: objectKey(l.diffId), description: `layer ${l.diffId}${l.blob ? ` (blob ${l.blob.digest})` : ''}` }, last, {
      check: (got) => (failure ? failure : got !== l.diffId ? l.fail(`layer ${name} unpacks to ${got}, not the ${l.diffId} its config lists: refused`) : undefined),
      store: to.os,
      ...(l.onChunks ? { onChunks: l.onChunks } : {}),
    });
  } catch (err) {
    last.destroy();
    throw failure ?? err;
  }
}

/**
 * Counts and hashes a blob's bytes against its descriptor. `resume` is the hash of the
 * bytes already verified by an interrupted pull (the rest of the blob follows them).
 */
function blobCheck(blob: { digest: string; size: number }, fail: (m: string) => Error, resume?: { hash: Hash; bytes: number }): Transform {
  const { digest, size } = blob;
  const outer = resume?.hash ?? createHash('sha256');
  let n = resume?.bytes ?? 0;
  return new Transform({
    transform(c: Buffer, _e, cb) {
      n += c.length;
      if (n > size) return cb(fail(`blob ${digest} is longer than the ${size} bytes its manifest says: refused`));
      outer.update(c);
      cb(null, c);
    },
    flush(cb) {
      if (n !== size) return cb(fail(`blob ${digest} ended after ${n} of ${size} bytes: refused`));
      const got = `sha256:${outer.digest('hex')}`;
      if (got !== digest) return cb(fail(`blob ${digest} arrived with digest ${got}: refused`));
      cb();
    },
  });
}
