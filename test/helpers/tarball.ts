// Hand-written tar headers for tests: hostile shapes that no well-behaved tar writer
// would produce (".." paths, links through links, device nodes, lying sizes).
import { createHash } from 'node:crypto';

export interface TarEntry {
  name: string;
  type?: string;        // '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo, 'x' pax, 'L' long name
  body?: Buffer | string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  size?: number;        // lie about the size (default: body length)
  badChecksum?: boolean;
}

function octal(b: Buffer, off: number, len: number, v: number): void {
  b.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
}

export function header(e: TarEntry): Buffer {
  const b = Buffer.alloc(512);
  const body = typeof e.body === 'string' ? Buffer.from(e.body) : e.body ?? Buffer.alloc(0);
  b.write(e.name, 0, 100, 'utf8');
  octal(b, 100, 8, e.mode ?? (e.type === '5' ? 0o755 : 0o644));
  octal(b, 108, 8, e.uid ?? 0);
  octal(b, 116, 8, e.gid ?? 0);
  octal(b, 124, 12, e.size ?? body.length);
  octal(b, 136, 12, e.mtime ?? 1700000000);
  b.write(e.type ?? '0', 156, 1, 'latin1');
  b.write(e.linkname ?? '', 157, 100, 'utf8');
  b.write('ustar\0' + '00', 257, 8, 'latin1');
  octal(b, 329, 8, e.devmajor ?? 0);
  octal(b, 337, 8, e.devminor ?? 0);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of b) sum += c;
  octal(b, 148, 7, sum + (e.badChecksum ? 1 : 0));
  b[155] = 0x20;
  return b;
}

/** PAX records for an 'x' entry body. */
export function pax(recs: Record<string, string>): Buffer {
  let s = '';
  for (const [k, v] of Object.entries(recs)) {
    const rest = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(rest) + 1;
    while (String(len).length + Buffer.byteLength(rest) !== len) len = String(len).length + Buffer.byteLength(rest);
    s += `${len}${rest}`;
  }
  return Buffer.from(s);
}

export function tarball(entries: TarEntry[], o: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e));
    const body = typeof e.body === 'string' ? Buffer.from(e.body) : e.body ?? Buffer.alloc(0);
    if (body.length) parts.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  if (o.end !== false) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
