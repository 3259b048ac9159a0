// Where a container runs: a pure choice over the joined nodes, so the scheduler can grow
// (constraints, spreading, resources) without touching the API code.
import type { ContainerSpec } from '../shared/events.js';
import { own, type ClusterView, type NodeView } from '../shared/reducer.js';
import { RpcError } from '../shared/rpc.js';

/** No node can take the container; the message names the flag or constraint and the most there is. */
export class PlacementError extends RpcError {
  constructor(message: string) { super('conflict', message); this.name = 'PlacementError'; }
}

export function place(view: ClusterView, spec: ContainerSpec, containerRef?: (ref: string) => { node: string } | undefined, onlyNodes?: string[]): NodeView {
  // new work goes only to a node that is alive and open to it (membership, tsctl node update)
  const nodes = Object.values(view.nodes).filter((n) => (!onlyNodes || onlyNodes.includes(n.id)) && n.state !== 'down' && (n.availability ?? 'active') === 'active')
    .sort((a, b) => a.id.localeCompare(b.id));
  if (nodes.length === 0 && Object.keys(view.nodes).length > 0 && !onlyNodes) throw new PlacementError('no node is ready and active (tsctl node ls: every node is down, paused or drained)');
  if (onlyNodes && nodes.length === 0) throw new PlacementError(`network "${spec.network}" is not ready on any node`);
  if (nodes.length === 0) throw new PlacementError('no node has joined the cluster (is an agent running? ops/up starts one)');
  // a container sharing another's network namespace must run beside it
  if (spec.network.startsWith('container:') && containerRef) {
    const peer = containerRef(spec.network.slice('container:'.length));
    if (!peer) throw new PlacementError(`no such container "${spec.network.slice(10)}" for --network ${spec.network}`);
    const n = own(view.nodes, peer.node);
    if (!n) throw new PlacementError(`node ${peer.node} of container "${spec.network.slice(10)}" is gone`);
    return n;
  }
  const load = new Map<string, { cpus: number; memory: number; count: number }>();
  for (const n of nodes) load.set(n.id, { cpus: 0, memory: 0, count: 0 });
  for (const c of Object.values(view.containers)) {
    const l = load.get(c.node);
    if (!l || c.desired === 'removed' || c.state === 'exited' || c.state === 'failed') continue;
    l.count += 1;
    l.cpus += c.spec.resources?.cpus ?? 0;
    l.memory += c.spec.resources?.memory ?? 0;
  }
  const wantCpus = spec.resources?.cpus ?? 0;
  const wantMem = spec.resources?.memory ?? 0;
  const fits = nodes.filter((n) => wantCpus <= n.cpus && (wantMem === 0 || wantMem <= n.memory));
  if (fits.length === 0) {
    // one line that names the flag and the most the cluster can give (a node's cpus and memory are independent)
    const maxCpus = Math.max(...nodes.map((n) => n.cpus)), maxMem = Math.max(...nodes.map((n) => n.memory));
    if (wantCpus > maxCpus) throw new PlacementError(`invalid --cpus "${wantCpus}": no node has that many CPUs; use at most ${maxCpus}`);
    if (!nodes.some((n) => wantCpus <= n.cpus && wantMem <= n.memory) && wantMem > maxMem) {
      throw new PlacementError(`invalid --memory "${wantMem}": no node has that much memory; use at most ${Math.floor(maxMem / 1048576)}m`);
    }
    throw new PlacementError(`no node has both --cpus ${wantCpus} and --memory ${wantMem} bytes; the largest has ${maxCpus} CPUs and ${Math.floor(maxMem / 1048576)}m`);
  }
  // fewest running containers first, then most free memory
  return fits.sort((a, b) => {
    const la = load.get(a.id)!, lb = load.get(b.id)!;
    return la.count - lb.count || (b.memory - lb.memory) - (a.memory - la.memory);
  })[0];
}
