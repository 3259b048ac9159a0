// Extracts an image layer tar into a fresh directory, refusing whatever could reach
// outside it or smuggle host state in: ".." paths, writes through the layer's own
// symlinks, hard links out of the tree or through a link, device nodes and FIFOs,
// oversized metadata. Sparse files (GNU 'S', PAX 0.0/0.1/1.0) keep their content and
// holes; modes (setuid too), owners, symlinks, times and extended attributes are kept.
// The layer format's whiteouts become overlayfs's: `.wh.NAME` a character device 0/0
// named NAME, `.wh..wh..opq` the trusted.overlay.opaque attribute on its directory, so
// the unpacked layer is an overlay lower dir as it is.
//
// It runs over a file already checked against its digest, sequentially, with promises
// only: a refusal is a rejected promise, never a throw from an event emitter.
import { open, lstat, mkdir, rm, unlink, link, lchown, chmod, utimes, type FileHandle } from 'node:fs/promises';
import { type Stats } from 'node:fs';
import { join } from 'node:path';
import {
  BLOCK, MAX_PAX_BYTES, MAX_PATH, MAX_SPARSE_EXTENTS, TarFormatError, type Extent,
  decodeHeader, decodeSparseExtension, isZeroBlock, parsePax, paxNumber, paxSparse, parseSparse1Map,
  checkSparseMap, entryComponents, roundUp, XATTR_PREFIX, MAX_XATTR_VALUE, xattrPolicy, whiteoutOf,
} from './tar-header.js';
import { lsetxattr, mknodWhiteout } from '../../native/libc.js';
import { putFile, putFileSync, putSymlinkSync, ArchiveEndedError, type FileSpec } from '../../native/extract.js';

export { TarFormatError } from './tar-header.js';

/** One entry is refused: which entry and why, in one line. */
export class UnsafeEntryError extends Error {
  constructor(readonly entry: string, readonly reason: string) {
    super(`entry ${q(entry)}: ${reason}`);
    this.name = 'UnsafeEntryError';
  }
}

export interface UntarOptions {
  /** Restore owners (lchown); default: when running as root, as tar does. */
  owners?: boolean;
  /**
   * Files into an existing tree, not a layer (tsctl cp): names like `.wh.x` and 0/0 character
   * devices are refused rather than turned into whiteouts, which would delete what they name.
   */
  plain?: boolean;
  /** The archive's top-level name `from` is written as `to` (tsctl cp to a new name). */
  rename?: { from: string; to: string };
}

export interface UntarStats { entries: number; bytes: number; whiteouts: number }

const q = (s: string) => JSON.stringify(s);
const WINDOW = 64 * 1024;
const MAX_ID = 0xffffffff;
/**
 * Up to this many bytes a file is written on the main thread: its syscalls take less than a
 * trip to a worker and back. At most a header window of such entries runs between two reads
 * of the archive, which go through the thread pool and so let the event loop turn.
 */
const SMALL_FILE = 64 * 1024;

/** Extracts `file` into `root` (an existing empty directory). Rejects on the first refused entry. */
export async function untar(file: string, root: string, opts: UntarOptions = {}): Promise<UntarStats> {
  const fh = await open(file, 'r');
  try {
    const x = new Extractor(fh, (await fh.stat()).size, root, opts.owners ?? process.getuid?.() === 0, opts);
    return await x.run();
  } finally {
    await fh.close();
  }
}

interface Entry {
  path: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  atime: number;
  linkpath: string;
  devmajor: number;
  devminor: number;
  data: number;       // archive offset of the entry's bytes (after a sparse 1.0 map)
  size: number;       // bytes stored in the archive
  sparse?: { map: Extent[]; realSize: number };
  xattrs: [string, Buffer][];
}

interface DirMeta { mode: number; atime: number; mtime: number; seq: number }

class Extractor {
  private win = Buffer.alloc(0);
  private winAt = 0;
  /**
   * Paths (relative, '/'-joined) known to be real directories, each with all its
   * ancestors. Only a cache: emptied when a directory is removed, so that costs O(1)
   * however many entries came before (a tar alternating dir/file must not be quadratic).
   */
  private dirs = new Set<string>(['']);
  /** Directory modes and times, applied last: children written later would change them. */
  private dirMeta = new Map<string, DirMeta>();
  /** When (entry sequence) a directory was last removed: older metadata under it is void. */
  private removedAt = new Map<string, number>();
  private seq = 0;
  private stats: UntarStats = { entries: 0, bytes: 0, whiteouts: 0 };

