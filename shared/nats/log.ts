// The thin I/O layer over the one JetStream stream. Pure parts (codec, reducer) know
// nothing of NATS; everything that touches the server for events lives here.
import {
  DeliverPolicy, StorageType, headers as natsHeaders,
  type JetStreamClient, type JetStreamManager, type NatsConnection,
} from 'nats';
import { decodeEvent, hashBytes, SourceChain, DecodeError } from '../codec.js';
import type { EventData, EventType, StoredEvent } from '../events.js';
import { STREAM, subjects } from '../subjects.js';

export async function ensureStream(jsm: JetStreamManager): Promise<void> {
  try {
    await jsm.streams.info(STREAM);
  } catch {
    // file storage: the log is the truth and must survive a server restart
    await jsm.streams.add({
      name: STREAM, subjects: [subjects.all], storage: StorageType.File,
      duplicate_window: 2 * 60 * 1_000_000_000, // ns; covers a publisher's retries
    });
  }
}

/** One writer's appends, serialised so that its hash chain has exactly one order. */
export class Appender {
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private js: JetStreamClient, readonly chain: SourceChain) {}

  append<T extends EventType>(subject: string, type: T, entity: string, data: EventData[T], cause?: string): Promise<{ seq: number; id: string }> {
    const run = async () => {
      const { event, bytes, hash } = this.chain.next(type, entity, data, cause);
      const h = natsHeaders();
      h.set('Nats-Msg-Id', event.id);
      const ack = await this.js.publish(subject, bytes, { msgID: event.id, headers: h });
      this.chain.commit(event.srcSeq, hash);
      return { seq: ack.seq, id: event.id };
    };
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => undefined);
    return p;
  }
}

/** Recovers a source's chain head from the last events it stored under the given subjects. */
export async function chainHeadFromStream(jsm: JetStreamManager, src: string, subjectFilters: string[]): Promise<SourceChain> {
  let best: { seq: number; data: Uint8Array } | undefined;
  for (const s of subjectFilters) {
    try {
      const m = await jsm.streams.getMessage(STREAM, { last_by_subj: s });
      if (!best || m.seq > best.seq) best = { seq: m.seq, data: m.data };
    } catch { /* no message on that subject yet */ }
  }
  if (!best) return new SourceChain(src);
  const e = decodeEvent(best.data);
  return new SourceChain(src, e.srcSeq, hashBytes(best.data));
}

export type ReadItem = { ok: true; stored: StoredEvent } | { ok: false; seq: number; error: DecodeError; subject: string };

/**
 * Reads the stream in order from `fromSeq`, decoding each event. With follow=false it
 * stops at the stream's last sequence at call time.
 */
export async function* readLog(nc: NatsConnection, opts: { fromSeq?: number; filter?: string; follow?: boolean; startTime?: Date; signal?: AbortSignal } = {}): AsyncGenerator<ReadItem> {
  const js = nc.jetstream();
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(STREAM);
  const last = info.state.last_seq;
  if (!opts.follow && (last === 0 || (opts.fromSeq ?? 1) > last)) return;
  const copts: Record<string, unknown> = { filterSubjects: opts.filter ?? subjects.all };
  if (opts.startTime) { copts.deliver_policy = DeliverPolicy.StartTime; copts.opt_start_time = opts.startTime.toISOString(); }
  else if (opts.fromSeq && opts.fromSeq > 1) { copts.deliver_policy = DeliverPolicy.StartSequence; copts.opt_start_seq = opts.fromSeq; }
  const consumer = await js.consumers.get(STREAM, copts);
  const msgs = await consumer.consume({ max_messages: 512 });
  const stop = () => msgs.stop();
  opts.signal?.addEventListener('abort', stop, { once: true });
  try {
    // A filtered read may have nothing between fromSeq and last: detect "caught up" by
    // the consumer's pending count too.
    if (!opts.follow) {
      const ci = await consumer.info(true).catch(() => undefined);
      if (ci && ci.num_pending === 0) return;
    }
    for await (const m of msgs) {
      try {
        yield { ok: true, stored: { seq: m.seq, hash: hashBytes(m.data), event: decodeEvent(m.data) } };
      } catch (err) {
        yield { ok: false, seq: m.seq, subject: m.subject, error: err instanceof DecodeError ? err : new DecodeError(String(err)) };
      }
      if (!opts.follow && (m.seq >= last || m.info.pending === 0)) return;
    }
  } finally {
    opts.signal?.removeEventListener('abort', stop);
    stop();
  }
}

