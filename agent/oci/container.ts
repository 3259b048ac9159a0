// sl-runtime's verbs on one container, over the agent's own start path: the bundle's
// config.json is encoded by agent/runtime/launch.ts and started by sl-monitor (C), the
// same binary and code the agent uses, with two launch keys of sl-runtime's own:
//   hold <dir>/exec.fifo  the init makes the fifo and stops right before its exec (runc's exec fifo): create
//                         returns with the container "created"; start writes one byte
//   inherit_stdio 1       the process gets sl-runtime's stdio, as runc's does
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, realpathSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync, constants } from 'node:fs';
import { constants as osc } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroupManager, detect, hierarchies, type CgroupManager } from '../cgroups/index.js';
import { defaultDeviceRules, deviceCgroupOf, deviceLaunch } from '../cgroups/devices.js';
import { encodeLaunch } from '../runtime/launch.js';
import { resolveUser } from '../runtime/passwd.js';
import { encodeExecLaunch, type ExecProcess } from '../runtime/exec-launch.js';
import { loadBundle, type BundleSpec, type OciHook } from './bundle.js';
import { expandCgroupMounts } from './cgroup-mount.js';
import { detachChrootMount } from './chroot-mount.js';
import { grantableProcess } from './capabilities.js';
import { runHooks, runHooksWarn } from './hooks.js';
import { groupPath, ociWrites, toResources } from './resources.js';
import { containerDir, load, NotFoundError, ociState, startTime, type Loaded, type Meta, type OciState } from './state.js';

import { RuntimeCliError } from './errors.js';

export { RuntimeCliError };

const ERRNO_NAMES = new Map(Object.entries(osc.errno).map(([k, v]) => [v, k]));

/** native/build/sl-monitor of this checkout (dist/agent/oci → repository root). */
export function monitorPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new RuntimeCliError('sl-monitor not found (build the repository: npm run build)');
    dir = up;
  }
  return join(dir, 'native', 'build', 'sl-monitor');
}

/** The cgroup node of a --root: two roots (tests) never share groups. */
export function cgroupNode(root: string): string {
  return `slrt-${createHash('sha256').update(root).digest('hex').slice(0, 10)}`;
}

function atomicWrite(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, path);
}

interface Report { ok: boolean; pid: number; monitorPid: number; error?: string }

/** Pure: struct sl_report (monitor_proto.h) → the outcome. */
export function parseReport(b: Buffer): Report {
  if (b.length < 568) return { ok: false, pid: 0, monitorPid: 0, error: 'sl-monitor exited without a report' };
  const cstr = (o: number, n: number) => { const s = b.subarray(o, o + n); const z = s.indexOf(0); return s.subarray(0, z < 0 ? n : z).toString(); };
  const status = b.readInt32LE(0), errnum = b.readInt32LE(4), monitorPid = b.readInt32LE(8), pid = b.readInt32LE(12);
  if (status === 0) return { ok: true, pid, monitorPid };
  const syscall = cstr(24, 32), path = cstr(56, 512);
  return { ok: false, pid, monitorPid, error: `${syscall}${path ? ` ${path}` : ''}: ${ERRNO_NAMES.get(errnum) ?? `errno ${errnum}`}` };
}

/** Starts sl-monitor with the launch on fd 3 and the report pipe on fd 4; the caller's stdio passes through. */
function spawnMonitor(launch: Buffer, scratch: string, stdin: number | 'inherit' = 'inherit'): Promise<Report> {
  const lpath = join(scratch, `.launch.${process.pid}`);
  writeFileSync(lpath, launch, { mode: 0o600 });
  const lfd = openSync(lpath, constants.O_RDONLY);
  unlinkSync(lpath);
  return new Promise((resolve) => {
    const child = spawn(monitorPath(), [], { stdio: [stdin, 'inherit', 'inherit', lfd, 'pipe'], detached: true });
    closeSync(lfd);
    const chunks: Buffer[] = [];
    let settled = false;
    const done = (r: Report) => { if (!settled) { settled = true; resolve(r); } };
    child.on('error', (e) => done({ ok: false, pid: 0, monitorPid: 0, error: `spawn ${monitorPath()}: ${e.message}` }));
    const rep = child.stdio[4] as NodeJS.ReadableStream | null;
    if (!rep) return done({ ok: false, pid: 0, monitorPid: 0, error: 'no report pipe' });
    rep.on('data', (d: Buffer) => chunks.push(d));
    rep.on('end', () => done(parseReport(Buffer.concat(chunks))));
    rep.on('error', () => done(parseReport(Buffer.concat(chunks))));
  });
}

