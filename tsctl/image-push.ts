// `tsctl image push NAME [REF]`: an image of the cluster to a registry (OCI distribution API).
// Each blob the repository lacks is uploaded in one PUT from the object store, hashed on the
// way (an edited store fails the push before the manifest names it); then the OCI manifest
// goes under the tag. Layers go as stored: plain tars (their digests are the config's
// diff_ids), or the gzip blob a pull kept, as docker pushes what it pulled; either way a pull
// of the pushed image gives back the same image (its config, so its id and diff_ids).
import type { NatsConnection } from 'nats';
import { CliError } from './client.js';
import { parseReference, ReferenceError } from './registry/reference.js';
import { RegistryClient, RegistryError } from './registry/client.js';
import { MEDIA } from './registry/manifest.js';
import { imageStore, lookupImages, storedImage, storedStream } from './image-blobs.js';
import { ociManifest } from './image-save.js';
import { Readable } from 'node:stream';

export interface PushOptions { insecure?: boolean; username?: string; password?: string; progress?: (line: string) => void }
export interface PushResult { ref: string; digest: string; pushed: number; bytes: number; mounted: number }

export async function pushImage(nc: NatsConnection, name: string, target: string | undefined, o: PushOptions): Promise<PushResult> {
  let ref;
  try { ref = parseReference(target ?? name); } catch (err) { if (err instanceof ReferenceError) throw new CliError(err.message); throw err; }
  if (ref.digest) throw new CliError(`image push: push to a tag, not a digest ("${target ?? name}")`);
  if (ref.registry === 'docker.io' && !target && !name.includes('/')) {
    throw new CliError(`image push: "${name}" names no registry: give one (tsctl image push ${name} HOST:PORT/REPO:TAG)`);
  }
  const [found] = await lookupImages(nc, [name]);
  const os = await imageStore(nc);
  const img = await storedImage(os, found!);
  const reg = new RegistryClient(ref.endpoint, ref.repository, o);
  const from = mountSource(found!.source, ref);
  try {
    let pushed = 0, bytes = 0, mounted = 0;
    // what the registry gets for each layer: its bytes as stored, under their own digest
    const sent = img.layers.map((l) => ({ digest: l.gzip?.blob ?? l.digest, size: l.size, gzip: l.gzip, body: () => storedStream(os, l) }));
    for (const l of sent) {
      if (await reg.hasBlob(l.digest)) { o.progress?.(`${l.digest.slice(0, 19)}: already in ${ref.registry}`); continue; }
      if (from && await reg.mountBlob(l.digest, from, l.size, l.body)) {
        mounted++;
        o.progress?.(`${l.digest.slice(0, 19)}: mounted from ${from}`);
        continue;
      }
      if (!from) await reg.pushBlob(l.digest, l.size, l.body);
      pushed++; bytes += l.size;
      o.progress?.(`${l.digest.slice(0, 19)}: pushed ${(l.size / 1e6).toFixed(1)} MB`);
    }
    if (!(await reg.hasBlob(img.configDigest))) await reg.pushBlob(img.configDigest, img.config.length, () => Readable.from([img.config]));
    const digest = await reg.pushManifest(ref.tag!, ociManifest(img, sent), MEDIA.ociManifest);
    return { ref: `${ref.registry}/${ref.repository}:${ref.tag}`, digest, pushed, bytes, mounted };
  } catch (err) {
    if (err instanceof RegistryError) throw new CliError(err.message);
    throw err;
  }
}

/**
 * The repository of the same registry the image was pulled from, if another than the target's:
 * its layers are there, so the registry can link them instead of receiving them again, as
 * docker push does with the repositories it pulled a layer from.
 */
export function mountSource(source: string | undefined, target: { registry: string; repository: string }): string | undefined {
  if (!source) return undefined;
  try {
    const s = parseReference(source);
    return s.registry === target.registry && s.repository !== target.repository ? s.repository : undefined;
  } catch { return undefined; } // a file it was loaded from, not a reference
}
