// A container's life on this host: image ▸ rootfs mount ▸ network ▸ cgroups ▸ OCI spec ▸
// runtime, and the reverse on removal. Plain TypeScript over ports (host/ports.ts); the
// parts do the I/O.
import { mkdirSync, existsSync, readdirSync, readFileSync, openSync, fstatSync, readSync, closeSync, statSync, writeFileSync, constants } from 'node:fs';
import { rmTreeAsync } from '../../native/libc.js';
import { join } from 'node:path';
import type { ExecProcess } from '../runtime/exec-launch.js';
import { LaunchError } from '../runtime/launch.js';
import type { OciSpec } from '../runtime/spec.js';
import type { ContainerSpec, ResourceLimits } from '../../shared/events.js';
import { isContainerId } from '../../shared/ids.js';
import { SyscallError } from '../../native/errors.js';
import { createSpec, type ContainerConfig, type OciSeccomp } from '../runtime/spec.js';
import { deviceFromHost, hostDevices, parseDeviceFlag } from '../runtime/host-device.js';
import { hostname as hostName } from 'node:os';
import { sysctlMap } from '../../shared/host-config.js';
import type { SecurityOptions } from '../../shared/security.js';
import { RuntimeError, type ExitStatus, type ContainerStatus } from '../runtime/runtime.js';
import type { NodeLayout } from '../layout.js';
import type { VolumeMount } from '../../shared/volumes.js';
import type { HostPorts, NetworkJoin } from './ports.js';
import { Limiter } from '../limiter.js';
import { resolveInRoot } from '../storage/resolve.js';
import { resolveUser } from '../runtime/passwd.js';
import { failpoint } from '../failpoints.js';
import { copyUp } from '../storage/copy-up.js';
import { checkVolumeName } from '../storage/volumes.js';

export class ContainerError extends Error {
  constructor(message: string, readonly id: string, readonly exitCode = 125, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ContainerError';
  }
}

/** A container that runs: its init's pid, when it exec'd, its address on its network. */
export interface Launched { pid: number; runningAt: number; ip?: string }

type Step = 'mount' | 'network' | 'cgroups' | 'start';

/** docker run's codes for a command that cannot run: 127 not found, 126 not executable. */
function exitCodeOf(step: Step, err: unknown): number {
  if (step !== 'start' || !(err instanceof SyscallError) || err.syscall !== 'exec') return 125;
  return err.code === 'ENOENT' ? 127 : err.code === 'EACCES' ? 126 : 125;
}

/** One line saying why an exec did not run, in the words docker uses where it has them. */
function execFailure(short: string, p: ExecProcess, err: unknown): string {
  if (err instanceof LaunchError) return `exec: ${err.message}`;
  if (err instanceof RuntimeError && err.reason === 'not-running') return `container ${short} is not running`;
  if (err instanceof SyscallError) {
    if (err.syscall === 'getpwnam') return `unable to find user ${err.path}: no matching entries in passwd file`;
    if (err.syscall === 'getgrnam') return `unable to find group ${err.path}: no matching entries in group file`;
    if (err.syscall === 'exec' && err.code === 'ESRCH') return `container ${short} is not running`;
    if (err.syscall === 'exec' && err.code === 'ENOENT') return `exec: "${p.args[0]}": executable file not found in $PATH`;
    if (err.syscall === 'chdir') return `exec: cannot enter working directory ${err.path}: ${err.code}`;
    return `exec: ${err.message}`;
  }
  return `exec: ${(err as Error).message}`;
}

