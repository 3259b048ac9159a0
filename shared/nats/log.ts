// The thin I/O layer over the one JetStream stream. Pure parts (codec, reducer) know
// nothing of NATS; everything that touches the server for events lives here.
import {
  DeliverPolicy, DiscardPolicy, StorageType, createInbox, headers as natsHeaders,
  type Consumer, type ConsumerInfo, type JetStreamClient, type JetStreamManager, type MsgHdrs, type NatsConnection,
} from 'nats';
import { decodeEvent, hashBytes, SourceChain, DecodeError } from '../codec.js';
import type { EventData, EventType, StoredEvent } from '../events.js';
import { STREAM, subjects } from '../subjects.js';
import { BURST_MAX, SIG_HEADER, signBurst, type Signer } from '../signing.js';
import { writerOf } from '../audit.js';
import { readerConsumer } from './readers.js';

/**
 * The log's limits. Everything is kept (no age limit: the audit needs the whole history)
 * up to `maxBytes`, then the oldest events go first; one message is at most `maxMsgSize`
 * (an event is a few hundred bytes; a request that would encode larger is refused).
 */
export interface LogLimits { maxBytes: number; maxMsgSize: number; /** copies in a JetStream cluster (3 there; 1 on one server) */ replicas?: number }
export const DEFAULT_LIMITS: LogLimits = { maxBytes: 8 * 1024 ** 3, maxMsgSize: 1024 * 1024 };

/**
 * Makes sure the stream exists; with `limits` (the controller), also that it has them. The
 * server reserves max_bytes on its disk and refuses more than it has ("insufficient storage"
 * on a small host): the limit is then halved until it fits, never below MIN_BYTES. Returns the
 * byte limit in force.
 */
export async function ensureStream(jsm: JetStreamManager, limits?: LogLimits): Promise<number | undefined> {
  let maxBytes = limits?.maxBytes;
  for (;;) {
    try {
      await ensureStreamOnce(jsm, limits && maxBytes !== undefined ? { ...limits, maxBytes } : undefined);
      return maxBytes;
    } catch (err) {
      if (maxBytes === undefined || !/insufficient storage/i.test((err as Error).message) || maxBytes / 2 < MIN_BYTES) throw err;
      maxBytes = Math.floor(maxBytes / 2);
    }
  }
}

const MIN_BYTES = 64 * 1024 * 1024;

async function ensureStreamOnce(jsm: JetStreamManager, limits?: LogLimits): Promise<void> {
  const want = limits ? { max_bytes: limits.maxBytes, max_msg_size: limits.maxMsgSize, discard: DiscardPolicy.Old, ...(limits.replicas ? { num_replicas: limits.replicas } : {}) } : {};
  let info;
  try { info = await jsm.streams.info(STREAM); } catch { /* not there yet */ }
  if (!info) {
    try {
      // file storage: the log is the truth and must survive a server restart
      await jsm.streams.add({
        name: STREAM, subjects: [subjects.all], storage: StorageType.File,
        duplicate_window: 2 * 60 * 1_000_000_000, // ns; covers a publisher's retries
        ...want,
      });
      return;
    } catch (err) {
      // another process made it between our look and our add: take theirs, with our limits
      if (!/already in use/i.test((err as Error).message)) throw err;
      info = await jsm.streams.info(STREAM);
    }
  }
  if (limits && (info.config.max_bytes !== limits.maxBytes || info.config.max_msg_size !== limits.maxMsgSize || (limits.replicas !== undefined && info.config.num_replicas !== limits.replicas))) {
    await jsm.streams.update(STREAM, { ...info.config, ...want });
  }
}

/**
 * Waits until the stream exists. Only the controller may create it (the server refuses
 * anyone else), so an agent that comes up first waits for it instead.
 */
