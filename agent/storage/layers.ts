// Content-addressed layer store: layers/<hex>/ holds the unpacked rootfs of one image
// layer. A layer is unpacked once, into a private temp dir renamed into place, so a crash
// never leaves a half layer that looks whole; concurrent users of one layer wait for that
// one unpack (single flight) instead of racing for the same directory.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, readdirSync, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { untar, UnsafeEntryError, TarFormatError } from './untar.js';

export class LayerError extends Error {
  constructor(message: string, readonly digest: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LayerError';
  }
}

/** Temp dirs: `.tmp-<hex12>-<pid>-XXXXXX` (mkdtemp), holding `layer.tar` and `rootfs/`. */
const TMP_RE = /^\.tmp-[0-9a-f]{12}-(\d+)-/;
/** Left by the store before single flight: `<hex>.tmp-<pid>-<ms>[.tar]`. */
const OLD_TMP_RE = /^[0-9a-f]{64}\.tmp-(\d+)-\d+(\.tar)?$/;

export class LayerStore {
  private inflight = new Map<string, Promise<string>>();

  constructor(private root: string) {
    mkdirSync(root, { recursive: true });
    this.removeStaleTemps();
  }

  path(digest: string): string { return join(this.root, hexOf(digest)); }

  has(digest: string): boolean { return existsSync(this.path(digest)); }

  list(): string[] { return readdirSync(this.root).filter((d) => /^[0-9a-f]{64}$/.test(d)).map((d) => `sha256:${d}`); }

  /**
   * Unpacks a layer tar from `source` unless present; the bytes must hash to `digest`.
   * Callers at the same time share one unpack (and its result or error); `source` is
   * called once per unpack (again only when a fetch timed out).
   */
  ensure(digest: string, source: () => Promise<Readable>): Promise<string> {
    let dest: string;
    try { dest = this.path(digest); } catch (err) { return Promise.reject(err); }
    if (existsSync(dest)) return Promise.resolve(dest);
    let p = this.inflight.get(digest);
    if (!p) {
      p = this.unpack(digest, dest, source).finally(() => this.inflight.delete(digest));
      this.inflight.set(digest, p);
    }
    return p;
  }

  private async unpack(digest: string, dest: string, source: () => Promise<Readable>): Promise<string> {
    const tmp = mkdtempSync(join(this.root, `.tmp-${hexOf(digest).slice(0, 12)}-${process.pid}-`));
    try {
      const file = join(tmp, 'layer.tar');
      let hash = createHash('sha256');
      // a fetch that times out is tried again from the start (a few times, a few seconds in
      // all): right after a server of a cluster is lost, the object store's stream and its
      // readers' consumers are elected again elsewhere (nats-server 2.9: seconds)
      for (let k = 1; ; k++) {
        hash = createHash('sha256');
        const h = hash;
        const tee = new Transform({ transform(chunk, _e, cb) { h.update(chunk); cb(null, chunk); } });
        try {
          await pipeline(await source(), tee, createWriteStream(file, { mode: 0o600 }));
          break;
        } catch (err) {
          if (k < 4 && /TIMEOUT|no responders|503/i.test(`${(err as { code?: string }).code ?? ''} ${(err as Error).message}`)) {
            await new Promise((r) => setTimeout(r, 500 * k));
            continue;
          }
          throw new LayerError(`cannot fetch layer ${digest}: ${(err as Error).message}`, digest, { cause: err });
        }
      }
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== digest) throw new LayerError(`layer ${digest} arrived with digest ${got}: refused`, digest);
      const rootfs = join(tmp, 'rootfs');
      mkdirSync(rootfs, { mode: 0o755 });
      try {
        await untar(file, rootfs);
      } catch (err) {
        if (err instanceof UnsafeEntryError || err instanceof TarFormatError) {
          throw new LayerError(`layer ${digest} refused: ${err.message}`, digest, { cause: err });
        }
        const e = err as NodeJS.ErrnoException;
        throw new LayerError(`cannot unpack layer ${digest}: ${e.message}`, digest, { cause: err });
      }
      try {
        renameSync(rootfs, dest);
      } catch (err) {
        // another process (a second agent on a shared dir) finished first: same bytes, keep theirs
        if (!existsSync(dest)) throw err;
      }
      return dest;
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  remove(digest: string): void { rmSync(this.path(digest), { recursive: true, force: true }); }

  /**
   * A process killed mid-unpack leaves only its temp dir; the next start removes those
   * whose owner is gone (a live pid may be another agent sharing the dir, unpacking).
   */
  private removeStaleTemps(): void {
    for (const name of readdirSync(this.root)) {
      const m = TMP_RE.exec(name) ?? OLD_TMP_RE.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid !== process.pid && alive(pid)) continue;
      rmSync(join(this.root, name), { recursive: true, force: true });
    }
  }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM'; }
}

function hexOf(digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new LayerError(`invalid digest "${digest}"`, digest);
  return m[1];
}
