// v1 cpuacct: nothing to limit, only the usage counter for stats.
import { join } from 'node:path';
import { readOptional } from '../fs.js';
import type { CgroupStats } from '../types.js';

export function stats(dir: string): Partial<CgroupStats> {
  const t = readOptional(join(dir, 'cpuacct.usage'));
  return t === undefined ? {} : { cpuUsageNs: Number(t.trim()) || 0 };
}
