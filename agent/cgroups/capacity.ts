// What a node offers the scheduler. Reported in NodeJoined; the controller subtracts
// allocated() of the containers it placed there.
import { availableParallelism, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import { allocated, type Allocation, type Resources } from '../../shared/limits.js';

export interface NodeCapacity { cpus: number; memory: number }

/**
 * CPUs this process may run on (not the host's count: the agent may itself be confined
 * by a cpuset or affinity mask) and the machine's memory in bytes.
 */
export function nodeCapacity(meminfo = '/proc/meminfo'): NodeCapacity {
  let memory = totalmem();
  try {
    const m = /^MemTotal:\s+(\d+)\s+kB/m.exec(readFileSync(meminfo, 'utf8'));
    if (m) memory = Number(m[1]) * 1024;
  } catch { /* os.totalmem() reads the same sysinfo; the file is only preferred for tests */ }
  return { cpus: availableParallelism(), memory };
}

export interface NodeUsage extends NodeCapacity { allocated: Allocation; free: Allocation }

/** Capacity, what `list` claims of it, and what is left (never below zero). */
export function nodeUsage(list: Iterable<Resources | undefined>, cap: NodeCapacity = nodeCapacity()): NodeUsage {
  const a = allocated(list);
  return { ...cap, allocated: a, free: { cpus: Math.max(0, Math.round((cap.cpus - a.cpus) * 1000) / 1000), memory: Math.max(0, cap.memory - a.memory) } };
}

export { allocated };
