// v1 pids: pids.max caps fork(); the kernel fails it with EAGAIN past the limit.
import { join } from 'node:path';
import { readOptional } from '../fs.js';
import type { CgroupStats, Plan, PlanContext, Resources } from '../types.js';

export function pidsMax(limit: number): string {
  return limit > 0 ? String(limit) : 'max';
}

export function plan(r: Resources, _ctx?: PlanContext): Plan {
  return { writes: r.pidsLimit !== undefined ? [{ file: 'pids.max', value: pidsMax(r.pidsLimit) }] : [], warnings: [] };
}

export function stats(dir: string): Partial<CgroupStats> {
  const t = readOptional(join(dir, 'pids.current'));
  return t === undefined ? {} : { pids: Number(t.trim()) || 0 };
}
