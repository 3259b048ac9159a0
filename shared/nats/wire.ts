// Pure: the NATS client protocol as a bulk reader needs it, server to client. nats.js's parser
// makes an object per message (its args cloned, its payload copied into a Buffer, its headers
// into a map): for a reader of hundreds of thousands of small messages that was the largest
// cost after decoding. This one hands each MSG/HMSG frame out as positions in the bytes that
// arrived (no copy, no string, no object), and PING/PONG/+OK/-ERR/INFO as calls.
//
// A server is not trusted to be well-formed: a control line longer than MAX_LINE, a declared
// size over the payload limit, a header size over the total, a frame not ended by CRLF, an
// unknown operation, or anything else that is not the protocol throws a one-line WireError
// (and the parser stays dead). A frame that is cut off is held until the rest arrives; how much
// is held is bounded by the limits above. `midFrame` says whether a close cut a frame off.
//
//   const p = new WireParser(handler, maxPayload); socket.on('data', (b) => p.push(b));
//
// shared/nats/wire-conn.ts is the thin I/O around it (socket, TLS, the nkey handshake).

/** What the parser hands out. Positions index `b`; `b` is never written again, so views into it may be kept. */
export interface WireHandler {
  /**
   * MSG or HMSG: subject [subj, subjEnd), reply [reply, replyEnd) (equal: none), header block
   * [hdr, body) (equal: none, i.e. MSG), payload [body, end).
   */
  msg(b: Uint8Array, sid: number, subj: number, subjEnd: number, reply: number, replyEnd: number, hdr: number, body: number, end: number): void;
  ping(): void;
  pong(): void;
  /** -ERR's text, quotes removed */
  err(text: string): void;
  /** INFO's JSON text (not parsed here) */
  info(json: string): void;
}

/** The protocol was broken: one line, with what and where. */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

/** The longest control line taken (an INFO with a cluster's URLs is a few KiB). */
export const MAX_LINE = 64 * 1024;
/** The largest payload taken whatever the server announces. */
export const MAX_PAYLOAD_CAP = 64 * 1024 * 1024;

const CR = 0x0d, LF = 0x0a, SP = 0x20, TAB = 0x09;
const latin1 = (Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, s: number, e: number): string }).latin1Slice;

/** A short printable excerpt of hostile bytes, for an error message. */
function excerpt(b: Uint8Array, s: number, e: number): string {
  return JSON.stringify(latin1.call(b, s, Math.min(e, s + 40)).replace(/[^\x20-\x7e]/g, '?'));
}

export class WireParser {
  /** a frame cut off at the end of what arrived: the bytes so far (a control line, or a whole frame of known size) */
  private part: Uint8Array | undefined;
  private partLen = 0;
  /** the whole frame's size when `part` holds a frame whose control line was read (0: a line is still partial) */
  private need = 0;
  private dead: WireError | undefined;
  // the tokens of the control line being read (start, end pairs)
  private readonly tok = new Int32Array(12);

  /** `maxPayload`: frames declaring more are refused (the server's INFO max_payload, capped). */
  constructor(private readonly h: WireHandler, public maxPayload = 1024 * 1024) {}

  /** A close now would cut a frame off. */
  get midFrame(): boolean { return this.part !== undefined; }

  /** Bytes as they arrived (a Buffer or a Uint8Array; not written afterwards). Throws WireError. */
  push(chunk: Uint8Array): void {
    if (this.dead) throw this.dead;
    try {
      let off = 0;
      const p = this.part;
      if (p) {
        if (this.need > 0) {
          // the rest of a frame of known size, into its own buffer: then parsed alone
          const take = Math.min(this.need - this.partLen, chunk.length);
          p.set(chunk.subarray(0, take), this.partLen);
          this.partLen += take;
          if (this.partLen < this.need) return;
          this.part = undefined;
          this.need = 0;
          this.run(p, 0);
          off = take;
        } else {
          // a control line cut off (short: bounded by MAX_LINE): joined with what follows
          const b = new Uint8Array(this.partLen + chunk.length);
          b.set(p.subarray(0, this.partLen));
          b.set(chunk, this.partLen);
          this.part = undefined;
          this.run(b, 0);
          return;
        }
      }
      if (off < chunk.length) this.run(chunk, off);
    } catch (err) {
      if (err instanceof WireError) this.dead = err;
      throw err;
    }
  }

