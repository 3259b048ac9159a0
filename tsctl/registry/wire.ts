// A lean HTTP/1.1 GET for blob bodies, over a net or tls socket of its own. node:http (and
// undici's request(), measured side by side: no better) hands a body over in 64 KiB pieces,
// each a buffer allocated for its read and a trip through the stream machinery; receiving
// the five layers of the pull bench cost ~75 ms CPU that way, ~40 ms read here. Here each
// read lands in the free end of a 1 MiB slab (net's `onread` with a buffer per read, taken
// from the slab): as much as the socket holds in one read, no copy, one allocation per MiB.
// The body is a Readable of those slices (their slab stays alive while they do); a slab is a
// SharedArrayBuffer, so a pull hashes its slices on another thread without a copy (no byte
// of a slab is written again once handed out: hash-thread.ts relies on that).
// What it speaks: one request at a time per socket, a reply with Content-Length, chunked or
// until close (no length), no decoding (tsctl sends no Accept-Encoding), keep-alive sockets
// kept per origin (unref'd while idle, dropped after IDLE_MS). Anything it does not
// understand is an HttpError of one line and the socket is dropped: nothing half-read is
// reused. Redirects, auth and Range are the caller's (client.ts), as with http.ts.
import net from 'node:net';
import tls from 'node:tls';
import { Readable } from 'node:stream';
import { HttpError, type Reply } from './http.js';

const SLAB = 1 << 20;
/** Less than this left in a slab: the next read gets a new one. */
const MIN_READ = 64 << 10;
const MAX_HEAD = 64 << 10;
const MAX_CHUNK_LINE = 4096;
/** Kept idle this long for the next blob (registries close theirs later than this). */
const IDLE_MS = 4000;
/** Read ahead of the consumer at most this much before the socket stops reading. */
const AHEAD = 4 << 20;

type Sock = net.Socket | tls.TLSSocket;

/** Shared memory: a pull's hash thread reads the bytes where they landed (hash-thread.ts). */
const newSlab = () => Buffer.from(new SharedArrayBuffer(SLAB));

/** One socket and whoever reads it now. */
class Conn {
  slab = newSlab();
  off = 0;
  /** The exchange reading this socket; undefined while idle in the pool. */
  onBytes?: (b: Buffer) => boolean;
  onEnd?: (err?: Error) => void;
  idleTimer?: NodeJS.Timeout;
  sock: Sock;
  used = false;
  dead = false;

  constructor(readonly origin: string, u: URL) {
    const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const onread = {
      buffer: () => {
        if (SLAB - this.off < MIN_READ) { this.slab = newSlab(); this.off = 0; }
        return this.slab.subarray(this.off);
      },
      callback: (n: number, b: Uint8Array) => {
        const got = (b as Buffer).subarray(0, n);
        this.off += n;
        // bytes while idle (none are due): the socket is not trusted again
        if (!this.onBytes) { this.kill(); return false; }
        return this.onBytes(got);
      },
    };
    this.sock = u.protocol === 'https:'
      ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ['http/1.1'], onread } as tls.ConnectionOptions)
      : net.connect({ host, port, onread });
    this.sock.setNoDelay(true);
    this.sock.on('error', (e: NodeJS.ErrnoException) => this.end(new HttpError(e.message, e.code)));
    this.sock.on('end', () => this.end());
    this.sock.on('close', () => this.end());
  }

  private end(err?: Error): void {
    const cb = this.onEnd;
    this.dead = true;
    this.onBytes = this.onEnd = undefined;
    this.unpool();
    this.sock.destroy();
    cb?.(err);
  }

  kill(): void { this.end(); }

  unpool(): void {
    clearTimeout(this.idleTimer);
    const list = pool.get(this.origin);
    const i = list?.indexOf(this) ?? -1;
    if (i >= 0) list!.splice(i, 1);
  }
}

const pool = new Map<string, Conn[]>();

