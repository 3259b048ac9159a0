// Pure decoding of tar metadata: ustar/GNU header blocks, PAX records, GNU sparse maps
// and entry paths. No I/O, so every malformed or hostile shape has a unit test without
// root; untar.ts reads the blocks and decides what may touch the disk.

export const BLOCK = 512;
/** A PAX header larger than this is an attack on memory, not metadata. */
export const MAX_PAX_BYTES = 1 << 20;
/** GNU long names: PATH_MAX is the most a path can be on Linux. */
export const MAX_PATH = 4096;
/** Sparse maps this long (per file) are refused: ~16 MB of map is no real file. */
export const MAX_SPARSE_EXTENTS = 1 << 20;

/** The archive itself is malformed (bad checksum, truncated, oversized metadata). */
export class TarFormatError extends Error {
  constructor(readonly reason: string, readonly offset: number) {
    super(`malformed tar at byte ${offset}: ${reason}`);
    this.name = 'TarFormatError';
  }
}

export interface Extent { offset: number; size: number }

export interface Header {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: string;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  atime?: number;
  /** Old GNU sparse ('S'): the map in the header; `extended` says more map blocks follow. */
  sparse?: { map: Extent[]; extended: boolean; realSize: number };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function text(b: Buffer, off: number, len: number, at: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  try { return utf8.decode(b.subarray(off, end)); } catch { throw new TarFormatError('a name is not UTF-8', at); }
}

/** Octal (NUL/space terminated) or GNU base-256 (high bit set) numeric field. */
export function num(b: Buffer, off: number, len: number, at: number, field: string): number {
  if (b[off] & 0x80) {
    if (b[off] === 0xff) throw new TarFormatError(`negative ${field}`, at);
    let v = b[off] & 0x7f;
    for (let i = 1; i < len; i++) {
      v = v * 256 + b[off + i];
      if (v > Number.MAX_SAFE_INTEGER) throw new TarFormatError(`${field} out of range`, at);
    }
    return v;
  }
  const s = b.toString('latin1', off, off + len).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`${field} is not an octal number`, at);
  const v = parseInt(s, 8);
  if (!Number.isSafeInteger(v)) throw new TarFormatError(`${field} out of range`, at);
  return v;
}

export function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

/** Decodes one header block at archive offset `at` (a zero block is the caller's end marker). */
export function decodeHeader(b: Buffer, at: number): Header {
  if (b.length !== BLOCK) throw new TarFormatError('truncated header', at);
  const stored = num(b, 148, 8, at, 'checksum');
  let unsigned = 0, signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i];
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  // signed sums come from old Sun tars; both are what GNU tar accepts
  if (stored !== unsigned && stored !== signed) throw new TarFormatError('header checksum mismatch (not a tar, or corrupt)', at);
  const magic = b.toString('latin1', 257, 263);
  const gnu = magic === 'ustar ';
  const ustar = magic === 'ustar\0';
  let name = text(b, 0, 100, at);
  if (ustar) {
    const prefix = text(b, 345, 155, at);
    if (prefix) name = `${prefix}/${name}`;
  }
  const h: Header = {
    name,
    mode: num(b, 100, 8, at, 'mode'),
    uid: num(b, 108, 8, at, 'uid'),
    gid: num(b, 116, 8, at, 'gid'),
    size: num(b, 124, 12, at, 'size'),
    mtime: num(b, 136, 12, at, 'mtime'),
    type: b[156] === 0 ? '0' : String.fromCharCode(b[156]),
    linkname: text(b, 157, 100, at),
    uname: ustar || gnu ? text(b, 265, 32, at) : '',
    gname: ustar || gnu ? text(b, 297, 32, at) : '',
    devmajor: ustar || gnu ? num(b, 329, 8, at, 'devmajor') : 0,
    devminor: ustar || gnu ? num(b, 337, 8, at, 'devminor') : 0,
  };
  if (gnu) {
    const atime = num(b, 345, 12, at, 'atime');
    if (atime) h.atime = atime;
    if (h.type === 'S') {
      h.sparse = { map: sparseEntries(b, 386, 4, at), extended: b[482] !== 0, realSize: num(b, 483, 12, at, 'realsize') };
    }
  }
  return h;
}

/** Entries of an old-GNU sparse map (header or extension block); empty slots end it. */
export function sparseEntries(b: Buffer, off: number, count: number, at: number): Extent[] {
  const out: Extent[] = [];
  for (let i = 0; i < count; i++) {
    const o = off + i * 24;
    if (b[o] === 0) break;
    out.push({ offset: num(b, o, 12, at, 'sparse offset'), size: num(b, o + 12, 12, at, 'sparse size') });
  }
  return out;
}

/** An old-GNU sparse extension block: 21 map entries, then the "more follow" flag. */
export function decodeSparseExtension(b: Buffer, at: number): { map: Extent[]; extended: boolean } {
  if (b.length !== BLOCK) throw new TarFormatError('truncated sparse header', at);
  return { map: sparseEntries(b, 0, 21, at), extended: b[504] !== 0 };
}