  /** Parses frames from b[i..]; keeps a cut-off one in `part`. */
  private run(b: Uint8Array, i: number): void {
    const n = b.length;
    const t = this.tok;
    while (i < n) {
      // a loop, not indexOf: a control line is short, and a Buffer's indexOf costs more per call
      let nl = i;
      const stop = Math.min(n, i + MAX_LINE + 1);
      while (nl < stop && b[nl] !== LF) nl++;
      if (nl === stop) nl = -1;
      if (nl < 0 || nl - i > MAX_LINE) {
        if (n - i > MAX_LINE) throw new WireError(`a control line longer than ${MAX_LINE} bytes: ${excerpt(b, i, n)}`);
        this.hold(b, i, n, 0);
        return;
      }
      if (nl === i || b[nl - 1] !== CR) throw new WireError(`a control line not ended by CRLF: ${excerpt(b, i, nl)}`);
      const le = nl - 1; // line end (the CR)
      const c0 = b[i];
      if (c0 === 0x4d /* M */ || c0 === 0x48 /* H */) {
        const hmsg = c0 === 0x48;
        const op = hmsg ? 5 : 4;
        if (le - i < op || !(hmsg ? b[i + 1] === 0x4d && b[i + 2] === 0x53 && b[i + 3] === 0x47 : b[i + 1] === 0x53 && b[i + 2] === 0x47) || !(b[i + op - 1] === SP || b[i + op - 1] === TAB)) {
          throw new WireError(`unknown operation: ${excerpt(b, i, le)}`);
        }
        // tokens: subject sid [reply] [hdr] total
        let k = 0;
        let j = i + op;
        while (j < le) {
          while (j < le && (b[j] === SP || b[j] === TAB)) j++;
          if (j >= le) break;
          if (k === 12) throw new WireError(`too many arguments: ${excerpt(b, i, le)}`);
          t[k++] = j;
          while (j < le && b[j] !== SP && b[j] !== TAB) j++;
          t[k++] = j;
        }
        const args = k >> 1;
        const min = hmsg ? 4 : 3;
        if (args < min || args > min + 1) throw new WireError(`${hmsg ? 'HMSG' : 'MSG'} with ${args} arguments: ${excerpt(b, i, le)}`);
        const total = dec(b, t[k - 2]!, t[k - 1]!);
        const hl = hmsg ? dec(b, t[k - 4]!, t[k - 3]!) : 0;
        const sid = dec(b, t[2]!, t[3]!);
        if (total < 0 || hl < 0 || sid < 0) throw new WireError(`a size or sid that is not a number: ${excerpt(b, i, le)}`);
        if (total > this.maxPayload) throw new WireError(`a frame declaring ${total} bytes (the limit is ${this.maxPayload})`);
        if (hl > total) throw new WireError(`a header of ${hl} bytes in a frame of ${total}`);
        const reply = args === min + 1;
        const start = nl + 1;
        const end = start + total;
        if (end + 2 > n) {
          // cut off: the whole frame (control line included) in a buffer of its size
          this.hold(b, i, n, end + 2 - i);
          return;
        }
        if (b[end] !== CR || b[end + 1] !== LF) throw new WireError(`a ${total}-byte payload not followed by CRLF: ${excerpt(b, end, end + 2)}`);
        if (hl > 0 && (hl < 12 || b[start] !== 0x4e /* N */ || b[start + 1] !== 0x41 || b[start + 2] !== 0x54 || b[start + 3] !== 0x53 || b[start + 4] !== 0x2f)) {
          throw new WireError(`a header block that does not start with NATS/: ${excerpt(b, start, start + hl)}`);
        }
        this.h.msg(b, sid, t[0]!, t[1]!, reply ? t[4]! : 0, reply ? t[5]! : 0, start, start + hl, end);
        i = end + 2;
        continue;
      }
      if (le - i === 4 && c0 === 0x50 /* P */ && b[i + 1] === 0x49 && b[i + 2] === 0x4e && b[i + 3] === 0x47) { this.h.ping(); i = nl + 1; continue; }
      if (le - i === 4 && c0 === 0x50 && b[i + 1] === 0x4f && b[i + 2] === 0x4e && b[i + 3] === 0x47) { this.h.pong(); i = nl + 1; continue; }
      if (le - i === 3 && c0 === 0x2b /* + */ && b[i + 1] === 0x4f && b[i + 2] === 0x4b) { i = nl + 1; continue; }
      if (le - i >= 4 && c0 === 0x2d /* - */ && b[i + 1] === 0x45 && b[i + 2] === 0x52 && b[i + 3] === 0x52) {
        this.h.err(latin1.call(b, i + 4, le).trim().replace(/^'|'$/g, '').replace(/[^\x20-\x7e]/g, '?').slice(0, 300));
        i = nl + 1;
        continue;
      }
      if (le - i >= 5 && c0 === 0x49 /* I */ && b[i + 1] === 0x4e && b[i + 2] === 0x46 && b[i + 3] === 0x4f && (b[i + 4] === SP || b[i + 4] === TAB)) {
        this.h.info(Buffer.from(b.buffer, b.byteOffset + i + 5, le - i - 5).toString('utf8'));
        i = nl + 1;
        continue;
      }
      throw new WireError(`unknown operation: ${excerpt(b, i, le)}`);
    }
  }

