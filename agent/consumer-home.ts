// The node's durable consumer is an R3 raft group of its own; while its raft leader is on a
// server that is cut off, the agent is handed nothing until the two others elect a new one
// (nats-server 2.9: a random 4-9 s, fixed in its code). A host cut off then delayed the start
// of its tasks' replacements on the OTHER hosts whose consumers it happened to lead (9-11 s
// after the NodeDown, measured by test/bench/fleet-loss.ts). An agent whose host runs a server
// (and is connected to it: shared/nats/trust.ts serverOrder) asks its consumer's leader to step
// down until that server leads it: the consumer then shares its host's fate, and a cut of
// another host costs it nothing. A host without a server (or an agent whose own server is down)
// keeps it on the server its connection is on, the one it dialed first (trust.ts serverOrder
// shuffles the others): the same fate-sharing, instead of a leader on a random third server
// whose cut stalled the agent although its own connection was fine. Placement only: delivery
// and acks never depend on it.
import type { JetStreamManager, NatsConnection } from 'nats';
import { STREAM } from '../shared/subjects.js';

/** Whether to ask `leader` to step down: a leader known, not this host's own server. Pure. */
export function shouldMoveHome(leader: string | undefined, ownServer: string | undefined): boolean {
  return !!leader && !!ownServer && leader !== ownServer;
}

/** The server this connection is on: its host's own when it has one (dialed first), else the first it reached. */
export function homeServer(nc: Pick<NatsConnection, 'info'>): string | undefined {
  return nc.info?.server_name || undefined;
}

/**
 * Looks every `everyMs` (and at once) and steps the leader down while it is elsewhere, at most
 * `maxPerMinute` times a minute (each is a short election: a stuck loop must not keep the
 * consumer electing). Each step-down lands on one of the two other servers at random, so 6 a
 * minute left 1 in 64 agents away from home after a minute (CI's membership test saw one); 12
 * leave 1 in 4096. Returns the stop function.
 */
export function keepConsumerHome(nc: NatsConnection, jsm: JetStreamManager, consumer: string, o: { everyMs?: number; maxPerMinute?: number; log?: (l: string) => void } = {}): () => void {
  let stopped = false, timer: NodeJS.Timeout | undefined;
  const recent: number[] = [];
  const look = async (): Promise<number> => {
    const own = homeServer(nc);
    if (!own) return o.everyMs ?? 10_000; // between connections: nothing to move towards
    const leader = await jsm.consumers.info(STREAM, consumer).then((i) => i.cluster?.leader, () => undefined);
    if (!shouldMoveHome(leader, own)) return o.everyMs ?? 10_000;
    const now = Date.now();
    while (recent.length && now - recent[0]! > 60_000) recent.shift();
    if (recent.length >= (o.maxPerMinute ?? 12)) return o.everyMs ?? 10_000;
    recent.push(now);
    try {
      const r = await nc.request(`$JS.API.CONSUMER.LEADER.STEPDOWN.${STREAM}.${consumer}`, new Uint8Array(0), { timeout: 2000 });
      const error = (JSON.parse(new TextDecoder().decode(r.data)) as { error?: { description?: string } }).error;
      if (error) o.log?.(`consumer ${consumer}: led by ${leader}, could not move it to ${own}: ${error.description ?? 'refused'}`);
    } catch (err) { o.log?.(`consumer ${consumer}: led by ${leader}, could not move it to ${own}: ${(err as Error).message}`); }
    // the new leader is one of the others, at random: look again soon
    return 1000;
  };
  const loop = (): void => {
    if (stopped) return;
    void look().catch(() => o.everyMs ?? 10_000).then((ms) => { if (!stopped) { timer = setTimeout(loop, ms); timer.unref(); } });
  };
  loop();
  return () => { stopped = true; clearTimeout(timer); };
}
