// What the image being built already has at a COPY/ADD destination, as docker checks it: a
// destination that is a directory of the image takes a file inside it (`COPY app /usr/bin`),
// and a directory on the way that is a symlink in the image (`/bin -> usr/bin` on merged-usr
// distributions) is followed inside the image, so the layer never replaces that link with a
// directory. The tree is read from the layers' tar headers (data skipped), bottom first,
// with whiteouts and opaque directories applied; only a step that missed the cache reads it.
import { posix } from 'node:path';
import type { ObjectStore } from 'nats';
import * as tar from 'tar';
import { cleanRel } from './dockerignore.js';
import { blobStream } from './image-blobs.js';
import type { LayerEntry } from './build-context.js';

export interface TreeNode { type: 'dir' | 'link' | 'other'; mode: number; uid: number; gid: number; linkname?: string }
export type Tree = Map<string, TreeNode>;

const WH = '.wh.';
const OPQ = '.wh..wh..opq';

/** Drops `dir`'s descendants (not `dir`) from the tree. */
function dropUnder(tree: Tree, dir: string): void {
  const prefix = dir ? `${dir}/` : '';
  for (const k of tree.keys()) if (k.startsWith(prefix) && k !== dir) tree.delete(k);
}

/** Applies one layer's entries (as its tar lists them) to the tree. Pure. */
export function applyLayer(tree: Tree, entries: readonly { path: string; node: TreeNode }[]): void {
  // opaque dirs and whiteouts hide what the layers below have, not what this layer adds
  for (const { path } of entries) {
    const base = posix.basename(path), dir = posix.dirname(path) === '.' ? '' : posix.dirname(path);
    if (base === OPQ) dropUnder(tree, dir);
    else if (base.startsWith(WH)) { const gone = dir ? `${dir}/${base.slice(WH.length)}` : base.slice(WH.length); tree.delete(gone); dropUnder(tree, gone); }
  }
  for (const { path, node } of entries) {
    const base = posix.basename(path);
    if (base.startsWith(WH)) continue;
    // a non-directory replaces whatever was there, children included
    if (node.type !== 'dir') dropUnder(tree, path);
    tree.set(path, node);
  }
}

/** The image's tree from its layers' headers. */
export async function imageTree(os: ObjectStore, diffIds: readonly string[]): Promise<Tree> {
  const tree: Tree = new Map();
  for (const d of diffIds) {
    const entries: { path: string; node: TreeNode }[] = [];
    await eachHeader(os, d, (path, e) => {
      const type = e.type === 'Directory' ? 'dir' : e.type === 'SymbolicLink' ? 'link' : 'other';
      entries.push({ path, node: { type, mode: (e.mode ?? 0o755) & 0o7777, uid: e.uid ?? 0, gid: e.gid ?? 0, ...(type === 'link' ? { linkname: e.linkpath ?? '' } : {}) } });
    });
    applyLayer(tree, entries);
  }
  return tree;
}

/** Every entry header of a stored layer (its data skipped), with its path cleaned; paths above the root are left out. */
export async function eachHeader(os: ObjectStore, diffId: string, on: (path: string, e: tar.ReadEntry) => void): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const parser = new tar.Parser({
      strict: true,
      onReadEntry: (e) => {
        const path = cleanRel(e.path);
        if (path && !path.startsWith('..')) on(path, e);
        e.resume();
      },
    });
    const src = blobStream(os, diffId);
    src.on('error', reject);
    parser.on('error', reject);
    parser.on('end', () => resolve());
    src.pipe(parser as unknown as NodeJS.WritableStream);
  });
}

/**
 * The contents of regular files of the image (`paths` clean and relative, like `etc/passwd`),
 * read from the top layer down: a path's topmost layer decides, and a whiteout or an opaque
 * directory above it, or a link, directory or file over `max` bytes there, means the image has
 * no such file to read. Only the layers down to the last one that decides are read.
 */
