// One layer into the cluster's object store, verified as it streams and never whole in
// memory: the blob's bytes counted and hashed (when its digest is known: a registry's or an
// OCI layout's), gunzipped when compressed, then the tar hashed against the diff_id the
// image config lists; any refusal errors the stream, so the put purges its chunks and
// nothing partial stays. Used by `image pull` and `image load`.
import { createHash } from 'node:crypto';
import { Readable, Transform, pipeline, type Duplex } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { ObjectStore } from 'nats';

export const objectKey = (digest: string) => digest.replace(':', '-');
export const objectDigest = (d: string) => `sha256:${Buffer.from(d.replace(/^SHA-256=/, ''), 'base64url').toString('hex')}`;

export interface LayerSource {
  /** The compressed (or plain) blob as stored: its digest and size, when known. */
  blob?: { digest: string; size: number };
  gzip: boolean;
  diffId: string;
  /** How a refusal is reported (a RegistryError, a CliError naming the file). */
  fail: (message: string) => Error;
}

/** True when the store already holds `digest`'s bytes. */
export async function hasObject(os: ObjectStore, digest: string): Promise<boolean> {
  const have = await os.info(objectKey(digest));
  return !!have && objectDigest(have.digest) === digest;
}

export async function putLayer(os: ObjectStore, src: Readable, l: LayerSource): Promise<void> {
  const name = l.blob?.digest ?? l.diffId;
  const stages: Duplex[] = [];
  if (l.blob) {
    const { digest, size } = l.blob;
    const outer = createHash('sha256');
    let n = 0;
    stages.push(new Transform({
      transform(c: Buffer, _e, cb) {
        n += c.length;
        if (n > size) return cb(l.fail(`blob ${digest} is longer than the ${size} bytes its manifest says: refused`));
        outer.update(c);
        cb(null, c);
      },
      flush(cb) {
        if (n !== size) return cb(l.fail(`blob ${digest} ended after ${n} of ${size} bytes: refused`));
        const got = `sha256:${outer.digest('hex')}`;
        if (got !== digest) return cb(l.fail(`blob ${digest} arrived with digest ${got}: refused`));
        cb();
      },
    }));
  }
  let failure: Error | undefined;
  if (l.gzip) {
    const gz = createGunzip();
    // an upstream refusal reaches gunzip too: keep it as it is
    gz.on('error', (e) => { failure ??= (e as { code?: string }).code?.startsWith('Z_') ? l.fail(`layer ${name} is not valid gzip: ${e.message}`) : e; });
    stages.push(gz);
  }
  const inner = createHash('sha256');
  stages.push(new Transform({
    transform(c: Buffer, _e, cb) { inner.update(c); cb(null, c); },
    flush(cb) {
      const got = `sha256:${inner.digest('hex')}`;
      if (got !== l.diffId) return cb(l.fail(`layer ${name} unpacks to ${got}, not the ${l.diffId} its config lists: refused`));
      cb();
    },
  }));
  const last = (pipeline as unknown as (...a: unknown[]) => Duplex)(src, ...stages, (err: Error | null) => { if (err) failure ??= err; });
  try {
    await os.put({ name: objectKey(l.diffId), description: `layer ${l.diffId}${l.blob ? ` (blob ${l.blob.digest})` : ''}` }, Readable.toWeb(last) as ReadableStream<Uint8Array>);
  } catch (err) {
    throw failure ?? err;
  }
  if (failure) {
    await os.delete(objectKey(l.diffId)).catch(() => undefined);
    throw failure;
  }
}
