// A msgpack writer for the hot path: bytes written straight into one growing buffer, with the
// same choices as @msgpack/msgpack's Encoder (ignoreUndefined) for every value, so what it writes
// is byte for byte what that encoder makes of the same tree. Scalars and ASCII strings are written
// here; anything else (objects, arrays, other strings) is handed to that encoder and its bytes
// copied in. The snapshot writer (snapshot.ts) writes 100,000 container tuples this way instead of
// building each tuple as arrays for the encoder to walk. Pure: no I/O.
import { Encoder } from '@msgpack/msgpack';

const encoder = new Encoder({ ignoreUndefined: true });

export class Writer {
  buf = new Uint8Array(1 << 16);
  pos = 0;
  private dv = new DataView(this.buf.buffer);

  reset(): this { this.pos = 0; return this; }

  /** Lets a buffer grown past `max` bytes go (a rare large value should not keep its scratch alive). */
  release(max: number): void {
    if (this.buf.length <= max) return;
    this.buf = new Uint8Array(1 << 16);
    this.dv = new DataView(this.buf.buffer);
    this.pos = 0;
  }

  /** A copy of what was written. */
  bytes(): Uint8Array { return this.buf.slice(0, this.pos); }

  /** Room for `n` more bytes. */
  need(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const b = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    b.set(this.buf.subarray(0, this.pos));
    this.buf = b;
    this.dv = new DataView(b.buffer);
  }

  raw(b: Uint8Array): void { this.need(b.length); this.buf.set(b, this.pos); this.pos += b.length; }

  private u8(x: number): void { this.need(1); this.buf[this.pos++] = x; }
  private head(tag: number, x: number, bytes: 1 | 2 | 4): void {
    this.need(1 + bytes);
    this.buf[this.pos++] = tag;
    if (bytes === 1) this.buf[this.pos] = x; else if (bytes === 2) this.dv.setUint16(this.pos, x); else this.dv.setUint32(this.pos, x);
    this.pos += bytes;
  }

  nil(): void { this.u8(0xc0); }

  arrayHeader(n: number): void {
    if (n < 16) this.u8(0x90 + n); else if (n < 0x10000) this.head(0xdc, n, 2); else this.head(0xdd, n, 4);
  }

  mapHeader(n: number): void {
    if (n < 16) this.u8(0x80 + n); else if (n < 0x10000) this.head(0xde, n, 2); else this.head(0xdf, n, 4);
  }

  /** A number as the encoder writes it: the smallest integer form, else a float64. */
  number(x: number): void {
    if (!Number.isSafeInteger(x)) { this.need(9); this.buf[this.pos++] = 0xcb; this.dv.setFloat64(this.pos, x); this.pos += 8; return; }
    if (x >= 0) {
      if (x < 0x80) this.u8(x);
      else if (x < 0x100) this.head(0xcc, x, 1);
      else if (x < 0x10000) this.head(0xcd, x, 2);
      else if (x < 0x100000000) this.head(0xce, x, 4);
      else { this.need(9); this.buf[this.pos++] = 0xcf; this.dv.setUint32(this.pos, Math.floor(x / 0x100000000)); this.dv.setUint32(this.pos + 4, x >>> 0); this.pos += 8; }
      return;
    }
    if (x >= -0x20) this.u8(0xe0 | (x + 0x20));
    else if (x >= -0x80) { this.need(2); this.buf[this.pos++] = 0xd0; this.dv.setInt8(this.pos++, x); }
    else if (x >= -0x8000) { this.need(3); this.buf[this.pos++] = 0xd1; this.dv.setInt16(this.pos, x); this.pos += 2; }
    else if (x >= -0x80000000) { this.need(5); this.buf[this.pos++] = 0xd2; this.dv.setInt32(this.pos, x); this.pos += 4; }
    else { this.need(9); this.buf[this.pos++] = 0xd3; this.dv.setBigInt64(this.pos, BigInt(x)); this.pos += 8; }
  }

  /** A string: ASCII written here, anything else by the encoder (its UTF-8 of lone surrogates is its own). */
  string(s: string): void {
    const n = s.length;
    if (n >= 0x10000) { this.raw(encoder.encode(s)); return; }
    this.need(3 + n);
    const start = this.pos;
    if (n < 32) this.buf[this.pos++] = 0xa0 + n;
    else if (n < 0x100) { this.buf[this.pos++] = 0xd9; this.buf[this.pos++] = n; }
    else { this.buf[this.pos++] = 0xda; this.dv.setUint16(this.pos, n); this.pos += 2; }
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) { this.pos = start; this.raw(encoder.encode(s)); return; }
      b[p++] = c;
    }
    this.pos = p;
  }

  /** Any value, as the encoder writes it (undefined as nil, as in an array). */
  value(v: unknown): void {
    if (v === undefined || v === null) this.nil();
    else if (typeof v === 'string') this.string(v);
    else if (typeof v === 'number') this.number(v);
    else if (typeof v === 'boolean') this.u8(v ? 0xc3 : 0xc2);
    else this.raw(encoder.encode(v));
  }
}