export async function readImageFiles(os: ObjectStore, diffIds: readonly string[], paths: readonly string[], max: number): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const open = new Set(paths);
  for (let i = diffIds.length - 1; i >= 0 && open.size; i--) {
    const decided = new Set<string>();
    await eachHeader(os, diffIds[i]!, (path, e) => {
      const base = posix.basename(path), dir = posix.dirname(path) === '.' ? '' : posix.dirname(path);
      for (const want of open) {
        const hidden = base === OPQ ? want.startsWith(dir ? `${dir}/` : '') : base.startsWith(WH) && (want === (dir ? `${dir}/` : '') + base.slice(WH.length) || want.startsWith(`${(dir ? `${dir}/` : '') + base.slice(WH.length)}/`));
        if (hidden && !out.has(want)) decided.add(want);
      }
      if (!open.has(path)) return;
      decided.add(path);
      if (e.type !== 'File' || (e.size ?? 0) > max) return;
      const chunks: Buffer[] = [];
      e.on('data', (b: Buffer) => chunks.push(b));
      e.on('end', () => out.set(path, Buffer.concat(chunks)));
    });
    for (const d of decided) open.delete(d);
  }
  return out;
}

/**
 * `path` with the image's symlinks on the way followed inside the image's root (the last
 * component too when `followLast`); components the image lacks are kept as written. Pure.
 */
export function resolveIn(tree: Tree, path: string, followLast: boolean): string {
  let todo = path.split('/').filter(Boolean);
  const done: string[] = [];
  let hops = 0;
  while (todo.length) {
    const seg = todo.shift()!;
    if (seg === '.') continue;
    if (seg === '..') { done.pop(); continue; }
    const here = [...done, seg].join('/');
    const node = tree.get(here);
    if (node?.type === 'link' && (todo.length || followLast)) {
      if (++hops > 40) return path.split('/').filter(Boolean).join('/'); // a loop: the path as written
      const target = node.linkname ?? '';
      // an absolute target is the image's root, never the host's
      todo = [...target.split('/').filter(Boolean), ...todo];
      if (target.startsWith('/')) done.length = 0;
      continue;
    }
    done.push(seg);
  }
  return done.join('/');
}

/**
 * The step's entries placed in the image: a single file whose destination is a directory of the
 * image goes inside it; every path follows the image's symlinks on the way; a directory the
 * step only implies keeps the image's mode and owner when the image has it. Pure.
 */
export function placeInImage(entries: readonly LayerEntry[], tree: Tree, single?: { target: string; name: string }): LayerEntry[] {
  let list = [...entries];
  if (single && tree.get(resolveIn(tree, single.target, true))?.type === 'dir') {
    list = list.map((e) => (e.name === single.target ? { ...e, name: `${single.target}/${single.name}` } : e));
  }
  const out = new Map<string, LayerEntry>();
  const implied = (name: string, like?: LayerEntry): LayerEntry => {
    const have = tree.get(name);
    return { name, type: '5', size: 0, mtime: like?.mtime ?? 0, implied: true,
      ...(have?.type === 'dir' ? { mode: have.mode, uid: have.uid, gid: have.gid } : { mode: like?.mode ?? 0o755, uid: like?.uid ?? 0, gid: like?.gid ?? 0 }) };
  };
  for (const e of list) {
    // a directory the step only implies follows a link at its end too (`/bin` -> `usr/bin`)
    const name = resolveIn(tree, e.name, e.implied === true);
    if (!name) continue; // the image's root itself is not an entry
    if (e.implied) { if (!out.has(name)) out.set(name, implied(name, e)); continue; }
    out.set(name, { ...e, name });
  }
  // every entry's parents are in the layer (an unpacked layer would make a missing one 0700)
  for (const name of [...out.keys()]) {
    const segs = name.split('/');
    for (let i = 1; i < segs.length; i++) {
      const p = segs.slice(0, i).join('/');
      if (!out.has(p)) out.set(p, implied(p));
    }
  }
  return [...out.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
