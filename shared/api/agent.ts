// Each agent's own verbs (subject agent.<node>.<verb>): live data that is not in the log
// (output history, cgroup counters, what the host has).
import { arr, bool, int, obj, opt, str, type Check } from '../validate.js';
import { verb } from '../rpc.js';
import { CONTAINER_ID_RE } from '../ids.js';

const containerId = str(64, CONTAINER_ID_RE);

/** One page of a container's output: frames as [stream (1 stdout, 2 stderr), base64]. */
export interface LogsPage { frames: [number, string][]; next: number; end: boolean; running: boolean }

export interface ContainerSample {
  id: string;
  name: string;
  /** CPU time of all the container's tasks, ever, in nanoseconds (cpuacct.usage / cpu.stat usage_usec). */
  cpuUsageNs: number;
  /** Wall-clock time the counters were read, ms since epoch with sub-ms precision. */
  ts: number;
  memoryUsage: number;
  /** The container's memory limit; the node's memory when it has none (as docker shows it). */
  memoryLimit: number;
  /** Whether memoryLimit is the container's own limit. */
  memoryLimited: boolean;
  pids: number;
  oomKills: number;
}

/** Raw counters plus the time they were read: the client computes CPU % from two samples. */
export interface StatsReply { node: string; cpus: number; containers: ContainerSample[] }

export interface NodeInfoReply {
  cgroups: string; networks: unknown[];
  /** The storage driver and what it holds; the kernel it runs on (tsctl info). */
  storage?: { driver: string; root: string; layers: number; containers: number; volumes: number; deepStacks: boolean };
  kernel?: string;
}

/**
 * An exec the controller routes to the container's node (only the controller may publish
 * agent.<node>.exec: `by` is the user it authenticated). The process user is `processUser`.
 */
export interface ExecRequest {
  id: string; execId: string; args: string[]; env?: string[]; workdir?: string; processUser?: string; interactive?: boolean; by: string;
  /** -t: a pty in the container, of this first size (0 0: the kernel's default) */
  tty?: TtySize;
}

/** A terminal's size; rows and columns at most TTY_MAX (the C side checks again). */
export interface TtySize { rows: number; cols: number }
export const TTY_MAX = 4096;
export const ttySize = obj({ rows: int(0, TTY_MAX), cols: int(0, TTY_MAX) }) as Check<TtySize>;
/** started: the process runs (its output on logs.<node>.<execId>, its end an `eof` frame with `code`); else why not. */
export type ExecReply = { started: true; pid: number; node: string } | { started: false; error: string; exitCode: number };

/** The exec's process as asked: shapes and sizes; what they mean the node decides. */
export const execProcess = {
  args: arr(str(65536), 4096), env: opt(arr(str(65536), 4096)), workdir: opt(str(4096)), processUser: opt(str(129)), interactive: opt(bool),
  tty: opt(ttySize),
};

/** A container's processes (tsctl top): docker top's titles and one row of strings a process. */
export interface TopReply { titles: string[]; processes: string[][] }

/** A container's filesystem changes (tsctl diff): [A|C|D, path], sorted; `truncated` when the reply was bounded. */
export interface DiffReply { changes: [string, string][]; truncated: boolean }

/**
 * One page of a container's archive (tsctl export: what 'rootfs'; tsctl commit: what 'layer').
 * `transfer` is the client's random id for one archive; pages are asked for by offset.
 */
export interface ArchiveRequest { id: string; what: 'rootfs' | 'layer' | 'path'; transfer: string; offset: number; path?: string; follow?: boolean }
/** `data` base64; `size` and `digest` (sha256 of the whole archive) on every page; `end` on the last. */
export interface ArchivePage { data: string; size: number; digest: string; end: boolean }

/**
 * tsctl cp into a container, first half: a page of the tar, staged on the node under the
 * client's transfer id (pages in order, from offset 0). Staging changes no container: only the
 * controller may ask the node to unpack it (copyin), after checking who asks.
 */
export interface PutPage { transfer: string; offset: number; data: string }
/** The second half: unpack staged `transfer` (its `size` and `digest` as the client made it) at `dest` in container `id`. */
/** `name` absent: the archive goes into `dest`, which must be a directory; `archive`: keep the archive's owners (else root's). */
export interface CopyInRequest { id: string; transfer: string; size: number; digest: string; dest: string; name?: string; archive?: boolean; by: string }
export interface CopyInReply { entries: number; bytes: number; path: string }
export const MAX_COPY_IN = 1 << 30;
const transferId = str(32, /^[0-9a-f]{32}$/);
/** A path in a container: absolute, no NUL. */
export const containerPath = str(4096, /^\/[^\0]*$/);
/** The archive's top-level name: one component. */
export const topName = str(255, /^(?!\.\.?$)[^/\0]+$/);

export const agentApi = {
  logs: verb<{ id: string; offset?: number }, LogsPage>('logs', obj({ id: containerId, offset: opt(int(0, Number.MAX_SAFE_INTEGER)) }), { readOnly: true }),
  /** ids: the containers to sample; every running one of the node when absent or empty. */
  stats: verb<{ ids?: string[] }, StatsReply>('stats', obj({ ids: opt(arr(containerId, 4096)) }), { readOnly: true }),
  info: verb<Record<string, never>, NodeInfoReply>('info', obj({}), { readOnly: true }),
  top: verb<{ id: string }, TopReply>('top', obj({ id: containerId }), { readOnly: true }),
  diff: verb<{ id: string }, DiffReply>('diff', obj({ id: containerId }), { readOnly: true }),
  archive: verb<ArchiveRequest, ArchivePage>('archive', obj({
    id: containerId, what: str(8, /^(rootfs|layer|path)$/), transfer: transferId, offset: int(0, Number.MAX_SAFE_INTEGER),
    path: opt(containerPath), follow: opt(bool),
  }) as Check<ArchiveRequest>, { readOnly: true }),
  put: verb<PutPage, { received: number }>('put', obj({ transfer: transferId, offset: int(0, MAX_COPY_IN), data: str(1 << 20) })),
  copyin: verb<CopyInRequest, CopyInReply>('copyin', obj({
    id: containerId, transfer: transferId, size: int(1024, MAX_COPY_IN), digest: str(71, /^sha256:[0-9a-f]{64}$/), dest: containerPath, name: opt(topName), archive: opt(bool), by: str(256),
  })),
  exec: verb<ExecRequest, ExecReply>('exec', obj({ id: containerId, execId: str(64, /^[0-9a-f]{64}$/), ...execProcess, by: str(256) }) as Check<ExecRequest>),
} as const;