/** PAX key prefix of an extended attribute (GNU tar, docker, containerd all write this one). */
export const XATTR_PREFIX = 'SCHILY.xattr.';
/** XATTR_SIZE_MAX: the kernel refuses larger values anyway. */
export const MAX_XATTR_VALUE = 64 * 1024;

/**
 * PAX records in order ("len key=value\n"); order matters for GNU sparse 0.0's repeated keys.
 * Values are UTF-8, except an xattr's (SCHILY.xattr.*): a latin1 string, one char per byte.
 */
export function parsePax(b: Buffer, at: number): [string, string][] {
  const out: [string, string][] = [];
  let i = 0;
  while (i < b.length) {
    if (b[i] === 0) break; // some writers pad the record area with NULs
    const sp = b.indexOf(0x20, i);
    if (sp < 0 || sp - i > 20) throw new TarFormatError('PAX record without a length', at);
    const lenText = b.toString('latin1', i, sp);
    if (!/^[1-9][0-9]*$/.test(lenText)) throw new TarFormatError(`PAX record length "${lenText.slice(0, 20)}" is not a number`, at);
    const len = Number(lenText);
    if (i + len > b.length || b[i + len - 1] !== 0x0a) throw new TarFormatError('PAX record length does not match its text', at);
    const rec = b.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new TarFormatError('PAX record without "key="', at);
    let key: string, value: string;
    try { key = utf8.decode(rec.subarray(0, eq)); } catch { throw new TarFormatError('PAX record is not UTF-8', at); }
    if (key.startsWith(XATTR_PREFIX)) {
      // an attribute's value is bytes (security.capability is binary): kept one char per byte
      value = rec.toString('latin1', eq + 1);
    } else {
      try { value = utf8.decode(rec.subarray(eq + 1)); } catch { throw new TarFormatError('PAX record is not UTF-8', at); }
    }
    out.push([key, value]);
    i += len;
  }
  return out;
}

/** A decimal PAX number (times may carry a fraction, which is kept). */
export function paxNumber(v: string, key: string, at: number, fraction = false): number {
  const re = fraction ? /^-?[0-9]+(\.[0-9]+)?$/ : /^[0-9]+$/;
  if (!re.test(v)) throw new TarFormatError(`PAX ${key}="${v.slice(0, 40)}" is not a number`, at);
  const n = Number(v);
  if (!Number.isFinite(n) || Math.abs(n) > Number.MAX_SAFE_INTEGER) throw new TarFormatError(`PAX ${key} out of range`, at);
  return n;
}

/** Which GNU sparse format the PAX records describe, if any. */
export interface PaxSparse { version: '0.0' | '0.1' | '1.0'; realSize: number; name?: string; map: Extent[] }

export function paxSparse(recs: [string, string][], at: number): PaxSparse | undefined {
  let major: string | undefined, minor: string | undefined, name: string | undefined, realSize: number | undefined;
  const offsets: number[] = [], sizes: number[] = [];
  let map01: string | undefined;
  for (const [k, v] of recs) {
    if (!k.startsWith('GNU.sparse.')) continue;
    switch (k) {
      case 'GNU.sparse.major': major = v; break;
      case 'GNU.sparse.minor': minor = v; break;
      case 'GNU.sparse.name': name = v; break;
      case 'GNU.sparse.realsize': case 'GNU.sparse.size': realSize = paxNumber(v, k, at); break;
      case 'GNU.sparse.offset': offsets.push(paxNumber(v, k, at)); break;
      case 'GNU.sparse.numbytes': sizes.push(paxNumber(v, k, at)); break;
      case 'GNU.sparse.map': map01 = v; break;
      case 'GNU.sparse.numblocks': break; // a count we check against the map itself
      default: throw new TarFormatError(`unknown GNU sparse record ${k}`, at);
    }
  }
  if (major === undefined && realSize === undefined && offsets.length === 0 && map01 === undefined) return undefined;
  if (realSize === undefined) throw new TarFormatError('GNU sparse entry without its real size', at);
  if (major !== undefined) {
    if (major !== '1' || (minor ?? '0') !== '0') throw new TarFormatError(`GNU sparse format ${major}.${minor ?? '?'} is not supported`, at);
    return { version: '1.0', realSize, ...(name !== undefined ? { name } : {}), map: [] };
  }
  if (map01 !== undefined) {
    const nums = map01 === '' ? [] : map01.split(',').map((x) => paxNumber(x, 'GNU.sparse.map', at));
    if (nums.length % 2) throw new TarFormatError('GNU.sparse.map has an odd number of fields', at);
    if (nums.length / 2 > MAX_SPARSE_EXTENTS) throw new TarFormatError('GNU sparse map too long', at);
    const map: Extent[] = [];
    for (let i = 0; i < nums.length; i += 2) map.push({ offset: nums[i], size: nums[i + 1] });
    return { version: '0.1', realSize, ...(name !== undefined ? { name } : {}), map };
  }
  if (offsets.length !== sizes.length) throw new TarFormatError('GNU sparse 0.0 offsets and sizes do not pair up', at);
  if (offsets.length > MAX_SPARSE_EXTENTS) throw new TarFormatError('GNU sparse map too long', at);
  return { version: '0.0', realSize, ...(name !== undefined ? { name } : {}), map: offsets.map((offset, i) => ({ offset, size: sizes[i] })) };
}

