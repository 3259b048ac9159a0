// Image verbs: import (after tsctl put the blobs in the object store: one rootfs tar, or
// a pulled/loaded image's config and layers), ls, rm.
import { subjects } from '../../shared/subjects.js';
import { DIGEST_RE, IMAGE_NAME_RE } from '../../shared/ids.js';
import { controllerApi as api, type PendingLayer } from '../../shared/api/controller.js';
import { conflict, invalid, notFound } from '../../shared/rpc.js';
import { bind, type Bound } from '../../shared/nats/rpc.js';
import { own } from '../../shared/reducer.js';
import { configLayers, MAX_CONFIG_BYTES } from '../../shared/image-config.js';
import { layerForm, objectDigest } from '../../shared/layer-object.js';
import { checked, nonEmpty, userOf, type ApiContext } from './context.js';
import type { ClusterView } from '../../shared/reducer.js';
import { BlobHolds, HoldLimitError } from '../blob-holds.js';

/** The object store's key of a blob (a layer tar or an image config): its digest with ':' replaced. */
export const layerKey = (digest: string) => digest.replace(':', '-');

/**
 * Checks that the blob `digest` is in the object store with those bytes, or a layer as the
 * compressed blob a pull kept (shared/layer-object.ts: its diff_id is checked where it is
 * unpacked); returns the size stored.
 */
async function stored(ctx: ApiContext, digest: string, what: string): Promise<number> {
  const info = await ctx.images.info(layerKey(digest));
  // an image rm's delete leaves a marker: the blob is gone, not wrong
  if (!info || info.deleted) throw notFound(`${what} ${digest} was not uploaded (tsctl image import/pull/load uploads it first)`);
  const ok = what === 'layer' ? typeof layerForm(info, digest) !== 'string' : objectDigest(info.digest) === digest;
  if (!ok) {
    const got = objectDigest(info.digest) ?? 'an unknown digest';
    throw invalid(`uploaded ${what} does not match ${digest} (got ${got.slice(0, 19)}…): upload again`);
  }
  return info.size;
}

/**
 * The layers a pull verified and is still putting into the object store (tsctl/image-pull.ts
 * answers first and fills after): digest → its blob's size. Not checked here (not there
 * yet): an agent waits for each object and hashes it against its digest when it unpacks it,
 * as it does every layer; what the config lists is still checked against the layers.
 */
function pendingLayers(p: PendingLayer[] | undefined, layers: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const { layer, size } of p ?? []) {
    if (!layers.includes(layer)) throw invalid(`pending layer "${layer}" is not one of the image's layers`);
    if (!Number.isSafeInteger(size)) throw invalid(`pending layer ${layer}: its size is not a whole number of bytes`);
    out.set(layer, size);
  }
  return out;
}

/**
 * Every blob something still uses: each image's config and layers, and each container's (a
 * container keeps the digest and layers its image had when it was made: image rm -f leaves it
 * runnable, and its node, or the next one it is placed on, fetches them from the store).
 */
export function blobsInUse(view: ClusterView): Set<string> {
  const used = new Set<string>();
  for (const i of Object.values(view.images)) for (const b of [i.digest, ...(i.layers ?? [])]) used.add(b);
  for (const c of Object.values(view.containers)) for (const b of [c.spec.imageDigest, ...(c.spec.layers ?? [])]) if (b) used.add(b);
  return used;
}

/** Whether anything uses `blob`: the images first (few), the containers only when no image does. */
function inUse(view: ClusterView, blob: string): boolean {
  for (const i of Object.values(view.images)) if (i.digest === blob || i.layers?.includes(blob)) return true;
  for (const c of Object.values(view.containers)) if (c.spec.imageDigest === blob || c.spec.layers?.includes(blob)) return true;
  return false;
}

/** How long a blob no one uses is left before image.gc takes it: a pull or load puts its layers before it records the image. */
export const GC_GRACE_MS = 3600_000;
const BLOB_KEY_RE = /^sha256-[0-9a-f]{64}$/;

/** How long an image.hold lasts unless its import or a release ends it first: a pull's time from its look at the store to its import. */
export const HOLD_MS = GC_GRACE_MS;
// per context (a controller's, a test's): its holds die with it, as the controller's do
const holdsOf = new WeakMap<ApiContext, BlobHolds>();
function holds(ctx: ApiContext): BlobHolds {
  let h = holdsOf.get(ctx);
  if (!h) holdsOf.set(ctx, h = new BlobHolds(HOLD_MS));
  return h;
}

/**
 * Removes the blobs nothing uses that were put more than `graceMs` ago: what a fill killed
 * between its put and its word to the controller left (image.fill), what a pull or load killed
 * between its puts and its import left, a container's layers after the last user went. Runs as
 * a mutation (serialised): no import's check that a blob is stored interleaves with it.
 */
export async function collectBlobs(ctx: ApiContext, graceMs = GC_GRACE_MS): Promise<{ digest: string; size: number }[]> {
  if (!ctx.images.list) return [];
  const used = blobsInUse(ctx.view());
  const held = holds(ctx);
  const removed: { digest: string; size: number }[] = [];
  const objects = await ctx.images.list();
  // read after the list: a blob put while it was read is not older than a grace of 0
  const now = Date.now();
  for (const o of objects) {
    // only blobs keyed by their digest are the image store's own; anything else is left alone
    if (!BLOB_KEY_RE.test(o.name)) continue;
    const digest = o.name.replace('-', ':');
    const at = Date.parse(o.mtime);
    if (used.has(digest) || held.has(digest, now) || !(now - at >= graceMs)) continue;
    await ctx.images.delete(o.name);
    removed.push({ digest, size: o.size });
  }
  return removed;
}

