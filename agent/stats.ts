// agent.<node>.stats: one sample of the cgroup counters of the containers running on
// this node, for `tsctl stats`. Raw counters plus the time they were read: the client
// computes CPU % from two samples (as docker does from cpu_stats and precpu_stats).
import type { Checkpoint } from './checkpoint.js';
import type { ContainerHost } from './containers.js';
import type { CgroupStats } from './cgroups/index.js';
import { nodeCapacity } from './cgroups/index.js';

export interface StatsRequest {
  /** Container ids to sample; all running containers of the node when absent or empty. */
  ids?: string[];
}

export interface ContainerSample {
  id: string;
  name: string;
  /** CPU time of all the container's tasks, ever, in nanoseconds (cpuacct.usage / cpu.stat usage_usec). */
  cpuUsageNs: number;
  /** Wall-clock time the counters were read, ms since epoch with sub-ms precision. */
  ts: number;
  memoryUsage: number;
  /** The container's memory limit; the node's memory when it has none (as docker shows it). */
  memoryLimit: number;
  /** Whether memoryLimit is the container's own limit. */
  memoryLimited: boolean;
  pids: number;
  oomKills: number;
}

export interface StatsReply { node: string; cpus: number; containers: ContainerSample[] }

export interface StatsSource {
  node: string;
  host: Pick<ContainerHost, 'status' | 'known'>;
  checkpoint: Pick<Checkpoint, 'get' | 'all'>;
  stats: (id: string) => CgroupStats;
}

const ID_RE = /^[0-9a-f]{64}$/;

/** Parses and answers one request. Throws on a malformed request (the caller replies { error }). */
export function sampleStats(src: StatsSource, req: StatsRequest): StatsReply {
  if (req.ids !== undefined && (!Array.isArray(req.ids) || req.ids.some((i) => typeof i !== 'string' || !ID_RE.test(i)))) {
    throw new Error('invalid container ids: 64 hex digits each');
  }
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