/** The spec's confinement options as the runtime's config; a device's numbers are this host's. */
function confinement(s: SecurityOptions | undefined): Partial<ContainerConfig> {
  if (!s) return {};
  return {
    ...(s.devices?.length ? { devices: s.devices.map((d) => deviceFromHost(parseDeviceFlag(d))) } : {}),
    ...(s.seccomp ? { seccomp: s.seccomp === 'unconfined' ? 'unconfined' as const : JSON.parse(s.seccomp) as OciSeccomp } : {}),
    ...(s.noNewPrivileges !== undefined ? { noNewPrivileges: s.noNewPrivileges } : {}),
    ...(s.ulimits?.length ? { rlimits: s.ulimits } : {}),
    ...(s.capAdd ? { capAdd: s.capAdd } : {}),
    ...(s.capDrop ? { capDrop: s.capDrop } : {}),
    ...(s.oomScoreAdj !== undefined ? { oomScoreAdj: s.oomScoreAdj } : {}),
  };
}

/** --privileged, --sysctl and --shm-size as the runtime's config (the network part is the sandbox's). */
function hostConfig(spec: ContainerSpec): Pick<ContainerConfig, 'privileged' | 'sysctls' | 'shmSize'> {
  return {
    ...(spec.privileged ? { privileged: true } : {}),
    ...(spec.sysctls?.length ? { sysctls: Object.fromEntries(sysctlMap(spec.sysctls)) } : {}),
    ...(spec.shmSize !== undefined ? { shmSize: spec.shmSize } : {}),
  };
}

/** --user/--group-add against the image's own files, read under its root (its links stay inside it). */
function userOf(rootfs: string, spec: ContainerSpec): Pick<ContainerConfig, 'user' | 'home'> {
  if (spec.processUser === undefined && !spec.groupAdd?.length) return {};
  const read = (path: string) => {
    try {
      const at = resolveInRoot(rootfs, path, { follow: true });
      const fd = openSync(join(at.dir, at.name), constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        if (!fstatSync(fd).isFile()) return '';
        const b = Buffer.alloc(1 << 20);
        return b.subarray(0, readSync(fd, b, 0, b.length, 0)).toString('utf8');
      } finally { closeSync(fd); }
    } catch { return ''; }
  };
  const r = resolveUser(spec.processUser ?? '0', read('/etc/passwd'), read('/etc/group'), spec.groupAdd ?? []);
  return { user: { uid: r.uid, gid: r.gid, ...(r.additionalGids.length ? { additionalGids: r.additionalGids } : {}) }, home: r.home };
}

export class ContainerHost {
  /** Removals whose files are deleted at once, each one call at a time (see limiter.ts). */
  private readonly files = new Limiter(12);
  /** Removals whose cgroups are removed at once. */
  private readonly groups = new Limiter(8);

  constructor(private layout: NodeLayout, private ports: HostPorts) {
    mkdirSync(layout.bundles, { recursive: true });
  }

