// This agent's own verbs (agent.<node>.logs|stats|info|top|exec, contracts in shared/api/agent.ts).
import type { NatsConnection } from 'nats';
import { agentApi, type NodeInfoReply } from '../shared/api/agent.js';
import { subjects } from '../shared/subjects.js';
import { bind, serve } from '../shared/nats/rpc.js';
import type { LogStreamer } from './logs.js';
import type { ContainerHost } from './host/container-host.js';
import type { NodeNetwork } from './network/node-network.js';
import type { NodeCgroups } from './cgroups/node-cgroups.js';
import type { Checkpoint } from './pipeline/checkpoint.js';
import { sampleStats } from './stats.js';
import type { Execs } from './exec.js';
import { top } from './top.js';
import { conflict, notFound } from '../shared/rpc.js';
import type { Changes } from './storage/snapshotter.js';
import { containerDiff } from './diff.js';
import type { Archives } from './archive.js';
import type { CopiesIn } from './copy.js';
import { lgetxattr } from '../native/libc.js';

export interface AgentApiParts {
  node: string; logs: LogStreamer; host: ContainerHost; network: NodeNetwork; cgroups: NodeCgroups; checkpoint: Checkpoint;
  execs?: Execs;
  /** A container's changes as a layer dir over its layers (the snapshotter's changes()), for diff. */
  changes?: (id: string) => Promise<Changes | undefined>;
  archives?: Archives;
  copies?: CopiesIn;
  /** The node's storage and kernel, for tsctl info. */
  describe?: () => Pick<NodeInfoReply, 'storage' | 'kernel'>;
}

export function serveAgentApi(nc: NatsConnection, p: AgentApiParts): void {
  serve(nc, subjects.agent(p.node), [
    bind(agentApi.logs, (r) => ({ ...p.logs.page(r.id, r.offset ?? 0), running: p.host.status(r.id).state === 'running' })),
    bind(agentApi.stats, (r) => sampleStats({ node: p.node, host: p.host, checkpoint: p.checkpoint, stats: p.cgroups.stats }, r)),
    bind(agentApi.info, () => ({ cgroups: p.cgroups.detection.kind, networks: p.network.list(), ...(p.describe ? p.describe() : {}) })),
    ...(p.execs ? [bind(agentApi.exec, (r) => p.execs!.start(r))] : []),
    ...(p.changes ? [bind(agentApi.diff, async (r) => {
      const ch = await p.changes!(r.id);
      if (!ch) throw notFound(`container ${r.id.slice(0, 12)} has no filesystem on node ${p.node}`);
      try {
        return await containerDiff(ch.dir, ch.lowers, { opaque: (path) => lgetxattr(path, 'trusted.overlay.opaque')?.toString() === 'y' });
      } finally { await ch.release(); }
    })] : []),
    ...(p.archives ? [bind(agentApi.archive, (r) => p.archives!.page(r))] : []),
    ...(p.copies ? [bind(agentApi.put, (r) => p.copies!.put(r)), bind(agentApi.copyin, (r) => p.copies!.copyIn(r))] : []),
    bind(agentApi.top, (r) => {
      if (p.host.status(r.id).state !== 'running') throw conflict(`container ${r.id.slice(0, 12)} is not running`);
      return top(p.cgroups.pids(r.id));
    }),
  ]);
}
