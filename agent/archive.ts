// tsctl export and commit read a container's files through its node: the archive (the merged
// root, or the writable layer as an OCI layer) is written once into a private file under the
// node's state dir, then handed out in pages the client asks for by offset (a request/reply
// per page, so a slow client never makes the agent buffer). A transfer is dropped when its
// last page is read, after a minute without a request, and at every agent start.
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { ArchivePage, ArchiveRequest } from '../shared/api/agent.js';
import { conflict, invalid, notFound } from '../shared/rpc.js';
import { packDir, packPath } from './storage/tar-writer.js';
import { resolveInRoot, ResolveError } from './storage/resolve.js';
import type { Holds } from './copy.js';
import { TransferFiles } from './transfers.js';

/** Raw bytes a page carries (base64 in the JSON reply: ~683 KiB, under NATS's 1 MiB). */
export const ARCHIVE_PAGE = 512 * 1024;
const MAX_OPEN = 4;

export interface ArchiveSources {
  /** The container's merged root as mounted on the host; undefined when it is not mounted. */
  rootfs(id: string): string | undefined;
  /** The container's writable layer as a layer dir (overlay: its upper dir) and its release; undefined when it has none here. */
  upper(id: string): Promise<{ dir: string; release(): Promise<void> } | undefined>;
  opaque(path: string): boolean;
  capability(path: string): Buffer | null;
  /** Keeps the container frozen while `work` walks its tree (tsctl cp). */
  holds?: Holds;
}

interface Transfer { id: string; what: string; file: string; size: number; digest: string; used: number }

export class Archives {
  private open: TransferFiles<Transfer>;
  private building = new Map<string, Promise<Transfer>>();

  constructor(private dir: string, private src: ArchiveSources) {
    this.open = new TransferFiles(dir);
  }

  async page(r: ArchiveRequest): Promise<ArchivePage> {
    let t = this.open.get(r.transfer);
    if (!t) {
      if (r.offset !== 0) throw notFound(`transfer ${r.transfer} is not open (it ended or expired): start again`);
      const pending = this.building.get(r.transfer) ?? this.build(r);
      t = await pending;
    }
    if (t.id !== r.id || t.what !== r.what) throw conflict(`transfer ${r.transfer} is of another container or kind`);
    if (r.offset > t.size) throw conflict(`offset ${r.offset} is past the archive's ${t.size} bytes`);
    t.used = Date.now();
    const n = Math.min(ARCHIVE_PAGE, t.size - r.offset);
    const fh = await open(t.file, 'r');
    const buf = Buffer.alloc(n);
    try { await fh.read(buf, 0, n, r.offset); } finally { await fh.close(); }
    const end = r.offset + n >= t.size;
    if (end) this.open.drop(r.transfer);
    return { data: buf.toString('base64'), size: t.size, digest: t.digest, end };
  }

  private build(r: ArchiveRequest): Promise<Transfer> {
    if (this.open.size + this.building.size >= MAX_OPEN) throw conflict(`this node is already writing ${MAX_OPEN} archives: try again shortly`);
    const file = join(this.dir, `${r.transfer}.tar`);
    const p = (async () => {
      try {
        const layer = r.what === 'layer' ? await this.src.upper(r.id) : undefined;
        const root = r.what === 'layer' ? layer?.dir : this.src.rootfs(r.id);
        try {
          if (!root) throw conflict(`container ${r.id.slice(0, 12)} has no ${r.what === 'layer' ? 'writable layer' : 'mounted root'} on this node`);
          let at: { dir: string; name: string } | undefined;
          if (r.what === 'path') {
            if (!r.path || !this.src.holds) throw invalid('a path archive needs a path');
            try { at = resolveInRoot(root, r.path, { follow: r.follow === true }); } catch (err) {
              if (err instanceof ResolveError) throw notFound(`cp: ${err.message}`);
              throw err;
            }
            if (!at.name) throw invalid(`cp: ${r.path}: copy what is under the root, not the root itself (use tsctl export)`);
          }
          const out = createWriteStream(file, { mode: 0o600 });
          // a write error must reach us through finished(), never as an unhandled 'error' that
          // ends the agent (ERR_STREAM_DESTROYED did once in a full CI run, when a failed
          // packer's last write was still in flight as the stream was destroyed)
          out.on('error', () => undefined);
          try {
            const o = { capability: this.src.capability, ...(r.what === 'layer' ? { layer: { opaque: this.src.opaque } } : {}) };
            const { digest, size, entries } = at
              ? await this.src.holds!.during(r.id, () => packPath(at!.dir, at!.name, out, o))
              : await packDir(root, out, o);
            if (at && entries === 0) throw notFound(`cp: ${r.path}: no such file or directory in the container`);
            out.end();
            await finished(out);
            const t = { id: r.id, what: r.what, file, size, digest, used: Date.now() };
            this.open.set(r.transfer, t);
            return t;
          } catch (err) {
            // the writes already queued finish (or fail) before the file goes: nothing is left
            // in flight on a destroyed stream
            out.end();
            await finished(out).catch(() => undefined);
            rmSync(file, { force: true });
            throw err;
          }
        } finally { await layer?.release(); }
      } finally { this.building.delete(r.transfer); }
    })();
    this.building.set(r.transfer, p);
    return p;
  }
}

/** Reads a whole archive back (tests). */
export const readArchive = (file: string) => createReadStream(file);