  constructor(private fh: FileHandle, private size: number, private root: string, private owners: boolean, private o: UntarOptions = {}) {}

  async run(): Promise<UntarStats> {
    let pos = 0;
    let global: [string, string][] = [];
    let pax: [string, string][] = [];
    let longName: string | undefined, longLink: string | undefined;
    for (;;) {
      if (pos === this.size && pax.length === 0 && longName === undefined && longLink === undefined) break; // no end marker: GNU tar accepts this too
      const block = await this.read(pos, BLOCK, 'a header');
      if (isZeroBlock(block)) break;
      const at = pos;
      const h = decodeHeader(block, at);
      pos += BLOCK;
      if (h.type === 'x' || h.type === 'g') {
        if (h.size > MAX_PAX_BYTES) throw new TarFormatError(`PAX header of ${h.size} bytes (at most ${MAX_PAX_BYTES})`, at);
        const recs = parsePax(await this.read(pos, h.size, 'a PAX header'), at);
        pos += roundUp(h.size);
        if (h.type === 'g') global = [...global.filter(([k]) => !recs.some(([r]) => r === k)), ...recs];
        else pax = [...pax, ...recs];
        continue;
      }
      if (h.type === 'L' || h.type === 'K') {
        if (h.size > MAX_PATH + 1) throw new TarFormatError(`GNU long ${h.type === 'L' ? 'name' : 'link'} of ${h.size} bytes (at most ${MAX_PATH})`, at);
        const b = await this.read(pos, h.size, 'a GNU long name');
        pos += roundUp(h.size);
        const end = b.indexOf(0);
        let s: string;
        try { s = new TextDecoder('utf-8', { fatal: true }).decode(end < 0 ? b : b.subarray(0, end)); } catch { throw new TarFormatError('a long name is not UTF-8', at); }
        if (h.type === 'L') longName = s; else longLink = s;
        continue;
      }
      let oldSparse: { map: Extent[]; realSize: number } | undefined;
      if (h.sparse) {
        const map = [...h.sparse.map];
        let more = h.sparse.extended;
        while (more) {
          const ext = decodeSparseExtension(await this.read(pos, BLOCK, 'a sparse map'), pos);
          pos += BLOCK;
          map.push(...ext.map);
          more = ext.extended;
          if (map.length > MAX_SPARSE_EXTENTS) throw new TarFormatError('GNU sparse map too long', at);
        }
        oldSparse = { map, realSize: h.sparse.realSize };
      }

      const e: Entry = {
        path: h.name, type: h.type, mode: h.mode & 0o7777, uid: h.uid, gid: h.gid, mtime: h.mtime,
        atime: h.atime ?? h.mtime, linkpath: h.linkname, devmajor: h.devmajor, devminor: h.devminor, data: pos, size: h.size,
        xattrs: [],
      };
      if (longName !== undefined) e.path = longName;
      if (longLink !== undefined) e.linkpath = longLink;
      let atimeSet = h.atime !== undefined;
      for (const [k, v] of [...global, ...pax]) {
        switch (k) {
          case 'path': e.path = v; break;
          case 'linkpath': e.linkpath = v; break;
          case 'size': e.size = paxNumber(v, k, at); break;
          case 'uid': e.uid = paxNumber(v, k, at); break;
          case 'gid': e.gid = paxNumber(v, k, at); break;
          case 'mtime': e.mtime = paxNumber(v, k, at, true); break;
          case 'atime': e.atime = paxNumber(v, k, at, true); atimeSet = true; break;
          default:
            if (k.startsWith(XATTR_PREFIX)) {
              const name = k.slice(XATTR_PREFIX.length);
              if (v.length > MAX_XATTR_VALUE) throw new TarFormatError(`xattr ${name} of ${v.length} bytes (at most ${MAX_XATTR_VALUE})`, at);
              e.xattrs = [...e.xattrs.filter(([n]) => n !== name), [name, Buffer.from(v, 'latin1')]];
            }
        }
      }
      if (!atimeSet) e.atime = e.mtime;
      const ps = paxSparse(pax, at);
      if (e.data + e.size > this.size) throw new TarFormatError(`archive ends inside entry ${q(e.path)}`, at);
      pos = e.data + roundUp(e.size);
      pax = []; longName = undefined; longLink = undefined;

      if (ps) {
        if (ps.name !== undefined) e.path = ps.name;
        let map = ps.map;
        if (ps.version === '1.0') {
          const m = await this.sparse1Map(e, at);
          map = m.map;
          e.data += m.bytes;
          e.size -= m.bytes;
        }
        e.sparse = { map, realSize: ps.realSize };
      } else if (oldSparse) {
        e.sparse = oldSparse;
      }
      if (e.sparse) {
        const bad = checkSparseMap(e.sparse.map, e.sparse.realSize, e.size);
        if (bad) throw new UnsafeEntryError(e.path, bad);
      }
      await this.entry(e);
      this.stats.entries++;
    }
    await this.finishDirs();
    return this.stats;
  }