  /**
   * Prepares the container (root, network, cgroups, config.json) and, unless `start` is false
   * (tsctl create), starts it. A failure undoes every step.
   */
  async create(id: string, spec: ContainerSpec, start = true): Promise<Launched> {
    const { storage, cgroups, runtime } = this.ports;
    const lowers = await storage.ensureImage(spec.imageDigest, spec.layers);
    const bundle = this.layout.bundle(id);
    const rootfs = this.layout.rootfs(id);
    // a redelivered request after a crash mid-create: start from a clean slate
    if (existsSync(bundle)) await this.teardown(id);
    mkdirSync(rootfs, { recursive: true });
    let step: Step = 'mount';
    try {
      // a run --rm's writable layer goes with it: nothing of it need reach the disk
      await storage.mount(id, lowers, rootfs, { volatile: spec.autoRemove === true });
      // a volume empty at its first use takes the image's content at its path (docker's copy-up)
      for (const m of spec.mounts ?? []) if (m.type === 'volume' && !m.noCopy) await copyUp(join(this.layout.volumes, checkVolumeName(m.source)), rootfs, m.target);
      step = 'network';
      const net = await this.join(id, spec);
      step = 'cgroups';
      const cgroupProcs = await cgroups.create(id, spec.resources ?? {});
      step = 'start';
      const cfg: ContainerConfig = {
        // --uts host: the host's name is the container's, HOSTNAME included (docker's)
        id, hostname: spec.utsMode === 'host' ? hostName() : spec.hostname, args: spec.args, env: spec.env, cwd: spec.workdir,
        network: net.mode === 'path' ? { mode: 'path', path: net.path! } : { mode: net.mode },
        mounts: [
          ...(net.mounts ?? []).map((m) => ({ source: m.source, destination: m.destination, type: 'bind', options: ['rbind', 'ro'] })),
          ...userMounts(spec.mounts ?? [], this.layout.volumes),
        ],
        rootfsPath: rootfs,
        ...confinement(spec.security),
        ...this.shared(spec),
        ...userOf(rootfs, spec),
        ...(spec.readOnly ? { readonlyRootfs: true } : {}),
        ...(spec.init ? { init: true } : {}),
        ...hostConfig(spec),
        ...(spec.tty ? { tty: spec.tty } : {}),
        ...(spec.interactive ? { stdin: true } : {}),
      };
      // --privileged: the host's device nodes first; a --device of the same path replaces one
      if (spec.privileged) cfg.devices = [...hostDevices(), ...(cfg.devices ?? [])];
      if (!start) {
        // what `runc create` leaves: a bundle a later start runs as it is
        writeFileSync(join(bundle, 'config.json'), JSON.stringify(createSpec(cfg)));
        return { pid: 0, runningAt: 0, ...(net.ip ? { ip: net.ip } : {}) };
      }
      const r = await runtime.start(id, bundle, createSpec(cfg), { cgroupProcs });
      return { pid: r.pid, runningAt: r.runningAt, ...(net.ip ? { ip: net.ip } : {}) };
    } catch (err) {
      await this.teardown(id).catch(() => undefined);
      throw new ContainerError(`${step}: ${(err as Error).message}`, id, exitCodeOf(step, err), { cause: err });
    }
  }

  /**
   * Starts a created or exited container again with what it was prepared with: the same
   * writable layer, network namespace (and address), cgroups and config.json. A failure
   * leaves it as it was (exited), for another start or its removal. `logFrom`: where the
   * new run's output begins in its log.
   */
  async start(id: string, spec?: ContainerSpec): Promise<Launched & { logFrom: number }> {
    const short = id.slice(0, 12);
    if (this.status(id).state === 'running') throw new ContainerError(`container ${short} is already running`, id);
    const bundle = this.layout.bundle(id);
    let oci: OciSpec;
    try { oci = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as OciSpec; } catch (err) {
      throw new ContainerError(`container ${short} has nothing prepared on this node (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): remove it and run it anew`, id);
    }
    try { oci = this.peersNow(oci, spec); } catch (err) { throw new ContainerError((err as Error).message, id); }
    let logFrom = 0;
    try { logFrom = statSync(this.logPath(id)).size; } catch { /* first run: a new log */ }
    try {
      const r = await this.ports.runtime.start(id, bundle, oci, { cgroupProcs: this.ports.cgroups.procsFiles(id), again: true });
      return { pid: r.pid, runningAt: r.runningAt, logFrom };
    } catch (err) {
      throw new ContainerError(`start: ${(err as Error).message}`, id, exitCodeOf('start', err), { cause: err });
    }
  }

  /**
   * A namespace joined through a peer container's /proc/<pid>/ns file names the peer's pid of
   * the time it was prepared; the peer may have run again since (and the pid be another
   * process's): the peers' namespaces are looked up anew, and a peer not running refuses the start.
   */
  private peersNow(oci: OciSpec, spec: ContainerSpec | undefined): OciSpec {
    const stale = oci.linux?.namespaces?.some((n) => n.path?.startsWith('/proc/'));
    if (!stale) return oci;
    if (!spec) throw new Error('its spec is not known here: it joins another container\'s namespaces');
    const paths: Partial<Record<string, string>> = { ...this.shared(spec).shared };
    if (spec.network.startsWith('container:')) paths.network = this.peerNs(spec.network.slice(10), 'net', '--network');
    const namespaces = oci.linux!.namespaces.map((n) => {
      if (!n.path?.startsWith('/proc/')) return n;
      const now = paths[n.type];
      if (!now) throw new Error(`its ${n.type} namespace's peer is not known`);
      return { ...n, path: now };
    });
    return { ...oci, linux: { ...oci.linux!, namespaces } };
  }

