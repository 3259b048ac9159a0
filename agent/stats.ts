// agent.<node>.stats: one sample of the cgroup counters of the containers running on
// this node, for `tsctl stats`. Raw counters plus the time they were read: the client
// computes CPU % from two samples (as docker does from cpu_stats and precpu_stats).
import type { ContainerSample, StatsReply } from '../shared/api/agent.js';
import type { Checkpoint } from './pipeline/checkpoint.js';
import type { ContainerHost } from './host/container-host.js';
import type { CgroupStats } from './cgroups/index.js';
import { nodeCapacity } from './cgroups/index.js';

export type { ContainerSample, StatsReply };

export interface StatsSource {
  node: string;
  host: Pick<ContainerHost, 'status'>;
  checkpoint: Pick<Checkpoint, 'get' | 'all'>;
  stats: (id: string) => CgroupStats;
}

/** Answers one (already checked) request: `ids`, or every running container of the node. */
export function sampleStats(src: StatsSource, req: { ids?: string[] }): StatsReply {
  const cap = nodeCapacity();
  const wanted = req.ids && req.ids.length > 0
    ? [...new Set(req.ids)]
    : src.checkpoint.all().filter(([, r]) => r.reported === 'running').map(([id]) => id);
  const out: ContainerSample[] = [];
  for (const id of wanted) {
    if (src.host.status(id).state !== 'running') continue;
    let s: CgroupStats;
    try { s = src.stats(id); } catch { continue; } // removed between status() and here
    const ts = performance.timeOrigin + performance.now();
    out.push({
      id, name: src.checkpoint.get(id)?.spec?.name ?? id.slice(0, 12),
      cpuUsageNs: s.cpuUsageNs, ts,
      memoryUsage: s.memoryUsage,
      memoryLimit: s.memoryLimit ?? cap.memory,
      memoryLimited: s.memoryLimit !== null,
      pids: s.pids, oomKills: s.oomKills,
    });
  }
  return { node: src.node, cpus: cap.cpus, containers: out };
}
