// linux.resources of a config.json → the agent's Resources (agent/cgroups writes them,
// v1 or v2). Pure. A limit the OCI way spells "none" (-1, 0, absent) is left unset.
import type { Resources } from '../cgroups/types.js';
import type { OciResources } from './bundle.js';

export function toResources(r: OciResources | undefined): Resources {
  const out: Resources = {};
  if (!r) return out;
  if (r.memory?.limit !== undefined && r.memory.limit > 0) out.memory = r.memory.limit;
  if (r.memory?.swap !== undefined && r.memory.swap !== 0) out.memorySwap = r.memory.swap;
  if (r.cpu?.shares) out.cpuShares = r.cpu.shares;
  if (r.cpu?.quota !== undefined && r.cpu.quota > 0) out.cpus = r.cpu.quota / (r.cpu.period || 100_000);
  if (r.cpu?.cpus) out.cpusetCpus = r.cpu.cpus;
  if (r.pids?.limit !== undefined && r.pids.limit > 0) out.pidsLimit = r.pids.limit;
  if (r.blockIO?.weight) out.blkioWeight = r.blockIO.weight;
  return out;
}
