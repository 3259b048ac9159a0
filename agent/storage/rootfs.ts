// The storage side of the container lifecycle (host/ports.ts StoragePort): the layer store
// for images, the snapshotter for each container's writable layer, and the mounts.
import type { Readable } from 'node:stream';
import type { NodeLayout } from '../layout.js';
import type { StoragePort } from '../host/ports.js';
import { LayerStore } from './layers.js';
import { Snapshotter } from './snapshotter.js';
import { mountAll, unmount, isMounted } from './mounts.js';

export function rootfsStorage(layout: NodeLayout, fetchLayer: (digest: string) => Promise<Readable>): StoragePort & { layers: LayerStore } {
  const layers = new LayerStore(layout.layers);
  const snapshots = new Snapshotter(layout.snapshots);
  return {
    layers,
    ensureImage: (digest) => layers.ensure(digest, () => fetchLayer(digest)),
    mount: (id, layer, target) => mountAll(snapshots.prepare(id, [layer]), target),
    release(id, target) {
      if (isMounted(target)) unmount(target);
      snapshots.remove(id);
    },
    known: () => snapshots.keys(),
  };
}
