// A container's life on this host: layer ▸ snapshot ▸ mount ▸ network ▸ cgroup ▸ spec ▸
// runtime, and the reverse on removal. Plain TypeScript over the parts; the parts do the
// I/O (storage, runtime and native/ for syscalls).
import { mkdirSync, rmSync, existsSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ContainerSpec, ResourceLimits } from '../shared/events.js';
import { LayerStore } from './storage/layers.js';
import { Snapshotter } from './storage/snapshotter.js';
import { mountAll, unmount, isMounted } from './storage/mounts.js';
import { createSpec, type ContainerConfig } from './runtime/spec.js';
import { Runtime, RuntimeError, type ExitStatus, type ContainerStatus } from './runtime/runtime.js';

export interface NetworkAttachment { mode: 'none' | 'host' | 'path'; path?: string; ip?: string; mounts?: { source: string; destination: string }[] }

/** What the container host needs from networking (agent/network provides it). */
export interface NetworkPlugin {
  attach(id: string, spec: ContainerSpec, peer: (id: string) => number | undefined): Promise<NetworkAttachment>;
  detach(id: string): Promise<void>;
}

/** What the container host needs from cgroups (agent/cgroups provides it). */
export interface CgroupPlugin {
  create(id: string, r: ResourceLimits): Promise<string[]>;  // cgroup.procs files to join before exec
  update(id: string, r: ResourceLimits): Promise<void>;
  oomKilled(id: string): boolean;
  remove(id: string): Promise<void>;
}

export class ContainerError extends Error {
  constructor(message: string, readonly id: string, readonly exitCode = 125, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ContainerError';
  }
}

export interface Started { pid: number; runningAt: number; ip?: string }

export class ContainerHost {
  readonly runtime: Runtime;
  readonly layers: LayerStore;
  private snapshots: Snapshotter;
  private bundles: string;

  constructor(
    stateDir: string,
    private fetchLayer: (digest: string) => Promise<Readable>,
    private net?: NetworkPlugin,
    private cgroups?: CgroupPlugin,
  ) {
    this.layers = new LayerStore(join(stateDir, 'layers'));
    this.snapshots = new Snapshotter(join(stateDir, 'snapshots'));
    this.bundles = join(stateDir, 'bundles');
    mkdirSync(this.bundles, { recursive: true });
    this.runtime = new Runtime(join(stateDir, 'runtime'));
  }

  bundleDir(id: string): string { return join(this.bundles, id); }

  /** Image layer fetch and unpack: off the start path when the layer is already here. */
  async ensureImage(spec: ContainerSpec): Promise<string> {
    return this.layers.ensure(spec.imageDigest, () => this.fetchLayer(spec.imageDigest));
  }

  async create(id: string, spec: ContainerSpec, peerPid: (id: string) => number | undefined): Promise<Started> {
    const layer = await this.ensureImage(spec);
    const bundle = this.bundleDir(id);
    const rootfs = join(bundle, 'rootfs');
    // a redelivered request after a crash mid-create: start from a clean slate
    if (existsSync(bundle)) await this.teardown(id, { keepRuntime: false });
    mkdirSync(rootfs, { recursive: true });
    const stage = { step: 'mount' };
    try {
      mountAll(this.snapshots.prepare(id, [layer]), rootfs);
      stage.step = 'network';
      const net = await this.attachNetwork(id, spec, peerPid);
      stage.step = 'cgroups';
      const cgroupProcs = this.cgroups ? await this.cgroups.create(id, spec.resources ?? {}) : [];
      stage.step = 'start';
      const cfg: ContainerConfig = {
        id, hostname: spec.hostname, args: spec.args, env: spec.env, cwd: spec.workdir,
        network: net.mode === 'path' ? { mode: 'path', path: net.path! } : { mode: net.mode },
        mounts: (net.mounts ?? []).map((m) => ({ source: m.source, destination: m.destination, type: 'bind', options: ['rbind', 'ro'] })),
        rootfsPath: rootfs,
      };
      const r = await this.runtime.start(id, bundle, createSpec(cfg), { cgroupProcs });
      writeFileSync(join(bundle, 'network.json'), JSON.stringify(net));
      return { pid: r.pid, runningAt: r.runningAt, ...(net.ip ? { ip: net.ip } : {}) };
    } catch (err) {
      await this.teardown(id, { keepRuntime: false }).catch(() => undefined);
      const e = err as Error & { code?: string };
      const code = /ENOENT/.test(e.message) && stage.step === 'start' ? 127 : /EACCES/.test(e.message) && stage.step === 'start' ? 126 : 125;
      throw new ContainerError(`${stage.step}: ${e.message}`, id, code, { cause: err });
    }
  }

