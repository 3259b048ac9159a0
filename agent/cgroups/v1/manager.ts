// The v1 manager: one directory per hierarchy, the same relative path in each.
import { join } from 'node:path';
import { CgroupBusyError, CgroupError, CgroupUnsupportedError } from '../errors.js';
import type { Detection } from '../detect.js';
import { listFiles, makeDir, parseLimit, parsePids, readOptional, readText, removeDirAsync, sleep, writeAll, writeValue } from '../fs.js';
import { TOP, checkSegment } from '../paths.js';
import { killUntilEmpty, removeDirRetry, signalAll, retryVanishedParent } from '../teardown.js';
import type { CgroupManager, CgroupStats, Plan, PlanContext, RemoveOptions, Resources } from '../types.js';
import * as blkio from './blkio.js';
import * as cpu from './cpu.js';
import * as cpuacct from './cpuacct.js';
import * as cpuset from './cpuset.js';
import * as freezer from './freezer.js';
import * as memory from './memory.js';
import * as pids from './pids.js';

/** Hierarchies a container joins. devices too: rules may come later, membership must not. */
export const JOINED = ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'devices', 'freezer', 'blkio'] as const;

/** Controllers that enforce a Resources field, with the flag a missing one would break. */
const LIMITERS: { name: string; plan: (r: Resources, ctx: PlanContext) => Plan; flag: string }[] = [
  { name: 'cpu', plan: cpu.plan, flag: '--cpus/--cpu-shares' },
  { name: 'cpuset', plan: cpuset.plan, flag: '--cpuset-cpus' },
  { name: 'memory', plan: memory.plan, flag: '--memory' },
  { name: 'pids', plan: pids.plan, flag: '--pids-limit' },
  { name: 'blkio', plan: blkio.plan, flag: '--blkio-weight' },
];

/** Distinct hierarchy mount points (cpu and cpuacct are often co-mounted). */
export function hierarchies(det: Detection): string[] {
  return [...new Set(JOINED.flatMap((c) => (det.mounts[c] ? [det.mounts[c]!] : [])))];
}

export class V1Manager implements CgroupManager {
  readonly version = 'v1' as const;
  /** Path relative to each hierarchy root. */
  readonly group: string;

  /** group: another path under each hierarchy root (sl-runtime's linux.cgroupsPath, checked by the caller). */
  constructor(private readonly det: Detection, readonly node: string, readonly container: string, group?: string) {
    this.group = group ?? `${TOP}/${checkSegment('node', node)}/${checkSegment('container', container)}`;
  }

  /** The container's directory in one controller's hierarchy, if that controller is mounted. */
  dir(controller: string): string | undefined {
    const m = this.det.mounts[controller];
    return m === undefined ? undefined : join(m, this.group);
  }

  private dirs(): string[] {
    return hierarchies(this.det).map((h) => join(h, this.group));
  }

  create(): void {
    retryVanishedParent(() => this.createOnce());
  }

  private createOnce(): void {
    const cpusetRoot = this.det.mounts['cpuset'];
    for (const h of hierarchies(this.det)) {
      let path = h;
      for (const seg of this.group.split('/')) {
        path = join(path, seg);
        makeDir(path);
        // Every level, not just the leaf: a task can join a cpuset only if its group has cpus and mems.
        if (h === cpusetRoot) cpuset.inherit(path);
      }
    }
  }

  procsFiles(): string[] {
    return this.dirs().map((d) => join(d, 'cgroup.procs'));
  }

  apply(r: Resources): string[] {
    // Plan everything before writing anything, so an unsupported limit leaves the group as it was.
    const todo: { dir: string; plan: Plan }[] = [];
    for (const c of LIMITERS) {
      const dir = this.dir(c.name);
      if (dir === undefined) {
        if (c.plan(r, { files: new Set() }).writes.length > 0) throw new CgroupUnsupportedError(c.name, c.flag, this.det.root);
        continue;
      }
      const ctx: PlanContext = { files: listFiles(dir) };
      if (c.name === 'memory') {
        const cur = readOptional(join(dir, 'memory.limit_in_bytes'));
        if (cur !== undefined) ctx.currentMemoryLimit = parseLimit(cur) ?? Number.MAX_SAFE_INTEGER;
      }
      todo.push({ dir, plan: c.plan(r, ctx) });
    }
    for (const t of todo) writeAll(t.dir, t.plan.writes);
    return todo.flatMap((t) => t.plan.warnings);
  }

