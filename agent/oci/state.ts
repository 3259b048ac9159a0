// sl-runtime's view of one container: its state directory (<root>/<id>/) and the OCI
// state JSON derived from it. The directory holds
//   meta.json     written by create: bundle, rootfs, created, annotations, cgroup node
//   config.json   the bundle's config.json as create read it (hooks, exec, delete use it)
//   exec.fifo     exists from create until start: the init waits on it before its exec
//   running.json  written by sl-monitor once the init is held (pid + start time)
//   exit.json     written by sl-monitor when the init exits
//   chroot.mnt    no mount namespace only: the mount id of the init's rootfs bind (delete detaches it)
// The status is a pure function of those files and whether the pid is still the same
// process (pid + start time), so a crashed sl-runtime leaves nothing in memory to lose.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export type OciStatus = 'creating' | 'created' | 'running' | 'stopped';

export interface Meta {
  id: string;
  bundle: string;
  rootfs: string;
  created: string; // RFC 3339
  annotations: Record<string, string>;
  /** cgroup node the container's groups live under (swarmlite/<node>/<id>). */
  cgroupNode: string;
  /** Its groups' path under each hierarchy root (from linux.cgroupsPath; default swarmlite/<node>/<id>). */
  cgroupPath?: string;
  /** Created without a mount namespace: mounts under a rootfs bind in the caller's (chroot.mnt). */
  noMountNamespace?: boolean;
}

export interface RunningRecord { pid: number; monitorPid: number; pidStart: number; monitorStart: number }
export interface ExitRecord { code: number; signal: string | null }

/** The OCI state (runtime-spec "state"), plus runc's rootfs/created/owner. */
export interface OciState {
  ociVersion: string;
  id: string;
  pid: number;
  status: OciStatus;
  bundle: string;
  rootfs: string;
  created: string;
  owner: string;
  annotations: Record<string, string>;
}

export const OCI_VERSION = '1.0.2';

/** runc's id rule, narrowed to what is also a safe directory and cgroup name. */
export const ID_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export interface Observed {
  running?: RunningRecord;
  exit?: ExitRecord;
  fifo: boolean;
  /** Whether running.pid is still the process it names (start time unchanged). */
  alive: boolean;
}

/** Pure: the lifecycle state the files say (runtime-spec: creating → created → running → stopped). */
export function statusOf(o: Observed): OciStatus {
  if (o.exit) return 'stopped';
  if (!o.running) return 'creating';
  if (!o.alive) return 'stopped';
  return o.fifo ? 'created' : 'running';
}

/** Pure: the JSON `state` prints and hooks read on stdin. The pid is 0 once stopped, as runc's. */
export function ociState(meta: Meta, status: OciStatus, pid: number | undefined): OciState {
  return {
    ociVersion: OCI_VERSION, id: meta.id, pid: status === 'stopped' || status === 'creating' ? 0 : pid ?? 0, status,
    bundle: meta.bundle, rootfs: meta.rootfs, created: meta.created, owner: '', annotations: meta.annotations,
  };
}

/**
 * Field 22 of /proc/<pid>/stat, or undefined when the process is gone. A zombie counts as
 * gone: a monitor re-parented to a slow reaper stays one for a while after its exit.
 */
export function startTime(pid: number): number | undefined {
  let s: string;
  try { s = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return undefined; }
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  if (f[0] === 'Z' || f[0] === 'X') return undefined;
  const v = Number(f[19]);
  return Number.isFinite(v) ? v : undefined;
}

function readJson<T>(path: string): T | undefined {
  try { return JSON.parse(readFileSync(path, 'utf8')) as T; } catch { return undefined; }
}

export interface Loaded { dir: string; meta: Meta; status: OciStatus; running?: RunningRecord; exit?: ExitRecord }

export class NotFoundError extends Error {
  constructor(readonly id: string) { super(`container "${id}" does not exist`); this.name = 'NotFoundError'; }
}

export function containerDir(root: string, id: string): string {
  if (!ID_RE.test(id)) throw new Error(`invalid container id ${JSON.stringify(id.slice(0, 140))} (letters, digits, '_', '.', '-'; at most 128)`);
  return join(root, id);
}

/** Reads one container's files; NotFoundError when it has no state directory (or no meta.json yet). */
export function load(root: string, id: string): Loaded {
  const dir = containerDir(root, id);
  const meta = readJson<Meta>(join(dir, 'meta.json'));
  if (!meta) throw new NotFoundError(id);
  const running = readJson<RunningRecord>(join(dir, 'running.json'));
  const exit = readJson<ExitRecord>(join(dir, 'exit.json'));
  const alive = running !== undefined && startTime(running.pid) === running.pidStart;
  const status = statusOf({ running, exit, fifo: existsSync(join(dir, 'exec.fifo')), alive });
  return { dir, meta, status, ...(running ? { running } : {}), ...(exit ? { exit } : {}) };
}

/** The state JSON of one container (`sl-runtime state`). */
export function stateOf(root: string, id: string): OciState {
  const l = load(root, id);
  return ociState(l.meta, l.status, l.running?.pid);
}

/** Every container under root (`sl-runtime list`); a half-made directory is skipped. */
export function listStates(root: string): OciState[] {
  let names: string[] = [];
  try { names = readdirSync(root); } catch { return []; }
  const out: OciState[] = [];
  for (const n of names.sort()) {
    try { out.push(stateOf(root, n)); } catch { /* not a container */ }
  }
  return out;
}