  private peerNs(peer: string, type: string, flag: string): string {
    const st = this.status(peer);
    if (st.state !== 'running' || !st.pid) throw new Error(`container ${peer.slice(0, 12)} is not running here: ${flag} container: needs a running container on this node`);
    return `/proc/${st.pid}/ns/${type}`;
  }

  /** --pid/--ipc container:X: the peer's namespace files (it must run here); host: the agent's own. */
  private shared(spec: ContainerSpec): Pick<ContainerConfig, 'shared'> {
    const out: NonNullable<ContainerConfig['shared']> = {};
    for (const [type, mode] of [['pid', spec.pidMode], ['ipc', spec.ipcMode], ['uts', spec.utsMode]] as const) {
      if (mode === undefined) continue;
      if (mode === 'host') { out[type] = 'host'; continue; }
      const peer = mode.slice(10);
      const st = this.status(peer);
      if (st.state !== 'running' || !st.pid) throw new Error(`container ${peer.slice(0, 12)} is not running here: --${type} container: needs a running container on this node`);
      out[type] = `/proc/${st.pid}/ns/${type}`;
    }
    return Object.keys(out).length ? { shared: out } : {};
  }

  private async join(id: string, spec: ContainerSpec): Promise<NetworkJoin> {
    if (spec.network === 'none') return { mode: 'none' };
    if (spec.network === 'host') return { mode: 'host' };
    if (spec.network.startsWith('container:')) {
      const peer = spec.network.slice(10);
      const st = this.status(peer);
      if (st.state !== 'running' || !st.pid) throw new Error(`container ${peer.slice(0, 12)} is not running here: --network container: needs a running container on this node`);
      return { mode: 'path', path: `/proc/${st.pid}/ns/net` };
    }
    return this.ports.network.attach(id, spec);
  }

  /**
   * Runs a process in the running container `id` as its own (namespaces, root, cgroups,
   * capabilities, seccomp, from the bundle's config.json); resolves once it has exec'd.
   * A process that cannot run is a ContainerError with docker's code (127, 126, else 125).
   */
  async exec(id: string, execId: string, p: ExecProcess): Promise<{ pid: number; runningAt: number; stdinFd?: number; ctlFd?: number }> {
    const short = id.slice(0, 12);
    if (this.status(id).state !== 'running') throw new ContainerError(`container ${short} is not running`, id);
    // a frozen group would freeze the exec before its exec: sl_spawn would wait forever
    if (this.ports.cgroups.frozen(id)) throw new ContainerError(`container ${short} is paused, unpause the container before exec`, id);
    let spec: OciSpec;
    try { spec = JSON.parse(readFileSync(join(this.layout.bundle(id), 'config.json'), 'utf8')) as OciSpec; } catch (err) {
      throw new ContainerError(`container ${short}: its config.json cannot be read: ${(err as Error).message}`, id);
    }
    try {
      return await this.ports.runtime.exec(id, execId, spec, p, this.ports.cgroups.procsFiles(id));
    } catch (err) {
      throw new ContainerError(execFailure(short, p, err), id, exitCodeOf('start', err), { cause: err });
    }
  }

