// The filesystem of an earlier build stage (or any image of the cluster) in a local directory,
// for `COPY --from=STAGE`: its layers unpacked in order, each layer's whiteouts applied first
// (`.wh.NAME` removes NAME of the layers below, `.wh..wh..opq` empties its directory), so the
// directory is what a container of the stage would see. The writes go through local-untar.ts
// (nothing through a symlink, no device made, no `..`); the removals check every directory on
// the way is a real one. The copy itself is then the build context's (build-context.ts collect).
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import { join, posix } from 'node:path';
import type { ObjectStore } from 'nats';
import { CliError } from './client.js';
import { blobStream } from './image-blobs.js';
import { eachHeader } from './build-tree.js';
import { untarLocal } from './local-untar.js';
import { scratchDir } from './scratch.js';

const WH = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** The whiteouts of one layer: paths it removes, directories it empties, and the markers themselves. */
async function whiteouts(os: ObjectStore, diffId: string): Promise<{ remove: string[]; opaque: string[]; markers: string[] }> {
  const out = { remove: [] as string[], opaque: [] as string[], markers: [] as string[] };
  await eachHeader(os, diffId, (path) => {
    const base = posix.basename(path), dir = posix.dirname(path) === '.' ? '' : posix.dirname(path);
    if (!base.startsWith(WH)) return;
    out.markers.push(path);
    if (base === OPAQUE) out.opaque.push(dir);
    else out.remove.push(dir ? `${dir}/${base.slice(WH.length)}` : base.slice(WH.length));
  });
  return out;
}

/** `rel` under `root` when every directory on the way is a real directory there; undefined otherwise (nothing to remove). */
function inside(root: string, rel: string): string | undefined {
  const segs = rel.split('/').filter(Boolean);
  if (!segs.length || segs.includes('..')) return undefined;
  for (let i = 1; i < segs.length; i++) {
    try { if (!lstatSync(join(root, ...segs.slice(0, i))).isDirectory()) return undefined; } catch { return undefined; }
  }
  return join(root, ...segs);
}

/** Unpacks the image whose layers are `diffIds` into a new temp directory; the caller removes it. */
export async function stageRoot(os: ObjectStore, diffIds: readonly string[], what: string): Promise<string> {
  // a build killed between the unpack and its removal leaves it: scratch.ts sweeps those
  const root = scratchDir('stage');
  try {
    for (const d of diffIds) {
      const wh = await whiteouts(os, d);
      for (const dir of wh.opaque) {
        const p = dir ? inside(root, dir) : root;
        if (p) try { for (const n of readdirSync(p)) rmSync(join(p, n), { recursive: true, force: true }); } catch { /* not a directory below */ }
      }
      for (const r of wh.remove) { const p = inside(root, r); if (p) rmSync(p, { recursive: true, force: true }); }
      await untarLocal(blobStream(os, d), root);
      for (const m of wh.markers) { const p = inside(root, m); if (p) rmSync(p, { force: true }); }
    }
    return root;
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    if (err instanceof CliError) throw new CliError(`${what}: ${err.message.replace(/^cp: /, '')}`);
    throw err;
  }
}