export async function waitStream(jsm: JetStreamManager, name = STREAM, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try { await jsm.streams.info(name); return; } catch (err) {
      if (Date.now() > deadline) throw new Error(`stream ${name} not there after ${ms} ms (is the controller up?): ${(err as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What a burst signature's header takes at most besides a plain one's (BURST_MAX - 1 hashes in base64). */
const BURST_HEADER = Math.ceil(((BURST_MAX - 1) * 32) / 3) * 4 + 16;
/** JetStream's error code for a failed expected-last-(subject-)sequence check. */
export const WRONG_LAST_SEQUENCE = 10071;

/** An append refused or lost: `lost` when a later event of the same chain was stored first (the audit reports the gap). */
export class AppendError extends Error {
  constructor(message: string, readonly reason: 'refused' | 'lost' | 'stopped', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AppendError';
  }
}

export interface AppenderOptions {
  /** Called once when the writer stops: a process whose writer stopped should exit, so that its supervisor restarts it from the stream's head. */
  onStop?: (err: Error) => void;
  /** Publishes in flight at most (default 256). 1 is the old one-at-a-time writer. */
  window?: number;
  /** Bytes an event may take (the stream's max_msg_size; larger ones are refused before they are stamped). */
  maxMsgSize?: number;
  /** How long a publish with no ack is retried (same bytes, same msg id) before the writer stops (< the 2-minute duplicate window). */
  retryMs?: number;
  /** Per-publish ack timeout. */
  timeoutMs?: number;
  /**
   * The connection `js` was made from: with it, events are published with a reply subject and
   * their acks taken on one subscription (AckChannel) instead of a request each, whose promise,
   * timer and two captured stack traces were most of a writer's CPU per event.
   */
  nc?: NatsConnection;
}

interface Pending {
  subject: string; bytes: Uint8Array; hash: string; id: string; srcSeq: number; sig?: string;
  /** may go unsigned in a burst whose first event's signature lists it (see pump) */
  burst: boolean;
  /** expected last sequence on the subject (appendExpecting) */
  expect?: number;
  resolve(r: { seq: number; id: string }): void; reject(e: Error): void;
  seq?: number; failed?: Error;
}

/**
 * One writer's appends. Each event is stamped (srcSeq, prev = the hash of the one before)
 * when append() is called, so the chain's order is the call order, and published at once,
 * up to `window` in flight on the one connection, which the server stores in the order sent.
 * A stamped event is never stamped again: no fork is possible. When a publish fails, no more
 * are sent until every one in flight has settled; then, in chain order, each failed event is
 * published again with the same bytes and msg id (the server's duplicate window makes that
 * exactly once) as long as nothing after it was stored; if something after it was stored, it
 * is looked up instead, and if it is not there it is a lost write (rejected, and the audit
 * reports it) rather than one stored out of order. Events are checked before they are stamped
 * (the subject is the source's to write, the size fits), so the server has no reason to
 * refuse one and let the next through.
 *
 * Signatures are amortised over bursts: an append made while the writer is idle goes out at
 * once, signed alone (the start path is unchanged); appends made while acks are awaited gather
 * until the next turn of the event loop and go out together, and only the first of such a burst
 * is signed, over the hashes of all of them (shared/signing.ts signBurst). Desired events (an
 * agent reads only its own node's desired subjects, so it may never see a signature on another
 * one's) and key registrations are always signed alone.
 */
export class Appender {
  private queue: Pending[] = [];
  private inflight: Pending[] = [];
  private halted = false;
  private stopped?: Error;
  /** What recovery did: events sent again, events looked up, lost writes (for tests and benchmarks). */
  readonly stats = { resent: 0, lookedUp: 0, lost: 0 };
  /** The stream position of this writer's last event resolved in chain order (where a lookup starts). */
  private resolvedSeq = 0;
  private readonly window: number;
  private readonly maxMsgSize: number;
  private readonly retryMs: number;
  private readonly timeoutMs: number;
  private readonly acks?: AckChannel;
  /** where a lookup reads (readers.ts: an agent's own named consumers) */
  private readonly nc?: NatsConnection;

  /** `signer`: the source's key; its signature over the wire bytes goes in the Swl-Sig header. */
  constructor(private js: JetStreamClient, readonly chain: SourceChain, private signer?: Signer, o: AppenderOptions = {}) {
    this.window = Math.max(1, o.window ?? 256);
    this.maxMsgSize = o.maxMsgSize ?? DEFAULT_LIMITS.maxMsgSize;
    this.retryMs = o.retryMs ?? 60_000;
    this.timeoutMs = o.timeoutMs ?? 5_000;
    if (o.nc) this.acks = new AckChannel(o.nc, this.timeoutMs);
    this.nc = o.nc;
    this.onStop = o.onStop;
  }
  private readonly onStop?: (err: Error) => void;

  append<T extends EventType>(subject: string, type: T, entity: string, data: EventData[T], cause?: string, id?: string): Promise<{ seq: number; id: string }> {
    if (this.stopped) return Promise.reject(this.stopped);
    if (this.fence) return this.fence.then(() => this.append(subject, type, entity, data, cause, id));
    const writer = writerOf(subject);
    if (writer !== this.chain.src) return Promise.reject(new AppendError(`${this.chain.src} may not write on ${subject} (${writer ?? 'nobody'} does)`, 'refused'));
    let stamped;
    try { stamped = this.chain.next(type, entity, data, cause, id); } catch (err) { return Promise.reject(err); }
    const { event, bytes, hash } = stamped;
    // a message header and its envelope take a few hundred bytes besides the event
    if (bytes.length + 512 > this.maxMsgSize) return Promise.reject(new AppendError(`${type} for ${entity} is ${bytes.length} bytes; the log takes at most ${this.maxMsgSize - 512}`, 'refused'));
    this.chain.commit(event.srcSeq, hash);
    return new Promise((resolve, reject) => {
      const burst = type !== 'KeyRegistered' && !subject.startsWith('ev.desired.') && bytes.length + 512 + BURST_HEADER <= this.maxMsgSize;
      this.queue.push({ subject, bytes, hash, id: event.id, srcSeq: event.srcSeq, burst, resolve, reject });
      if (this.inflight.length === 0 && this.queue.length === 1) this.pump(); else this.later();
    });
  }

  private scheduled = false;
  /** A pump on the next turn of the event loop: whatever is appended or acked until then goes out as one burst. */
  private later(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => { this.scheduled = false; this.pump(); });
  }
  /**
   * An append that claims something: stored only if the last message on `subject` is still at
   * stream position `expect` (0: none), JetStream's expected-last-subject-sequence. Two writers
   * that both believe they may claim it cannot both succeed. It goes alone: appends made while
   * it is pending wait behind it, and it waits for those before it, so a refusal takes back its
   * chain position (nothing was stamped after it) and the chain has no gap. A refusal rejects
   * with AppendError 'refused' and `fenced` set; the writer goes on.
   */
  async appendExpecting<T extends EventType>(subject: string, type: T, entity: string, data: EventData[T], expect: number): Promise<{ seq: number; id: string }> {
    while (this.fence) await this.fence;
    let release!: () => void;
    this.fence = new Promise<void>((r) => { release = r; });
    try {
      await this.settled();
      if (this.stopped) throw this.stopped;
      const writer = writerOf(subject);
      if (writer !== this.chain.src) throw new AppendError(`${this.chain.src} may not write on ${subject} (${writer ?? 'nobody'} does)`, 'refused');
      const before = this.chain.position;
      const { event, bytes, hash } = this.chain.next(type, entity, data);
      this.chain.commit(event.srcSeq, hash);
      const p: Pending = { subject, bytes, hash, id: event.id, srcSeq: event.srcSeq, expect, burst: false, resolve: () => undefined, reject: () => undefined };
      if (this.signer) p.sig = this.signer.sign(bytes);
      try {
        const seq = await this.retry(p);
        this.resolvedSeq = seq;
        return { seq, id: p.id };
      } catch (err) {
        const cause = (err as { cause?: { api_error?: { err_code?: number; description?: string } } }).cause;
        if (cause?.api_error?.err_code === WRONG_LAST_SEQUENCE) {
          this.chain.commit(before.srcSeq, before.hash);
          // where the stream leader's copy ends on the subject: after `expect` is another writer's
          // message, before it is a copy that disagrees with the view's (controller/lease.ts fenceVerdict)
          const at = /wrong last sequence:\s*(\d+)/i.exec(cause.api_error.description ?? '');
          throw Object.assign(new AppendError(`${subject} was claimed by another writer (expected its last message at #${expect}${at ? `, the stream has #${at[1]}` : ''})`, 'refused', { cause }), { fenced: true, expect, ...(at ? { actual: Number(at[1]) } : {}) });
        }
        this.stop(err as Error);
        throw this.stopped!;
      }
    } finally {
      this.fence = undefined;
      release();
    }
  }
  private fence?: Promise<void>;

  /** Waits until every append made so far is stored (or failed). */
  async settled(): Promise<void> {
    while (this.queue.length || this.inflight.length) await new Promise((r) => setTimeout(r, 5));
  }

  private pump(): void {
    if (this.halted || this.inflight.length >= this.window || this.queue.length === 0) return;
    const out = this.queue.splice(0, this.window - this.inflight.length);
    // signed as they go out, not when stamped: a burst of appends must not hold the event
    // loop while the acks of the first ones (and their timers) wait behind it
    if (this.signer) this.sign(out);
    for (const p of out) {
      this.inflight.push(p);
      this.publish(p).then((seq) => this.stored(p, seq), (err: Error) => this.failed(p, err));
    }
  }

  /** Signs what goes out now: each run of burst events by its first (over all their hashes), others alone. */
  private sign(out: Pending[]): void {
    const signer = this.signer!;
    for (let i = 0; i < out.length;) {
      const p = out[i]!;
      let j = i + 1;
      if (p.burst) while (j < out.length && j - i < BURST_MAX && out[j]!.burst) j++;
      if (!p.sig) p.sig = j - i === 1 ? signer.sign(p.bytes) : signBurst(signer, out.slice(i, j).map((q) => q.hash));
      i = j;
    }
  }

  private async publish(p: Pending): Promise<number> {
    const h = natsHeaders();
    h.set('Nats-Msg-Id', p.id);
    if (p.sig) h.set(SIG_HEADER, p.sig);
    if (p.expect !== undefined) h.set('Nats-Expected-Last-Subject-Sequence', String(p.expect));
    if (this.acks) return this.acks.publish(p.subject, p.bytes, h);
    const ack = await this.js.publish(p.subject, p.bytes, { msgID: p.id, headers: h, timeout: this.timeoutMs });
    return ack.seq;
  }

  private stored(p: Pending, seq: number): void {
    p.seq = seq;
    this.settle(p);
  }

  private failed(p: Pending, err: Error): void {
    p.failed = err;
    this.halted = true;
    this.settle(p);
  }

  /** Resolves acked events in chain order; once nothing is in flight after a failure, recovers. */
  private settle(_p: Pending): void {
    while (this.inflight.length && this.inflight[0]!.seq !== undefined) {
      const q = this.inflight.shift()!;
      this.resolvedSeq = q.seq!;
      q.resolve({ seq: q.seq!, id: q.id });
    }
    if (!this.halted) { if (this.queue.length) this.later(); return; }
    if (this.inflight.some((q) => q.seq === undefined && !q.failed)) return; // others still in flight
    void this.recover();
  }

  private async recover(): Promise<void> {
    const list = this.inflight;
    for (let i = 0; i < list.length; i++) {
      const p = list[i]!;
      if (p.seq !== undefined) continue;
      const laterStored = list.slice(i + 1).find((q) => q.seq !== undefined);
      try {
        if (laterStored) {
          // sending it now would store it after its successor: find out whether it is there
          const earlier = list.slice(0, i).reverse().find((q) => q.seq !== undefined && q.seq > 0);
          this.stats.lookedUp++;
          const seq = await this.lookup(p, earlier?.seq ?? this.resolvedSeq, laterStored.seq!);
          if (seq === undefined) throw new AppendError(`${this.chain.src}#${p.srcSeq} (${p.id}) was lost: #${laterStored.srcSeq} was stored and this one was not (${p.failed?.message})`, 'lost', { cause: p.failed });
          p.seq = seq;
        } else {
          this.stats.resent++;
          p.seq = await this.retry(p);
        }
      } catch (err) {
        if (err instanceof AppendError && err.reason === 'lost') {
          console.error(`log: ${err.message}`);
          this.stats.lost++;
          p.seq = -1;
        } else {
          this.stop(err as Error);
          return;
        }
      }
    }
    this.inflight = [];
    for (const p of list) {
      if (p.seq! > 0) this.resolvedSeq = p.seq!;
      if (p.seq === -1) p.reject(new AppendError(`${this.chain.src}#${p.srcSeq} lost: ${p.failed?.message}`, 'lost', { cause: p.failed }));
      else p.resolve({ seq: p.seq!, id: p.id });
    }
    this.halted = false;
    this.pump();
  }

  /** The same bytes and msg id until an ack says where they are (stored now, or a duplicate of an earlier store). */
  private async retry(p: Pending): Promise<number> {
    const deadline = Date.now() + this.retryMs;
    let wait = 50;
    let last = p.failed;
    for (;;) {
      try { return await this.publish(p); } catch (err) {
        last = err as Error;
        if (isRefusal(last) || Date.now() > deadline) throw new AppendError(`${this.chain.src}#${p.srcSeq} (${p.id}) not stored: ${last.message}`, 'stopped', { cause: last });
      }
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(1000, wait * 2);
    }
  }

  /**
   * Where `p` is stored, looking on its subject between its predecessor's position `after` and
   * its successor's `before`: through a consumer filtered to that subject, since a node may read
   * only its own subjects (the server checks a consumer's filter, not a get's body; a get was
   * refused for an agent, and every lookup then said "lost" of an event that was stored).
   * undefined when it is not there; an error when that cannot be known.
   */
  private async lookup(p: Pending, after: number, before: number): Promise<number | undefined> {
    const start = { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 };
    const ordered = async () => ({ consumer: await this.js.consumers.get(STREAM, { filterSubjects: p.subject, ...start }), pending: 1 });
    const { consumer, done } = this.nc ? await readerConsumer(this.nc, p.subject, start, ORDERED_CREATE_MS, ordered)
      : await ordered().then((o) => ({ ...o, done: () => o.consumer.delete().then(() => undefined, () => undefined) }));
    try {
      for (;;) {
        const m = await consumer.next({ expires: 2000 });
        if (!m || m.seq >= before) return undefined;
        if (hashBytes(m.data) === p.hash) return m.seq;
      }
    } finally { await done(); }
  }

  /** Nothing more can be known: every pending append fails, and so does every later one (a restart recovers the head from the stream). */
  private stop(err: Error): void {
    this.stopped = err instanceof AppendError ? err : new AppendError(err.message, 'stopped', { cause: err });
    console.error(`log: the writer of ${this.chain.src} stopped: ${this.stopped.message}`);
    for (const p of [...this.inflight, ...this.queue]) if (p.seq === undefined || p.seq === -1) p.reject(this.stopped); else p.resolve({ seq: p.seq, id: p.id });
    this.inflight = [];
    this.queue = [];
    this.onStop?.(this.stopped);
  }
}

