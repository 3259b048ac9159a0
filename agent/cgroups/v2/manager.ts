// The v2 manager: one directory in the unified hierarchy.
import { dirname, join } from 'node:path';
import { CgroupBusyError, CgroupError, CgroupUnsupportedError } from '../errors.js';
import type { Detection } from '../detect.js';
import { listFiles, makeDir, parseLimit, parsePids, readOptional, readText, sleep, writeAll, writeValue } from '../fs.js';
import { TOP, checkSegment } from '../paths.js';
import { killUntilEmpty, removeDirRetry, signalAll, retryVanishedParent } from '../teardown.js';
import type { CgroupManager, CgroupStats, Plan, PlanContext, RemoveOptions, Resources } from '../types.js';
import * as cpu from './cpu.js';
import * as cpuset from './cpuset.js';
import * as freezer from './freezer.js';
import * as io from './io.js';
import * as memory from './memory.js';
import * as pids from './pids.js';
import { enableValue, tokens } from './subtree.js';

const LIMITERS: { name: string; plan: (r: Resources, ctx: PlanContext) => Plan; flag: string }[] = [
  { name: 'cpu', plan: cpu.plan, flag: '--cpus/--cpu-shares' },
  { name: 'cpuset', plan: cpuset.plan, flag: '--cpuset-cpus' },
  { name: 'memory', plan: memory.plan, flag: '--memory' },
  { name: 'pids', plan: pids.plan, flag: '--pids-limit' },
  { name: 'io', plan: io.plan, flag: '--blkio-weight' },
];

export class V2Manager implements CgroupManager {
  readonly version = 'v2' as const;
  readonly group: string;
  /** The container's one directory. */
  readonly dir: string;
  private readonly unified: string;

  /** group: another path under the cgroup2 root (sl-runtime's linux.cgroupsPath, checked by the caller). */
  constructor(private readonly det: Detection, readonly node: string, readonly container: string, group?: string) {
    if (!det.unified) throw new CgroupError(`cgroup: no cgroup2 mount under ${det.root}`, det.root, 'ENOENT');
    this.unified = det.unified;
    this.group = group ?? `${TOP}/${checkSegment('node', node)}/${checkSegment('container', container)}`;
    this.dir = join(this.unified, this.group);
  }

  create(): void {
    retryVanishedParent(() => this.createOnce());
  }

  private createOnce(): void {
    // Walk down enabling controllers in each ancestor's subtree_control: what a level
    // may enable is what its parent enabled (the root: what the kernel has).
    let path = this.unified;
    let available = readOptional(join(path, 'cgroup.controllers')) ?? '';
    for (const seg of this.group.split('/')) {
      const sub = join(path, 'cgroup.subtree_control');
      const enabled = readOptional(sub) ?? '';
      const add = enableValue(available, enabled);
      if (add !== undefined) enableControllers(path, add);
      available = readOptional(sub) ?? '';
      path = join(path, seg);
      makeDir(path);
    }
  }

  procsFiles(): string[] {
    return [join(this.dir, 'cgroup.procs')];
  }

  /** Controllers the parent delegates to this group (a missing one means no such files here). */
  private enabled(): Set<string> {
    return new Set(tokens(readOptional(join(dirname(this.dir), 'cgroup.subtree_control')) ?? ''));
  }

  apply(r: Resources): string[] {
    const files = listFiles(this.dir);
    const enabled = this.enabled();
    const cur = readOptional(join(this.dir, 'memory.max'));
    const ctx: PlanContext = { files, ...(cur !== undefined ? { currentMemoryLimit: parseLimit(cur) ?? -1 } : {}) };
    const plans = LIMITERS.map((c) => {
      const p = c.plan(r, ctx);
      // Checked for all before any write, so an unsupported limit leaves the group as it was.
      if (p.writes.length > 0 && !enabled.has(c.name)) throw new CgroupUnsupportedError(c.name, c.flag, this.det.root);
      return p;
    });
    for (const p of plans) writeAll(this.dir, p.writes);
    return plans.flatMap((p) => p.warnings);
  }

  addProcess(pid: number): void {
    writeValue(this.dir, { file: 'cgroup.procs', value: String(pid) });
  }

  pids(): number[] {
    return parsePids(readOptional(join(this.dir, 'cgroup.procs')) ?? '').sort((a, b) => a - b);
  }

  stats(): CgroupStats {
    return {
      cpuUsageNs: 0, memoryUsage: 0, memoryLimit: null, pids: 0, oomKills: 0,
      ...cpu.stats(this.dir), ...memory.stats(this.dir), ...pids.stats(this.dir),
    };
  }

  oomKilled(): boolean {
    const t = readOptional(join(this.dir, 'memory.events'));
    return t !== undefined && memory.oomKills(t) > 0;
  }

  async freeze(frozen: boolean): Promise<void> {
    writeValue(this.dir, { file: freezer.FILE, value: freezer.value(frozen) });
    const end = Date.now() + 5000;
    while (!freezer.reached(readText(join(this.dir, 'cgroup.events')), frozen)) {
      if (Date.now() > end) throw new CgroupError(`cgroup: ${this.dir} did not become ${frozen ? 'frozen' : 'thawed'} within 5 s`, join(this.dir, 'cgroup.events'), 'ETIMEDOUT');
      await sleep(10);
    }
  }

  async remove(opts: RemoveOptions = {}): Promise<void> {
    const left = this.pids();
    if (left.length > 0) {
      if (!opts.kill) throw new CgroupBusyError(this.dir, left);
      // cgroup.kill (5.14+) kills the whole subtree atomically, forks included.
      const hasKill = listFiles(this.dir).has('cgroup.kill');
      const kill = hasKill ? () => writeValue(this.dir, { file: 'cgroup.kill', value: '1' }) : signalAll;
      await killUntilEmpty(this.dir, () => this.pids(), kill);
    }
    await removeDirRetry(this.dir);
  }
}

function enableControllers(dir: string, value: string): void {
  try {
    writeValue(dir, { file: 'cgroup.subtree_control', value });
  } catch {
    // One write fails as a whole if any controller cannot be enabled; then try each,
    // and let apply() report the ones that matter with CgroupUnsupportedError.
    for (const v of value.split(' ')) {
      try {
        writeValue(dir, { file: 'cgroup.subtree_control', value: v });
      } catch { /* reported by apply() when a limit needs it */ }
    }
  }
}
