// The thin I/O layer over the one JetStream stream. Pure parts (codec, reducer) know
// nothing of NATS; everything that touches the server for events lives here.
import {
  DeliverPolicy, DiscardPolicy, StorageType, headers as natsHeaders,
  type JetStreamClient, type JetStreamManager, type NatsConnection,
} from 'nats';
import { decodeEvent, hashBytes, SourceChain, DecodeError } from '../codec.js';
import type { EventData, EventType, StoredEvent } from '../events.js';
import { STREAM, subjects } from '../subjects.js';
import { SIG_HEADER, type Signer } from '../signing.js';

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

/** One writer's appends, serialised so that its hash chain has exactly one order. */
export class Appender {
  private tail: Promise<unknown> = Promise.resolve();

  /** `signer`: the source's key; its signature over the wire bytes goes in the Swl-Sig header. */
  constructor(private js: JetStreamClient, readonly chain: SourceChain, private signer?: Signer) {}

  append<T extends EventType>(subject: string, type: T, entity: string, data: EventData[T], cause?: string, id?: string): Promise<{ seq: number; id: string }> {
    const run = async () => {
      const { event, bytes, hash } = this.chain.next(type, entity, data, cause, id);
      const h = natsHeaders();
      h.set('Nats-Msg-Id', event.id);
      if (this.signer) h.set(SIG_HEADER, this.signer.sign(bytes));
      const ack = await this.js.publish(subject, bytes, { msgID: event.id, headers: h });
      this.chain.commit(event.srcSeq, hash);
      return { seq: ack.seq, id: event.id };
    };
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => undefined);
    return p;
  }
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
export async function lastOn(nc: NatsConnection, filter: string): Promise<{ seq: number; data: Uint8Array; sig?: string } | undefined> {
  const consumer = await nc.jetstream().consumers.get(STREAM, { filterSubjects: filter, deliver_policy: DeliverPolicy.Last });
  try {
    const info = await consumer.info(true).catch(() => undefined);
    if (!info || info.num_pending === 0) return undefined;
    const m = await consumer.next({ expires: 5000 });
    return m ? { seq: m.seq, data: m.data, sig: m.headers?.get(SIG_HEADER) || undefined } : undefined;
  } finally { await consumer.delete().catch(() => undefined); }
}

function tryDecode(data: Uint8Array) {
  try { return decodeEvent(data); } catch { return undefined; }
}

/** Every message under `filter` up to the stream's current end, undecoded. */
export async function* readRaw(nc: NatsConnection, filter: string): AsyncGenerator<{ seq: number; data: Uint8Array }> {
  const consumer = await nc.jetstream().consumers.get(STREAM, { filterSubjects: filter });
  const info = await consumer.info(true).catch(() => undefined);
  if (!info || info.num_pending === 0) return;
  const msgs = await consumer.consume({ max_messages: 512 });
  try {
    for await (const m of msgs) {
      yield { seq: m.seq, data: m.data };
      if (m.info.pending === 0) return;
    }
  } finally { msgs.stop(); }
}

export type ReadItem = { ok: true; stored: StoredEvent } | { ok: false; seq: number; error: DecodeError; subject: string };

/**
 * Reads the stream in order from `fromSeq`, decoding each event. With follow=false it
 * stops at the stream's last sequence at call time.
 */
export async function* readLog(nc: NatsConnection, opts: { fromSeq?: number; filter?: string; follow?: boolean; startTime?: Date; signal?: AbortSignal } = {}): AsyncGenerator<ReadItem> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(STREAM);
  const last = info.state.last_seq;
  if (!opts.follow && (last === 0 || (opts.fromSeq ?? 1) > last)) return;
  if (!opts.follow) { yield* readFrom(nc, opts, last); return; }
  // Following, over a cluster: an ordered consumer lives on one server and dies with it, and
  // nats.js then waits on it for ever. After a reconnect or two missed heartbeats the read
  // goes on from the next sequence through a new consumer.
  let next = opts.fromSeq ?? 1;
  let startTime = opts.startTime;
  for (;;) {
    const stalled = { yes: false };
    try {
      for await (const item of readFrom(nc, { ...opts, fromSeq: next, startTime }, last, stalled)) {
        next = (item.ok ? item.stored.seq : item.seq) + 1;
        startTime = undefined;
        yield item;
      }
    } catch (err) {
      // no consumer while the cluster elects a new leader for the stream: try again
      if (opts.signal?.aborted || nc.isClosed()) return;
      console.error(`log: following from #${next}: ${(err as Error).message}; again in 250 ms`);
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    if (!stalled.yes || opts.signal?.aborted || nc.isClosed()) return;
  }
}

async function* readFrom(nc: NatsConnection, opts: { fromSeq?: number; filter?: string; follow?: boolean; startTime?: Date; signal?: AbortSignal }, last: number, stalled?: { yes: boolean }): AsyncGenerator<ReadItem> {
  // following: a create that lands on a dead peer is given up after 1.5 s and tried again
  // (withRetry), so the view is back within a few seconds of losing its server
  const js = nc.jetstream(opts.follow ? { timeout: 1500 } : {});
  const copts: Record<string, unknown> = { filterSubjects: opts.filter ?? subjects.all };
  if (opts.startTime) { copts.deliver_policy = DeliverPolicy.StartTime; copts.opt_start_time = opts.startTime.toISOString(); }
  else if (opts.fromSeq && opts.fromSeq > 1) { copts.deliver_policy = DeliverPolicy.StartSequence; copts.opt_start_seq = opts.fromSeq; }
  // a bounded read (audit, events) takes bigger batches: pulls, not decoding, bound it;
  // following: pulls that expire in 2 s (heartbeats every 1 s), so a lost consumer shows soon
  const { consumer, msgs } = await withRetry(async () => {
    const consumer = await js.consumers.get(STREAM, copts);
    return { consumer, msgs: await consumer.consume(opts.follow ? { max_messages: 512, expires: 2000 } : { max_messages: 4096 }) };
  });
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
    for await (const m of msgs) {
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

/**
 * A JetStream API call that a cluster with one server down may not answer: nats-server 2.9
 * can place a new ephemeral consumer on the offline peer, and that create times out (about
 * one in three with one of three servers down). Tried again, it lands elsewhere.
 */
export async function withRetry<T>(f: () => Promise<T>, attempts = 4, retryOn = /TIMEOUT|no responders|503/i, delayMs = 100): Promise<T> {
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