export interface CreateOptions { bundle: string; pidFile?: string }

function cgroup(meta: Pick<Meta, 'cgroupNode' | 'id' | 'cgroupPath'>): CgroupManager {
  return cgroupManager(detect(), meta.cgroupNode, meta.id, meta.cgroupPath);
}

function stateOf(l: Loaded): OciState {
  return ociState(l.meta, l.status, l.running?.pid);
}

function specOf(l: Loaded): BundleSpec {
  return JSON.parse(readFileSync(join(l.dir, 'config.json'), 'utf8')) as BundleSpec;
}

export class OciRuntime {
  constructor(readonly root: string) {}

  state(id: string): OciState { return stateOf(load(this.root, id)); }

  async create(id: string, o: CreateOptions): Promise<OciState> {
    const dir = containerDir(this.root, id);
    const { bundle, spec, rootfs, noMountNamespace } = loadBundle(o.bundle);
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new RuntimeCliError(`container with id "${id}" already exists`);
      throw e;
    }
    const node = cgroupNode(this.root);
    let cgroupPath: string;
    try { cgroupPath = groupPath(spec.linux.cgroupsPath, `swarmlite/${node}`, id); } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw new RuntimeCliError(`${bundle}/config.json: ${(e as Error).message}`);
    }
    const det = detect();
    // never adopt a group someone else has: delete removes (and kills) what is in it
    const taken = hierarchies(det).map((h) => join(h, cgroupPath)).find((d) => existsSync(d));
    if (taken) {
      rmSync(dir, { recursive: true, force: true });
      throw new RuntimeCliError(`${bundle}/config.json: linux.cgroupsPath: ${taken} already exists`);
    }
    const meta: Meta = {
      id, bundle, rootfs, created: new Date().toISOString(), annotations: spec.annotations ?? {}, cgroupNode: node, cgroupPath,
      ...(noMountNamespace ? { noMountNamespace } : {}),
    };
    let mgr: CgroupManager | undefined;
    try {
      writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
      atomicWrite(join(dir, 'meta.json'), JSON.stringify(meta));
      const fifo = join(dir, 'exec.fifo'); // made by the init (C), which then holds it open
      mgr = cgroup(meta);
      mgr.create();
      mgr.apply(toResources(spec.linux.resources));
      const procs = mgr.procsFiles();
      applyOciWrites(procs, cgroupPath, mgr.version, spec.linux.resources);
      // runc's order: the spec's rules, then each linux.devices node, then the devices every
      // container gets (its AllowedDevices), so a deny-all spec still has /dev/null.
      const rules = [
        ...(spec.linux.resources?.devices ?? []),
        ...(spec.linux.devices ?? []).map((d) => ({ allow: true, type: d.type === 'b' ? 'b' as const : 'c' as const, major: d.major, minor: d.minor, access: 'rwm' })),
        ...defaultDeviceRules().filter((r) => r.allow),
      ];
      const cg = rules.length ? deviceCgroupOf(procs) : undefined;
      const home = withHome(spec, rootfs);
      const launch = encodeLaunch({ ...home, process: grantableProcess(home.process, 'process.capabilities'), mounts: expandCgroupMounts(spec.mounts, procs, mgr.version, cgroupPath) }, {
        stateDir: dir, logPath: '/dev/null', cgroupProcs: procs, bundleDir: bundle, hold: fifo, inheritStdio: true, exactCaps: true, chroot: noMountNamespace,
        ...(cg ? deviceLaunch(cg, rules) : {}),
      });
      const rep = await spawnMonitor(launch, dir);
      if (!rep.ok) throw new RuntimeCliError(`container "${id}": ${rep.error}`);
      const l = load(this.root, id);
      if (o.pidFile) atomicWrite(o.pidFile, String(rep.pid));
      // The hooks of the runtime's namespace run while the init waits on the fifo.
      const st = { ...stateOf(l), status: 'creating' as const };
      runHooks('prestart', spec.hooks?.prestart, st);
      runHooks('createRuntime', spec.hooks?.createRuntime, st);
      return this.state(id);
    } catch (e) {
      await this.destroy(id, dir, mgr).catch(() => undefined);
      throw e;
    }
  }

  /**
   * Lets the held init exec its command (runc start): the startContainer hooks, then one byte
   * on the fifo, which is then removed. A failed startContainer hook fails start and kills the
   * container (runtime-spec: generate an error, stop the container; delete runs poststop).
   */
  async start(id: string): Promise<OciState> {
    const l = load(this.root, id);
    if (l.status !== 'created') throw new RuntimeCliError(`cannot start container "${id}": it is ${l.status}, not created`);
    const hooks = specOf(l).hooks?.startContainer ?? [];
    for (const [i, h] of hooks.entries()) {
      const err = await this.startContainerHook(l, i, h);
      if (err) {
        try { process.kill(l.running!.pid, 'SIGKILL'); } catch { /* gone */ }
        await waitFor(() => startTime(l.running!.pid) !== l.running!.pidStart, 10_000);
        throw new RuntimeCliError(`cannot start container "${id}": ${err}`);
      }
    }
    const fifo = join(l.dir, 'exec.fifo');
    let fd: number;
    try {
      // O_NONBLOCK: ENXIO instead of blocking when no init holds the other end any more
      fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    } catch (e) {
      throw new RuntimeCliError(`cannot start container "${id}": ${(e as NodeJS.ErrnoException).code === 'ENXIO' ? 'its process is gone' : (e as Error).message}`);
    }
    // the fifo goes first: from here on state says running, even if two starts race
    try { unlinkSync(fifo); } catch {
      closeSync(fd);
      throw new RuntimeCliError(`cannot start container "${id}": already started`);
    }
    writeSync(fd, Buffer.from('0'));
    closeSync(fd);
    const spec = specOf(l);
    // runc hands poststart "running", even when the process has already exited; the pid is
    // the container process's all the same (runtime-spec: REQUIRED while created or running)
    const st = { ...this.state(id), status: 'running' as const, pid: l.running!.pid };
    runHooksWarn('poststart', spec.hooks?.poststart, st);
    return st;
  }

  kill(id: string, sig: string, all = false): void {
    const l = load(this.root, id);
    if (l.status !== 'created' && l.status !== 'running') throw new RuntimeCliError(`container "${id}" is not running (${l.status})`);
    const signal = parseSignal(sig);
    const pids = all ? cgroup(l.meta).pids() : [l.running!.pid];
    for (const p of pids) {
      try { process.kill(p, signal); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e; }
    }
  }

  ps(id: string): number[] {
    const l = load(this.root, id);
    try { return cgroup(l.meta).pids(); } catch { return []; }
  }

  /**
   * Removes a stopped container (force: kills a created or running one first), then poststop.
   * runtime-spec: deleting a container that is not stopped MUST generate an error, and a
   * created one is not (runc removes it anyway; runtime-tools' delete checks for the error).
   */
  async delete(id: string, force: boolean): Promise<void> {
    let l: Loaded;
    try {
      l = load(this.root, id);
    } catch (e) {
      if (e instanceof NotFoundError && force) { rmSync(containerDir(this.root, id), { recursive: true, force: true }); return; }
      throw e;
    }
    if ((l.status === 'running' || l.status === 'created') && !force) throw new RuntimeCliError(`cannot delete container "${id}" that is not stopped: ${l.status} (use --force)`);
    const spec = specOf(l);
    await this.destroy(id, l.dir, cgroup(l.meta));
    runHooksWarn('poststop', spec.hooks?.poststop, { ...stateOf(l), status: 'stopped', pid: 0 });
  }

  /** Kills whatever of the container is left, waits for its monitor's record, removes groups and files. */
  private async destroy(id: string, dir: string, mgr: CgroupManager | undefined): Promise<void> {
    let l: Loaded | undefined;
    try { l = load(this.root, id); } catch { /* never got as far as meta.json */ }
    if (l?.running && (l.status === 'created' || l.status === 'running')) {
      try { process.kill(l.running.pid, 'SIGKILL'); } catch { /* gone */ }
      await waitFor(() => startTime(l!.running!.pid) !== l!.running!.pidStart, 10_000);
    }
    if (mgr) await mgr.remove({ kill: true }).catch(() => undefined);
    if (l?.running) await waitFor(() => startTime(l!.running!.monitorPid) !== l!.running!.monitorStart, 5_000);
    // no mount namespace: the mounts are the caller's, under the rootfs bind the init made
    // (chroot.mnt exists only then); the container's processes are gone by now
    if (l && detachChrootMount(dir, l.meta.rootfs) === 'not-here') {
      process.stderr.write(`sl-runtime: warning: container "${id}": its rootfs mount at ${l.meta.rootfs} is not in this mount namespace (left as it is)\n`);
    }
    rmSync(dir, { recursive: true, force: true });
  }

  /** Resolves with the container's exit (code, 128+signal) once its monitor has recorded it. */
  async waitExit(id: string): Promise<number> {
    for (;;) {
      const l = load(this.root, id);
      if (l.exit) return l.exit.code;
      if (l.status === 'stopped') {
        // the monitor writes exit.json right after the exit: give it a moment
        await new Promise((r) => setTimeout(r, 50));
        const again = load(this.root, id);
        if (again.exit) return again.exit.code;
        if (l.running && startTime(l.running.monitorPid) !== l.running.monitorStart) return 255;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** runc exec: a process in the container's namespaces, cgroups and privileges, through sl-monitor's exec mode. */
  async exec(id: string, p: ExecProcess, pidFile?: string): Promise<{ pid: number; wait: () => Promise<number> }> {
    const l = load(this.root, id);
    if (l.status !== 'running' && l.status !== 'created') throw new RuntimeCliError(`cannot exec in container "${id}": it is ${l.status}`);
    // setns(mount) into the caller's own namespace would start the process at the host's root
    if (l.meta.noMountNamespace) throw new RuntimeCliError(`cannot exec in container "${id}": it has no mount namespace of its own (sl-runtime enters containers by setns)`);
    const spec = specOf(l);
    const execRoot = join(l.dir, 'exec');
    mkdirSync(execRoot, { recursive: true });
    let n = 0;
    let dir: string;
    for (;; n++) {
      dir = join(execRoot, String(n));
      try { mkdirSync(dir); break; } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; }
    }
    const ex = await this.spawnExec(l, spec, p, dir, 'inherit');
    if (pidFile) atomicWrite(pidFile, String(ex.pid));
    return ex;
  }

  /** One process through sl-monitor's exec mode in dir (removed once it has exited). */
  private async spawnExec(l: Loaded, spec: BundleSpec, p: ExecProcess, dir: string, stdin: number | 'inherit'): Promise<{ pid: number; wait: () => Promise<number> }> {
    const launch = encodeExecLaunch({ ...spec, process: grantableProcess(spec.process, 'process.capabilities') }, p, {
      stateDir: dir, logPath: '/dev/null', pid: l.running!.pid, pidStart: l.running!.pidStart, cgroupProcs: cgroup(l.meta).procsFiles(), inheritStdio: true, exactCaps: true,
    });
    const rep = await spawnMonitor(launch, dir, stdin);
    if (!rep.ok) { rmSync(dir, { recursive: true, force: true }); throw new RuntimeCliError(`exec in container "${l.meta.id}": ${rep.error}`); }
    const wait = async () => {
      for (;;) {
        try {
          const ex = JSON.parse(readFileSync(join(dir, 'exit.json'), 'utf8')) as { code: number };
          rmSync(dir, { recursive: true, force: true });
          return ex.code;
        } catch { /* not yet */ }
        if (startTime(rep.monitorPid) === undefined && !existsSync(join(dir, 'exit.json'))) { rmSync(dir, { recursive: true, force: true }); return 255; }
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    return { pid: rep.pid, wait };
  }

  /**
   * One startContainer hook: its path resolved and run in the container's namespaces, root
   * and cgroups with the process's privileges (runc runs it in the init right before the
   * exec), the state on its stdin, killed at its timeout. Through the exec mode, the
   * container's environment is under the hook's env. Returns why it failed, or undefined.
   */
  private async startContainerHook(l: Loaded, i: number, h: OciHook): Promise<string | undefined> {
    const dir = join(l.dir, 'hook');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    const input = join(dir, 'state.json');
    writeFileSync(input, JSON.stringify({ ...stateOf(l), status: 'created' }));
    const fd = openSync(input, constants.O_RDONLY);
    const what = `startContainer hook ${i} (${h.path})`;
    let ex;
    try {
      ex = await this.spawnExec(l, specOf(l), { args: [h.path, ...(h.args ?? []).slice(1)], env: h.env ?? [] }, dir, fd);
    } catch (e) {
      return `${what}: ${(e as Error).message}`;
    } finally {
      closeSync(fd);
    }
    let timedOut = false;
    const timer = h.timeout ? setTimeout(() => { timedOut = true; try { process.kill(ex.pid, 'SIGKILL'); } catch { /* gone */ } }, h.timeout * 1000) : undefined;
    const code = await ex.wait();
    if (timer) clearTimeout(timer);
    if (timedOut) return `${what}: timed out after ${h.timeout} s`;
    return code === 0 ? undefined : `${what}: exited with ${code}`;
  }
}

/**
 * runc's HOME: unless process.env has one, the user's home from the container's /etc/passwd
 * ("/" without one). The file is read only when it resolves inside the root: a link out of it
 * must not hand the container a line of the host's passwd.
 */
export function withHome(spec: BundleSpec, rootfs: string): BundleSpec {
  const env = spec.process.env ?? [];
  if (env.some((e) => e.startsWith('HOME='))) return spec;
  let home = '/';
  try {
    const path = realpathSync(join(rootfs, 'etc', 'passwd'));
    if (path.startsWith(rootfs.endsWith('/') ? rootfs : rootfs + '/') && statSync(path).size <= 4 << 20) {
      home = resolveUser(String(spec.process.user?.uid ?? 0), readFileSync(path, 'utf8'), '').home || '/';
    }
  } catch { /* no passwd, or no such user: "/" as runc */ }
  return { ...spec, process: { ...spec.process, env: [...env, `HOME=${home}`] } };
}

/**
 * The linux.resources the agent's Resources have no field for (ociWrites), into the
 * container's own groups. A file the kernel does not offer (no RT group scheduling, no swap
 * accounting, no net_cls or hugetlb hierarchy mounted) is a warning, but a huge page size
 * the mounted hugetlb controller has no file for is an error; a refused write fails create
 * as runc's does, except the kernel memory limit, which newer kernels refuse for every group
 * (deprecated in cgroup v1).
 */
function applyOciWrites(procsFiles: readonly string[], group: string, version: 'v1' | 'v2', r: BundleSpec['linux']['resources']): void {
  const { writes, unsupported } = ociWrites(r, version);
  for (const f of unsupported) process.stderr.write(`sl-runtime: warning: linux.resources.${f}: cgroup v2 has no such setting, ignored\n`);
  const dirs = procsFiles.map((f) => dirname(f));
  const dirOf = (controller: string): string | undefined => {
    if (version === 'v2') return dirs[0];
    return dirs.find((d) => d.endsWith(`/${group}`) && basename(d.slice(0, d.length - group.length - 1)).split(',').includes(controller));
  };
  for (const w of writes) {
    const dir = dirOf(w.controller);
    const path = dir && join(dir, w.file);
    // a hugetlb group without the page size's file: a size this kernel has not (3MB) is an error
    if (w.controller === 'hugetlb' && dir && !existsSync(path!)) throw new RuntimeCliError(`linux.resources.${w.field}: this kernel has no ${w.file} (no such huge page size)`);
    if (!path || !existsSync(path)) { process.stderr.write(`sl-runtime: warning: linux.resources.${w.field}: this kernel offers no ${w.file}, ignored\n`); continue; }
    try { writeFileSync(path, w.value); } catch (e) {
      const why = `linux.resources.${w.field}: writing ${JSON.stringify(w.value)} to ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
      if (w.file.startsWith('memory.kmem.')) process.stderr.write(`sl-runtime: warning: ${why}\n`);
      else throw new RuntimeCliError(why);
    }
  }
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/** runc's signal argument: "KILL", "SIGKILL" or "9"; 0 (no signal: is the process there) as runc takes it. */
export function parseSignal(s: string): number {
  if (/^\d{1,2}$/.test(s)) {
    const n = Number(s);
    if (n >= 0 && n <= 64) return n;
  }
  const up = s.toUpperCase();
  const name = up.startsWith('SIG') ? up : `SIG${up}`;
  const n = (osc.signals as Record<string, number>)[name];
  if (n === undefined) throw new RuntimeCliError(`unknown signal ${JSON.stringify(s.slice(0, 40))}`);
  return n;
}