/**
 * JetStream publishes with acks on one subscription: each message goes out with the reply
 * subject `<inbox>.<token>`, the stream's ack (JSON: `{stream, seq, duplicate}` or `{error}`)
 * or a 503 "no responders" comes back there; one timer fails those unanswered for `timeoutMs`.
 */
class AckChannel {
  private readonly inbox: string;
  private n = 0;
  private waiting = new Map<string, { resolve(seq: number): void; reject(e: Error): void; at: number }>();
  private timer?: ReturnType<typeof setInterval>;

  constructor(private nc: NatsConnection, private timeoutMs: number) {
    // the connection's inbox prefix: the server lets each identity subscribe only under its own
    const prefix = (nc as unknown as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
    this.inbox = createInbox(prefix);
    nc.subscribe(`${this.inbox}.*`, { callback: (err, m) => (err ? this.failAll(err) : this.ack(m.subject, m.data, m.headers)) });
  }

  publish(subject: string, data: Uint8Array, headers: MsgHdrs): Promise<number> {
    const token = (this.n++).toString(36);
    return new Promise((resolve, reject) => {
      try { this.nc.publish(subject, data, { reply: `${this.inbox}.${token}`, headers }); } catch (err) { reject(err as Error); return; }
      this.waiting.set(token, { resolve, reject, at: Date.now() });
      this.timer ??= setInterval(() => this.expire(), Math.min(250, this.timeoutMs));
      this.timer.unref?.();
    });
  }

  private ack(subject: string, data: Uint8Array, h: MsgHdrs | undefined): void {
    const token = subject.slice(this.inbox.length + 1);
    const w = this.waiting.get(token);
    if (!w) return; // answered after its timeout: the retry finds out where it is
    this.waiting.delete(token);
    if (data.length === 0 && h?.code === 503) { w.reject(Object.assign(new Error('no responders: is the stream there?'), { code: '503' })); return; }
    let r: { seq?: number; error?: { code?: number; err_code?: number; description?: string } };
    try { r = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as typeof r; } catch { w.reject(new Error('an ack that is not JSON')); return; }
    if (r.error) { w.reject(Object.assign(new Error(r.error.description ?? 'refused'), { api_error: r.error, code: String(r.error.code ?? '') })); return; }
    if (typeof r.seq !== 'number') { w.reject(new Error('an ack without a sequence')); return; }
    w.resolve(r.seq);
  }

  private expire(): void {
    const now = Date.now();
    // in send order: stop at the first one still in time
    for (const [token, w] of this.waiting) {
      if (now - w.at < this.timeoutMs) break;
      this.waiting.delete(token);
      w.reject(Object.assign(new Error('TIMEOUT'), { code: 'TIMEOUT' }));
    }
    if (this.waiting.size === 0 && this.timer) { clearInterval(this.timer); this.timer = undefined; }
  }

  private failAll(err: Error): void {
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}

/**
 * Nothing a retry can change: a JetStream error ack (the server looked at the message and will
 * not store it; not a timeout, not "no responders"), a permission refused, a closed connection.
 */
function isRefusal(err: Error): boolean {
  const e = err as Error & { api_error?: { err_code?: number }; code?: string };
  return (e.api_error !== undefined && e.code !== '503') || e.code === 'PERMISSIONS_VIOLATION' || e.code === 'CONNECTION_CLOSED';
}

/**
 * Recovers a source's chain head: its latest event (by stream position) that decodes and
 * names it as source, under the given subjects. The last message on a subject is usually
 * that event; when it is not (junk bytes, another writer's event), that subject's history
 * is read to find it, so no message can stop a writer from starting.
 */
export async function chainHeadFromStream(jsm: JetStreamManager, nc: NatsConnection, src: string, subjectFilters: string[]): Promise<SourceChain> {
  let best: { seq: number; srcSeq: number; hash: string } | undefined;
  const consider = (seq: number, data: Uint8Array): boolean => {
    const e = tryDecode(data);
    if (!e || e.src !== src) return false;
    if (!best || seq > best.seq) best = { seq, srcSeq: e.srcSeq, hash: hashBytes(data) };
    return true;
  };
  for (const s of subjectFilters) {
    const last = await lastOn(nc, s);
    if (!last) continue; // nothing there yet
    if (consider(last.seq, last.data)) continue;
    for await (const item of readRaw(nc, s)) consider(item.seq, item.data);
  }
  return best ? new SourceChain(src, best.srcSeq, best.hash) : new SourceChain(src);
}

/**
 * The last message under `filter`, through a consumer filtered to it: a node may read only
 * its own subjects, and the server can check a consumer's filter, not a get's body.
 */
export async function lastOn(nc: NatsConnection, filter: string, ms = ORDERED_CREATE_MS): Promise<{ seq: number; data: Uint8Array; sig?: string } | undefined> {
  const { consumer, pending, done } = await readerConsumer(nc, filter, { deliver_policy: DeliverPolicy.Last }, ms, async () => {
    const consumer = await nc.jetstream().consumers.get(STREAM, { filterSubjects: filter, deliver_policy: DeliverPolicy.Last });
    return { consumer, pending: (await orderedInfo(consumer, ms)).num_pending };
  });
  try {
    if (pending === 0) return undefined;
    const m = await consumer.next({ expires: 5000 });
    // pending said there is one: a read that ends empty is not "nothing there"
    if (!m) throw new Error(`TIMEOUT: the last message under ${filter} did not come`);
    return { seq: m.seq, data: m.data, sig: m.headers?.get(SIG_HEADER) || undefined };
  } finally { await done(); }
}

/** How long an ordered consumer's first create may take before the read is given up (TIMEOUT, which withRetry tries again). */
export const ORDERED_CREATE_MS = 5000;

/**
 * An ordered consumer's info, which makes it: nats.js (2.29) tries a failed first create up to
 * 30 times, 30 s apart, so a read behind it could wait a quarter of an hour with a server
 * gone (the fleet-loss bench's 14 silent minutes). Bounded here, and a failure is an error,
 * never "nothing there": a chain head or a recovery that took an empty answer for the truth
 * would fork a chain or report an event twice. A consumer made late is deleted.
 */
export function orderedInfo(consumer: Pick<Consumer, 'info' | 'delete'>, ms = ORDERED_CREATE_MS): Promise<ConsumerInfo> {
  // one create, not nats.js's thirty: its retries (timers a quarter of an hour long) outlive
  // the caller, who tries again itself (withRetry). An instance field in nats.js 2.29.
  const own = consumer as { maxInitialReset?: number };
  if (typeof own.maxInitialReset === 'number') own.maxInitialReset = 0;
  return bounded(consumer.info(true), ms, () => void consumer.delete().catch(() => undefined), `the consumer was not made within ${ms} ms`);
}

/**
 * `p` within `ms`, else a TIMEOUT (an error withRetry tries again); a success that comes after
 * is undone by `onLate`, since nobody is waiting for it any more.
 */
function bounded<T>(p: Promise<T>, ms: number, onLate: (v: T) => void, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let late = false;
    const t = setTimeout(() => { late = true; reject(new Error(`TIMEOUT: ${what}`)); }, ms);
    p.then((v) => { if (late) onLate(v); else { clearTimeout(t); resolve(v); } }, (err: Error) => { clearTimeout(t); if (!late) reject(err); });
  });
}