  private async sparse1Map(e: Entry, at: number): Promise<{ map: Extent[]; bytes: number }> {
    for (let len = Math.min(e.size, BLOCK); ; len = Math.min(e.size, len * 4)) {
      const m = parseSparse1Map(await this.read(e.data, len, 'a sparse map'), at);
      if (m) {
        if (m.bytes > e.size) throw new TarFormatError(`GNU sparse 1.0 map of ${q(e.path)} is longer than its entry`, at);
        return m;
      }
      if (len === e.size) throw new TarFormatError(`GNU sparse 1.0 map of ${q(e.path)} is cut short`, at);
    }
  }

  /** Bytes at an archive offset; a read past the end is a truncated archive. */
  private async read(pos: number, len: number, what: string): Promise<Buffer> {
    if (pos + len > this.size) throw new TarFormatError(`archive ends inside ${what}`, pos);
    if (pos >= this.winAt && pos + len <= this.winAt + this.win.length) return this.win.subarray(pos - this.winAt, pos - this.winAt + len);
    const n = Math.min(Math.max(len, WINDOW), this.size - pos);
    const b = Buffer.alloc(n);
    const { bytesRead } = await this.fh.read(b, 0, n, pos);
    if (bytesRead < len) throw new TarFormatError(`archive ends inside ${what}`, pos);
    this.win = b.subarray(0, bytesRead);
    this.winAt = pos;
    return this.win.subarray(0, len);
  }

  private abs(parts: string[]): string { return parts.length ? join(this.root, ...parts) : this.root; }

  private async entry(e: Entry): Promise<void> {
    const parts = entryComponents(e.path);
    if (typeof parts === 'string') throw new UnsafeEntryError(e.path, parts);
    if (this.o.rename && parts[0] === this.o.rename.from) parts[0] = this.o.rename.to;
    for (const [name] of e.xattrs) {
      const policy = xattrPolicy(name);
      if (policy !== 'keep' && policy !== 'drop') throw new UnsafeEntryError(e.path, policy);
    }
    e.xattrs = e.xattrs.filter(([name]) => xattrPolicy(name) === 'keep');
    if (this.owners && (e.uid > MAX_ID || e.gid > MAX_ID)) throw new UnsafeEntryError(e.path, `owner ${e.uid}:${e.gid} out of range (ids are 32-bit)`);
    if (parts.length) {
      const wh = whiteoutOf(parts[parts.length - 1]);
      if (typeof wh === 'string') throw new UnsafeEntryError(e.path, wh);
      if (this.o.plain && wh.kind !== 'plain') throw new UnsafeEntryError(e.path, 'a .wh. name is a layer\'s whiteout, not a file to copy');
      if (wh.kind === 'meta') return;
      if (wh.kind === 'opaque') return this.opaque(e, parts.slice(0, -1));
      if (wh.kind === 'whiteout') return this.whiteout(e, [...parts.slice(0, -1), wh.name]);
    }
    switch (e.type) {
      case 'S':
        if (!e.sparse) throw new UnsafeEntryError(e.path, 'sparse entry without a GNU sparse map');
        return this.file(e, parts);
      case '0': case '7': return this.file(e, parts);
      case '5': case 'D': return this.dir(e, parts);
      case '2': return this.symlink(e, parts);
      case '1': return this.hardlink(e, parts);
      case '3':
        // overlayfs's own whiteout format (what an exported upper dir holds)
        if (e.devmajor === 0 && e.devminor === 0 && !this.o.plain) return this.whiteout(e, parts);
        throw new UnsafeEntryError(e.path, `character device ${e.devmajor}:${e.devminor} refused: a layer may not carry device nodes (the container's /dev is made by the runtime)`);
      case '4':
        throw new UnsafeEntryError(e.path, `block device ${e.devmajor}:${e.devminor} refused: a layer may not carry device nodes (the container's /dev is made by the runtime)`);
      case '6':
        throw new UnsafeEntryError(e.path, 'FIFO refused: a layer may not carry FIFOs (make it at run time with mkfifo)');
      case 'V': return; // a volume label names the archive, not a file
      default:
        throw new UnsafeEntryError(e.path, `entry type ${q(e.type)} is not supported in a layer`);
    }
  }

