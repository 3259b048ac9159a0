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

const SEG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/**
 * Pure: linux.cgroupsPath → the group's path under each hierarchy root. Absolute: that path
 * (runc's meaning); relative: under the root's own parent group; absent: <parent>/<id>.
 * Only plain names, at most 16 levels: no "..", no systemd "slice:prefix:name".
 */
export function groupPath(cgroupsPath: unknown, parent: string, id: string): string {
  if (cgroupsPath === undefined || cgroupsPath === '') return `${parent}/${id}`;
  if (typeof cgroupsPath !== 'string') throw new Error('linux.cgroupsPath: not a string');
  const segs = cgroupsPath.split('/').filter((s, i) => !(i === 0 && s === ''));
  if (segs.length === 0 || segs.length > 16 || !segs.every((s) => SEG_RE.test(s))) {
    throw new Error(`linux.cgroupsPath: ${JSON.stringify(cgroupsPath.slice(0, 200))} is not a path of plain names (letters, digits, '_', '.', '-')`);
  }
  return cgroupsPath.startsWith('/') ? segs.join('/') : `${parent}/${segs.join('/')}`;
}
