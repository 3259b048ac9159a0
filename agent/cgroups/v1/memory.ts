// v1 memory: limit_in_bytes and memsw.limit_in_bytes (memory + swap). memsw exists only
// with swap accounting; without it swap cannot be limited and we say so.
import { join } from 'node:path';
import { parseKeyValues, readOptional, parseLimit, workingSet } from '../fs.js';
import type { CgroupStats, Plan, PlanContext, Resources, Write } from '../types.js';

const LIMIT = 'memory.limit_in_bytes';
const MEMSW = 'memory.memsw.limit_in_bytes';

export function plan(r: Resources, ctx: PlanContext): Plan {
  if (r.memory === undefined && r.memorySwap === undefined) return { writes: [], warnings: [] };
  const mem = r.memory === undefined ? undefined : r.memory > 0 ? r.memory : -1;
  // Docker's default: without --memory-swap a container may swap as much as its memory.
  const swap = r.memorySwap !== undefined ? r.memorySwap : mem === undefined ? undefined : mem === -1 ? -1 : mem * 2;
  const memW: Write[] = mem === undefined ? [] : [{ file: LIMIT, value: String(mem) }];
  if (swap === undefined) return { writes: memW, warnings: [] };
  if (!ctx.files.has(MEMSW)) {
    const warnings = r.memorySwap !== undefined && r.memorySwap !== -1
      ? [`--memory-swap not enforced: ${MEMSW} is missing (kernel without swap accounting, boot with swapaccount=1)`]
      : [];
    return { writes: memW, warnings };
  }
  const swapW: Write = { file: MEMSW, value: String(swap) };
  // The kernel requires limit ≤ memsw at every instant, so the order depends on the
  // direction of the change (as runc does): raising → memsw first, lowering → limit first.
  const cur = ctx.currentMemoryLimit ?? Number.MAX_SAFE_INTEGER;
  const swapFirst = swap === -1 || cur < swap;
  return { writes: swapFirst ? [swapW, ...memW] : [...memW, swapW], warnings: [] };
}

export function stats(dir: string): Partial<CgroupStats> {
  const usage = readOptional(join(dir, 'memory.usage_in_bytes'));
  const limit = readOptional(join(dir, LIMIT));
  const oom = readOptional(join(dir, 'memory.oom_control'));
  const st = readOptional(join(dir, 'memory.stat'));
  const out: Partial<CgroupStats> = {};
  if (usage !== undefined) out.memoryUsage = workingSet(Number(usage.trim()) || 0, st, 'total_inactive_file');
  if (limit !== undefined) out.memoryLimit = parseLimit(limit);
  if (oom !== undefined) out.oomKills = oomKills(oom);
  return out;
}

/** Pure: the oom_kill counter of memory.oom_control (kernels ≥ 4.13 have it). */
export function oomKills(oomControl: string): number {
  return parseKeyValues(oomControl)['oom_kill'] ?? 0;
}