function tryDecode(data: Uint8Array) {
  try { return decodeEvent(data); } catch { return undefined; }
}

/** Every message under `filter` up to the stream's current end, undecoded. */
export async function* readRaw(nc: NatsConnection, filter: string, ms = ORDERED_CREATE_MS): AsyncGenerator<{ seq: number; data: Uint8Array }> {
  const { consumer, pending, done } = await readerConsumer(nc, filter, {}, ms, async () => {
    const consumer = await nc.jetstream().consumers.get(STREAM, { filterSubjects: filter });
    return { consumer, pending: (await orderedInfo(consumer, ms)).num_pending };
  });
  try {
    if (pending === 0) return;
    const msgs = await consumer.consume({ max_messages: 512 });
    try {
      for await (const m of msgs) {
        yield { seq: m.seq, data: m.data };
        if (m.info.pending === 0) return;
      }
    } finally { msgs.stop(); }
  } finally { await done(); }
}

export type ReadItem = { ok: true; stored: StoredEvent } | { ok: false; seq: number; error: DecodeError; subject: string };


/**
 * An ordered consumer's first create: nats.js retries a create that went to a server that just
 * died for ever, inside consume(). Given up after `ms`, its late success stopped.
 */
function created<T extends { stop(): void }>(p: Promise<T>, ms = 2000): Promise<T> {
  return bounded(p, ms, (m) => m.stop(), 'the consumer was not made');
}

