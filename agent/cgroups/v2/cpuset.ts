// v2 cpuset: unlike v1, an empty cpuset.cpus means "inherit", so nothing to seed.
import type { Plan, PlanContext, Resources } from '../types.js';

export function plan(r: Resources, _ctx?: PlanContext): Plan {
  return { writes: r.cpusetCpus !== undefined ? [{ file: 'cpuset.cpus', value: r.cpusetCpus }] : [], warnings: [] };
}