  private async attachNetwork(id: string, spec: ContainerSpec, peerPid: (id: string) => number | undefined): Promise<NetworkAttachment> {
    if (spec.network === 'none') return { mode: 'none' };
    if (spec.network === 'host') return { mode: 'host' };
    if (spec.network.startsWith('container:')) {
      const peer = spec.network.slice(10);
      const pid = peerPid(peer);
      if (!pid) throw new Error(`container ${peer.slice(0, 12)} is not running here: --network container: needs a running container on this node`);
      return { mode: 'path', path: `/proc/${pid}/ns/net` };
    }
    if (!this.net) throw new Error(`network "${spec.network}" is not available on this node (use --network none or host)`);
    return this.net.attach(id, spec, peerPid);
  }

  kill(id: string, signal: string): void { this.runtime.kill(id, signal as NodeJS.Signals); }

  /** A container this host never had (or fully removed) reads as 'unknown', not an error. */
  status(id: string): ContainerStatus {
    try { return this.runtime.status(id); } catch (err) {
      if (err instanceof RuntimeError && err.reason === 'not-found') return { state: 'unknown' };
      throw err;
    }
  }

  waitExit(id: string, signal?: AbortSignal): Promise<ExitStatus> { return this.runtime.waitExit(id, signal); }

  logPath(id: string): string { return this.runtime.defaultLogPath(id); }

  oomKilled(id: string): boolean { return this.cgroups?.oomKilled(id) ?? false; }

  async update(id: string, r: ResourceLimits): Promise<void> {
    if (!this.cgroups) throw new Error('resource limits are not available on this node');
    await this.cgroups.update(id, r);
  }

  /** Stops with TERM, then KILL after `timeout` seconds; resolves with the exit. */
  async stop(id: string, timeout: number): Promise<ExitStatus | undefined> {
    if (this.status(id).state !== 'running') return undefined;
    const ac = new AbortController();
    const exited = this.runtime.waitExit(id, ac.signal);
    try { this.runtime.kill(id, 'SIGTERM'); } catch { /* already gone */ }
    const t = setTimeout(() => { try { this.runtime.kill(id, 'SIGKILL'); } catch { /* gone */ } }, timeout * 1000);
    try { return await exited; } finally { clearTimeout(t); ac.abort(); }
  }

  /** Removes everything the container had on this host. Idempotent. */
  async remove(id: string): Promise<void> {
    if (this.status(id).state === 'running') {
      const exited = this.runtime.waitExit(id);
      this.runtime.kill(id, 'SIGKILL');
      await exited;
    }
    await this.teardown(id, { keepRuntime: false });
  }

  private async teardown(id: string, o: { keepRuntime: boolean }): Promise<void> {
    const rootfs = join(this.bundleDir(id), 'rootfs');
    const errors: string[] = [];
    const attempt = async (f: () => unknown) => { try { await f(); } catch (err) { errors.push((err as Error).message); } };
    if (this.net && existsSync(join(this.bundleDir(id), 'network.json'))) {
      const n = JSON.parse(readFileSync(join(this.bundleDir(id), 'network.json'), 'utf8')) as NetworkAttachment;
      if (n.mode === 'path' && !n.path?.startsWith('/proc/')) await attempt(() => this.net!.detach(id));
    } else if (this.net) await attempt(() => this.net!.detach(id));
    if (this.cgroups) await attempt(() => this.cgroups!.remove(id));
    if (isMounted(rootfs)) await attempt(() => unmount(rootfs));
    await attempt(() => this.snapshots.remove(id));
    await attempt(() => rmSync(this.bundleDir(id), { recursive: true, force: true }));
    if (!o.keepRuntime && this.runtime.list().includes(id)) await attempt(() => this.runtime.delete(id));
    if (errors.length) throw new Error(`cleanup of ${id.slice(0, 12)}: ${errors.join('; ')}`);
  }

  /** Ids that have anything on this host (bundle, snapshot or runtime state). */
  known(): string[] {
    return [...new Set([...this.runtime.list(), ...this.snapshots.keys(), ...listDir(this.bundles)])].filter((d) => /^[0-9a-f]{64}$/.test(d));
  }
}

function listDir(d: string): string[] {
  try { return readdirSync(d); } catch { return []; }
}