/** How long a whole-stream batch read waits after a "0 pending" before its end for what is still coming. */
const TAIL_QUIET_MS = 1000;

/**
 * The same read as readLog, a batch at a time: messages are taken by the consumer's callback
 * (no async iteration per message) and handed over as arrays of whatever arrived together.
 * For long bounded reads (audit verify), where per-message promises were a good part of the cost.
 */
export async function* readLogBatches(nc: NatsConnection, opts: { fromSeq?: number; filter?: string; signal?: AbortSignal } = {}): AsyncGenerator<ReadItem[]> {
  const info = await withRetry(async () => (await nc.jetstreamManager()).streams.info(STREAM));
  const last = info.state.last_seq;
  if (last === 0 || (opts.fromSeq ?? 1) > last) return;
  const copts: Record<string, unknown> = { filterSubjects: opts.filter ?? subjects.all };
  if (opts.fromSeq && opts.fromSeq > 1) { copts.deliver_policy = DeliverPolicy.StartSequence; copts.opt_start_seq = opts.fromSeq; }
  let batch: ReadItem[] = [];
  let done = false;
  let wake: (() => void) | undefined;
  let tail: NodeJS.Timeout | undefined;
  let quietEnd = () => { done = true; if (wake) { const w = wake; wake = undefined; w(); } }; // `stop` once the consumer is there
  const js = nc.jetstream({ timeout: 1500 });
  let attempt = 0; // a consumer given up on (created) may still deliver: only the last one's messages count
  const { consumer, msgs } = await withRetry(async () => {
    const mine = ++attempt;
    const consumer = await js.consumers.get(STREAM, copts);
    return { consumer, msgs: await created(consumer.consume({
    max_messages: 8192,
    callback: (m) => {
      if (done || mine !== attempt) return;
      batch.push(readItem(m.seq, m.subject, m.data, m.headers?.get(SIG_HEADER) || undefined));
      clearTimeout(tail);
      // A pull's messages can say "0 pending" while a few hundred are still on their way (seen
      // on a quiet 260k-event log: the read stopped 40 to 400 events short). Reading the whole
      // stream, the end is `last`; a 0 before it ends the read only if nothing follows (the
      // last messages were deleted).
      if (m.seq >= last || (m.info.pending === 0 && opts.filter !== undefined)) done = true;
      else if (m.info.pending === 0) tail = setTimeout(() => quietEnd(), TAIL_QUIET_MS);
      // resolved now, run once the parser has handed over everything it read with this message
      if (wake) { const w = wake; wake = undefined; w(); }
    },
    })) };
  });
  const ci = await consumer.info(true).catch(() => undefined);
  if (ci && ci.num_pending === 0) { msgs.stop(); return; }
  const stop = () => { done = true; msgs.stop(); if (wake) { const w = wake; wake = undefined; w(); } };
  quietEnd = stop;
  opts.signal?.addEventListener('abort', stop, { once: true });
  void msgs.closed().then(() => { done = true; if (wake) { const w = wake; wake = undefined; w(); } });
  try {
    for (;;) {
      if (batch.length === 0) {
        if (done) return;
        await new Promise<void>((r) => { wake = r; });
        continue;
      }
      const b = batch;
      batch = [];
      yield b;
    }
  } finally {
    clearTimeout(tail);
    opts.signal?.removeEventListener('abort', stop);
    msgs.stop();
  }
}