  /**
   * Every directory above an entry must be a real directory of this extraction: a
   * symlink there would redirect the write (symlink-then-file). Missing ones are made
   * (0755, as tar does) when `create`.
   */
  private async walk(parts: string[], entry: string, create: boolean, role: string): Promise<void> {
    if (this.dirs.has(parts.slice(0, -1).join('/'))) return;
    let rel = '';
    for (let i = 0; i < parts.length - 1; i++) {
      rel = rel ? `${rel}/${parts[i]}` : parts[i];
      if (this.dirs.has(rel)) continue;
      const st = await lstatOrNone(join(this.root, rel));
      if (!st) {
        if (!create) throw new UnsafeEntryError(entry, `${role} is not in the layer (${q(rel)} does not exist; it must come earlier in the tar)`);
        await mkdir(join(this.root, rel), { mode: 0o755 });
      } else if (st.isSymbolicLink()) {
        throw new UnsafeEntryError(entry, `${role} goes through the symlink ${q(rel)} (a layer may not write through its own links)`);
      } else if (!st.isDirectory()) {
        throw new UnsafeEntryError(entry, `${role} goes through ${q(rel)}, which is not a directory`);
      }
      this.dirs.add(rel);
    }
  }

  /** Makes room for a new entry: a later entry replaces an earlier one, as in tar. */
  private async replace(parts: string[], keepDir: boolean): Promise<boolean> {
    const p = this.abs(parts);
    const st = await lstatOrNone(p);
    if (!st) return false;
    if (st.isDirectory()) {
      if (keepDir) return true;
      await rm(p, { recursive: true, force: true });
      this.dirs = new Set(['']);
      this.removedAt.set(parts.join('/'), ++this.seq);
      return false;
    }
    await unlink(p);
    return false;
  }

  private async dir(e: Entry, parts: string[]): Promise<void> {
    await this.walk(parts, e.path, true, 'directory');
    const p = this.abs(parts);
    if (parts.length && !(await this.replace(parts, true))) await mkdir(p, { mode: 0o700 });
    this.dirs.add(parts.join('/'));
    if (this.owners) await lchown(p, e.uid, e.gid);
    this.setXattrs(p, e);
    this.dirMeta.set(parts.join('/'), { mode: e.mode, atime: e.atime, mtime: e.mtime, seq: ++this.seq });
  }

  private async file(e: Entry, parts: string[]): Promise<void> {
    if (!parts.length) throw new UnsafeEntryError(e.path, 'a file cannot replace the layer root');
    await this.walk(parts, e.path, true, 'file');
    const p = this.abs(parts);
    const spec: FileSpec = {
      fd: this.fh.fd, from: e.data, extents: e.sparse ? e.sparse.map : [{ offset: 0, size: e.size }], realSize: e.sparse?.realSize,
      owner: this.owners ? { uid: e.uid, gid: e.gid } : undefined, mode: e.mode, atime: unixTime(e.atime), mtime: unixTime(e.mtime),
    };
    try {
      await this.create(parts, e.size <= SMALL_FILE ? () => putFileSync(p, spec) : () => putFile(p, spec));
    } catch (err) {
      if (err instanceof ArchiveEndedError) throw new TarFormatError(`archive ends inside entry ${q(e.path)}`, e.data);
      throw err;
    }
    // last: chown and writes clear security.capability
    this.setXattrs(p, e);
    this.stats.bytes += e.size;
  }

  /**
   * Makes a new entry, first as if its place were free (in a fresh layer it is), and only
   * when something is there (EEXIST) replaces that and tries once more: no lstat first.
   */
  private async create(parts: string[], make: () => Promise<void> | void): Promise<void> {
    try {
      await make();
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
      await this.replace(parts, false);
      await make();
    }
  }

  private async symlink(e: Entry, parts: string[]): Promise<void> {
    if (!parts.length) throw new UnsafeEntryError(e.path, 'a symlink cannot replace the layer root');
    if (e.linkpath === '' || e.linkpath.includes('\0')) throw new UnsafeEntryError(e.path, 'symlink with an empty or NUL target');
    if (Buffer.byteLength(e.linkpath) > MAX_PATH) throw new UnsafeEntryError(e.path, `symlink target longer than ${MAX_PATH} bytes`);
    // the link's place is checked; its target is kept as written (an absolute /bin/busybox
    // resolves inside the container's root, which the runtime enforces with RESOLVE_IN_ROOT)
    await this.walk(parts, e.path, true, 'symlink');
    const p = this.abs(parts);
    const owner = this.owners ? { uid: e.uid, gid: e.gid } : undefined;
    await this.create(parts, () => putSymlinkSync(e.linkpath, p, owner, unixTime(e.atime), unixTime(e.mtime)));
  }