function take(u: URL): Conn {
  const list = pool.get(u.origin);
  for (let c = list?.pop(); c; c = list?.pop()) {
    clearTimeout(c.idleTimer);
    // a body that ended on a full stream left the socket paused: the next reply must be read
    if (!c.dead) { c.sock.ref(); c.sock.resume(); return c; }
  }
  return new Conn(u.origin, u);
}

function release(c: Conn): void {
  if (c.dead) return;
  c.onBytes = c.onEnd = undefined;
  c.sock.unref();
  // reading while idle: a close by the server is seen (and the socket dropped) at once
  c.sock.resume();
  const list = pool.get(c.origin) ?? [];
  pool.set(c.origin, list);
  list.push(c);
  c.idleTimer = setTimeout(() => c.kill(), IDLE_MS);
  c.idleTimer.unref();
}

/** The reply's head: status, reason, headers (lower-case names, repeated ones joined with ", "). */
export interface Head { status: number; statusText: string; headers: Map<string, string>; version: string }

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\x20-\x7e\t\x80-\xff]*$/;
/** Interim replies (100 Continue and the like) skipped before the real one; more is a hostile server. */
const MAX_INTERIM = 8;

/** Parses a reply head (the bytes before the blank line); a string says what is wrong with it. */
export function parseHead(text: string): Head | string {
  const lines = text.split('\r\n');
  const m = /^HTTP\/(1\.[01]) (\d{3})(?: ([\x20-\x7e\t]*))?$/.exec(lines[0]);
  if (!m) return `a reply that is not HTTP/1.x ("${lines[0].slice(0, 40).replace(/[^\x20-\x7e]/g, '?')}")`;
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    // split at the colon and trimmed by hand: one regex with a lazy value between two runs of
    // blanks backtracks in the cube of the line (a 60k-blank line: hours, on the event loop)
    const colon = l.indexOf(':');
    if (colon <= 0 || !TOKEN.test(l.slice(0, colon))) return 'a reply header that is not "name: value"';
    let a = colon + 1, z = l.length;
    while (a < z && (l[a] === ' ' || l[a] === '\t')) a++;
    while (z > a && (l[z - 1] === ' ' || l[z - 1] === '\t')) z--;
    const v = l.slice(a, z);
    if (!FIELD_VALUE.test(v)) return 'a reply header that is not "name: value"';
    const k = l.slice(0, colon).toLowerCase();
    const had = headers.get(k);
    if (k === 'content-length' && had !== undefined && had !== v) return 'two different Content-Length headers';
    headers.set(k, had === undefined || k === 'content-length' ? v : `${had}, ${v}`);
  }
  return { version: m[1], status: Number(m[2]), statusText: m[3] ?? '', headers };
}

/**
 * Sends a GET or HEAD with `headers` and resolves at the reply's head (within `timeoutMs`),
 * its body unread. A reused socket that the server closed before replying is retried once
 * on a new one (a GET is safe to repeat).
 */
export async function get(url: string, o: { method: 'GET' | 'HEAD'; headers: Record<string, string>; timeoutMs: number }): Promise<Reply> {
  const u = new URL(url);
  const c = take(u);
  const reused = c.used;
  try {
    return await exchange(c, u, o);
  } catch (err) {
    if (!reused || !(err instanceof HttpError) || err.code !== 'REUSED_CLOSED') throw err;
    return exchange(new Conn(u.origin, u), u, o);
  }
}

