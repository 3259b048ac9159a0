// `tsctl image pull`: the registry's manifest (an index picks this platform), then the
// config and every layer the cluster lacks streamed into its object store, each verified
// as it streams (the blob's digest, then the uncompressed tar's against the config's
// diff_ids), never a whole layer in memory; the controller then records ImageImported with
// the config's digest and the layers. Agents fetch from the object store the layers they lack.
import { Readable } from 'node:stream';
import { StorageType, type NatsConnection, type ObjectStore } from 'nats';
import { api, CliError } from './client.js';
import { IMAGE_BUCKET } from '../shared/subjects.js';
import { controllerApi } from '../shared/api/controller.js';
import { configLayers, MAX_CONFIG_BYTES } from '../shared/image-config.js';
import { parseReference, ReferenceError } from './registry/reference.js';
import { RegistryClient, RegistryError } from './registry/client.js';
import { parseManifest, choosePlatform, layerCompression, ociArch, type Descriptor, type Manifest } from './registry/manifest.js';
import { putLayer, hasObject, objectKey } from './layer-put.js';

export interface PullOptions {
  name?: string;
  insecure?: boolean;
  username?: string;
  password?: string;
  user: string;
  /** One line per layer as it completes (a terminal shows it). */
  progress?: (line: string) => void;
  /** Layers fetched at the same time. */
  parallel?: number;
}

export interface PullResult { name: string; digest: string; layers: string[]; fetched: number; bytes: number }


export async function pullImage(nc: NatsConnection, refText: string, o: PullOptions): Promise<PullResult> {
  let ref;
  try { ref = parseReference(refText); } catch (err) { if (err instanceof ReferenceError) throw new CliError(err.message); throw err; }
  const reg = new RegistryClient(ref.endpoint, ref.repository, o);
  try {
    const image = await resolve(reg, ref.reference);
    const configBytes = await reg.blobBytes(image.config.digest, MAX_CONFIG_BYTES);
    const diffIds = configLayers(configBytes);
    if (typeof diffIds === 'string') throw new RegistryError(reg.host, `config ${image.config.digest}: ${diffIds}`);
    if (diffIds.length !== image.layers.length) throw new RegistryError(reg.host, `the manifest has ${image.layers.length} layer(s) but its config lists ${diffIds.length}: refused`);
    for (const l of image.layers) {
      const c = layerCompression(l.mediaType);
      if (c !== 'none' && c !== 'gzip') throw new RegistryError(reg.host, `layer ${l.digest}: ${c}`);
    }
    const js = nc.jetstream();
    const os = await js.views.os(IMAGE_BUCKET, { storage: StorageType.File });
    let fetched = 0, bytes = 0;
    // each distinct layer once, a few at a time; every transfer settles before the verdict
    // (an abandoned put would leave chunks in the store)
    const todo = [...new Map(image.layers.map((l, i) => [diffIds[i], l])).entries()];
    const failures: Error[] = [];
    const workers = Array.from({ length: Math.min(o.parallel ?? 3, todo.length) }, async () => {
      for (let job = todo.shift(); job; job = todo.shift()) {
        const [diffId, desc] = job;
        if (failures.length) return;
        try {
          const got = await fetchLayer(os, reg, desc, diffId);
          if (got) { fetched++; bytes += desc.size; }
          o.progress?.(`${desc.digest.slice(0, 19)}: ${got ? `pulled ${(desc.size / 1e6).toFixed(1)} MB` : 'already in the cluster'}`);
        } catch (err) {
          failures.push(err as Error);
        }
      }
    });
    await Promise.all(workers);
    if (failures.length) throw failures[0];
    if (!(await hasObject(os, image.config.digest))) {
      await os.putBlob({ name: objectKey(image.config.digest), description: `image config ${image.config.digest}` }, configBytes);
    }
    const name = o.name ?? ref.name;
    await api(nc, controllerApi.imageImport, { name, digest: image.config.digest, layers: diffIds, source: refText, user: o.user });
    return { name, digest: image.config.digest, layers: diffIds, fetched, bytes };
  } catch (err) {
    if (err instanceof RegistryError) throw new CliError(err.message);
    throw err;
  }
}

/** The image manifest for this host: a tag's manifest, or the platform's entry of an index. */
async function resolve(reg: RegistryClient, reference: string): Promise<Extract<Manifest, { kind: 'image' }>> {
  const top = await reg.manifest(reference);
  const m = parseManifest(top.bytes, top.mediaType);
  if (typeof m === 'string') throw new RegistryError(reg.host, `manifest ${reg.repository}:${reference}: ${m}`);
  if (m.kind === 'image') return m;
  const arch = ociArch();
  const pick = choosePlatform(m.manifests, 'linux', arch);
  if (!pick) {
    const have = m.manifests.map((d) => `${d.platform?.os ?? '?'}/${d.platform?.architecture ?? '?'}`).join(', ');
    throw new RegistryError(reg.host, `${reg.repository}:${reference} has no linux/${arch} image (it has ${have || 'none'})`);
  }
  const child = await reg.manifest(pick.digest);
  const c = parseManifest(child.bytes, child.mediaType);
  if (typeof c === 'string') throw new RegistryError(reg.host, `manifest ${pick.digest}: ${c}`);
  if (c.kind !== 'image') throw new RegistryError(reg.host, `manifest ${pick.digest} is an index inside an index: refused`);
  return c;
}

/** Streams one layer blob into the object store (layer-put.ts); false when the store has it. */
async function fetchLayer(os: ObjectStore, reg: RegistryClient, desc: Descriptor, diffId: string): Promise<boolean> {
  if (await hasObject(os, diffId)) return false;
  const res = await reg.blob(desc.digest);
  if (!res.body) throw new RegistryError(reg.host, `blob ${desc.digest}: the reply has no body`);
  await putLayer(os, Readable.fromWeb(res.body as never), {
    blob: { digest: desc.digest, size: desc.size }, gzip: layerCompression(desc.mediaType) === 'gzip', diffId,
    fail: (m) => new RegistryError(reg.host, m),
  });
  return true;
}
