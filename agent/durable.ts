// The node's durable consumer, agent-<node>: what the agent is handed its desired events through.
// The grants deny every other identity that name only once the node exists (shared/nats/trust.ts
// durableDeny is built from today's identities), and a reader may make the consumers it names
// with any config (only the filter is checked by the server): before a node joined, another
// node or an operator could make a durable of that name that hands it someone else's events,
// only the new ones, headers without bodies, each once, or that the server drops when idle.
// A durable whose config is not exactly the one openDurable makes is made again.
import { AckPolicy, DeliverPolicy, type ConsumerConfig, type JetStreamManager } from 'nats';
import { verifySig, type Signer } from '../shared/signing.js';
import { durableOf, STREAM, subjects } from '../shared/subjects.js';

const ACK_WAIT_NS = 30_000_000_000;
const MAX_ACK_PENDING = 1000;
/** nats-server's default for a pull consumer: a lower one makes the agent's pulls fail. */
const MAX_WAITING = 512;

/**
 * What the node signs when it reopens its durable at `seq`: a start past the log's first event
 * is only the node's own if the node said so (nobody else holds its key), else a squatter's
 * durable starting at the log's end would pass for a reopened one and hide every earlier event.
 */
const startClaim = (node: string, seq: number): Uint8Array => Buffer.from(`swarmlite-durable-v1\n${durableOf(node)}\n${seq}`);

/** The node's durable as openDurable makes it: from the log's start, or from `seq` with the node's signature. Pure. */
export function nodeDurableConfig(node: string, from?: { seq: number; sig: string }): Partial<ConsumerConfig> {
  return {
    durable_name: durableOf(node), filter_subject: subjects.desiredFor(node), ack_policy: AckPolicy.Explicit,
    ...(from ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from.seq, description: from.sig } : { deliver_policy: DeliverPolicy.All }),
    ack_wait: ACK_WAIT_NS, max_ack_pending: MAX_ACK_PENDING,
  };
}

const absent = (v: unknown): boolean => v === undefined || v === null || v === false || v === 0 || v === '' ||
  (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && Object.keys(v).length === 0);

/**
 * Each field openDurable's config leaves the server to fill, with the value it fills in. Any
 * other field set (headers_only, inactive_threshold, deliver_subject, sample_freq, backoff,
 * rate_limit_bps, max_batch, max_bytes, max_expires, opt_start_time, mem_storage, pause_until,
 * a field a later server adds...) changes what is delivered or how long the durable lives.
 */
const SERVER_FILLED: Record<string, (v: unknown) => boolean> = {
  name: () => true, // checked against durable_name below
  max_deliver: (v) => v === undefined || v === -1,
  replay_policy: (v) => v === undefined || v === 'instant',
  max_waiting: (v) => v === undefined || v === MAX_WAITING,
  num_replicas: (v) => v === undefined || v === 0,
  // nats-server 2.11 writes its own `_nats.*` entries
  metadata: (v) => v === undefined || (typeof v === 'object' && v !== null && Object.keys(v).every((k) => k.startsWith('_nats.'))),
};

/**
 * Whether a consumer's config is node `node`'s durable as openDurable makes it, `pub` being the
 * node's signing key (what a reopen's start is signed with). Pure.
 */
export function isNodeDurable(cfg: Partial<ConsumerConfig> | undefined, node: string, pub: string): boolean {
  if (!cfg) return false;
  const c = cfg as Record<string, unknown>;
  const filters = cfg.filter_subjects?.length ? cfg.filter_subjects : cfg.filter_subject ? [cfg.filter_subject] : [];
  if (filters.length !== 1 || filters[0] !== subjects.desiredFor(node)) return false;
  if (cfg.name !== undefined && cfg.name !== durableOf(node)) return false;
  let start: { seq: number; sig: string } | undefined;
  if (cfg.deliver_policy === DeliverPolicy.StartSequence) {
    const seq = cfg.opt_start_seq;
    if (typeof seq !== 'number' || !verifySig(pub, startClaim(node, seq), cfg.description)) return false;
    start = { seq, sig: cfg.description! };
  } else if (cfg.deliver_policy !== DeliverPolicy.All) return false;
  const want = nodeDurableConfig(node, start) as Record<string, unknown>;
  for (const [k, v] of Object.entries(want)) if (c[k] !== v) return false;
  // filter_subject/filter_subjects: one of them, checked above
  for (const [k, v] of Object.entries(c)) {
    if (k in want || k === 'filter_subjects') continue;
    if (!(SERVER_FILLED[k]?.(v) ?? absent(v))) return false;
  }
  return true;
}

/**
 * Makes the node's durable unless its own is there. Messages a crashed agent held unacked would
 * only come back after ack_wait; recreating the consumer at its ack floor hands them over at
 * once (the checkpoint turns the ones already applied into no-ops). Another's consumer under the
 * name is deleted and the durable made from the log's start (its floor counts other subjects).
 * Returns what it found: 'kept', 'reopened' (at its floor), 'replaced' (not the node's), 'made'.
 */
export async function openDurable(jsm: JetStreamManager, node: string, key: Signer): Promise<'kept' | 'reopened' | 'replaced' | 'made'> {
  const name = durableOf(node);
  let floor = 0;
  let found: 'reopened' | 'replaced' | 'made' = 'made';
  const info = await jsm.consumers.info(STREAM, name).catch(() => undefined);
  if (info) {
    if (!isNodeDurable(info.config, node, key.pub)) found = 'replaced';
    else if (info.num_ack_pending === 0) return 'kept';
    else { floor = info.ack_floor.stream_seq; found = 'reopened'; }
    await jsm.consumers.delete(STREAM, name);
  }
  const seq = floor + 1;
  await jsm.consumers.add(STREAM, nodeDurableConfig(node, floor > 0 ? { seq, sig: key.sign(startClaim(node, seq)) } : undefined));
  return found;
}
