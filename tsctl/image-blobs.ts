// An image as the cluster stores it, read back for `image save` and `image push`: its config
// (a single-tar image from `image import` gets the config `docker import` would write, so it
// has one) and its layers as plain tars. Each blob streams out of the object store and is
// hashed on the way: bytes that do not hash to the digest they are stored under (an edited
// store) fail the stream, so nothing built from them is kept or sent.
import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { StorageType, type NatsConnection, type ObjectStore } from 'nats';
import { api, CliError } from './client.js';
import { IMAGE_BUCKET } from '../shared/subjects.js';
import { controllerApi } from '../shared/api/controller.js';
import { configLayers, MAX_CONFIG_BYTES } from '../shared/image-config.js';
import { ociArch } from './registry/manifest.js';
import { objectKey } from './layer-put.js';

export interface Blob { digest: string; size: number }
export interface StoredImage { name: string; config: Buffer; configDigest: string; layers: Blob[] }

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** The config of an image made from one rootfs tar: deterministic, so a save or push of it twice is the same image. */
export function importedConfig(diffId: string): Buffer {
  return Buffer.from(JSON.stringify({ architecture: ociArch(), os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diffId] }, history: [{ created_by: 'tsctl image import' }] }));
}

export async function imageStore(nc: NatsConnection): Promise<ObjectStore> {
  return nc.jetstream().views.os(IMAGE_BUCKET, { storage: StorageType.File });
}

/** Finds images by name (or digest prefix) in the cluster's view; one line for one that is not there. */
export async function lookupImages(nc: NatsConnection, names: string[]) {
  const list = await api(nc, controllerApi.imageLs, {});
  return names.map((n) => {
    const i = list.find((x) => x.name === n) ?? list.find((x) => x.digest === n);
    if (!i) throw new CliError(`no such image "${n}" (tsctl image ls lists them)`);
    return i;
  });
}

/** An image's config and layers as stored: the config read (bounded, checked), the layers' sizes. */
export async function storedImage(os: ObjectStore, img: { name: string; digest: string; layers?: string[] }): Promise<StoredImage> {
  const size = async (digest: string): Promise<number> => {
    const info = await os.info(objectKey(digest));
    if (!info) throw new CliError(`image ${img.name}: blob ${digest} is not in the cluster's store (was it removed?)`);
    return info.size;
  };
  if (!img.layers) {
    // one rootfs tar: the image's digest is the tar's
    const config = importedConfig(img.digest);
    return { name: img.name, config, configDigest: sha256(config), layers: [{ digest: img.digest, size: await size(img.digest) }] };
  }
  const config = await readBlob(os, img.digest, MAX_CONFIG_BYTES);
  const listed = configLayers(config);
  if (typeof listed === 'string') throw new CliError(`image ${img.name}: ${listed}`);
  const layers: Blob[] = [];
  for (const d of listed) layers.push({ digest: d, size: await size(d) });
  return { name: img.name, config, configDigest: img.digest, layers };
}

/** A small blob in memory, checked against its digest. */
export async function readBlob(os: ObjectStore, digest: string, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of blobStream(os, digest)) {
    n += (c as Buffer).length;
    if (n > max) throw new CliError(`blob ${digest} is larger than ${max} bytes: refused`);
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts);
}

/** A blob's bytes as a stream that errors at its end unless they hash to `digest`. */
export function blobStream(os: ObjectStore, digest: string): Readable {
  const h = createHash('sha256');
  const check = new Transform({
    transform(c: Buffer, _e, cb) { h.update(c); cb(null, c); },
    flush(cb) {
      const got = `sha256:${h.digest('hex')}`;
      cb(got === digest ? null : new CliError(`blob ${digest} in the cluster's store holds bytes with digest ${got}: refused (the store was edited)`));
    },
  });
  void (async () => {
    try {
      const r = await os.get(objectKey(digest));
      if (!r) throw new CliError(`blob ${digest} is not in the cluster's store (was it removed?)`);
      const src = Readable.fromWeb(r.data as never);
      src.on('error', (e) => check.destroy(e));
      src.pipe(check);
    } catch (err) {
      check.destroy(err as Error);
    }
  })();
  return check;
}