/** One stored message decoded and hashed (or why it is not an event). */
/** `hash`: the payload's sha256 when a reader thread computed it already. */
/** `decode`: decodeEvent, or codec.ts decodeCheckedEnvelope for bytes whose envelope a reader thread validated. */
export function readItem(seq: number, subject: string, data: Uint8Array, sig: string | undefined, hash?: string, decode = decodeEvent): ReadItem {
  try {
    return { ok: true, stored: { seq, hash: hash ?? hashBytes(data), event: decode(data), sig, bytes: data, subject } };
  } catch (err) {
    return { ok: false, seq, subject, error: err instanceof DecodeError ? err : new DecodeError(String(err)) };
  }
}

/**
 * Reads the stream in order from `fromSeq`, decoding each event. With follow=false it
 * stops at the stream's last sequence at call time.
 */
export async function* readLog(nc: NatsConnection, opts: ReadLogOptions = {}): AsyncGenerator<ReadItem> {
  // while the cluster elects a new meta leader (its server died) the API does not answer: again
  const info = await withRetry(async () => (await nc.jetstreamManager()).streams.info(STREAM));
  const last = info.state.last_seq;
  if (!opts.follow && (last === 0 || (opts.fromSeq ?? 1) > last)) return;
  // Over a cluster an ordered consumer lives on one server and dies with it (or is made on a
  // server that just died), and nats.js then waits on it for ever. After a reconnect or two
  // missed heartbeats the read goes on from the next sequence through a new consumer; a
  // bounded read (events, history) the same way, until it reaches the end it was asked for.
  let next = opts.fromSeq ?? 1;
  let startTime = opts.startTime;
  let failures = 0;
  for (;;) {
    const stalled = { yes: false };
    try {
      for await (const item of readFrom(nc, { ...opts, fromSeq: next, startTime }, last, stalled, info.state.first_seq)) {
        next = (item.ok ? item.stored.seq : item.seq) + 1;
        startTime = undefined;
        yield item;
      }
    } catch (err) {
      // no consumer while the cluster elects a new leader for the stream: try again (a
      // bounded read only a few times, and only for that: a refusal is the caller's answer)
      if (opts.signal?.aborted || nc.isClosed()) return;
      if (!opts.follow && (++failures > 5 || !/TIMEOUT|no responders|503/i.test(`${(err as { code?: string }).code ?? ''} ${(err as Error).message}`))) throw err;
      console.error(`log: following from #${next}: ${(err as Error).message}; again in 250 ms`);
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    if (!stalled.yes || opts.signal?.aborted || nc.isClosed()) return;
    if (!opts.follow && next > last) return;
  }
}

export interface ReadLogOptions {
  fromSeq?: number; filter?: string; follow?: boolean; startTime?: Date; signal?: AbortSignal;
  /**
   * Keep the consumer on the server this connection is on (a long-lived follower: the
   * controller's view). nats.js's ordered consumer is R1, placed by the meta leader on a server
   * picked at random; on another host's server, a cut of that host stalled the follower for the
   * heartbeats it missed plus a new consumer (which 2.9 may place on the cut peer again: a
   * timeout, then another try): the controller appended a NodeDown at +3.15 s and read it,
   * and asked for the replacements, at +7.7 s. On its own connection's server the consumer
   * dies only with that connection. Made again (each try a new random server) until it lands there.
   */
  home?: boolean;
  /** The start of the consumer's name (nats.js adds a unique rest): who reads, for `consumer ls` and tests. */
  name?: string;
}

/**
 * Tries at placing a homed follower's consumer, each on one of 3 servers at random: 8 tries left
 * one controller of three misplaced about once in eight fleets (1 - 0.96^3); 16, about 1 in 200.
 */
const HOME_TRIES = 16;

/** Whether a consumer led from server `at` is away from `connectedTo` (its home: the connection's server, or an agent's host's own, agent/consumer-home.ts): a known leader elsewhere. Pure. */
export function misplaced(at: string | undefined, connectedTo: string | undefined): boolean {
  return !!at && !!connectedTo && at !== connectedTo;
}

async function* readFrom(nc: NatsConnection, opts: ReadLogOptions, last: number, stalled?: { yes: boolean }, first = 1): AsyncGenerator<ReadItem> {
  // a create that lands on a dead peer is given up after 1.5 s and tried again (withRetry),
  // so a reader is back within a few seconds of losing its server
  const js = nc.jetstream({ timeout: 1500 });
  const copts: Record<string, unknown> = { filterSubjects: opts.filter ?? subjects.all, ...(opts.name ? { name_prefix: opts.name.replace(/[^A-Za-z0-9_-]/g, '_') } : {}) };
  if (opts.startTime) { copts.deliver_policy = DeliverPolicy.StartTime; copts.opt_start_time = opts.startTime.toISOString(); }
  else if (opts.fromSeq && opts.fromSeq > 1) { copts.deliver_policy = DeliverPolicy.StartSequence; copts.opt_start_seq = opts.fromSeq; }
  // a bounded read (audit, events) takes bigger batches: pulls, not decoding, bound it;
  // following: pulls that expire in 2 s (heartbeats every 1 s), so a lost consumer shows soon
  const make = () => withRetry(async () => {
    const consumer = await js.consumers.get(STREAM, copts);
    return { consumer, msgs: await created(consumer.consume(opts.follow ? { max_messages: 512, expires: 2000 } : { max_messages: 4096, expires: 2000 })) };
  });
  let made = await make();
  for (let k = 1; opts.home && k < HOME_TRIES; k++) {
    // nothing was taken from a misplaced one yet: the next starts at the same sequence
    const ci = await made.consumer.info(true).catch(() => undefined);
    if (!ci || !misplaced(ci.cluster?.leader, nc.info?.server_name)) break;
    made.msgs.stop();
    void nc.jetstreamManager().then((jsm) => jsm.consumers.delete(STREAM, ci.name)).catch(() => undefined);
    made = await make();
  }
  const { consumer, msgs } = made;
  const stop = () => msgs.stop();
  opts.signal?.addEventListener('abort', stop, { once: true });
  const conn = stalled ? nc.status() : undefined;
  if (stalled) {
    const give = () => { stalled.yes = true; stop(); };
    void (async () => { for await (const s of await msgs.status()) if (s.type === 'heartbeats_missed' && Number(s.data) >= 2) return give(); })().catch(() => undefined);
    void (async () => { for await (const s of conn!) if (s.type === 'reconnect') return give(); })().catch(() => undefined);
  }
  try {
    // A filtered read may have nothing between fromSeq and last: detect "caught up" by
    // the consumer's pending count too.
    if (!opts.follow) {
      const ci = await consumer.info(true).catch(() => undefined);
      if (ci && ci.num_pending === 0) return;
    }
    // a whole-log reader gets every position: one passed over was deleted by an admin (the audit
    // names it), or this consumer was edited under it (its filter narrowed by whoever learnt its
    // name: the fold would silently miss what it no longer delivers). That is asked of the
    // stream, and a position still there is read again through a new consumer.
    // (from the stream's first position: what a purge or the archive took is no gap)
    let expect = opts.filter === undefined && !opts.startTime ? Math.max(opts.fromSeq ?? 1, first) : undefined;
    for await (const m of msgs) {
      if (expect !== undefined && m.seq > expect) {
        const held = await firstHeld(nc, expect, m.seq);
        if (held !== undefined) {
          console.error(`log: the consumer reading the log passed over #${held} (its filter changed under it?): reading again from #${held} through a new one`);
          if (stalled) stalled.yes = true;
          return;
        }
      }
      if (opts.filter === undefined) expect = m.seq + 1;
      try {
        const sig = m.headers?.get(SIG_HEADER) || undefined;
        yield { ok: true, stored: { seq: m.seq, hash: hashBytes(m.data), event: decodeEvent(m.data), sig, bytes: m.data, subject: m.subject } };
      } catch (err) {
        yield { ok: false, seq: m.seq, subject: m.subject, error: err instanceof DecodeError ? err : new DecodeError(String(err)) };
      }
      if (!opts.follow && (m.seq >= last || m.info.pending === 0)) return;
    }
  } finally {
    opts.signal?.removeEventListener('abort', stop);
    (conn as unknown as { stop?: () => void } | undefined)?.stop?.();
    stop();
  }
}

/** Positions of a gap checked one by one at most (a range deleted by an admin is rarely longer). */
const GAP_CHECKS = 256;

/**
 * The first position in [from, to) the stream still holds (a reader passed over it), or
 * undefined: all deleted, or not known (a get unanswered: the read goes on rather than loop).
 */
export async function firstHeld(nc: NatsConnection, from: number, to: number): Promise<number | undefined> {
  const jsm = await nc.jetstreamManager({ timeout: 2000 });
  for (let s = from; s < to && s < from + GAP_CHECKS; s++) {
    try {
      await jsm.streams.getMessage(STREAM, { seq: s });
      return s;
    } catch (err) {
      if (/no message found|10037/i.test(`${(err as Error).message} ${(err as { api_error?: { err_code?: number } }).api_error?.err_code ?? ''}`)) continue;
      return undefined;
    }
  }
  return undefined;
}

/**
 * A JetStream API call that a cluster with one server down may not answer: nats-server 2.9
 * can place a new ephemeral consumer on the offline peer, and that create times out (about
 * one in three with one of three servers down). Tried again, it lands elsewhere.
 */
/** What a retry may change: a timeout, no responders, no leader yet. */
export const TRANSIENT = /TIMEOUT|no responders|503/i;

export async function withRetry<T>(f: () => Promise<T>, attempts = 4, retryOn = TRANSIENT, delayMs = 100): Promise<T> {
  for (let k = 1; ; k++) {
    try { return await f(); } catch (err) {
      if (k >= attempts || !retryOn.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, delayMs * k));
    }
  }
}