  /** Keeps b[i..n) for the next push; `size`: the whole frame's size when known (0: a partial line). */
  private hold(b: Uint8Array, i: number, n: number, size: number): void {
    const have = n - i;
    const p = new Uint8Array(size > 0 ? size : have);
    p.set(b.subarray(i, n));
    this.part = p;
    this.partLen = have;
    this.need = size;
  }
}

/** A decimal of at most 15 digits in b[s, e), or -1. */
function dec(b: Uint8Array, s: number, e: number): number {
  if (e <= s || e - s > 15) return -1;
  let v = 0;
  for (let i = s; i < e; i++) {
    const d = b[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/** The status code of a header block without a reply ("NATS/1.0 408 Request Timeout"), 0 if none; and its text. */
export function statusOf(b: Uint8Array, hdr: number, body: number): { code: number; text: string } {
  // "NATS/1.0" then optional " ddd description" before the first CRLF
  let e = b.indexOf(CR, hdr);
  if (e < 0 || e > body) e = body;
  const line = latin1.call(b, hdr, e);
  const m = /^NATS\/1\.0[ \t]+(\d{3})(?:[ \t]+(.*))?$/.exec(line);
  return m ? { code: Number(m[1]), text: (m[2] ?? '').replace(/[^\x20-\x7e]/g, '?').slice(0, 200) } : { code: 0, text: '' };
}

/** CONNECT, then a PING (its PONG says the server took the CONNECT). */
export function connectFrame(o: Record<string, unknown>): string {
  return `CONNECT ${JSON.stringify({ verbose: false, pedantic: false, protocol: 1, headers: true, no_responders: true, lang: 'swarmlite-wire', version: '1', ...o })}\r\nPING\r\n`;
}

const SUBJECT_RE = /^[^\s\x00-\x1f\x7f]{1,1024}$/;
function subject(s: string, what: string): string {
  if (!SUBJECT_RE.test(s)) throw new WireError(`invalid ${what} ${JSON.stringify(s.slice(0, 80))}`);
  return s;
}

/** SUB <subject> <sid>. */
export function subFrame(subj: string, sid: number): string {
  return `SUB ${subject(subj, 'subject')} ${sid}\r\n`;
}

/** UNSUB <sid>. */
export const unsubFrame = (sid: number): string => `UNSUB ${sid}\r\n`;

/** PUB <subject> [reply] <size> with an ASCII/UTF-8 payload. */
export function pubFrame(subj: string, payload: string, reply?: string): string {
  return `PUB ${subject(subj, 'subject')}${reply ? ` ${subject(reply, 'reply subject')}` : ''} ${Buffer.byteLength(payload)}\r\n${payload}\r\n`;
}