  execStatus(id: string, execId: string): ContainerStatus { return this.ports.runtime.execStatus(id, execId); }
  execIds(id: string): string[] { return this.ports.runtime.execIds(id); }
  waitExecExit(id: string, execId: string, signal?: AbortSignal): Promise<ExitStatus> { return this.ports.runtime.waitExecExit(id, execId, signal); }
  execLogPath(id: string, execId: string): string { return join(this.ports.runtime.execDir(id, execId), 'exec.log'); }
  deleteExec(id: string, execId: string): void { this.ports.runtime.deleteExec(id, execId); }

  kill(id: string, signal: string): void {
    this.ports.runtime.kill(id, signal as NodeJS.Signals);
    // a frozen task acts on no signal (v1 not even SIGKILL) until it is thawed, as docker does for kill
    if (signal === 'SIGKILL' || signal === 'KILL' || signal === '9') void this.thaw(id);
  }

  /** tsctl pause: the freezer stops every task of the container (v1 freezer.state, v2 cgroup.freeze). */
  async pause(id: string): Promise<void> {
    if (this.status(id).state !== 'running') throw new ContainerError(`container ${id.slice(0, 12)} is not running`, id);
    await this.ports.cgroups.freeze(id, true);
  }

  async unpause(id: string): Promise<void> {
    if (this.status(id).state !== 'running') throw new ContainerError(`container ${id.slice(0, 12)} is not running`, id);
    await this.ports.cgroups.freeze(id, false);
  }

  /** Thaws a paused container so a stop or kill signal reaches it; nothing to do otherwise. */
  private async thaw(id: string): Promise<void> {
    try { if (this.ports.cgroups.frozen(id)) await this.ports.cgroups.freeze(id, false); } catch { /* no freezer: nothing was frozen */ }
  }

  /** A container this host never had (or fully removed) reads as 'unknown', not an error. */
  status(id: string): ContainerStatus {
    try { return this.ports.runtime.status(id); } catch (err) {
      if (err instanceof RuntimeError && (err.reason === 'not-found' || err.reason === 'bad-id')) return { state: 'unknown' };
      throw err;
    }
  }

  /** status(id).state === 'running' for less: one stat once it has exited. */
  running(id: string): boolean {
    try { return this.ports.runtime.isRunning(id); } catch (err) {
      if (err instanceof RuntimeError && (err.reason === 'not-found' || err.reason === 'bad-id')) return false;
      throw err;
    }
  }

  waitExit(id: string, signal?: AbortSignal): Promise<ExitStatus> { return this.ports.runtime.waitExit(id, signal); }

  logPath(id: string): string { return this.ports.runtime.defaultLogPath(id); }

  /** The FIFO a -i/-t container's monitor reads stdin and resize records from (agent/attach.ts). */
  attachPath(id: string): string { return join(this.ports.runtime.stateDir(id), 'attach'); }

  oomKilled(id: string): boolean { return this.ports.cgroups.oomKilled(id); }

  update(id: string, r: ResourceLimits): Promise<void> { return this.ports.cgroups.update(id, r); }

  /** Stops with `signal` (TERM, or the container's --stop-signal), then KILL after `timeout` seconds; resolves with the exit. */
  async stop(id: string, timeout: number, signal = 'SIGTERM'): Promise<ExitStatus | undefined> {
    if (this.status(id).state !== 'running') return undefined;
    const ac = new AbortController();
    const exited = this.waitExit(id, ac.signal);
    try { this.kill(id, signal); } catch { /* already gone */ }
    await this.thaw(id);
    const t = setTimeout(() => { try { this.kill(id, 'SIGKILL'); } catch { /* gone */ } }, timeout * 1000);
    try { return await exited; } finally { clearTimeout(t); ac.abort(); }
  }

  /**
   * Kills the container and resolves with its exit (at once if it had exited already).
   * `removing`: the container is being removed, so its network goes now, while the kernel
   * ends it and its exit is recorded, rather than after (the links' round was the longest
   * strand of a removal); teardown() waits for that detach instead of starting another.
   */
  async killNow(id: string, removing = false): Promise<ExitStatus> {
    const exited = this.waitExit(id);
    try { this.kill(id, 'SIGKILL'); } catch { /* raced with its own exit */ }
    if (removing) this.detach(id);
    return exited;
  }

