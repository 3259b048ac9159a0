// Where a container runs: a pure choice over the joined nodes, so the scheduler can grow
// (constraints, spreading, resources) without touching the API code.
import type { ContainerSpec } from '../shared/events.js';
import { indexOf, own, type ClusterView, type NodeView } from '../shared/reducer.js';
import { RpcError } from '../shared/rpc.js';
import { parseConstraints, unmet, type Constraint } from '../shared/constraints.js';
import { compareLoads, groupLoads, type PlacementPref } from '../shared/placement-prefs.js';

/** No node can take the container; the message names the flag or constraint and the most there is. */
export class PlacementError extends RpcError {
  constructor(message: string) { super('conflict', message); this.name = 'PlacementError'; }
}

/** What a caller adds to a placement: `spread`, per node, how many tasks of the same service it runs (fewest first, before the node's whole load). */
export interface PlaceOptions {
  spread?: ReadonlyMap<string, number>;
  /** what on a node would clash with the spec (a published host port in use there, a named volume that is elsewhere), if anything */
  clash?: (node: string) => string | undefined;
  /** a service's --placement-pref: its tasks spread over the groups of these labels first (counted with `spread`) */
  prefs?: readonly PlacementPref[];
  /** spread (default): the least loaded node; binpack: the fullest that still fits, to keep whole nodes free */
  strategy?: Strategy;
}

export type Strategy = 'spread' | 'binpack';
export const STRATEGIES: readonly Strategy[] = ['spread', 'binpack'];

/** A node open to new work: alive (membership) and active (not paused or drained). */
export const open = (n: NodeView): boolean => n.state !== 'down' && (n.availability ?? 'active') === 'active';

/**
 * The nodes `constraints` allow and that are open to new work, by id: global services run one
 * task on each (the resources are checked when each task is placed).
 */
export function eligible(view: ClusterView, constraints: readonly Constraint[]): NodeView[] {
  return Object.values(view.nodes).filter((n) => open(n) && !unmet(n, constraints)).sort((a, b) => (a.id < b.id ? -1 : 1));
}

/** The one-line reason no node of `nodes` satisfies `cs` (each constraint alone, then together). */
export function constraintReason(nodes: readonly NodeView[], cs: readonly Constraint[]): string {
  for (const c of cs) if (!nodes.some((n) => !unmet(n, [c]))) return `no node satisfies ${c.text}`;
  return `no node satisfies ${cs.map((c) => c.text).join(' and ')} together`;
}

/**
 * The node for `spec`: a joined node (of `onlyNodes`, if given) that satisfies the spec's
 * constraints and has the cpus and memory asked; with `o.prefs`, fewest tasks of the service in
 * the node's label groups first; with `o.spread`, fewest tasks of the same service; then fewest
 * active containers, then most memory left (binpack: the least memory left that still holds the
 * memory asked, then the most containers), then the first by id. One
 * pass over the nodes: each node's load is kept by the view's index (shared/reducer.ts), so a
 * placement costs the number of nodes, not the number of containers.
 */
