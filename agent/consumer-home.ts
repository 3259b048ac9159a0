// The node's durable consumer is an R3 raft group of its own; while its raft leader is on a
// server that is cut off, the agent is handed nothing until the two others elect a new one
// (nats-server 2.9 and 2.10.27 alike: a random 4-9 s, its raft's fixed election timeout). A
// host cut off then delayed the start of its tasks' replacements on the OTHER hosts whose
// consumers it happened to lead (9-11 s after the NodeDown, measured by
// test/bench/fleet-loss.ts). An agent whose host runs a server
// asks its consumer's leader to step down until that server leads it, whether or not its
// connection is there now (shared/nats/trust.ts serverOrder dials it first; after its loss
// nats.js stays where it reconnected): the consumer then shares its host's fate, and a cut of
// another host costs it nothing. A host without a server (or an agent whose own server is down)
// keeps it on the server its connection is on, the one it dialed first (trust.ts serverOrder
// shuffles the others): the same fate-sharing, instead of a leader on a random third server
// whose cut stalled the agent although its own connection was fine. Placement only: delivery
// and acks never depend on it. The rule is the controller's homed follower's (shared/nats/log.ts
// misplaced); only the way back differs (an R3 group is stepped down, an R1 consumer made again).
import type { JetStreamManager, NatsConnection } from 'nats';
import { STREAM, subjects } from '../shared/subjects.js';
import { localNames } from '../shared/nats/trust.js';
import { misplaced } from '../shared/nats/log.js';

/** The server this connection is on: its host's own when it has one (dialed first), else the first it reached. */
export function homeServer(nc: Pick<NatsConnection, 'info'>): string | undefined {
  return nc.info?.server_name || undefined;
}

/** The name of the server this connection is on when that server is at one of `local`'s addresses (this host's own), else undefined. */
export function ownServer(nc: Pick<NatsConnection, 'info' | 'getServer'>, local: ReadonlySet<string> = localNames()): string | undefined {
  const at = nc.getServer();
  const host = at.startsWith('[') ? at.slice(1, at.indexOf(']')) : at.slice(0, at.lastIndexOf(':') < 0 ? undefined : at.lastIndexOf(':'));
  return host && local.has(host.toLowerCase()) ? homeServer(nc) : undefined;
}

/** A consumer's peer as its info lists it. */
export interface Peer { name: string; current?: boolean; offline?: boolean }

/**
 * The server the consumer belongs on: the host's own (`own`, once known) while it leads it or is
 * a current replica of it, even when the connection is elsewhere (its own server was down a while
 * and nats.js stays where it reconnected: a consumer following the connection onto another host's
 * server went with that host's cut, connection and consumer both); else the connection's server
 * (`connected`). Pure.
 */
export function homeOf(own: string | undefined, connected: string | undefined, leader: string | undefined, replicas: readonly Peer[] = []): string | undefined {
  if (own && (leader === own || replicas.some((r) => r.name === own && r.current && !r.offline))) return own;
  return connected;
}

/**
 * What a look does, given the consumer's raft group as its info shows it (undefined: no answer):
 * 'stay' (home leads it, or home is no peer of it: nothing a step-down can do), 'step' (its leader
 * down: home is a current peer), or 'wait' (look again soon: no answer or no leader, an election
 * or a cut under way; or home is a peer still catching up, which no step-down would pick, after a
 * heal). Pure.
 */
export function nextMove(own: string | undefined, connected: string | undefined, cluster: { leader?: string; replicas?: readonly Peer[] } | undefined): 'stay' | 'step' | 'wait' {
  if (!cluster?.leader) return 'wait';
  const home = homeOf(own, connected, cluster.leader, cluster.replicas);
  if (!misplaced(cluster.leader, home)) return 'stay';
  const peer = cluster.replicas?.find((r) => r.name === home);
  if (!peer) return 'stay';
  return peer.current && !peer.offline ? 'step' : 'wait';
}

/** How long after an election or a reconnect the consumer is looked at: its group settles first. */
const SETTLE_MS = 200;

