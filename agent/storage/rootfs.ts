// The storage side of the container lifecycle (host/ports.ts StoragePort): the layer store
// for images, the snapshotter for each container's writable layer, and the mounts.
import type { Readable } from 'node:stream';
import type { NodeLayout } from '../layout.js';
import type { StoragePort } from '../host/ports.js';
import { LayerStore, LayerError } from './layers.js';
import { OverlaySnapshotter, type Snapshotter, type StorageDriver } from './snapshotter.js';
import { VfsSnapshotter } from './vfs.js';
import { mountAll, unmountAll } from './mounts.js';

export interface RootfsStorage extends StoragePort {
  layers: LayerStore;
  /** The driver's snapshots (containers' writable roots): diff, commit and info read them. */
  snapshots: Snapshotter;
  /** Removes an unpacked layer, refused while a container here stands on it. */
  removeLayer(digest: string): void;
}

/** Pure: lower dirs topmost first; a layer listed twice keeps only its topmost place (same view). */
export function lowerOrder(bottomFirst: string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const d of [...bottomFirst].reverse()) if (!seen.has(d)) { seen.add(d); out.push(d); }
  return out;
}

/** The snapshotter of a driver, its snapshots under `root`. */
export function snapshotter(driver: StorageDriver, root: string): Snapshotter {
  return driver === 'vfs' ? new VfsSnapshotter(root) : new OverlaySnapshotter(root);
}

export function rootfsStorage(layout: NodeLayout, fetchLayer: (digest: string) => Promise<Readable>, driver: StorageDriver = 'overlay'): RootfsStorage {
  const layers = new LayerStore(layout.layers);
  const snapshots = snapshotter(driver, layout.snapshots);
  return {
    layers,
    snapshots,
    async ensureImage(digest, imageLayers) {
      // an image imported as one rootfs tar is its own single layer
      const list = imageLayers?.length ? imageLayers : [digest];
      // each missing layer fetched once, all at the same time; a refusal fails the image
      const dirs = await Promise.all(list.map((d) => layers.ensure(d, () => fetchLayer(d))));
      return lowerOrder(dirs);
    },
    async mount(id, lowers, target, o) { mountAll(await snapshots.prepare(id, lowers, o), target); },
    async release(id, target) {
      await unmountAll(target);
      await snapshots.remove(id);
    },
    known: () => snapshots.keys(),
    removeLayer(digest) {
      if (snapshots.lowersInUse().has(layers.path(digest))) throw new LayerError(`layer ${digest} is in use by a container on this node`, digest);
      layers.remove(digest);
    },
  };
}
