// Content-addressed layer store: layers/<hex>/ holds the unpacked rootfs of one image
// layer. A layer is unpacked once, into a temp dir renamed into place, so a crash never
// leaves a half layer that looks whole.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, readdirSync, createWriteStream, realpathSync, symlinkSync } from 'node:fs';
import { join, dirname, normalize } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';

export class LayerError extends Error {
  constructor(message: string, readonly digest: string) { super(message); this.name = 'LayerError'; }
}

export class LayerStore {
  constructor(private root: string) { mkdirSync(root, { recursive: true }); }

  path(digest: string): string { return join(this.root, hexOf(digest)); }

  has(digest: string): boolean { return existsSync(this.path(digest)); }

  list(): string[] { return readdirSync(this.root).filter((d) => /^[0-9a-f]{64}$/.test(d)).map((d) => `sha256:${d}`); }

  /** Unpacks a layer tar from `source` unless present; the bytes must hash to `digest`. */
  async ensure(digest: string, source: () => Promise<Readable>): Promise<string> {
    const dest = this.path(digest);
    if (existsSync(dest)) return dest;
    const tmp = `${dest}.tmp-${process.pid}-${Date.now()}`;
    const file = `${tmp}.tar`;
    mkdirSync(tmp, { recursive: true });
    try {
      const hash = createHash('sha256');
      const tee = new Transform({ transform(chunk, _e, cb) { hash.update(chunk); cb(null, chunk); } });
      await pipeline(await source(), tee, createWriteStream(file));
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== digest) throw new LayerError(`layer ${digest} arrived with digest ${got}`, digest);
      await unpack(file, tmp);
      renameSync(tmp, dest);
      return dest;
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      if (err instanceof LayerError) throw err;
      throw new LayerError(`cannot unpack layer ${digest}: ${(err as Error).message}`, digest);
    } finally {
      rmSync(file, { force: true });
    }
  }

  remove(digest: string): void { rmSync(this.path(digest), { recursive: true, force: true }); }
}

function hexOf(digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new LayerError(`invalid digest "${digest}"`, digest);
  return m[1];
}

/**
 * Extracts a rootfs tar. node-tar refuses paths that escape the target and rewrites
 * absolute symlink targets (/bin/busybox) to relative ones, which would break a rootfs;
 * those symlinks are restored afterwards, each checked to stay inside the root.
 */
async function unpack(file: string, root: string): Promise<void> {
  const absLinks: { path: string; target: string }[] = [];
  await tar.t({ file, onReadEntry: (e) => { if (e.type === 'SymbolicLink' && e.linkpath?.startsWith('/')) absLinks.push({ path: e.path, target: e.linkpath }); } });
  await tar.x({ file, cwd: root, preserveOwner: true, onwarn: (code, msg) => { if (code !== 'TAR_ENTRY_INFO') throw new Error(`${code}: ${msg}`); } });
  const realRoot = realpathSync(root);
  for (const l of absLinks.sort((a, b) => b.path.length - a.path.length)) {
    const rel = normalize(l.path).replace(/^(\.\/|\/)+/, '');
    if (rel === '' || rel.startsWith('..')) continue;
    const at = join(realRoot, rel);
    const parent = realpathSync(dirname(at));
    if (parent !== realRoot && !parent.startsWith(`${realRoot}/`)) throw new Error(`symlink ${l.path} lies outside the layer`);
    rmSync(at, { force: true });
    symlinkSync(l.target, at);
  }
}