export function imageVerbs(ctx: ApiContext): Bound[] {
  return [
    bind(api.imageImport, async (r) => {
      const name = nonEmpty(r.name, 'name');
      if (!IMAGE_NAME_RE.test(name)) throw invalid(`invalid image name "${name}": letters, digits, _ . - or a reference like host:5000/team/app:1`);
      const digest = nonEmpty(r.digest, 'digest');
      if (!DIGEST_RE.test(digest)) throw invalid(`invalid digest "${digest}"`);
      let size = 0;
      let layers: string[] | undefined;
      if (r.layers) {
        layers = r.layers;
        if (!layers.length) throw invalid('an image needs at least one layer');
        for (const l of layers) if (!DIGEST_RE.test(l)) throw invalid(`invalid layer digest "${l}"`);
        const pending = pendingLayers(r.pending, layers);
        // every check at once: each is a round trip to the object store, and a pull waits on them
        const checks = Promise.allSettled([...new Set(layers)].map((l) => (pending.has(l) ? Promise.resolve(pending.get(l)!) : stored(ctx, l, 'layer'))));
        try {
          await stored(ctx, digest, 'image config');
          // the config is the image's identity: its layer list is the one the image runs on
          const bytes = ctx.images.read ? await ctx.images.read(layerKey(digest), MAX_CONFIG_BYTES) : null;
          if (bytes) {
            const listed = configLayers(bytes);
            if (typeof listed === 'string') throw invalid(`image ${digest}: ${listed}`);
            if (listed.join() !== layers.join()) throw invalid(`image ${digest}: its config lists ${listed.length} layer(s), not the ${layers.length} given`);
          }
        } finally {
          await checks;
        }
        // the first layer in the image's order that failed is the one reported, as before
        for (const r of await checks) {
          if (r.status === 'rejected') throw r.reason;
          size += r.value;
        }
      } else {
        size = await stored(ctx, digest, 'layer');
      }
      const data = checked('ImageImported', {
        name, digest, size, user: userOf(r), ...(layers ? { layers } : {}), ...(r.source ? { source: r.source } : {}),
      });
      const { seq } = await ctx.append(subjects.image(digest.slice(7)), 'ImageImported', digest.slice(7), data);
      await ctx.waitFor(seq);
      // its blobs are the image's now: in use as long as it is
      if (r.hold) holds(ctx).release(r.hold);
      return { name, digest };
    }),
    bind(api.imageLs, () => Object.values(ctx.view().images).sort((a, b) => a.name.localeCompare(b.name))),
    bind(api.imageRm, async (r) => {
      const name = nonEmpty(r.name, 'name');
      const img = own(ctx.view().images, name);
      if (!img) throw notFound(`no such image "${name}" (tsctl image ls lists them)`);
      const users = Object.values(ctx.view().containers).filter((c) => c.spec.image === name);
      if (users.length && r.force !== true) throw conflict(`image "${name}" is used by container ${users[0].name}: remove it first or use image rm -f`);
      const { seq } = await ctx.append(subjects.image(img.digest.slice(7)), 'ImageRemoved', img.digest.slice(7), { name, digest: img.digest, user: userOf(r) });
      await ctx.waitFor(seq);
      // a blob leaves the store only when no image or container left has it (layers are shared).
      // A layer a fill has not put yet is not there to delete: the fill asks image.fill after its
      // put, which runs after this (serialised), and removes it then
      // One a pull or load holds (image.hold) stays: it found it in the store and will name it.
      const still = blobsInUse(ctx.view());
      for (const b of new Set([img.digest, ...(img.layers ?? [])])) {
        if (!still.has(b) && !holds(ctx).has(b, Date.now())) await ctx.images.delete(layerKey(b)).catch(() => undefined);
      }
      return { name };
    }),
    bind(api.imageFill, async (r) => {
      const layer = nonEmpty(r.layer, 'layer');
      if (!DIGEST_RE.test(layer)) throw invalid(`invalid layer digest "${layer}"`);
      if (inUse(ctx.view(), layer) || holds(ctx).has(layer, Date.now())) return { wanted: true };
      // put for an image removed meanwhile: nothing will ever name it, so it goes now (an rm that
      // ran before the put found nothing to delete; one that runs after this finds it gone)
      if (r.done === true) {
        const info = await ctx.images.info(layerKey(layer));
        if (info && !info.deleted) await ctx.images.delete(layerKey(layer));
      }
      return { wanted: false };
    }),
    bind(api.imageGc, async (r) => ({ removed: await collectBlobs(ctx, r.graceMs ?? GC_GRACE_MS) })),
    // serialised with rm, fill and gc: a blob they did not delete before this answers is safe until the import
    bind(api.imageHold, async (r) => {
      if (r.release) holds(ctx).release(r.release);
      if (!r.blobs) return {};
      for (const b of r.blobs) if (!DIGEST_RE.test(b)) throw invalid(`invalid blob digest "${b}"`);
      try {
        return { hold: holds(ctx).hold(r.blobs, Date.now()) };
      } catch (err) {
        if (err instanceof HoldLimitError) throw conflict(err.message);
        throw err;
      }
    }),
  ];
}
