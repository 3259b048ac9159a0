// A msgpack reader for the hot path: a cursor over the wire bytes that the schema's checks
// (validate.ts) read from directly, so decoding and validating an event is one walk with no
// intermediate tree. Anything the fast paths do not expect falls back to `value()`, a
// generic decode with the same results as @msgpack/msgpack's (maps as objects with string or
// number keys, `__proto__` refused), bounded in depth and never trusting a length prefix
// beyond the bytes that are there. Pure: no I/O.

/** Bytes that are not well-formed msgpack (or nest deeper than any event does). */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

// one for every table: a TextEncoder each was most of a table's cost
const keyEncoder = new TextEncoder();

/** The keys a reader looks for in a map (a schema object's, the envelope's), by byte length. */
export class KeyTable {
  readonly byLen: { bytes: Uint8Array; index: number }[][] = [];
  constructor(readonly keys: readonly string[]) {
    keys.forEach((k, index) => {
      const bytes = keyEncoder.encode(k);
      (this.byLen[bytes.length] ??= []).push({ bytes, index });
    });
  }
}

/** Events nest about six deep (envelope, data, spec, security, ulimits, item). */
const MAX_DEPTH = 32;
// Buffer's native UTF-8 slice takes a Uint8Array as `this` (invalid sequences become U+FFFD, as
// TextDecoder makes them) and costs less per call than TextDecoder.decode.
const utf8Slice = (Buffer.prototype as unknown as { utf8Slice(this: Uint8Array, s: number, e: number): string }).utf8Slice;
const PROTO = new TextEncoder().encode('__proto__');
// for bytes already known to be ASCII: one copy into a one-byte string, no UTF-8 scan
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, s: number, e: number): string }).latin1Slice;

/** A set of ASCII bytes (Reader.ascii): 1 at each byte of `chars`. */
export function byteSet(chars: string): Uint8Array {
  const t = new Uint8Array(256);
  for (let i = 0; i < chars.length; i++) {
    const c = chars.charCodeAt(i);
    if (c === 0 || c >= 0x80) throw new Error('byteSet: ASCII characters other than NUL only');
    t[c] = 1;
  }
  return t;
}
/** Scratch for floats: msgpack is big-endian, this machine need not be. */
const f64 = new Float64Array(1);
const f64b = new Uint8Array(f64.buffer);
const f32 = new Float32Array(1);
const f32b = new Uint8Array(f32.buffer);
const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const NOT = Symbol('not this type');
export type Not = typeof NOT;
export const isNot = (v: unknown): v is Not => v === NOT;

export class Reader {
  buf: Uint8Array = new Uint8Array(0);
  pos = 0;
  private depth = 0;
  /** Short ASCII map keys, interned: every event repeats the same few dozen. */
  private keys = new Map<number, string[]>();

  reset(buf: Uint8Array): this {
    this.buf = buf;
    this.pos = 0;
    this.depth = 0;
    return this;
  }

  /** Back to a top-level position (after an error inside a value: its depth is forgotten). */
  at(pos: number): this {
    this.pos = pos;
    this.depth = 0;
    return this;
  }