/**
 * Looks every `everyMs`, at once, and SETTLE_MS after each election of the consumer (the server's
 * advisory) or reconnect, and steps the leader down while it is away from home (homeOf), at most
 * `maxPerMinute` times a minute (each is a short election: a stuck loop must not keep the
 * consumer electing). Each step-down lands on one of the two other servers at random, so 6 a
 * minute left 1 in 64 agents away from home after a minute (CI's membership test saw one); 12
 * leave 1 in 4096; 20, since a look follows each election at once and a heal elects several
 * times (test/membership.test.ts moves one three times in a few seconds). A look with no answer,
 * or whose home is still catching up, is made again after 1 s (nextMove 'wait'). Looking only
 * every 10 s left a consumer that a heal's elections had moved (a partitioned server comes back
 * with a higher term) on that host's server for up to 10 s: test/bench/fleet-loss.ts cut that
 * host again meanwhile, and the agent heard nothing for the consumer's election (8.4 s).
 * Returns the stop function.
 */
export function keepConsumerHome(nc: NatsConnection, jsm: JetStreamManager, consumer: string, o: { everyMs?: number; maxPerMinute?: number; log?: (l: string) => void } = {}): () => void {
  const every = o.everyMs ?? 10_000;
  let stopped = false, timer: NodeJS.Timeout | undefined, due = Infinity, running = false, again = false;
  let own = ownServer(nc);
  const recent: number[] = [];
  const look = async (): Promise<number> => {
    const connected = homeServer(nc);
    if (!connected) return every; // between connections: nothing to move towards
    const info = await jsm.consumers.info(STREAM, consumer).then((i) => i.cluster, () => undefined);
    // a look that got no answer (its host cut off and healed since) waited 10 s for the next,
    // while a cut of the host it was moved to came 12 s after the heal (fleet-loss: 5.7 s stall)
    const move = nextMove(own, connected, info);
    if (move === 'wait') return 1000;
    if (move === 'stay') return every;
    const home = homeOf(own, connected, info!.leader, info!.replicas);
    const now = Date.now();
    while (recent.length && now - recent[0]! > 60_000) recent.shift();
    if (recent.length >= (o.maxPerMinute ?? 20)) return every;
    recent.push(now);
    try {
      const r = await nc.request(`$JS.API.CONSUMER.LEADER.STEPDOWN.${STREAM}.${consumer}`, new Uint8Array(0), { timeout: 2000 });
      const error = (JSON.parse(new TextDecoder().decode(r.data)) as { error?: { description?: string } }).error;
      if (error) o.log?.(`consumer ${consumer}: led by ${info!.leader}, could not move it to ${home}: ${error.description ?? 'refused'}`);
    } catch (err) { o.log?.(`consumer ${consumer}: led by ${info!.leader}, could not move it to ${home}: ${(err as Error).message}`); }
    // the new leader is one of the others, at random: looked at again after its election (or soon)
    return 1000;
  };
  /** A look in `ms` unless one is due sooner; one at a time. */
  const poke = (ms: number): void => {
    if (stopped) return;
    if (running) { again = true; return; }
    if (Date.now() + ms >= due) return;
    clearTimeout(timer);
    due = Date.now() + ms;
    timer = setTimeout(run, ms);
    timer.unref();
  };
  const run = (): void => {
    due = Infinity;
    running = true;
    void look().catch(() => every).then((ms) => {
      running = false;
      poke(again ? SETTLE_MS : ms);
      again = false;
    });
  };
  const elected = nc.subscribe(subjects.consumerElected(consumer), { callback: () => poke(SETTLE_MS) });
  const status = nc.status();
  void (async () => {
    for await (const s of status) {
      if (s.type !== 'reconnect') continue;
      own = ownServer(nc) ?? own;
      poke(SETTLE_MS);
    }
  })().catch(() => undefined);
  poke(0);
  return () => {
    stopped = true;
    clearTimeout(timer);
    elected.unsubscribe();
    (status as unknown as { stop?: () => void }).stop?.();
  };
}
