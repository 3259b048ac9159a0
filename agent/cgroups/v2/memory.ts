// v2 memory: memory.max, and memory.swap.max which counts swap alone (v1 and docker's
// --memory-swap count memory + swap, hence the subtraction).
import { join } from 'node:path';
import { parseKeyValues, parseLimit, readOptional, workingSet } from '../fs.js';
import type { CgroupStats, Plan, PlanContext, Resources, Write } from '../types.js';

export function plan(r: Resources, ctx: PlanContext): Plan {
  if (r.memory === undefined && r.memorySwap === undefined) return { writes: [], warnings: [] };
  const writes: Write[] = [];
  const mem = r.memory === undefined ? undefined : r.memory > 0 ? r.memory : -1;
  if (mem !== undefined) writes.push({ file: 'memory.max', value: mem === -1 ? 'max' : String(mem) });
  // The memory limit the swap is relative to: the new one, else the one in force.
  const base = mem ?? ctx.currentMemoryLimit ?? -1;
  const total = r.memorySwap !== undefined ? r.memorySwap : mem === undefined ? undefined : mem === -1 ? -1 : mem * 2;
  if (total === undefined) return { writes, warnings: [] };
  if (!ctx.files.has('memory.swap.max')) {
    const warnings = r.memorySwap !== undefined && r.memorySwap !== -1
      ? ['--memory-swap not enforced: memory.swap.max is missing (kernel without swap accounting)']
      : [];
    return { writes, warnings };
  }
  if (total === -1 || base === -1) writes.push({ file: 'memory.swap.max', value: 'max' });
  else writes.push({ file: 'memory.swap.max', value: String(Math.max(0, total - base)) });
  return { writes, warnings: [] };
}

export function stats(dir: string): Partial<CgroupStats> {
  const out: Partial<CgroupStats> = {};
  const cur = readOptional(join(dir, 'memory.current'));
  const max = readOptional(join(dir, 'memory.max'));
  const ev = readOptional(join(dir, 'memory.events'));
  const st = readOptional(join(dir, 'memory.stat'));
  if (cur !== undefined) out.memoryUsage = workingSet(Number(cur.trim()) || 0, st, 'inactive_file');
  if (max !== undefined) out.memoryLimit = parseLimit(max);
  if (ev !== undefined) out.oomKills = oomKills(ev);
  return out;
}

/** Pure: the oom_kill counter of memory.events. */
export function oomKills(memoryEvents: string): number {
  return parseKeyValues(memoryEvents)['oom_kill'] ?? 0;
}