  get done(): boolean { return this.pos === this.buf.length; }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new WireError(`insufficient data at byte ${this.pos}`);
  }

  private u8(): number {
    if (this.pos >= this.buf.length) throw new WireError(`insufficient data at byte ${this.pos}`);
    return this.buf[this.pos++]!;
  }

  private u16(): number { this.need(2); const b = this.buf, p = this.pos; this.pos += 2; return (b[p]! << 8) | b[p + 1]!; }
  private u32(): number { this.need(4); const b = this.buf, p = this.pos; this.pos += 4; return ((b[p]! << 24) >>> 0) + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!); }
  private i32(): number { return this.u32() | 0; }

  private float(scratch: Uint8Array, n: number): number {
    this.need(n);
    const b = this.buf, p = this.pos;
    for (let i = 0; i < n; i++) scratch[LE ? n - 1 - i : i] = b[p + i]!;
    this.pos += n;
    return n === 8 ? f64[0]! : f32[0]!;
  }

  /** A map's entry count (and the cursor past its header), or NOT with the cursor unmoved. */
  mapLen(): number | Not {
    const b = this.buf[this.pos];
    if (b === undefined) throw new WireError(`insufficient data at byte ${this.pos}`);
    if (b >= 0x80 && b <= 0x8f) { this.pos++; return b & 0x0f; }
    if (b === 0xde) { this.pos++; return this.count(this.u16(), 2); }
    if (b === 0xdf) { this.pos++; return this.count(this.u32(), 2); }
    return NOT;
  }

  /** An array's length (and the cursor past its header), or NOT with the cursor unmoved. */
  arrayLen(): number | Not {
    const b = this.buf[this.pos];
    if (b === undefined) throw new WireError(`insufficient data at byte ${this.pos}`);
    if (b >= 0x90 && b <= 0x9f) { this.pos++; return b & 0x0f; }
    if (b === 0xdc) { this.pos++; return this.count(this.u16(), 1); }
    if (b === 0xdd) { this.pos++; return this.count(this.u32(), 1); }
    return NOT;
  }

  /** A length prefix is a claim: each item takes at least one byte, so it cannot exceed what is left. */
  private count(n: number, perItem: number): number {
    if (n * perItem > this.buf.length - this.pos) throw new WireError(`a length of ${n} at byte ${this.pos} runs past the end`);
    return n;
  }

  /** The byte length of a string here, or -1 (cursor past the header when a string). */
  private strLen(): number {
    const b = this.buf[this.pos];
    if (b === undefined) throw new WireError(`insufficient data at byte ${this.pos}`);
    if (b >= 0xa0 && b <= 0xbf) { this.pos++; return b & 0x1f; }
    if (b === 0xd9) { this.pos++; return this.u8(); }
    if (b === 0xda) { this.pos++; return this.u16(); }
    if (b === 0xdb) { this.pos++; return this.u32(); }
    return -1;
  }

  private utf8(n: number): string {
    this.need(n);
    const start = this.pos;
    this.pos += n;
    if (n <= 16) {
      // short strings: most are ASCII, and a loop beats TextDecoder's call overhead
      let s = '';
      for (let i = start; i < start + n; i++) {
        const c = this.buf[i]!;
        if (c >= 0x80) return utf8Slice.call(this.buf, start, start + n);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return utf8Slice.call(this.buf, start, start + n);
  }

  /**
   * A string of `min`..`max` bytes, its first byte in `first` and the others in `rest` (byteSet:
   * ASCII, no NUL), or NOT with the cursor unmoved (any other value, or a string that is not
   * that: the caller reads it as it would have, and its checks say what is wrong). Matched on the
   * bytes, so a string that passes needs no check of its own: for the envelope's ids, whose
   * length checks and patterns on the made strings were a fifth of a decode.
   */
  ascii(min: number, max: number, first: Uint8Array, rest: Uint8Array): string | Not {
    const end = this.asciiEnd(min, max, first, rest);
    if (end < 0) return NOT;
    this.pos = end;
    return latin1Slice.call(this.buf, this.strAt, end);
  }

  /**
   * ascii() without the string: true with the cursor past it, or NOT with the cursor unmoved.
   * For a reader that must know an id is valid but never reads it (the replay's signature checks).
   */
  asciiValid(min: number, max: number, first: Uint8Array, rest: Uint8Array): true | Not {
    const end = this.asciiEnd(min, max, first, rest);
    if (end < 0) return NOT;
    this.pos = end;
    return true;
  }

  /** Where the string ascii() would take from here starts (this.strAt, no object made) */
  private strAt = 0;
  /** The end of the string ascii() would take from here, its bytes checked, or -1; the cursor unmoved. */
  private asciiEnd(min: number, max: number, first: Uint8Array, rest: Uint8Array): number {
    const buf = this.buf;
    const at = this.pos;
    const b = buf[at];
    let n: number, p: number;
    if (b !== undefined && b >= 0xa0 && b <= 0xbf) { n = b & 0x1f; p = at + 1; }
    else if (b === 0xd9 && at + 1 < buf.length) { n = buf[at + 1]!; p = at + 2; }
    else return -1;
    if (n < min || n > max || n === 0 || p + n > buf.length) return -1;
    if (first[buf[p]!] !== 1) return -1;
    for (let i = p + 1; i < p + n; i++) if (rest[buf[i]!] !== 1) return -1;
    this.strAt = p;
    return p + n;
  }

  /** Which of `table`'s keys the string here is (the cursor past it), or -1 with the cursor unmoved: no string made. */
  oneOf(table: KeyTable): number {
    const buf = this.buf;
    const b = buf[this.pos];
    if (b === undefined || b < 0xa0 || b > 0xbf) return -1;
    const n = b & 0x1f;
    const p = this.pos + 1;
    if (p + n > buf.length) return -1;
    const cands = table.byLen[n];
    if (cands) {
      outer: for (let c = 0; c < cands.length; c++) {
        const k = cands[c]!;
        for (let i = 0; i < n; i++) if (k.bytes[i] !== buf[p + i]) continue outer;
        this.pos = p + n;
        return k.index;
      }
    }
    return -1;
  }

  /**
   * A fixstr or str8 read as bytes (latin1: one copy, no UTF-8 scan), or NOT with the cursor
   * unmoved. Only for a string known to be ASCII (an envelope's id already validated over these
   * bytes), where it is what str() makes.
   */
  asciiKnown(): string | Not {
    const buf = this.buf, at = this.pos, b = buf[at];
    let n: number, p: number;
    if (b !== undefined && b >= 0xa0 && b <= 0xbf) { n = b & 0x1f; p = at + 1; }
    else if (b === 0xd9 && at + 1 < buf.length) { n = buf[at + 1]!; p = at + 2; }
    else return NOT;
    if (p + n > buf.length) return NOT;
    this.pos = p + n;
    return latin1Slice.call(buf, p, p + n);
  }

  /** A string, or NOT with the cursor unmoved. */
  str(): string | Not {
    const n = this.strLen();
    return n < 0 ? NOT : this.utf8(n);
  }

  /**
   * Which of `table`'s keys the map key here is (its index), or -1 for any other key (a
   * string, or a number as the generic decoder allows): matched on the bytes, no string made.
   */
  keyIn(table: KeyTable): number {
    const n = this.strLen();
    if (n < 0) { this.key(); return -1; }
    this.need(n);
    const buf = this.buf;
    const p = this.pos;
    this.pos += n;
    const cands = table.byLen[n];
    if (cands) {
      outer: for (let c = 0; c < cands.length; c++) {
        const k = cands[c]!;
        for (let i = 0; i < n; i++) if (k.bytes[i] !== buf[p + i]) continue outer;
        return k.index;
      }
    }
    return -1;
  }

  /** A map key as the generic decoder makes it: interned when short. */
  key(): string | number {
    const start = this.pos;
    const n = this.strLen();
    if (n < 0) {
      const k = this.value();
      if (typeof k !== 'number') throw new WireError(`a map key at byte ${start} is ${k === null ? 'nil' : typeof k}, not a string or number`);
      return k;
    }
    if (n > 16) return this.checkKey(this.utf8(n));
    this.need(n);
    let h = n;
    for (let i = this.pos; i < this.pos + n; i++) h = (Math.imul(h, 31) + this.buf[i]!) | 0;
    const bucket = this.keys.get(h);
    if (bucket) {
      for (const s of bucket) if (this.same(s, n)) { this.pos += n; return s; }
    }
    const s = this.checkKey(this.utf8(n));
    if (this.keys.size < 4096 && !/[^\x20-\x7e]/.test(s)) {
      if (bucket) bucket.push(s); else this.keys.set(h, [s]);
    }
    return s;
  }

  /**
   * key() stepped over: the same errors (a key that is neither a string nor a number, a
   * __proto__), no string made nor looked up. What skip() reads of a map: the replay's reader
   * thread steps over every event's data this way (key() was a tenth of its decode).
   */
  private skipKey(): void {
    const start = this.pos;
    const n = this.strLen();
    if (n < 0) {
      const k = this.value();
      if (typeof k !== 'number') throw new WireError(`a map key at byte ${start} is ${k === null ? 'nil' : typeof k}, not a string or number`);
      return;
    }
    this.need(n);
    // only these bytes make the string '__proto__' (UTF-8 has one way to write ASCII)
    if (n === PROTO.length) {
      let i = 0;
      while (i < n && this.buf[this.pos + i] === PROTO[i]) i++;
      if (i === n) throw new WireError('the key __proto__ is not allowed');
    }
    this.pos += n;
  }

  private same(s: string, n: number): boolean {
    if (s.length !== n) return false;
    for (let i = 0; i < n; i++) if (s.charCodeAt(i) !== this.buf[this.pos + i]) return false;
    return true;
  }

  private checkKey(s: string): string {
    if (s === '__proto__') throw new WireError('the key __proto__ is not allowed');
    return s;
  }

  /** A number (any msgpack int or float), or NOT with the cursor unmoved. */
  num(): number | Not {
    const b = this.buf[this.pos];
    if (b === undefined) throw new WireError(`insufficient data at byte ${this.pos}`);
    if (b <= 0x7f) { this.pos++; return b; }
    if (b >= 0xe0) { this.pos++; return b - 0x100; }
    if (b < 0xca || b > 0xd3) return NOT;
    this.pos++;
    switch (b) {
      case 0xca: return this.float(f32b, 4);
      case 0xcb: return this.float(f64b, 8);
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: { const hi = this.u32(); return hi * 2 ** 32 + this.u32(); }
      case 0xd0: return (this.u8() << 24) >> 24;
      case 0xd1: return (this.u16() << 16) >> 16;
      case 0xd2: return this.i32();
      default: { const hi = this.i32(); return hi * 2 ** 32 + this.u32(); }
    }
  }

  /** A boolean, or NOT with the cursor unmoved. */
  bool(): boolean | Not {
    const b = this.buf[this.pos];
    if (b === 0xc2) { this.pos++; return false; }
    if (b === 0xc3) { this.pos++; return true; }
    return NOT;
  }

  /** nil here: consumed, true. */
  nil(): boolean {
    if (this.buf[this.pos] === 0xc0) { this.pos++; return true; }
    return false;
  }

  private enter(): void {
    if (++this.depth > MAX_DEPTH) throw new WireError(`nested deeper than ${MAX_DEPTH} at byte ${this.pos}`);
  }

  /** Any value, decoded generically (the slow path: only what the checks do not expect). */
  value(): unknown {
    const s = this.str();
    if (s !== NOT) return s;
    const x = this.num();
    if (x !== NOT) return x;
    const m = this.mapLen();
    if (m !== NOT) {
      this.enter();
      const o: Record<string | number, unknown> = {};
      for (let i = 0; i < m; i++) { const k = this.key(); o[k] = this.value(); }
      this.depth--;
      return o;
    }
    const a = this.arrayLen();
    if (a !== NOT) {
      this.enter();
      const out = new Array<unknown>(a);
      for (let i = 0; i < a; i++) out[i] = this.value();
      this.depth--;
      return out;
    }
    const b = this.u8();
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bytes(this.u8());
      case 0xc5: return this.bytes(this.u16());
      case 0xc6: return this.bytes(this.u32());
      // extensions (a timestamp, anything else) are nothing an event holds: kept opaque
      case 0xd4: return this.ext(1);
      case 0xd5: return this.ext(2);
      case 0xd6: return this.ext(4);
      case 0xd7: return this.ext(8);
      case 0xd8: return this.ext(16);
      case 0xc7: return this.ext(this.u8());
      case 0xc8: return this.ext(this.u16());
      case 0xc9: return this.ext(this.u32());
      default: throw new WireError(`byte 0x${b.toString(16)} at ${this.pos - 1} starts no msgpack value`);
    }
  }

  private bytes(n: number): Uint8Array {
    this.need(n);
    const b = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  private ext(n: number): { type: number; data: Uint8Array } {
    const type = (this.u8() << 24) >> 24;
    return { type, data: this.bytes(n) };
  }

  /** Steps over one value, checking it is well-formed, building nothing. */
  skip(): void {
    // the commonest forms by their first byte (positive fixint, fixstr, nil, bool, fixmap,
    // fixarray), each read as the general way below reads it (the same cursor, checks and
    // errors); anything else goes that way
    const b = this.buf[this.pos];
    if (b !== undefined) {
      if (b <= 0x7f || b === 0xc0 || b === 0xc2 || b === 0xc3) { this.pos++; return; }
      if (b >= 0xa0 && b <= 0xbf) { this.pos++; const n = b & 0x1f; this.need(n); this.pos += n; return; }
      if (b >= 0x80 && b <= 0x8f) {
        this.pos++;
        this.enter();
        for (let i = 0, m = b & 0x0f; i < m; i++) { this.skipKey(); this.skip(); }
        this.depth--;
        return;
      }
      if (b >= 0x90 && b <= 0x9f) {
        this.pos++;
        this.enter();
        for (let i = 0, a = b & 0x0f; i < a; i++) this.skip();
        this.depth--;
        return;
      }
    }
    const n = this.strLen();
    if (n >= 0) { this.need(n); this.pos += n; return; }
    if (this.num() !== NOT || this.bool() !== NOT || this.nil()) return;
    const m = this.mapLen();
    if (m !== NOT) {
      this.enter();
      for (let i = 0; i < m; i++) { this.skipKey(); this.skip(); }
      this.depth--;
      return;
    }
    const a = this.arrayLen();
    if (a !== NOT) {
      this.enter();
      for (let i = 0; i < a; i++) this.skip();
      this.depth--;
      return;
    }
    this.value();
  }
}