  addProcess(pid: number): void {
    for (const d of this.dirs()) writeValue(d, { file: 'cgroup.procs', value: String(pid) });
  }

  pids(): number[] {
    // The union: after a half-failed addProcess a task may sit in some hierarchies only.
    const all = new Set<number>();
    for (const f of this.procsFiles()) for (const p of parsePids(readOptional(f) ?? '')) all.add(p);
    return [...all].sort((a, b) => a - b);
  }

  stats(): CgroupStats {
    const acct = this.dir('cpuacct'), mem = this.dir('memory'), pid = this.dir('pids');
    return {
      cpuUsageNs: 0, memoryUsage: 0, memoryLimit: null, pids: 0, oomKills: 0,
      ...(acct ? cpuacct.stats(acct) : {}),
      ...(mem ? memory.stats(mem) : {}),
      ...(pid ? pids.stats(pid) : {}),
    };
  }

  oomKilled(): boolean {
    const mem = this.dir('memory');
    const t = mem === undefined ? undefined : readOptional(join(mem, 'memory.oom_control'));
    return t !== undefined && memory.oomKills(t) > 0;
  }

  async freeze(frozen: boolean): Promise<void> {
    const dir = this.dir('freezer');
    if (dir === undefined) throw new CgroupUnsupportedError('freezer', 'pause', this.det.root);
    const end = Date.now() + 5000;
    writeValue(dir, { file: freezer.STATE, value: freezer.stateValue(frozen) });
    // FREEZING can linger while a task is in an uninterruptible sleep; the kernel finishes on re-write.
    while (!freezer.reached(readText(join(dir, freezer.STATE)), frozen)) {
      if (Date.now() > end) {
        if (frozen) writeValue(dir, { file: freezer.STATE, value: freezer.stateValue(false) });
        throw new CgroupError(`cgroup: ${dir} did not become ${freezer.stateValue(frozen)} within 5 s`, join(dir, freezer.STATE), 'ETIMEDOUT');
      }
      await sleep(10);
      writeValue(dir, { file: freezer.STATE, value: freezer.stateValue(frozen) });
    }
  }

  async remove(opts: RemoveOptions = {}): Promise<void> {
    let dirs = this.dirs();
    if (opts.kill) {
      // A removal comes after the container's exit, when its groups are empty: rmdir all eight
      // at once and only a group that is still busy goes the long way (its tasks read and
      // killed). Reading the eight cgroup.procs first was most of a removal's cgroup CPU.
      dirs = await busyDirs(dirs);
      if (dirs.length === 0) return;
    }
    const left = this.pids();
    if (left.length > 0) {
      if (!opts.kill) throw new CgroupBusyError(dirs[0] ?? this.group, left);
      // Frozen first so nothing forks between reading cgroup.procs and the kill.
      // (a freezer group already removed above held no task: nothing there to freeze)
      const freezerDir = this.dir('freezer');
      const canFreeze = freezerDir !== undefined && dirs.includes(freezerDir);
      if (canFreeze) await this.freeze(true);
      signalAll(this.pids());
      if (canFreeze) await this.freeze(false);
      await killUntilEmpty(dirs[0]!, () => this.pids(), signalAll);
    }
    for (const d of dirs) await removeDirRetry(d);
  }
}

/** The directories an rmdir leaves because tasks are still in them (EBUSY); any other failure throws. */
async function busyDirs(dirs: string[]): Promise<string[]> {
  const left = await Promise.all(dirs.map((d) => removeDirAsync(d).then(() => undefined, (e: unknown) => {
    if (e instanceof CgroupError && e.code === 'EBUSY') return d;
    throw e;
  })));
  return left.filter((d): d is string => d !== undefined);
}
