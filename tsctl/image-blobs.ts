// An image as the cluster stores it, read back for `image save` and `image push`: its config
// (a single-tar image from `image import` gets the config `docker import` would write, so it
// has one) and its layers, each a plain tar or the gzip blob a pull kept (shared/layer-object.ts).
// Each blob streams out of the object store and is hashed on the way: bytes that do not hash
// to the digest they are stored under (an edited store), or a kept blob that does not unpack
// to its diff_id, fail the stream, so nothing built from them is kept or sent.
import { createHash } from 'node:crypto';
import { Readable, Transform, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { StorageType, type NatsConnection, type ObjectStore } from 'nats';
import { api, CliError } from './client.js';
import { IMAGE_BUCKET } from '../shared/subjects.js';
import { controllerApi } from '../shared/api/controller.js';
import { configLayers, MAX_CONFIG_BYTES } from '../shared/image-config.js';
import { ociArch } from './registry/manifest.js';
import { liveInfo, objectKey } from './layer-put.js';
import { layerForm } from '../shared/layer-object.js';
import { layerWaitMs, objectWhenThere } from '../shared/nats/object-wait.js';
import { io } from './session.js';

export interface Blob { digest: string; size: number }
/** A layer by its diff_id; `size` is what is stored: the tar's, or the kept `gzip` blob's. */
export interface StoredLayer extends Blob { gzip?: { blob: string } }
export interface StoredImage { name: string; config: Buffer; configDigest: string; layers: StoredLayer[] }

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
  const layer = async (digest: string): Promise<StoredLayer> => {
    // a layer a warm pull is still putting (it answered first: tsctl/image-pull.ts) is waited for
    const info = await objectWhenThere(() => liveInfo(os, objectKey(digest)), layerWaitMs(io().env));
    if (!info) throw new CliError(`image ${img.name}: blob ${digest} is not in the cluster's store (was it removed?)`);
    const form = layerForm(info, digest);
    if (typeof form === 'string') throw new CliError(`image ${img.name}: layer ${digest} in the cluster's store: ${form}`);
    return { digest, size: info.size, ...(form.encoding === 'gzip' ? { gzip: { blob: form.blob } } : {}) };
  };
  if (!img.layers) {
    // one rootfs tar: the image's digest is the tar's
    const config = importedConfig(img.digest);
    return { name: img.name, config, configDigest: sha256(config), layers: [await layer(img.digest)] };
  }
  const config = await readBlob(os, img.digest, MAX_CONFIG_BYTES);
  const listed = configLayers(config);
  if (typeof listed === 'string') throw new CliError(`image ${img.name}: ${listed}`);
  const layers: StoredLayer[] = [];
  for (const d of listed) layers.push(await layer(d));
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

/**
 * A blob's bytes (a config, a layer's tar) as a stream that errors at its end unless they hash
 * to `digest`; a layer kept as its gzip blob is unpacked on the way, and it is the tar that
 * must hash to the diff_id (the one check of the claim the pull took on trust).
 */
export function blobStream(os: ObjectStore, digest: string): Readable {
  return checkedStream(os, digest, digest, true);
}

/** A layer's bytes as stored (its tar, or the gzip blob kept), checked against the digest of those bytes: what a push sends. */
export function storedStream(os: ObjectStore, l: StoredLayer): Readable {
  return checkedStream(os, l.digest, l.gzip?.blob ?? l.digest, false);
}

function checkedStream(os: ObjectStore, key: string, digest: string, unpack: boolean): Readable {
  const h = createHash('sha256');
  let unpacked = false;
  const check = new Transform({
    transform(c: Buffer, _e, cb) { h.update(c); cb(null, c); },
    flush(cb) {
      const got = `sha256:${h.digest('hex')}`;
      cb(got === digest ? null : new CliError(unpacked
        ? `layer ${digest} in the cluster's store unpacks to ${got}: refused (the registry it was pulled from sent a blob that does not match its config)`
        : `blob ${digest} in the cluster's store holds bytes with digest ${got}: refused (the store was edited)`));
    },
  });
  void (async () => {
    try {
      const info = await os.info(objectKey(key));
      const r = info ? await os.get(objectKey(key)) : null;
      if (!info || !r) throw new CliError(`blob ${key} is not in the cluster's store (was it removed?)`);
      const form = layerForm(info, key);
      let src: Readable = Readable.fromWeb(r.data as never);
      if (unpack && typeof form !== 'string' && form.encoding === 'gzip') {
        unpacked = true;
        const gz = createGunzip({ chunkSize: 256 << 10 });
        gz.once('error', (e: Error & { code?: string }) => { if (e.code?.startsWith('Z_')) e.message = `layer ${key}: its blob ${form.blob} is not valid gzip: ${e.message}`; });
        src = pipeline(src, gz, () => undefined);
      }
      src.on('error', (e) => check.destroy(e));
      src.pipe(check);
    } catch (err) {
      check.destroy(err as Error);
    }
  })();
  return check;
}

/** An image's Config as its stored config says it (one rootfs tar: none); empty where the store cannot be read. */
export async function imageConfigShown(nc: NatsConnection, img: { digest: string; layers?: string[] }): Promise<{ Config?: Record<string, unknown> }> {
  if (!img.layers) return {};
  try {
    const cfg = JSON.parse((await readBlob(await imageStore(nc), img.digest, MAX_CONFIG_BYTES)).toString('utf8')) as { config?: unknown };
    return typeof cfg.config === 'object' && cfg.config !== null && !Array.isArray(cfg.config) ? { Config: cfg.config as Record<string, unknown> } : {};
  } catch { return {}; }
}
