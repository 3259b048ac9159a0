// A fast bounded reader of the log: one range of stream positions, in order, a batch at a
// time, for whoever replays a long stretch of the stream (tsctl audit verify, a replay).
//
// nats.js's consumers wrap every message in a JsMsg (its headers parsed into a map, its
// reply subject split into an info object, an ordered-consumer check, a queued iterator):
// that was most of the audit's CPU per event. Here an ephemeral pull consumer with no acks
// delivers to one plain subscription whose callback takes from each message only what a
// reader needs: the stream sequence (from the reply subject), the subject, the payload and
// the Swl-Sig header (found in the raw header bytes). Pulls are pipelined (two batches asked
// ahead). Delivery sequences must follow each other: a gap (a message lost on the way, a
// consumer that died with its server) makes a new consumer from the next position, as
// nats.js's ordered consumer does, so a gap in the STREAM's sequences is the stream's own.
//
//   for await (const batch of readRange(nc, { from: 1, to: lastSeq })) for (const m of batch) ...
//
// readRange yields raw messages; readDecoded the same decoded and hashed (ReadItem, as
// readLog). shared/nats/bulk-parallel.ts splits a range over worker threads. With `wire` (a
// WireConn, shared/nats/wire-conn.ts) the deliveries and pulls go over that connection, whose
// parser hands out positions in the received bytes: no nats.js message object at all.
import { AckPolicy, DeliverPolicy, createInbox, nanos, type JetStreamManager, type Msg, type NatsConnection, type Subscription } from 'nats';
import { randomBytes } from 'node:crypto';
import { STREAM, subjects } from '../subjects.js';
import { SIG_HEADER } from '../signing.js';
import { readItem, withRetry, type ReadItem } from './log.js';
import { decodeCheckedEnvelope } from '../codec.js';
import type { WireConn } from './wire-conn.js';
import { statusOf } from './wire.js';

/** One stored message as read: its stream position, subject, payload and signature header. */
export interface RawMsg { seq: number; subject: string; data: Uint8Array; sig?: string; /** its sha256 (hex), when a reader thread made it */ hash?: string }

export interface RangeOptions {
  /** first stream position (default 1) */
  from?: number;
  /** last stream position read (inclusive); messages after it are not handed out */
  to: number;
  /** subject filter (default every event subject) */
  filter?: string;
  /** the stream read (default the log's; another one needs its `filter`) */
  stream?: string;
  /**
   * No subject filter on the consumer (not with `filter`): the stream holds only event subjects,
   * so the messages are the same, but the server makes a filtered consumer by counting what it
   * has pending through the rest of the stream (over a second from the middle of 1M events).
   */
  unfiltered?: boolean;
  /** messages asked for by one pull (default 4096; two pulls are kept ahead) */
  batch?: number;
  signal?: AbortSignal;
  /** no message nor heartbeat for this long: the consumer is made again from the next position (default 5000) */
  stallMs?: number;
  /**
   * deliveries over this connection of our own (wire-conn.ts: frames parsed in place, no
   * object per message) instead of nats.js's; the consumer is still made through `nc`. It must
   * be the same identity as `nc` (the inbox prefix is `nc`'s).
   */
  wire?: WireConn;
}

/** A reader that cannot go on (the consumer could not be made again, or the read was refused). */
export class BulkReadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BulkReadError';
  }
}

const SIG = new TextEncoder().encode(`\r\n${SIG_HEADER}:`);
const latin1 = (Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, s: number, e: number): string }).latin1Slice;

/**
 * The Swl-Sig header's value in a message's raw header block ("NATS/1.0\r\nK: v\r\n...\r\n\r\n"),
 * buf[start, hdrLen), or undefined. Header names are matched as written (the Appender writes this one exactly).
 * Exported for the unit test that pins it to nats.js's own header parser.
 */
export function sigOf(buf: Uint8Array, hdrLen = buf.length, start = 0): string | undefined {
  // line by line (a header block is a few short lines): the name must start a line. A loop over
  // the bytes, not indexOf: a Buffer's indexOf costs more per call than a short line's scan
  const name = SIG.subarray(2);
  for (let i = nextLine(buf, start, hdrLen); i < hdrLen; i = nextLine(buf, i, hdrLen)) {
    if (i + name.length > hdrLen) return undefined;
    let j = 0;
    while (j < name.length && buf[i + j] === name[j]) j++;
    if (j < name.length) continue;
    let s = i + name.length;
    while (s < hdrLen && buf[s] === 0x20) s++;
    let e = s;
    while (e < hdrLen && buf[e] !== 0x0d) e++;
    while (e > s && buf[e - 1] === 0x20) e--;
    return e > s ? latin1.call(buf, s, e) : undefined;
  }
  return undefined;
}

