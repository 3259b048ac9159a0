// v2 pids: same file names and meaning as v1.
import { join } from 'node:path';
import { readOptional } from '../fs.js';
import type { CgroupStats, Plan, PlanContext, Resources } from '../types.js';

export function plan(r: Resources, _ctx?: PlanContext): Plan {
  return { writes: r.pidsLimit !== undefined ? [{ file: 'pids.max', value: r.pidsLimit > 0 ? String(r.pidsLimit) : 'max' }] : [], warnings: [] };
}

export function stats(dir: string): Partial<CgroupStats> {
  const t = readOptional(join(dir, 'pids.current'));
  return t === undefined ? {} : { pids: Number(t.trim()) || 0 };
}
