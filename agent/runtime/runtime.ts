// Container lifecycle on one host. A container is a state directory written by its
// sl-monitor (running.json, exit.json; see native/src/monitor/monitor.c) plus the bundle's
// config.json; the Runtime holds no memory of its own, so an agent restarted after a crash
// sees exactly what a running one would.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, watch, writeFileSync } from 'node:fs';
import { rmTreeAsync } from '../../native/libc.js';
import { join } from 'node:path';
import { spawnContainer, spawnExec } from '../../native/spawn.js';
import { encodeExecLaunch, type ExecProcess } from './exec-launch.js';
import { deviceCgroupOf, deviceLaunch, type DeviceCgroup } from '../cgroups/devices.js';
import { encodeLaunch } from './launch.js';
import type { OciSpec } from './spec.js';
import { failpoint } from '../failpoints.js';

export interface StartOptions {
  /** cgroup.procs (v1: one per hierarchy) files the container joins before its exec. */
  cgroupProcs?: string[];
  /** Defaults to <state dir>/container.log. */
  logPath?: string;
  /**
   * Where spec.linux.resources.devices is enforced. Default: found among cgroupProcs (the
   * v1 devices hierarchy, else a cgroup2 group). With no cgroups at all nothing enforces
   * the rules (a runtime driven by hand, as in tests); with cgroups but no place for the
   * rules, start fails rather than run a container that can open any device.
   */
  devicesCgroup?: DeviceCgroup;
  /**
   * Start a container that ran before (tsctl start/restart, a restart policy): its state dir
   * stays, with its log (the new run's output is appended), and the last run's records go.
   */
  again?: boolean;
}

export class DeviceRulesError extends Error {
  constructor(readonly id: string, message: string) {
    super(message);
    this.name = 'DeviceRulesError';
  }
}

export interface Started { pid: number; monitorPid: number; runningAt: number }

export interface ExitStatus { code: number; signal?: string; exitedAt: number /* ms since epoch */ }

export interface ContainerStatus {
  state: 'running' | 'exited' | 'unknown';
  pid?: number;
  monitorPid?: number;
  runningAt?: number;
  exit?: ExitStatus;
}

