// Whether the node a wait depends on was declared down: a run placed on a host that was cut
// off right after (the failover bench: the new leader placed it before the host's NodeDown)
// waited its whole minute for a start that could not come (issue 11). The controller's
// verdicts (NodeDown, NodeReady) are on ev.cluster.<node>, which only the controller may
// publish on (shared/nats/trust.ts): the subject is what makes a verdict trustworthy, so one
// whose entity is not the subject's node counts for nothing. Subscribed before the request,
// as the state events are: the node is only known from the reply (placement picks it).
import type { NatsConnection, Subscription } from 'nats';
import { decodeEvent } from '../shared/codec.js';
import type { AnyEvent } from '../shared/events.js';
import { subjects } from '../shared/subjects.js';

/** A membership verdict from a message on ev.cluster.<node>; undefined for junk, another event, or a node not the subject's. Pure. */
export function verdictOf(subject: string, data: Uint8Array): { node: string; down: boolean } | undefined {
  let e: AnyEvent;
  try { e = decodeEvent(data); } catch { return undefined; }
  if ((e.type !== 'NodeDown' && e.type !== 'NodeReady') || e.src !== 'controller') return undefined;
  if (subject !== subjects.cluster(e.entity)) return undefined;
  return { node: e.entity, down: e.type === 'NodeDown' };
}

/**
 * Which nodes are down as far as the verdicts heard since the subscription say, and whether the
 * one waited on is among them. `seed`: what a reply said before (a node down already), taken
 * only for nodes no verdict was heard for since (a verdict heard is newer). Pure.
 */
export class DownNodes {
  private heard = new Map<string, boolean>();
  private seeded = new Set<string>();
  private target?: string;

  hear(v: { node: string; down: boolean }): boolean { this.heard.set(v.node, v.down); return this.isDown(); }
  seed(down: Iterable<string>): boolean { for (const n of down) this.seeded.add(n); return this.isDown(); }
  /** The node waited on, once known. */
  placed(node: string): boolean { this.target = node; return this.isDown(); }
  isDown(): boolean {
    if (this.target === undefined) return false;
    return this.heard.get(this.target) ?? this.seeded.has(this.target);
  }
}

export interface NodeWatch {
  /** Resolves with the node once the one waited on is down; never otherwise. */
  down: Promise<string>;
  placed(node: string): void;
  /** Nodes a reply said were down (tsctl start of a container whose node is down already). */
  seed(down: Iterable<string>): void;
  cancel(): void;
}

/** Watches every node's verdicts from now on; `node`, when known already, is the one waited on. */
export function watchNodes(c: NatsConnection, node?: string): NodeWatch {
  const nodes = new DownNodes();
  let fire!: (n: string) => void;
  const down = new Promise<string>((r) => (fire = r));
  let target = node;
  const check = (isDown: boolean) => { if (isDown) fire(target!); };
  if (node !== undefined) nodes.placed(node);
  let sub: Subscription | undefined;
  try {
    sub = c.subscribe(subjects.cluster('*'), {
      callback: (err, m) => {
        // a server whose grants predate this subscription refuses it: the wait goes on as before, to its own end
        if (err) return;
        const v = verdictOf(m.subject, m.data);
        if (v) check(nodes.hear(v));
      },
    });
  } catch { /* a closed connection: the wait's own end comes */ }
  return {
    down,
    placed: (n) => { target = n; check(nodes.placed(n)); },
    seed: (d) => check(nodes.seed(d)),
    cancel: () => sub?.unsubscribe(),
  };
}