/** Where the line after the one at `i` starts (past its LF), or `end`. */
function nextLine(b: Uint8Array, i: number, end: number): number {
  while (i < end && b[i] !== 0x0a) i++;
  return i + 1 < end ? i + 1 : end;
}

/**
 * The raw header block of a core message, from nats.js's MsgImpl (`_rdata`, `_msg.hdr`): a
 * private shape, so checked, and the public (slower) header parser used when it changed.
 */
function sigOfMsg(m: Msg, raw: Uint8Array | undefined, hl: number): string | undefined {
  if (raw) return hl > 0 ? sigOf(raw, hl) : undefined;
  return m.headers?.get(SIG_HEADER) || undefined;
}

/** nats.js's MsgImpl keeps the raw bytes: payload with headers (`_rdata`), header length and reply subject (`_msg`). */
interface RawShape { _rdata?: unknown; _msg?: { hdr?: unknown; reply?: unknown; subject?: unknown } }
const utf8 = (Buffer.prototype as unknown as { utf8Slice(this: Uint8Array, s: number, e: number): string }).utf8Slice;
const enc = new TextEncoder();

/**
 * The stream sequence, consumer (delivery) sequence and pending count from a delivered
 * message's reply subject, `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`
 * or the newer form with domain and account hash after ACK and a random token at the end:
 * read from its bytes r[s, end), no string made. `into` is reused; false when it is neither.
 */
export function ackInfo(r: Uint8Array, into: AckInfo, s = 0, end = r.length): boolean {
  if (end - s < 9 || r[s] !== 0x24 || r[s + 1] !== 0x4a || r[s + 2] !== 0x53 || r[s + 3] !== 0x2e || r[s + 4] !== 0x41 || r[s + 5] !== 0x43 || r[s + 6] !== 0x4b || r[s + 7] !== 0x2e) return false;
  // where each token starts (token 2 at byte 8), as nats.js reads it: 9 tokens are the old
  // form, 11 or more the new one with <domain>.<account hash> after ACK
  const starts = tokenStarts;
  let n = 2;
  starts[2] = s + 8;
  for (let i = s + 8; i < end && n < 13; i++) if (r[i] === 0x2e) starts[++n] = i + 1;
  n++;
  starts[n] = end + 1; // a virtual dot after the last token
  const o = n === 9 ? -2 : n >= 11 ? 0 : -1;
  if (o === -1) return false;
  const num = (t: number): number => {
    const a = starts[t + o]!, b = starts[t + o + 1]! - 1;
    if (b <= a || b - a > 20) return -1;
    let v = 0;
    for (let i = a; i < b; i++) { const d = r[i]! - 0x30; if (d < 0 || d > 9) return -1; v = v * 10 + d; }
    return v;
  };
  const sseq = num(7), dseq = num(8), pending = num(10);
  if (sseq < 0 || dseq < 0 || pending < 0) return false;
  into.sseq = sseq; into.dseq = dseq; into.pending = pending;
  return true;
}
const tokenStarts = new Array<number>(16).fill(0);
export interface AckInfo { sseq: number; dseq: number; pending: number }

/**
 * Every message from `from` to `to` (or to the stream's end if it is shorter), in stream order,
 * as arrays of whatever arrived together. Ends early only by `signal`; throws BulkReadError
 * when the read cannot go on.
 */