  private async hardlink(e: Entry, parts: string[]): Promise<void> {
    if (!parts.length) throw new UnsafeEntryError(e.path, 'a hard link cannot replace the layer root');
    const target = entryComponents(e.linkpath);
    if (typeof target === 'string') throw new UnsafeEntryError(e.path, `hard link target ${q(e.linkpath)}: ${target}`);
    if (!target.length) throw new UnsafeEntryError(e.path, 'hard link to the layer root');
    await this.walk(target, e.path, false, `hard link target ${q(e.linkpath)}`);
    const st = await lstatOrNone(this.abs(target));
    if (!st) throw new UnsafeEntryError(e.path, `hard link target ${q(e.linkpath)} is not in the layer (it must come earlier in the tar)`);
    if (st.isDirectory()) throw new UnsafeEntryError(e.path, `hard link target ${q(e.linkpath)} is a directory`);
    if (st.isCharacterDevice()) throw new UnsafeEntryError(e.path, `hard link target ${q(e.linkpath)} is a whiteout`);
    if (target.join('/') === parts.join('/')) return; // a link to itself: already there
    await this.walk(parts, e.path, true, 'hard link');
    await this.replace(parts, false);
    await link(this.abs(target), this.abs(parts));
  }

  /** `.wh.NAME` (or a char 0/0): NAME is deleted in this layer, so lower layers' NAME is hidden. */
  private async whiteout(e: Entry, parts: string[]): Promise<void> {
    if (!parts.length) throw new UnsafeEntryError(e.path, 'a whiteout cannot delete the layer root');
    await this.walk(parts, e.path, true, 'whiteout');
    await this.replace(parts, false);
    mknodWhiteout(this.abs(parts));
    if (this.owners) await lchown(this.abs(parts), 0, 0);
    this.stats.whiteouts++;
  }

  /** `.wh..wh..opq`: the directory's lower contents are hidden; its own entries in this layer stay. */
  private async opaque(e: Entry, dir: string[]): Promise<void> {
    await this.walk([...dir, '.'], e.path, true, 'opaque marker');
    const p = this.abs(dir);
    const st = await lstatOrNone(p);
    if (!st) {
      await mkdir(p, { mode: 0o755 });
      this.dirs.add(dir.join('/'));
    } else if (!st.isDirectory()) {
      throw new UnsafeEntryError(e.path, `opaque marker in ${q(dir.join('/'))}, which is not a directory`);
    }
    lsetxattr(p, 'trusted.overlay.opaque', Buffer.from('y'));
    this.stats.whiteouts++;
  }

  private setXattrs(p: string, e: Entry): void {
    for (const [name, value] of e.xattrs) {
      try {
        lsetxattr(p, name, value);
      } catch (err) {
        throw new UnsafeEntryError(e.path, `cannot set xattr ${name}: ${(err as Error).message}`);
      }
    }
  }

  /**
   * Deepest first, so setting a parent's time is not undone by touching a child. A
   * directory removed (or one above it) after its entry was read is skipped: its path
   * may now be a file or a link, and chmod would follow a link.
   */
  private async finishDirs(): Promise<void> {
    const live: [string, DirMeta, number][] = [];
    for (const [rel, m] of this.dirMeta) {
      let gone = false;
      for (let i = rel.indexOf('/'); !gone; i = rel.indexOf('/', i + 1)) {
        const prefix = i < 0 ? rel : rel.slice(0, i);
        gone = (this.removedAt.get(prefix) ?? 0) > m.seq;
        if (i < 0) break;
      }
      if (!gone) live.push([rel, m, rel === '' ? 0 : rel.split('/').length]);
    }
    live.sort((a, b) => b[2] - a[2]);
    for (const [rel, m] of live) {
      const p = rel ? join(this.root, rel) : this.root;
      await chmod(p, m.mode);
      await utimes(p, m.atime, m.mtime);
    }
  }
}

/** Seconds as fs.utimes takes them (which makes a time before 1970 now): files and symlinks, set natively, get what directories get. */
function unixTime(t: number): number { return t < 0 ? Date.now() / 1000 : t; }

async function lstatOrNone(p: string): Promise<Stats | undefined> {
  try { return await lstat(p); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
