// Whether the node a wait depends on was declared down: a run placed on a host that was cut
// off right after (the failover bench: the new leader placed it before the host's NodeDown)
// waited its whole minute for a start that could not come (issue 11). The controller's
// verdicts (NodeDown, NodeReady) are on ev.cluster.<node>; one whose entity is not the
// subject's node counts for nothing. The subject alone does not make a message the
// controller's: an operator may edit the image store's stream, and its `republish` puts what
// the operator writes there on any subject (test/node-verdict-forge.test.ts), an old NodeDown
// replayed included. So a NodeDown heard for the node waited on is only a reason to ask the
// controller, and the wait ends once its view has the node down. Subscribed before the
// request, as the state events are: the node is only known from the reply (placement picks it).
import type { NatsConnection, Subscription } from 'nats';
import { decodeEvent } from '../shared/codec.js';
import type { AnyEvent } from '../shared/events.js';
import { subjects } from '../shared/subjects.js';
import { controllerApi } from '../shared/api/controller.js';
import { api } from './client.js';

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

/** How often, and how far apart, the controller is asked whether a node heard down is down in its view (it folds its own NodeDown just after appending it). */
const CONFIRM_TRIES = 10, CONFIRM_GAP_MS = 300, CONFIRM_TIMEOUT_MS = 3000;

/** Whether the controller's view has `node` down; undefined when it did not answer. */
export type AskDown = (node: string) => Promise<boolean | undefined>;
const askController = (c: NatsConnection): AskDown => (node) =>
  api(c, controllerApi.nodes, {}, CONFIRM_TIMEOUT_MS).then((ns) => ns.some((n) => n.id === node && n.state === 'down'), () => undefined);

/**
 * Watches every node's verdicts from now on; `node`, when known already, is the one waited on.
 * `ask`: the controller's word on a node (a test's stand-in).
 */
export function watchNodes(c: NatsConnection, node?: string, ask: AskDown = askController(c)): NodeWatch {
  const nodes = new DownNodes();
  let fire!: (n: string) => void;
  const down = new Promise<string>((r) => (fire = r));
  let target = node;
  let cancelled = false, asking = false, fired = false, again = false;
  // the verdicts say down: ended only once the controller says so too, while they still say it
  const confirm = async () => {
    asking = true;
    try {
      for (let k = 0; k < CONFIRM_TRIES && !cancelled && !fired && nodes.isDown(); k++) {
        // another down verdict while asking: its own tries (the controller may be folding it now)
        if (again) { again = false; k = 0; }
        if (k > 0) await new Promise((r) => setTimeout(r, CONFIRM_GAP_MS));
        if (cancelled || !nodes.isDown()) return;
        const n = target!;
        if (await ask(n) && !cancelled && nodes.isDown() && n === target) { fired = true; fire(n); return; }
      }
    } finally { asking = false; }
  };
  const check = (isDown: boolean) => {
    if (!isDown || fired || cancelled) return;
    if (asking) again = true; else void confirm();
  };
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
    cancel: () => { cancelled = true; sub?.unsubscribe(); },
  };
}
