// What the container lifecycle needs of the host's parts. Each is required: a node without
// networking or cgroups is not a node this agent runs on.
import type { ContainerSpec, ResourceLimits } from '../../shared/events.js';
import type { Runtime } from '../runtime/runtime.js';

/** The container's root filesystem: its image's layers under a writable one. */
export interface StoragePort {
  /**
   * Fetches and unpacks the image's layers (bottom first; none: the image is one layer,
   * `digest`) if needed; off the start path when they are here. Returns the lower dirs, topmost first.
   */
  ensureImage(digest: string, layers?: string[]): Promise<string[]>;
  /**
   * Mounts the image's layers (topmost first) and a fresh writable layer for `id` at `target`;
   * `volatile`: one that dies with the container (storage/snapshotter.ts PrepareOptions).
   */
  mount(id: string, lowers: string[], target: string, o?: { volatile?: boolean }): Promise<void>;
  /** Unmounts and removes `id`'s writable layer, off the event loop. Idempotent. */
  release(id: string, target: string): Promise<void>;
  /** Ids that have a writable layer here. */
  known(): string[];
}

/** How a container joins its network: a namespace path to enter, plus files to bind-mount. */
export interface NetworkJoin {
  mode: 'none' | 'host' | 'path';
  path?: string;
  ip?: string;
  mounts?: { source: string; destination: string }[];
}

/** Networks with endpoints (bridge and user networks); agent/network provides it. */
export interface NetworkPort {
  attach(id: string, spec: ContainerSpec): Promise<NetworkJoin>;
  /** Leaves the network; nothing to do for a container that has no endpoint. */
  detach(id: string): Promise<void>;
}

/** The container's control groups; agent/cgroups provides it. */
export interface CgroupPort {
  /** Creates the groups with the limits; returns the cgroup.procs files to join before exec. */
  create(id: string, r: ResourceLimits): Promise<string[]>;
  update(id: string, r: ResourceLimits): Promise<void>;
  oomKilled(id: string): boolean;
  remove(id: string): Promise<void>;
  /** The cgroup.procs files of an existing container's groups (what an exec joins). */
  procsFiles(id: string): string[];
  /** Freezes (pause) or thaws every task of the container; resolves once the kernel did. */
  freeze(id: string, frozen: boolean): Promise<void>;
  frozen(id: string): boolean;
}

export type RuntimePort = Pick<Runtime, 'start' | 'status' | 'isRunning' | 'kill' | 'waitExit' | 'list' | 'deleteAsync' | 'stateDir' | 'defaultLogPath'
  | 'exec' | 'execStatus' | 'waitExecExit' | 'execDir' | 'deleteExec' | 'execIds'>;

export interface HostPorts {
  storage: StoragePort;
  network: NetworkPort;
  cgroups: CgroupPort;
  runtime: RuntimePort;
}