function exchange(c: Conn, u: URL, o: { method: 'GET' | 'HEAD'; headers: Record<string, string>; timeoutMs: number }): Promise<Reply> {
  const reused = c.used;
  c.used = true;
  let lines = `${o.method} ${u.pathname}${u.search} HTTP/1.1\r\nhost: ${u.host}\r\n`;
  for (const [k, v] of Object.entries(o.headers)) {
    if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) return Promise.reject(new HttpError(`header ${k.slice(0, 40)} has a line break: refused`, 'BADHEADER'));
    lines += `${k}: ${v}\r\n`;
  }
  c.sock.write(`${lines}\r\n`);
  return new Promise<Reply>((resolve, reject) => {
    let head: Buffer | undefined = Buffer.alloc(0);
    let settled = false;
    const fail = (e: Error) => { if (!settled) { settled = true; clearTimeout(timer); reject(e); } c.kill(); };
    const timer = setTimeout(() => fail(new HttpError(`no reply within ${o.timeoutMs / 1000} s`, 'TIMEOUT')), o.timeoutMs);
    // a kept socket the server closed (or reset) before any byte of the reply: made again once
    c.onEnd = (err) => fail(reused && head?.length === 0 && (!err || ['ECONNRESET', 'EPIPE'].includes((err as HttpError).code ?? ''))
      ? new HttpError('the server closed a kept connection', 'REUSED_CLOSED')
      : err ?? new HttpError('the server closed the connection before its reply', 'ECONNRESET'));
    let interim = 0;
    c.onBytes = (b) => {
      head = head!.length ? Buffer.concat([head!, b]) : b;
      let h: Head | string, rest: Buffer;
      // a loop, not a call per interim reply: a read full of them overflowed the stack
      for (;;) {
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > MAX_HEAD) fail(new HttpError(`reply headers over ${MAX_HEAD >> 10} KiB: refused`, 'BADREPLY'));
          return !settled;
        }
        if (end > MAX_HEAD) { fail(new HttpError(`reply headers over ${MAX_HEAD >> 10} KiB: refused`, 'BADREPLY')); return false; }
        h = parseHead(head.subarray(0, end).toString('latin1'));
        if (typeof h === 'string') { fail(new HttpError(`${h}: refused`, 'BADREPLY')); return false; }
        rest = head.subarray(end + 4);
        // an interim reply (100 Continue and the like) is skipped: the real one follows
        if (h.status < 100 || h.status >= 200) break;
        if (++interim > MAX_INTERIM) { fail(new HttpError(`more than ${MAX_INTERIM} interim replies: refused`, 'BADREPLY')); return false; }
        head = rest;
        if (!rest.length) return true;
      }
      head = undefined;
      const body = bodyReader(c, h, o.method === 'HEAD' || h.status === 204 || h.status === 304);
      if (typeof body === 'string') { fail(new HttpError(`${body}: refused`, 'BADREPLY')); return false; }
      settled = true;
      clearTimeout(timer);
      resolve({
        status: h.status, statusText: h.statusText,
        headers: { get: (n) => h.headers.get(n.toLowerCase()) ?? null },
        body: body.stream,
      });
      return rest.length ? body.feed(rest) : true;
    };
  });
}