export class RuntimeError extends Error {
  constructor(readonly id: string, readonly reason: 'not-found' | 'exists' | 'running' | 'not-running' | 'bad-id' | 'lost', message: string) {
    super(message);
    this.name = 'RuntimeError';
  }
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

interface RunningRecord { pid: number; monitorPid: number; pidStart: number; monitorStart: number; runningAtUs: number }
interface ExitRecord { code: number; signal: string | null; exitedAtUs: number }

/** Field 22 of /proc/<pid>/stat (start time, clock ticks since boot), or undefined if gone. */
export function processStartTime(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may contain spaces and parentheses: count fields after the last ')'
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const v = Number(rest[22 - 3]);
  return Number.isFinite(v) ? v : undefined;
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

interface Waiter { resolve(exit: ExitStatus): void; reject(err: Error): void; off?: () => void }
interface ExitWatch { waiters: Set<Waiter>; settle(err: Error | undefined, exit?: ExitStatus): void }
interface StatusMemo { run?: RunningRecord }

function toExit(ex: ExitRecord): ExitStatus {
  return { code: ex.code, exitedAt: ex.exitedAtUs / 1000, ...(ex.signal ? { signal: ex.signal } : {}) };
}

export class Runtime {
  /** `root` normalized, without a trailing slash: stateDir() appends `/<id>` to it. */
  private readonly base: string;

  /** @param root state root, e.g. /var/lib/swarmlite/<node>/containers */
  constructor(readonly root: string) {
    mkdirSync(root, { recursive: true });
    this.base = join(root, '.').replace(/\/$/, '');
  }

  stateDir(id: string): string {
    if (!ID_RE.test(id)) throw new RuntimeError(id, 'bad-id', `invalid container id ${JSON.stringify(id)}`);
    return `${this.base}/${id}`; // id is one safe segment (ID_RE); path.join was a hot spot under many removals
  }

  defaultLogPath(id: string): string {
    return join(this.stateDir(id), 'container.log');
  }

  /**
   * Writes bundleDir/config.json (so `runc run -b bundleDir` runs the same container),
   * and starts it; resolves when the command has exec'd. The rootfs must be mounted.
   */
  async start(id: string, bundleDir: string, spec: OciSpec, opts: StartOptions = {}): Promise<Started> {
    const dir = this.stateDir(id);
    const again = opts.again === true && existsSync(dir);
    if (again) {
      if (this.status(id).state === 'running') throw new RuntimeError(id, 'running', `container ${id} is already running`);
      for (const f of ['running.json', 'exit.json']) rmSync(join(dir, f), { force: true });
      rmSync(join(dir, 'exec'), { recursive: true, force: true });
      failpoint('start:after-reset');
    } else {
      try {
        mkdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new RuntimeError(id, 'exists', `container ${id} already exists (delete it first)`);
        throw err;
      }
    }
    try {
      // Compact: with a seccomp profile the indented file took ~5x longer to serialise.
      writeFileSync(join(bundleDir, 'config.json'), JSON.stringify(spec));
      // Device rules go to the monitor, which applies them before the init joins the group:
      // from its first instruction the container sees only the allowed devices.
      const rules = spec.linux?.resources?.devices ?? [];
      let devices = {};
      if (rules.length > 0 && (opts.devicesCgroup || opts.cgroupProcs?.length)) {
        const cg = opts.devicesCgroup ?? deviceCgroupOf(opts.cgroupProcs!);
        if (!cg) throw new DeviceRulesError(id, `container ${id}: no devices cgroup among ${opts.cgroupProcs!.join(', ')}: device rules cannot be enforced`);
        devices = deviceLaunch(cg, rules);
      }
      const launch = encodeLaunch(spec, {
        stateDir: dir, logPath: opts.logPath ?? join(dir, 'container.log'), cgroupProcs: opts.cgroupProcs ?? [], bundleDir, ...devices,
        // -i / -t: stdin and resizes through the monitor's FIFO, for the whole run (agent/attach.ts)
        ...(spec.process?.stdinOpen ? { attach: 1 as const } : spec.process?.terminal ? { attach: 0 as const } : {}),
      });
      return await spawnContainer(launch, spec.process?.terminal === true);
    } catch (err) {
      // Nothing ran (the monitor kills a half-set-up init), so nothing is left to report;
      // a container that ran before keeps its dir and its log, for a later start or its removal
      if (again) for (const f of ['running.json', 'exit.json']) rmSync(join(dir, f), { force: true });
      else rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  status(id: string): ContainerStatus {
    return this.statusOf(id, this.stateDir(id));
  }

  /** An exec's files: <container state>/exec/<execId>/{running,exit}.json, exec.log (the monitor's, as a container's). */
  execDir(id: string, execId: string): string {
    if (!ID_RE.test(execId)) throw new RuntimeError(execId, 'bad-id', `invalid exec id ${JSON.stringify(execId)}`);
    return join(this.stateDir(id), 'exec', execId);
  }

  /**
   * Runs a process in the running container `id` (its namespaces, root, cgroups and
   * privileges, see exec-launch.ts); resolves once it has exec'd. `spec` is the container's.
   */
  async exec(id: string, execId: string, spec: OciSpec, p: ExecProcess, cgroupProcs: string[]): Promise<Started & { stdinFd?: number; ctlFd?: number }> {
    const run = readJson<RunningRecord>(join(this.stateDir(id), 'running.json'));
    if (this.status(id).state !== 'running' || !run || processStartTime(run.pid) !== run.pidStart) {
      throw new RuntimeError(id, 'not-running', `container ${id} is not running`);
    }
    const dir = this.execDir(id, execId);
    mkdirSync(join(this.stateDir(id), 'exec'), { recursive: true });
    try { mkdirSync(dir); } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new RuntimeError(execId, 'exists', `exec ${execId} already exists`);
      throw err;
    }
    try {
      const launch = encodeExecLaunch(spec, p, { stateDir: dir, logPath: join(dir, 'exec.log'), pid: run.pid, pidStart: run.pidStart, cgroupProcs });
      return await spawnExec(launch, p.stdin === true, p.tty !== undefined);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** The execs a container has state of (running, or exited and not yet forgotten). */
  execIds(id: string): string[] {
    try { return readdirSync(join(this.stateDir(id), 'exec')).filter((n) => ID_RE.test(n)).sort(); } catch { return []; }
  }

  execStatus(id: string, execId: string): ContainerStatus { return this.statusOf(execId, this.execDir(id, execId)); }

  waitExecExit(id: string, execId: string, signal?: AbortSignal): Promise<ExitStatus> {
    const dir = this.execDir(id, execId);
    return this.waitDir(execId, dir, (memo) => this.statusOf(execId, dir, memo), signal);
  }

  /** Forgets an exec that has exited (its output was streamed, its exit reported). */
  deleteExec(id: string, execId: string): void {
    rmSync(this.execDir(id, execId), { recursive: true, force: true });
  }

  /**
   * `memo`: an exit watch's, which keeps running.json once read: a run's record does not change
   * while it runs, and a watch ends with its run (a start again makes a new watch).
   */
  private statusOf(id: string, dir: string, memo?: StatusMemo): ContainerStatus {
    // the directory is looked for only when running.json is missing (asked several times per removal)
    const run = memo?.run ?? readJson<RunningRecord>(`${dir}/running.json`);
    if (memo && run) memo.run = run;
    if (!run && !existsSync(dir)) throw new RuntimeError(id, 'not-found', `no such container ${id}`);
    // a stat before the read: while it runs (most looks) no failed open and its thrown ENOENT
    const ex = existsSync(`${dir}/exit.json`) ? readJson<ExitRecord>(`${dir}/exit.json`) : undefined;
    const base = run ? { pid: run.pid, monitorPid: run.monitorPid, runningAt: run.runningAtUs / 1000 } : {};
    if (ex) return { state: 'exited', ...base, exit: toExit(ex) };
    if (!run) return { state: 'unknown' };
    // pid + start time name the process even if the pid was reused since.
    if (processStartTime(run.pid) === run.pidStart) return { state: 'running', ...base };
    // container gone, monitor still writing exit.json: still "running" for a moment
    if (processStartTime(run.monitorPid) === run.monitorStart) return { state: 'running', ...base };
    // The monitor may have written exit.json and exited after the first look: look again
    // before calling it lost (a slow machine — an emulated VM — hit exactly this window).
    const late = readJson<ExitRecord>(`${dir}/exit.json`);
    if (late) return { state: 'exited', ...base, exit: toExit(late) };
    return { state: 'unknown', ...base };
  }

  /** Sends a signal to the container's init (pid 1 inside), e.g. 'SIGTERM' or 9. */
  kill(id: string, signal: NodeJS.Signals | number = 'SIGTERM'): void {
    // One read and one look at the process: the init alive with its start time is all a signal
    // needs (exit.json is written only after it is reaped). With the status read beside it, this
    // was 4 reads and an existsSync per rm -f.
    const dir = this.stateDir(id);
    const run = readJson<RunningRecord>(`${dir}/running.json`);
    if (!run && !existsSync(dir)) throw new RuntimeError(id, 'not-found', `no such container ${id}`);
    if (!run || processStartTime(run.pid) !== run.pidStart) {
      throw new RuntimeError(id, 'not-running', `container ${id} is not running`);
    }
    try {
      process.kill(run.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') throw new RuntimeError(id, 'not-running', `container ${id} is not running`);
      throw err;
    }
  }

  /**
   * Resolves with the exit status once exit.json appears: an inotify watch on the state
   * dir, plus a slow poll for what inotify can miss (watch set up late, dir recreated)
   * and for a monitor that died without recording (rejects with reason 'lost').
   */
  waitExit(id: string, signal?: AbortSignal): Promise<ExitStatus> {
    const dir = this.stateDir(id);
    return this.waitDir(id, dir, (memo) => this.statusOf(id, dir, memo), signal);
  }

  /**
   * Exit watches by state dir, shared: a removal's kill waits on the container the reconciler
   * already watches, so one inotify watch, one poll and one status read serve every waiter
   * (two of each per rm -f were ~15% of the agent's time under 100 of them).
   */
  private readonly watches = new Map<string, ExitWatch>();

  private waitDir(id: string, dir: string, status: (memo: StatusMemo) => ContainerStatus, signal?: AbortSignal): Promise<ExitStatus> {
    return new Promise<ExitStatus>((resolve, reject) => {
      const abortError = () => (signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      if (signal?.aborted) return reject(abortError());
      const waiter: Waiter = { resolve, reject };
      let w = this.watches.get(dir);
      if (w) {
        // no look of its own: the watch saw the container running, and inotify or the poll
        // tells of anything since
        w.waiters.add(waiter);
      } else {
        w = this.openWatch(id, dir, status, waiter);
        if (!w) return; // settled by its first look
      }
      const watch = w;
      if (signal) {
        const onAbort = () => {
          watch.waiters.delete(waiter);
          if (watch.waiters.size === 0) watch.settle(abortError()); // nobody left: the watch closes
          reject(abortError());
        };
        signal.addEventListener('abort', onAbort, { once: true });
        waiter.off = () => signal.removeEventListener('abort', onAbort);
      }
    });
  }

  /** A new watch with its first waiter; undefined when its first look settled it already. */
  private openWatch(id: string, dir: string, status: (memo: StatusMemo) => ContainerStatus, first: Waiter): ExitWatch | undefined {
    let watcher: ReturnType<typeof watch> | undefined;
    const memo: StatusMemo = {};
    let done = false;
    const w: ExitWatch = {
      waiters: new Set([first]),
      settle: (err, exit) => {
        if (done) return;
        done = true;
        clearInterval(timer);
        watcher?.close();
        if (this.watches.get(dir) === w) this.watches.delete(dir);
        for (const x of w.waiters) {
          x.off?.();
          if (err) x.reject(err);
          else x.resolve(exit!);
        }
        w.waiters.clear();
      },
    };
    const check = () => {
      try {
        const st = status(memo);
        if (st.state === 'exited') w.settle(undefined, st.exit);
        else if (st.state === 'unknown' && st.pid !== undefined) {
          w.settle(new RuntimeError(id, 'lost', `container ${id}: its monitor died without recording an exit`));
        }
      } catch (err) {
        w.settle(err as Error);
      }
    };
    const timer = setInterval(check, 1000);
    try {
      watcher = watch(dir, (_ev, name) => { if (name === 'exit.json') check(); });
      watcher.on('error', () => { /* the poll carries on */ });
    } catch { /* no inotify: the poll carries on */ }
    this.watches.set(dir, w);
    check();
    return done ? undefined : w;
  }

  list(): string[] {
    return readdirSync(this.root, { withFileTypes: true }).filter((d) => d.isDirectory() && ID_RE.test(d.name)).map((d) => d.name).sort();
  }

  /** Removes the state of a container that is not running. */
  delete(id: string): void {
    rmSync(this.deletable(id), { recursive: true, force: true });
  }

  /** delete() on a worker thread, in one native call (the log can be large). */
  async deleteAsync(id: string): Promise<void> {
    await rmTreeAsync(this.deletable(id));
  }

  private deletable(id: string): string {
    const dir = this.stateDir(id);
    if (this.isRunning(id)) throw new RuntimeError(id, 'running', `container ${id} is running (kill it first)`);
    return dir;
  }

  /**
   * status(id).state === 'running', with one stat when the container has exited (a removal's
   * case: its exit.json is there, nothing else needs reading). Throws not-found as status().
   */
  isRunning(id: string): boolean {
    const dir = this.stateDir(id);
    if (existsSync(`${dir}/exit.json`)) return false;
    return this.statusOf(id, dir).state === 'running';
  }
}
