// The node's durable consumer, agent-<node>: what the agent is handed its desired events through.
// The grants deny every other identity that name only once the node exists (shared/nats/trust.ts
// durableDeny is built from today's identities), and a reader may name the consumers it makes
// as it likes (its filter is what the server checks): before a node joined, another node or an
// operator could make a durable of that name filtered to its own subjects, and the new node,
// finding "its" durable there with nothing pending, kept it and was handed someone else's
// events for ever. A durable whose config is not the node's own is made again.
import { AckPolicy, DeliverPolicy, type ConsumerConfig, type JetStreamManager } from 'nats';
import { durableOf, STREAM, subjects } from '../shared/subjects.js';


/** Whether a consumer's config is node `node`'s durable as openDurable makes it. Pure. */
export function isNodeDurable(cfg: Partial<ConsumerConfig> | undefined, node: string): boolean {
  if (!cfg || cfg.durable_name !== durableOf(node) || cfg.ack_policy !== AckPolicy.Explicit) return false;
  const filters = cfg.filter_subjects?.length ? cfg.filter_subjects : cfg.filter_subject ? [cfg.filter_subject] : [];
  return filters.length === 1 && filters[0] === subjects.desiredFor(node);
}

/**
 * Makes the node's durable unless its own is there. Messages a crashed agent held unacked would
 * only come back after ack_wait; recreating the consumer at its ack floor hands them over at
 * once (the checkpoint turns the ones already applied into no-ops). Another's consumer under the
 * name is deleted and the durable made from the log's start (its floor counts other subjects).
 * Returns what it found: 'kept', 'reopened' (at its floor), 'replaced' (not the node's), 'made'.
 */
export async function openDurable(jsm: JetStreamManager, node: string): Promise<'kept' | 'reopened' | 'replaced' | 'made'> {
  const name = durableOf(node);
  let floor = 0;
  let found: 'reopened' | 'replaced' | 'made' = 'made';
  const info = await jsm.consumers.info(STREAM, name).catch(() => undefined);
  if (info) {
    if (!isNodeDurable(info.config, node)) found = 'replaced';
    else if (info.num_ack_pending === 0) return 'kept';
    else { floor = info.ack_floor.stream_seq; found = 'reopened'; }
    await jsm.consumers.delete(STREAM, name);
  }
  await jsm.consumers.add(STREAM, {
    durable_name: name, filter_subject: subjects.desiredFor(node), ack_policy: AckPolicy.Explicit,
    ...(floor > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: floor + 1 } : { deliver_policy: DeliverPolicy.All }),
    ack_wait: 30_000_000_000, max_ack_pending: 1000,
  });
  return found;
}