export async function* readRange(nc: NatsConnection, o: RangeOptions): AsyncGenerator<RawMsg[]> {
  const to = o.to;
  let next = Math.max(1, o.from ?? 1);
  if (next > to) return;
  const B = Math.max(16, o.batch ?? 4096);
  const stream = o.stream ?? STREAM;
  const stallMs = o.stallMs ?? 5000;
  const jsm = await nc.jetstreamManager({ timeout: 2000 });
  const prefix = (nc as unknown as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
  let out: RawMsg[] = [];
  let wake: (() => void) | undefined;
  const poke = () => { if (wake) { const w = wake; wake = undefined; w(); } };
  let done = false;
  let failure: Error | undefined;
  let resets = 0;
  const stop = () => { done = true; poke(); };
  o.signal?.addEventListener('abort', stop, { once: true });

  // one consumer at a time; a reset (delivery gap, stall) replaces it from `next`
  // `seen` counts what arrived (messages, heartbeats); the stall timer notes when it last moved
  let cur: { name: string; unsub: () => void; inbox: string; requested: number; received: number; dseq: number; seen: number; heard: number } | undefined;
  const wire = o.wire;
  if (wire?.isClosed) throw new BulkReadError(`reading from #${next}: ${wire.failure?.message ?? 'the connection is closed'}`);
  const onWireClose = (err: Error | undefined) => { failure ??= new BulkReadError(`reading from #${next}: ${err?.message ?? 'the connection was closed'}`); stop(); };
  let timer: ReturnType<typeof setInterval> | undefined;

  const pull = (c: NonNullable<typeof cur>) => {
    // a second batch asked while the first arrives, so the server is never idle; none while the
    // caller has not taken a batch's worth (a slow caller holds at most that much here)
    while (!done && c.requested - c.received <= B && out.length < B) {
      // no more than the positions left up to `to` (what arrives past it is read and dropped: view --at
      // near the log's end asked two batches for its ~2k events, and read, decrypted and parsed the
      // other ~6k); fewer arrive when the filter skips some, and a pull that ends short (404/408) is asked again
      const left = Math.min(B, to - (next - 1) - (c.requested - c.received));
      if (left <= 0) break;
      if (c.requested === c.received) c.heard = Date.now();
      const ask = JSON.stringify({ batch: left, expires: nanos(30_000), idle_heartbeat: nanos(1000) });
      const subj = `$JS.API.CONSUMER.MSG.NEXT.${stream}.${c.name}`;
      if (wire) wire.publish(subj, ask, c.inbox);
      else nc.publish(subj, ask, { reply: c.inbox });
      c.requested += left;
    }
  };

  const open = async (): Promise<void> => {
    const inbox = createInbox(prefix);
    // named: an agent's identity may make only named consumers on its own subjects
    const c = { name: `bulk_${randomBytes(8).toString('hex')}`, inbox, requested: 0, received: 0, dseq: 0, seen: 0, heard: Date.now(), unsub: () => undefined as void };
    if (wire) {
      const sid = wire.subscribe(inbox, (b, _sid, s0, s1, r0, r1, h0, b0, e) => { if (cur === c) onWire(c, b, s0, s1, r0, r1, h0, b0, e); });
      c.unsub = () => wire.unsubscribe(sid);
    } else {
      const sub: Subscription = nc.subscribe(inbox, { callback: (err, m) => { if (cur === c) onMsg(c, err, m); } });
      c.unsub = () => sub.unsubscribe();
    }
    try {
      const ci = await withRetry(() => jsm.consumers.add(stream, {
        name: c.name, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: next,
        ...(o.unfiltered && o.filter === undefined ? {} : { filter_subject: o.filter ?? subjects.all }), mem_storage: true, num_replicas: 1, inactive_threshold: nanos(30_000),
      }));
      // nothing (more) under the filter from here: the read is over (poke: a reset's open may end it)
      if (ci.num_pending === 0) { c.unsub(); void jsm.consumers.delete(stream, c.name).catch(() => undefined); stop(); return; }
    } catch (err) {
      c.unsub();
      throw err;
    }
    cur = c;
    c.heard = Date.now();
    pull(c);
  };

  const close = (c: NonNullable<typeof cur>) => {
    c.unsub();
    if (c.name) void jsm.consumers.delete(stream, c.name).catch(() => undefined);
  };

  const reset = (why: string) => {
    const c = cur;
    cur = undefined;
    if (c) close(c);
    if (done) return;
    if (++resets > 20) { failure = new BulkReadError(`reading #${next}..#${to}: ${why}, and again after 20 new consumers`); stop(); return; }
    open().catch((err: Error) => { failure = new BulkReadError(`reading from #${next}: ${why}; a new consumer could not be made: ${err.message}`, { cause: err }); stop(); });
  };

  const a: AckInfo = { sseq: 0, dseq: 0, pending: 0 };
  // what both transports do with a delivery: a status, or a message whose reply subject r[rs, re) says where it is
  const onStatus = (c: NonNullable<typeof cur>, code: number, text: string) => {
    // 100 heartbeat, 408 pull expired, 404 no messages, 409 (consumer deleted, too many pulls...)
    if (code === 100) return;
    if (code === 408 || code === 404) { c.requested = c.received; pull(c); return; }
    reset(`the server said ${code} ${text}`.trim());
  };
  /** true: the message is the next one to hand out (its position in `a`) */
  const admit = (c: NonNullable<typeof cur>, r: Uint8Array, rs: number, re: number): boolean => {
    if (!ackInfo(r, a, rs, re)) { reset(`a message with the reply subject "${Buffer.from(r.buffer, r.byteOffset + rs, Math.min(re - rs, 80)).toString('latin1')}"`); return false; }
    c.received++;
    if (a.dseq !== c.dseq + 1) { reset(`delivery #${a.dseq} after #${c.dseq}`); return false; }
    c.dseq = a.dseq;
    if (a.sseq < next) return false; // cannot be: a consumer starts at next
    if (a.sseq > to) { done = true; close(c); cur = undefined; poke(); return false; }
    next = a.sseq + 1;
    return true;
  };
  const handed = (c: NonNullable<typeof cur>) => {
    if (a.sseq >= to || a.pending === 0) { done = true; close(c); cur = undefined; }
    else pull(c);
    poke();
  };
  // wire-conn.ts: positions in the received bytes
  const onWire = (c: NonNullable<typeof cur>, b: Uint8Array, s0: number, s1: number, r0: number, r1: number, h0: number, b0: number, e: number) => {
    if (done) return;
    c.seen++;
    if (r1 === r0) { const st = h0 < b0 ? statusOf(b, h0, b0) : { code: 0, text: 'a message without a reply subject' }; onStatus(c, st.code, st.text); return; }
    if (!admit(c, b, r0, r1)) return;
    out.push({ seq: a.sseq, subject: utf8.call(b, s0, s1), data: new Uint8Array(b.buffer, b.byteOffset + b0, e - b0), sig: h0 < b0 ? sigOf(b, b0, h0) : undefined });
    handed(c);
  };
  // nats.js's Msg
  const onMsg = (c: NonNullable<typeof cur>, err: Error | null, m: Msg) => {
    if (done) return;
    c.seen++;
    if (err) { failure = new BulkReadError(`reading from #${next}: ${err.message}`, { cause: err }); stop(); return; }
    // the raw shape when nats.js still has it (checked), else its public accessors
    const x = m as unknown as RawShape;
    const rb = x._msg && x._msg.reply instanceof Uint8Array ? x._msg.reply : m.reply ? enc.encode(m.reply) : undefined;
    if (!rb || rb.length === 0) { onStatus(c, m.headers?.code ?? 0, m.headers?.description ?? ''); return; }
    const raw = x._rdata instanceof Uint8Array && typeof x._msg?.hdr === 'number' ? x._rdata : undefined;
    const hl = raw ? (x._msg!.hdr as number) : -1;
    if (!admit(c, rb, 0, rb.length)) return;
    // a plain view (Buffer's subarray makes a Buffer, at several times the cost)
    const data = raw ? new Uint8Array(raw.buffer, raw.byteOffset + Math.max(0, hl), raw.length - Math.max(0, hl)) : m.data;
    const sb = x._msg?.subject;
    out.push({ seq: a.sseq, subject: sb instanceof Uint8Array ? utf8.call(sb, 0, sb.length) : m.subject, data, sig: sigOfMsg(m, raw, hl) });
    handed(c);
  };

  const offWire = wire?.onClose(onWireClose);
  try {
    await open();
    // only while something is asked for: a caller that is slow to take batches is no stall
    let seen = -1;
    timer = setInterval(() => {
      if (!cur) return;
      if (cur.seen !== seen) { seen = cur.seen; cur.heard = Date.now(); return; }
      if (cur.requested > cur.received && Date.now() - cur.heard > stallMs) { seen = -1; reset(`nothing heard for ${stallMs} ms`); }
    }, Math.min(1000, stallMs));
    for (;;) {
      if (out.length === 0) {
        if (failure) throw failure;
        if (done) return;
        await new Promise<void>((r) => { wake = r; });
        continue;
      }
      const b = out;
      out = [];
      yield b;
      if (cur) pull(cur);
    }
  } finally {
    done = true;
    if (timer) clearInterval(timer);
    o.signal?.removeEventListener('abort', stop);
    offWire?.();
    if (cur) close(cur);
    cur = undefined;
  }
}

/** One raw message decoded and hashed, as readLog hands it out. */
export const decodeItem = (m: RawMsg): ReadItem => readItem(m.seq, m.subject, m.data, m.sig, m.hash);
/** decodeItem for a message whose envelope a reader thread validated (codec.ts decodeCheckedEnvelope): only its data is checked. */
export const decodeCheckedItem = (m: RawMsg): ReadItem => readItem(m.seq, m.subject, m.data, m.sig, m.hash, decodeCheckedEnvelope);

/** readRange, each message decoded and hashed in this thread. */
export async function* readDecoded(nc: NatsConnection, o: RangeOptions): AsyncGenerator<ReadItem[]> {
  for await (const b of readRange(nc, o)) yield b.map(decodeItem);
}

/** The stream's last sequence now (a range's natural end). */
export async function lastSeq(jsm: JetStreamManager): Promise<{ first: number; last: number }> {
  const i = await withRetry(() => jsm.streams.info(STREAM));
  return { first: i.state.first_seq, last: i.state.last_seq };
}