/**
 * GNU sparse 1.0 keeps its map at the start of the data: decimal lines (count, then
 * offset/size pairs), padded to a block. Returns the map and how many bytes it took,
 * or undefined when `b` does not yet hold the whole map (the caller reads more).
 */
export function parseSparse1Map(b: Buffer, at: number): { map: Extent[]; bytes: number } | undefined {
  const nums: number[] = [];
  let i = 0, want = -1;
  while (want < 0 || nums.length < want) {
    const nl = b.indexOf(0x0a, i);
    if (nl < 0) {
      if (b.length - i > 20) throw new TarFormatError('GNU sparse 1.0 map line too long', at);
      return undefined;
    }
    const s = b.toString('latin1', i, nl);
    if (!/^[0-9]{1,16}$/.test(s)) throw new TarFormatError('GNU sparse 1.0 map is not decimal', at);
    const n = Number(s);
    if (want < 0) {
      if (n > MAX_SPARSE_EXTENTS) throw new TarFormatError('GNU sparse map too long', at);
      want = n * 2 + 1;
    }
    nums.push(n);
    i = nl + 1;
  }
  const map: Extent[] = [];
  for (let k = 1; k < nums.length; k += 2) map.push({ offset: nums[k], size: nums[k + 1] });
  return { map, bytes: Math.ceil(i / BLOCK) * BLOCK };
}

/** A sparse map must be ordered, non-overlapping, inside the real size, and sum to the data stored. */
export function checkSparseMap(map: Extent[], realSize: number, dataSize: number): string | undefined {
  let end = 0, sum = 0;
  for (const e of map) {
    if (e.offset < end) return 'sparse map is out of order or overlaps';
    end = e.offset + e.size;
    sum += e.size;
  }
  if (end > realSize) return `sparse map reaches byte ${end}, past the file's size ${realSize}`;
  if (sum !== dataSize) return `sparse map holds ${sum} bytes but the entry stores ${dataSize}`;
  return undefined;
}

/**
 * An entry path as components under the layer root. A leading "/" means the root (as
 * docker's and GNU tar's extraction read it); "." components vanish; ".." is refused
 * outright: resolving it lexically could disagree with the tree (a/.. where a is a
 * link), and no layer needs it. Returns a reason string when refused.
 */
export function entryComponents(path: string): string[] | string {
  if (path.includes('\0')) return 'path contains a NUL byte';
  if (Buffer.byteLength(path) > MAX_PATH) return `path longer than ${MAX_PATH} bytes`;
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return 'path has a ".." component (it could leave the layer root)';
  for (const p of parts) if (Buffer.byteLength(p) > 255) return 'a path component is longer than 255 bytes';
  return parts;
}

export const roundUp = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

/**
 * What a layer may do with an extended attribute: keep it (user.*, file capabilities,
 * ACLs), drop it (host policy such as security.selinux), or be refused for it (trusted.*
 * steers overlayfs: a forged trusted.overlay.redirect could point a container at another
 * layer's files).
 */
export function xattrPolicy(name: string): 'keep' | 'drop' | string {
  if (name === '' || Buffer.byteLength(name) > 255 || name.includes('\0')) return `xattr name ${JSON.stringify(name.slice(0, 40))} is invalid`;
  if (name.startsWith('trusted.')) return `xattr ${name} refused: a layer may not set trusted.* attributes (they steer overlayfs)`;
  if (name.startsWith('user.') || name === 'security.capability' || name === 'system.posix_acl_access' || name === 'system.posix_acl_default') return 'keep';
  return 'drop';
}

/** Whiteout file names of the OCI layer format (what docker and containerd write). */
export const WH_PREFIX = '.wh.';
export const WH_OPAQUE = '.wh..wh..opq';

/**
 * What an entry's last name means in a layer: an ordinary name, a whiteout of `name`, the
 * marker that its directory is opaque, or other `.wh..wh.` metadata (aufs), which is skipped.
 */
export function whiteoutOf(base: string): { kind: 'plain' } | { kind: 'whiteout'; name: string } | { kind: 'opaque' } | { kind: 'meta' } | string {
  if (!base.startsWith(WH_PREFIX)) return { kind: 'plain' };
  if (base === WH_OPAQUE) return { kind: 'opaque' };
  if (base.startsWith(`${WH_PREFIX}${WH_PREFIX}`)) return { kind: 'meta' };
  const name = base.slice(WH_PREFIX.length);
  if (name === '' || name === '.' || name === '..') return `whiteout of ${JSON.stringify(name)} names no file`;
  return { kind: 'whiteout', name };
}