/**
 * An append while the stream has no leader (a cluster electing one after a server died)
 * finds no responders: nothing was stored, so it is tried again, for up to ~8 s. Only that
 * answer: after a TIMEOUT the event may be in the log, and the caller must not append it twice.
 */
export const whileNoLeader = <T>(f: () => Promise<T>): Promise<T> => withRetry(f, 12, /^503$|no responders/i, 120);

/**
 * The JetStream manager, once JetStream answers: a cluster's servers answer only when a
 * majority is up and has elected a leader, which may be a while after the first one starts.
 */
export async function jetstreamReady(nc: NatsConnection, ms = 120_000): Promise<JetStreamManager> {
  for (const t0 = Date.now(); ;) {
    try { return await nc.jetstreamManager(); } catch (err) {
      if (Date.now() - t0 > ms) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * An Appender's onStop for a long-running process: its writer can no longer say what the log
 * holds, so it exits (code 75, EX_TEMPFAIL) and its supervisor restarts it, which takes the
 * chain's head from the stream again. The short delay lets the refusals of pending appends
 * reach their callers first.
 */
export function exitForRestart(who: string): (err: Error) => void {
  return (err) => {
    console.error(`${who}: exiting for a restart: ${err.message}`);
    setTimeout(() => process.exit(75), 200).unref();
  };
}
