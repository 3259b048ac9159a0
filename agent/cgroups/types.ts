// The shapes every controller file and both managers share.
import type { Resources } from '../../shared/limits.js';

export type { Resources };

/** One value for one cgroup file, relative to the controller's directory. Order matters. */
export interface Write { file: string; value: string }

/** The writes a controller wants, and what it could not do (shown to the user, not fatal). */
export interface Plan { writes: Write[]; warnings: string[] }

/**
 * What a pure controller function may know about the group besides the resources:
 * which files the kernel offers there (optional features such as swap accounting or
 * BFQ weights), and the current memory limit (write order depends on it).
 */
export interface PlanContext {
  files: ReadonlySet<string>;
  currentMemoryLimit?: number;
}

export interface CgroupStats {
  /** CPU time of all tasks, ever, in nanoseconds. */
  cpuUsageNs: number;
  memoryUsage: number;
  /** null when unlimited. */
  memoryLimit: number | null;
  pids: number;
  /** Tasks the kernel's OOM killer killed inside this group. */
  oomKills: number;
}

export interface RemoveOptions {
  /** SIGKILL the tasks still inside (frozen first, so none can fork away) instead of failing. */
  kill?: boolean;
}

/**
 * One container's cgroup(s). v1 has a directory per hierarchy, v2 a single directory;
 * callers never need to know which.
 */
export interface CgroupManager {
  readonly version: 'v1' | 'v2';
  /** Makes the directories (idempotent). Must run before procsFiles() are written. */
  create(): void;
  /** The cgroup.procs files the spawn helper writes the child's pid into before exec. */
  procsFiles(): string[];
  /** Writes the limits that are set in `r`; also the live update. Returns warnings. */
  apply(r: Resources): string[];
  addProcess(pid: number): void;
  pids(): number[];
  stats(): CgroupStats;
  /** True once the kernel's OOM killer has killed a task in this group. */
  oomKilled(): boolean;
  freeze(frozen: boolean): Promise<void>;
  remove(opts?: RemoveOptions): Promise<void>;
}

/**
 * One device-cgroup rule, as the OCI spec's linux.resources.devices writes it. Rules apply
 * in order, a later one overriding an earlier one; a missing type is 'a' (all), a missing
 * or negative major/minor is the wildcard.
 */
export interface DeviceRule { allow: boolean; type?: 'a' | 'c' | 'b'; major?: number; minor?: number; access?: string }
