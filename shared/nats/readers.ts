// Consumers only their identity can touch. A consumer's name is one token of the API subjects
// that pull from it, get its info or delete it ($JS.API.CONSUMER.MSG.NEXT.<stream>.<name>), and
// a grant's `*` matches a whole token, so "the consumers this identity made" can be granted only
// as a list of exact names. nats.js's ordered consumers are named at random (a nuid), which a
// grant cannot name: an agent was granted every name on the log's stream, and one that learnt
// another's consumer name could pull from it (another node's desired events, with its
// containers' environments) or delete it (the controller's fold). An agent reads instead
// through READER_SLOTS consumers named from its identity (readerNames, which trust.ts grants
// with the filters it may read, and nothing else on the log's consumers).
//
// Only for an identity that one process uses at a time (an agent): two processes of one
// identity would take the same slot and delete each other's consumer. Whole-log readers
// (controller, tsctl) keep nats.js's ordered consumers (useReaders not called).
import { AckPolicy, DeliverPolicy, nanos, nuid, type Consumer, type ConsumerConfig, type NatsConnection } from 'nats';
import { STREAM } from '../subjects.js';

/** How many of its own consumers an identity may have at once: an agent's reads at start and its lookups. */
export const READER_SLOTS = 4;
/**
 * Slot k of `identity`: a fixed-length head before the identity, so no two (identity, slot)
 * pairs give one name, and none is a durable's (agent-<node>) or a nuid (no `-` in those).
 */
export const readerName = (identity: string, slot: number): string => `rd${slot}-${identity}`;
export const readerNames = (identity: string): string[] => Array.from({ length: READER_SLOTS }, (_, k) => readerName(identity, k));

/** A reader's consumer lives this long without a pull once its process died before deleting it. */
const INACTIVE_MS = 30_000;

class Slots {
  private free: number[] = Array.from({ length: READER_SLOTS }, (_, k) => k);
  private waiting: ((k: number) => void)[] = [];
  constructor(readonly identity: string) {}
  take(): Promise<number> {
    const k = this.free.shift();
    return k !== undefined ? Promise.resolve(k) : new Promise((r) => this.waiting.push(r));
  }
  give(k: number): void {
    const w = this.waiting.shift();
    if (w) w(k); else this.free.push(k);
  }
}

const pools = new WeakMap<NatsConnection, Slots>();

/** From now on, reads on `nc` (readerConsumer) go through `identity`'s own named consumers. */
export function useReaders(nc: NatsConnection, identity: string): void {
  pools.set(nc, new Slots(identity));
}

/** useReaders for a connection as an agent (its grants name no other consumer); other kinds read as before. */
export function readersFor(nc: NatsConnection, who: { name: string; kind: string }): NatsConnection {
  if (who.kind === 'agent') useReaders(nc, who.name);
  return nc;
}

export interface Reader { consumer: Consumer; pending: number; done(): Promise<void> }

/**
 * A pull consumer on the log's stream filtered to `filter` from `start`, and `done` that
 * deletes it. With useReaders: one of the identity's named consumers; otherwise `ordered()`.
 * A named one carries a random description, so a leftover of the same name (its process died,
 * or a create that timed out was made late) never has an equal config and is never taken as
 * this read's: the create is refused, the leftover deleted and the create made again.
 */
export async function readerConsumer(nc: NatsConnection, filter: string, start: Partial<ConsumerConfig>, ms: number,
  ordered: () => Promise<{ consumer: Consumer; pending: number }>): Promise<Reader> {
  const pool = pools.get(nc);
  if (!pool) {
    const o = await ordered();
    return { ...o, done: () => o.consumer.delete().then(() => undefined, () => undefined) };
  }
  const k = await pool.take();
  const name = readerName(pool.identity, k);
  let given = false;
  const give = () => { if (!given) { given = true; pool.give(k); } };
  try {
    const jsm = await nc.jetstreamManager({ timeout: ms });
    const cfg: Partial<ConsumerConfig> = {
      name, filter_subject: filter, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All, ...start,
      inactive_threshold: nanos(INACTIVE_MS), num_replicas: 1, mem_storage: true, description: nuid.next(),
    };
    let ci;
    try { ci = await jsm.consumers.add(STREAM, cfg); } catch (err) {
      if (!(err as { api_error?: unknown }).api_error) throw err;
      await jsm.consumers.delete(STREAM, name).catch(() => undefined);
      ci = await jsm.consumers.add(STREAM, cfg);
    }
    const consumer = await nc.jetstream({ timeout: ms }).consumers.get(STREAM, name);
    return { consumer, pending: ci.num_pending, done: async () => {
      try { await jsm.consumers.delete(STREAM, name); } catch { /* inactive_threshold removes it; the next taker deletes it */ }
      give();
    } };
  } catch (err) { give(); throw err; }
}
