// Tar headers as bytes: ustar, with a PAX header first for what ustar cannot hold (long or
// non-ASCII names, big sizes or ids, xattrs). Pure, so the agent's archives (export, commit)
// and tsctl's build layers encode entries the same way.

const BLOCK = 512;
/** A size rounded up to whole 512-byte blocks. */
export const roundBlock = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

export interface EntryHeader {
  name: string; mode: number; uid: number; gid: number; size: number; mtime: number;
  /** '0' file, '1' hard link, '2' symlink, '3' char dev, '4' block dev, '5' dir, '6' fifo. */
  type: string; linkname?: string; devmajor?: number; devminor?: number;
  /** PAX xattrs (SCHILY.xattr.NAME). */
  xattrs?: Record<string, Buffer>;
}

const ascii = (s: string) => /^[\x20-\x7e]*$/.test(s);

function field(b: Buffer, off: number, len: number, value: number): void {
  b.write(value.toString(8).padStart(len - 1, '0') + '\0', off, len, 'ascii');
}

/** One PAX record "LEN key=value\n", LEN counting itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function block(h: { name: string; mode: number; uid: number; gid: number; size: number; mtime: number; type: string; linkname: string; devmajor: number; devminor: number }): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(h.name, 0, 100, 'utf8');
  field(b, 100, 8, h.mode & 0o7777);
  field(b, 108, 8, h.uid);
  field(b, 116, 8, h.gid);
  field(b, 124, 12, h.size);
  field(b, 136, 12, h.mtime);
  b.fill(0x20, 148, 156);
  b.write(h.type, 156, 1, 'ascii');
  b.write(h.linkname, 157, 100, 'utf8');
  b.write('ustar\x0000', 257, 8, 'binary');
  field(b, 329, 8, h.devmajor);
  field(b, 337, 8, h.devminor);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return b;
}

/** The header blocks of one entry: a PAX header first when ustar cannot hold it. Pure. */
export function encodeHeader(e: EntryHeader): Buffer {
  const pax: Buffer[] = [];
  const big = (n: number, len: number) => n >= 8 ** (len - 1);
  if (Buffer.byteLength(e.name) > 100 || !ascii(e.name)) pax.push(paxRecord('path', Buffer.from(e.name)));
  if (e.linkname && (Buffer.byteLength(e.linkname) > 100 || !ascii(e.linkname))) pax.push(paxRecord('linkpath', Buffer.from(e.linkname)));
  if (big(e.size, 12)) pax.push(paxRecord('size', Buffer.from(String(e.size))));
  if (big(e.uid, 8)) pax.push(paxRecord('uid', Buffer.from(String(e.uid))));
  if (big(e.gid, 8)) pax.push(paxRecord('gid', Buffer.from(String(e.gid))));
  for (const [k, v] of Object.entries(e.xattrs ?? {})) pax.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const main = block({
    name: ascii(e.name) && Buffer.byteLength(e.name) <= 100 ? e.name : e.name.replace(/[^\x20-\x7e]/g, '_').slice(-100),
    mode: e.mode, uid: big(e.uid, 8) ? 0 : e.uid, gid: big(e.gid, 8) ? 0 : e.gid, size: big(e.size, 12) ? 0 : e.size, mtime: Math.max(0, Math.floor(e.mtime)),
    type: e.type, linkname: e.linkname && ascii(e.linkname) && Buffer.byteLength(e.linkname) <= 100 ? e.linkname : '', devmajor: e.devmajor ?? 0, devminor: e.devminor ?? 0,
  });
  if (!pax.length) return main;
  const data = Buffer.concat(pax);
  const head = block({ name: 'PaxHeader', mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: 0, type: 'x', linkname: '', devmajor: 0, devminor: 0 });
  return Buffer.concat([head, data, Buffer.alloc(roundBlock(data.length) - data.length), main]);
}

/** The two zero blocks that end an archive. */
export const TAR_END = Buffer.alloc(2 * BLOCK);

