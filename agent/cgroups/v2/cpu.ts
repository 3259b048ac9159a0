// v2 cpu: cpu.max ("quota period") and cpu.weight (1..10000, default 100).
import { join } from 'node:path';
import { parseKeyValues, readOptional } from '../fs.js';
import type { CgroupStats, Plan, PlanContext, Resources } from '../types.js';

export const CFS_PERIOD_US = 100_000;

/**
 * runc's (≥ 1.3) shares → weight mapping: a quadratic in log2(shares) that maps the
 * v1 range ends and default onto v2's (2→1, 1024→100, 262144→10000). The older linear
 * formula mapped the default 1024 to 39, starving containers that set nothing next to
 * groups left at 100.
 */
export function sharesToWeight(shares: number): number {
  if (shares <= 0) return 0;
  if (shares <= 2) return 1;
  if (shares >= 262144) return 10000;
  const l = Math.log2(shares);
  const exponent = (l * l + 125 * l) / 612 - 7 / 34;
  return Math.min(10000, Math.ceil(10 ** exponent - 1e-9));
}

export function plan(r: Resources, _ctx?: PlanContext): Plan {
  const writes = [];
  if (r.cpus !== undefined) {
    const quota = r.cpus > 0 ? String(Math.round(r.cpus * CFS_PERIOD_US)) : 'max';
    writes.push({ file: 'cpu.max', value: `${quota} ${CFS_PERIOD_US}` });
  }
  if (r.cpuShares !== undefined) writes.push({ file: 'cpu.weight', value: String(sharesToWeight(r.cpuShares)) });
  return { writes, warnings: [] };
}

/** cpu.stat exists in every v2 group (it is a core file, with or without the cpu controller). */
export function stats(dir: string): Partial<CgroupStats> {
  const t = readOptional(join(dir, 'cpu.stat'));
  if (t === undefined) return {};
  return { cpuUsageNs: (parseKeyValues(t)['usage_usec'] ?? 0) * 1000 };
}