/** The body of a reply on `c`, as its framing says; the socket goes back to the pool at a clean end. */
function bodyReader(c: Conn, h: Head, none: boolean): { stream: Readable; feed: (b: Buffer) => boolean } | string {
  const te = h.headers.get('transfer-encoding');
  const cl = h.headers.get('content-length');
  if (te !== undefined && cl !== undefined) return 'a reply with both Transfer-Encoding and Content-Length';
  if (te !== undefined && te.toLowerCase() !== 'chunked') return `a reply with Transfer-Encoding "${te.slice(0, 40)}"`;
  if (cl !== undefined && !/^\d{1,15}$/.test(cl)) return 'a reply with a Content-Length that is not a number';
  const keep = h.version === '1.1' && !/(^|,)\s*close\s*(,|$)/i.test(h.headers.get('connection') ?? '');
  const chunked = te !== undefined;
  let left = none ? 0 : cl !== undefined ? Number(cl) : chunked ? -1 : Infinity;
  let got = 0;
  let done = false;
  const stream = new Readable({
    highWaterMark: AHEAD,
    read() { if (!done && !c.dead) c.sock.resume(); },
    destroy(err, cb) {
      // dropped before its end: the socket's bytes are not the next reply's
      if (!done) { done = true; c.kill(); }
      cb(err);
    },
  });
  // the bytes after the head are read before the caller has the reply: a failure among them
  // must not be an unhandled 'error' event. A reader still gets it: for-await (and
  // stream.finished) report a stream's stored error
  stream.on('error', () => undefined);
  const finish = (clean: boolean) => {
    done = true;
    if (clean && keep) release(c); else c.kill();
    stream.push(null);
  };
  const broke = (m: string, code: string) => { if (!done) { done = true; c.kill(); stream.destroy(new HttpError(m, code)); } };
  c.onEnd = (err) => {
    if (done) return;
    if (left === Infinity && !err) { done = true; stream.push(null); return; }
    broke(err ? err.message : chunked ? `the connection closed after ${got} bytes, before the last chunk` : `the connection closed after ${got} of ${got + left} bytes`, (err as HttpError | undefined)?.code ?? 'ECONNRESET');
  };
  const push = (b: Buffer): boolean => { got += b.length; return stream.push(b); };

  // chunked framing: a size line, that many bytes, CRLF; a 0 size, trailers, a blank line
  let state: 'size' | 'data' | 'crlf' | 'trailer' = 'size';
  let line = '';
  const chunkedFeed = (b: Buffer): boolean => {
    let more = true;
    let i = 0;
    while (i < b.length && !done) {
      if (state === 'data') {
        const n = Math.min(left, b.length - i);
        more = push(b.subarray(i, i + n)) && more;
        i += n; left -= n;
        if (left === 0) { state = 'crlf'; line = ''; }
        continue;
      }
      const nl = b.indexOf(10, i);
      const piece = b.toString('latin1', i, nl < 0 ? b.length : nl + 1);
      i = nl < 0 ? b.length : nl + 1;
      line += piece;
      if (line.length > MAX_CHUNK_LINE) { broke('a chunk size line over 4 KiB: refused', 'BADREPLY'); return false; }
      if (nl < 0) break;
      if (!line.endsWith('\r\n')) { broke('a chunk line not ended by CRLF: refused', 'BADREPLY'); return false; }
      const text = line.slice(0, -2);
      line = '';
      if (state === 'crlf') {
        if (text !== '') { broke('a chunk longer than its size: refused', 'BADREPLY'); return false; }
        state = 'size';
      } else if (state === 'size') {
        const m = /^([0-9a-fA-F]{1,12})(?:[ \t]*;[\x20-\x7e\t]*)?$/.exec(text);
        if (!m) { broke(`a bad chunk size ("${text.slice(0, 20).replace(/[^\x20-\x7e]/g, '?')}"): refused`, 'BADREPLY'); return false; }
        left = parseInt(m[1], 16);
        state = left === 0 ? 'trailer' : 'data';
      } else if (text === '') {
        finish(i === b.length);
      }
    }
    if (!done && i < b.length) return more;
    if (done && i < b.length) c.kill();
    return more;
  };
  const plainFeed = (b: Buffer): boolean => {
    if (done) { c.kill(); return false; }
    if (left === Infinity) return push(b);
    if (b.length > left) {
      // more than Content-Length said: the socket is out of step, the body itself complete
      if (left) push(b.subarray(0, left));
      left = 0;
      done = true;
      c.kill();
      stream.push(null);
      return false;
    }
    left -= b.length;
    const more = push(b);
    if (left === 0) finish(true);
    return more;
  };
  const feed = chunked ? chunkedFeed : plainFeed;
  c.onBytes = (b) => {
    const more = feed(b);
    // read ahead no further than the stream's mark: it calls read() when it wants more
    if (!more && !done) c.sock.pause();
    return true;
  };
  if (left === 0) queueMicrotask(() => { if (!done) finish(true); });
  return { stream, feed };
}
