// The cgroup side of the container lifecycle (host/ports.ts CgroupPort), plus what the
// agent needs besides: stats for agent.<node>.stats and pruning at start.
import type { CgroupPort } from '../host/ports.js';
import { freezerFrozen } from './paused.js';
import type { V1Manager } from './v1/manager.js';
import type { V2Manager } from './v2/manager.js';
import type { Resources } from '../../shared/limits.js';
import { detect, cgroupManager, pruneContainerGroups, type Detection, type CgroupStats } from './index.js';

export interface NodeCgroups extends CgroupPort {
  readonly detection: Detection;
  stats(id: string): CgroupStats;
  /** Every task in the container's groups (host pids). */
  pids(id: string): number[];
  /** Removes the groups of containers not in `keep`. */
  prune(keep: string[]): Promise<void>;
}

export function nodeCgroups(node: string, det: Detection = detect()): NodeCgroups {
  // the concrete manager: the freezer check reads the one file its version uses
  const mgr = (id: string) => cgroupManager(det, node, id) as V1Manager | V2Manager;
  return {
    detection: det,
    async create(id, r) {
      const m = mgr(id);
      m.create();
      const warnings = m.apply(r as Resources);
      for (const w of warnings) console.error(`agent: ${id.slice(0, 12)}: ${w}`);
      return m.procsFiles();
    },
    async update(id, r) { mgr(id).apply(r as Resources); },
    oomKilled: (id) => { try { return mgr(id).oomKilled(); } catch { return false; } },
    async remove(id) { await mgr(id).remove({ kill: true }); },
    stats: (id) => mgr(id).stats(),
    procsFiles: (id) => mgr(id).procsFiles(),
    pids: (id) => mgr(id).pids(),
    freeze: (id, frozen) => mgr(id).freeze(frozen),
    frozen: (id) => freezerFrozen(mgr(id)),
    async prune(keep) {
      const r = await pruneContainerGroups(det, node, keep, { kill: true });
      for (const f of r.failed) console.error(`agent: cgroup of ${f.container.slice(0, 12)}: ${f.error.message}`);
    },
  };
}