export function place(view: ClusterView, spec: ContainerSpec, containerRef?: (ref: string) => { node: string } | undefined, onlyNodes?: string[], o: PlaceOptions = {}): NodeView {
  const ix = indexOf(view);
  const known = onlyNodes
    ? onlyNodes.map((id) => own(view.nodes, id)).filter((n): n is NodeView => n !== undefined).map((node) => ({ node, load: ix.loadOf(node.id) }))
    : ix.nodes();
  // new work goes only to a node that is alive and open to it (membership, tsctl node update)
  const open_ = known.filter(({ node: n }) => open(n));
  // the spec's constraints were checked when they came in; a bad one here is a controller bug
  const cs = spec.constraints?.length ? parseConstraints(spec.constraints) : [];
  const list = cs.length ? open_.filter(({ node: n }) => !unmet(n, cs)) : open_;
  if (cs.length && list.length === 0 && open_.length > 0) throw new PlacementError(constraintReason(open_.map((x) => x.node), cs));
  if (list.length === 0 && known.length > 0 && !onlyNodes) throw new PlacementError('no node is ready and active (tsctl node ls: every node is down, paused or drained)');
  if (onlyNodes && list.length === 0) throw new PlacementError(`network "${spec.network}" is not ready on any node`);
  if (list.length === 0) throw new PlacementError('no node has joined the cluster (is an agent running? ops/up starts one)');
  // a container sharing another's namespaces (--network/--pid/--ipc container:X) must run beside it
  const peers = [spec.network, spec.pidMode, spec.ipcMode].filter((m): m is string => m?.startsWith('container:') === true);
  if (peers.length && containerRef) {
    let at: NodeView | undefined;
    for (const m of peers) {
      const peer = containerRef(m.slice('container:'.length));
      if (!peer) throw new PlacementError(`no such container "${m.slice(10)}" for ${m}`);
      const n = own(view.nodes, peer.node);
      if (!n) throw new PlacementError(`node ${peer.node} of container "${m.slice(10)}" is gone`);
      if (at && at.id !== n.id) throw new PlacementError(`the containers it shares namespaces with run on different nodes (${at.id}, ${n.id})`);
      at = n;
    }
    return at!;
  }
  const wantCpus = spec.resources?.cpus ?? 0;
  const wantMem = spec.resources?.memory ?? 0;
  const groups = o.prefs?.length ? groupLoads(list.map((x) => x.node), o.prefs, (id) => o.spread?.get(id) ?? 0) : undefined;
  const binpack = o.strategy === 'binpack';
  let best: NodeView | undefined, bestCount = 0, bestFree = 0, bestSpread = 0, bestGroups: number[] = [];
  let clashed: string | undefined;
  for (const { node: n, load: l } of list) {
    if (wantCpus > n.cpus || (wantMem !== 0 && wantMem > n.memory)) continue;
    const why = o.clash?.(n.id);
    if (why !== undefined) { clashed = why; continue; }
    const free = n.memory - l.memory;
    // binpack packs a service's tasks too: only the preferences (asked for) spread them
    const sp = binpack ? 0 : o.spread?.get(n.id) ?? 0;
    const gs = groups?.get(n.id) ?? [];
    let d = best ? compareLoads(gs, bestGroups) : -1;
    if (d === 0) d = sp - bestSpread;
    if (binpack) {
      // a node where the memory asked is still free first, then the least free, then the most containers
      if (d === 0 && wantMem) d = (free >= wantMem ? 0 : 1) - (bestFree >= wantMem ? 0 : 1);
      if (d === 0 && free !== bestFree) d = free < bestFree ? -1 : 1;
      if (d === 0) d = bestCount - l.count;
    } else {
      if (d === 0) d = l.count - bestCount;
      if (d === 0 && free !== bestFree) d = free > bestFree ? -1 : 1;
    }
    if (d === 0) d = n.id < best!.id ? -1 : 1;
    if (d < 0) { best = n; bestCount = l.count; bestFree = free; bestSpread = sp; bestGroups = gs; }
  }
  if (best) return best;
  if (clashed) throw new PlacementError(`${clashed} on every node that could take it (a published port is one container's per node, a named volume is its node's)`);
  const nodes = list.map((x) => x.node);
  // one line that names the flag and the most the cluster can give (a node's cpus and memory are independent)
  const maxCpus = Math.max(...nodes.map((n) => n.cpus)), maxMem = Math.max(...nodes.map((n) => n.memory));
  if (wantCpus > maxCpus) throw new PlacementError(`invalid --cpus "${wantCpus}": no node has that many CPUs; use at most ${maxCpus}`);
  if (!nodes.some((n) => wantCpus <= n.cpus && wantMem <= n.memory) && wantMem > maxMem) {
    throw new PlacementError(`invalid --memory "${wantMem}": no node has that much memory; use at most ${Math.floor(maxMem / 1048576)}m`);
  }
  throw new PlacementError(`no node has both --cpus ${wantCpus} and --memory ${wantMem} bytes; the largest has ${maxCpus} CPUs and ${Math.floor(maxMem / 1048576)}m`);
}