  /** Detaches in flight, by container: one detach per removal however many ask for it. */
  private readonly detaching = new Map<string, Promise<void>>();

  private detach(id: string): Promise<void> {
    let p = this.detaching.get(id);
    if (!p) {
      p = this.ports.network.detach(id).then(() => failpoint('remove:after-early-detach'));
      // a failure is reported by the teardown that waits for it, which then forgets it (a retry detaches anew)
      p.catch(() => undefined);
      this.detaching.set(id, p);
    }
    return p;
  }

  /**
   * Removes everything the container had on this host. Idempotent. `first`: ahead of the
   * removals waiting for the thread pool: a `run --rm` has its client waiting on this one
   * container, while a batch `rm` waits for its whole batch, which ends no later for it.
   */
  async remove(id: string, first = false): Promise<void> {
    if (this.running(id)) await this.killNow(id, true);
    await this.teardown(id, first);
  }

  /**
   * Three strands at once, each off the event loop where the kernel or the disk is slow: the
   * network (links and namespace on worker threads, in rounds with other removals:
   * network/manager.ts); the cgroups' rmdirs (few at once: the kernel does them one at a time
   * under its cgroup_mutex anyway); and, one call at a time through the thread pool, the
   * overlay's umount, the writable layer and the bundle, the runtime's state. Every part runs
   * even when another fails.
   */
  private async teardown(id: string, first = false): Promise<void> {
    const { storage, cgroups, runtime } = this.ports;
    const errors: string[] = [];
    const attempt = async (f: () => unknown) => { try { await f(); } catch (err) { errors.push((err as Error).message); } };
    await Promise.all([
      attempt(() => this.detach(id).finally(() => this.detaching.delete(id))),
      this.groups.run(() => attempt(() => cgroups.remove(id)), first),
      this.files.run(async () => {
        await attempt(async () => {
          await storage.release(id, this.layout.rootfs(id));
          await rmTreeAsync(this.layout.bundle(id));
        });
        await attempt(async () => { if (existsSync(runtime.stateDir(id))) await runtime.deleteAsync(id); });
      }, first),
    ]);
    if (errors.length) throw new Error(`cleanup of ${id.slice(0, 12)}: ${errors.join('; ')}`);
  }

  /** Ids that have anything on this host (bundle, writable layer or runtime state). */
  known(): string[] {
    return [...new Set([...this.ports.runtime.list(), ...this.ports.storage.known(), ...listDir(this.layout.bundles)])].filter(isContainerId);
  }
}

function listDir(d: string): string[] {
  try { return readdirSync(d); } catch { return []; }
}

/**
 * -v and --tmpfs as the runtime mounts them. A named volume is a directory of this node made
 * at first use and kept after its containers (docker's local driver); a missing bind source
 * is made, as docker's -v makes it (the controller lets only admins bind host paths).
 */
export function userMounts(ms: VolumeMount[], volumes: string): { source: string; destination: string; type: string; options: string[] }[] {
  return ms.map((m) => {
    const ro = m.readOnly ? 'ro' : 'rw';
    if (m.type === 'tmpfs') {
      return { source: 'tmpfs', destination: m.target, type: 'tmpfs', options: ['nosuid', 'nodev', ro, ...(m.size ? [`size=${m.size}`] : []), `mode=${(m.mode ?? 0o1777).toString(8)}`] };
    }
    const source = m.type === 'volume' ? join(volumes, m.source!, '_data') : m.source!;
    if (m.type === 'volume') mkdirSync(source, { recursive: true, mode: 0o755 });
    else if (!existsSync(source)) throw new Error(`-v ${m.source}:${m.target}: ${m.source} does not exist on this node`);
    return { source, destination: m.target, type: 'bind', options: ['rbind', ro] };
  });
}
