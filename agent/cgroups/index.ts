// Entry point: detection, the manager for a container, and node-wide housekeeping.
import { join } from 'node:path';
import { CgroupError } from './errors.js';
import type { Detection } from './detect.js';
import { listDirs, removeDir } from './fs.js';
import { TOP, nodeGroup } from './paths.js';
import type { CgroupManager, RemoveOptions } from './types.js';
import { V1Manager, hierarchies as v1Hierarchies } from './v1/manager.js';
import { V2Manager } from './v2/manager.js';

export { detect, detectFromMounts, parseMountinfo, type Detection, type CgroupKind, type MountEntry } from './detect.js';
export { CgroupError, CgroupBusyError, CgroupUnsupportedError } from './errors.js';
export type { CgroupManager, CgroupStats, RemoveOptions, Write, Plan } from './types.js';
export { nodeCapacity, nodeUsage, allocated, type NodeCapacity, type NodeUsage } from './capacity.js';

/** The manager for one container. Hybrid hosts use v1: their cgroup2 has no controllers. */
/** group: a path under each hierarchy root instead of swarmlite/<node>/<container> (sl-runtime's cgroupsPath). */
export function cgroupManager(det: Detection, node: string, container: string, group?: string): CgroupManager {
  return det.kind === 'v2' ? new V2Manager(det, node, container, group) : new V1Manager(det, node, container, group);
}

/** Hierarchy roots a container has a directory in. */
export function hierarchies(det: Detection): string[] {
  if (det.kind === 'v2') return det.unified ? [det.unified] : [];
  return v1Hierarchies(det);
}

/** Container groups that exist for `node`, in any hierarchy. */
export function listContainerGroups(det: Detection, node: string): string[] {
  const all = new Set<string>();
  for (const h of hierarchies(det)) for (const d of listDirs(join(h, nodeGroup(node)))) all.add(d);
  return [...all].sort();
}

export interface PruneResult { removed: string[]; failed: { container: string; error: CgroupError }[] }

/**
 * For a restarted agent: removes the groups of `node` whose container is not in `keep`.
 * Without { kill: true } a group that still has processes is left and reported — an
 * unknown process tree is better investigated than silently killed.
 */
export async function pruneContainerGroups(det: Detection, node: string, keep: Iterable<string>, opts: RemoveOptions = {}): Promise<PruneResult> {
  const k = new Set(keep);
  const out: PruneResult = { removed: [], failed: [] };
  for (const c of listContainerGroups(det, node)) {
    if (k.has(c)) continue;
    try {
      await cgroupManager(det, node, c).remove(opts);
      out.removed.push(c);
    } catch (e) {
      if (!(e instanceof CgroupError)) throw e;
      out.failed.push({ container: c, error: e });
    }
  }
  return out;
}

/**
 * Removes the node's parent group (fails with EBUSY while container groups remain), and
 * swarmlite/ itself when no other node uses it. For tests and node decommissioning.
 */
export function removeNodeGroup(det: Detection, node: string): void {
  for (const h of hierarchies(det)) {
    removeDir(join(h, nodeGroup(node)));
    try {
      removeDir(join(h, TOP));
    } catch (e) {
      // Another node's agent still has groups here: theirs to keep.
      if (!(e instanceof CgroupError) || (e.code !== 'EBUSY' && e.code !== 'ENOTEMPTY')) throw e;
    }
  }
}
