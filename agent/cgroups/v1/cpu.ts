// v1 cpu: CFS bandwidth (--cpus) and relative shares (--cpu-shares).
import type { Plan, PlanContext, Resources } from '../types.js';

/** Docker's fixed period; the quota scales with it, so --cpus 0.5 = 50 ms per 100 ms. */
export const CFS_PERIOD_US = 100_000;

export function quotaUs(cpus: number): number {
  return Math.round(cpus * CFS_PERIOD_US);
}

export function plan(r: Resources, _ctx?: PlanContext): Plan {
  const writes = [];
  if (r.cpus !== undefined) {
    // Period before quota: the kernel checks the quota against the period in force.
    writes.push({ file: 'cpu.cfs_period_us', value: String(CFS_PERIOD_US) });
    writes.push({ file: 'cpu.cfs_quota_us', value: r.cpus > 0 ? String(quotaUs(r.cpus)) : '-1' });
  }
  if (r.cpuShares !== undefined) writes.push({ file: 'cpu.shares', value: String(r.cpuShares) });
  return { writes, warnings: [] };
}
