// An OCI bundle as sl-runtime reads it: <bundle>/config.json and its root filesystem.
// Everything here refuses with a one-line BundleError; nothing a config.json holds may
// crash the CLI or reach the C side unchecked (agent/runtime/launch.ts checks the rest).
import { closeSync, fstatSync, openSync, readSync, realpathSync, statSync, constants } from 'node:fs';
import { isAbsolute, resolve, sep } from 'node:path';
import type { OciSpec } from '../runtime/spec.js';
import { SYSCTL_VALUE_RE, sysctlClass } from '../../shared/host-config.js';

export class BundleError extends Error {
  constructor(readonly path: string, reason: string) {
    // one printable line, whatever bytes the file held
    super(`${path}: ${reason}`.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
    this.name = 'BundleError';
  }
}

export interface OciHook { path: string; args?: string[]; env?: string[]; timeout?: number }
export type HookKind = 'prestart' | 'createRuntime' | 'createContainer' | 'startContainer' | 'poststart' | 'poststop';
export const HOOK_KINDS: readonly HookKind[] = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'];

/** The spec with what sl-runtime reads besides what the agent writes. */
export type BundleSpec = OciSpec & {
  annotations?: Record<string, string>;
  hooks?: Partial<Record<HookKind, OciHook[]>>;
  linux: OciSpec['linux'] & { resources?: OciResources; sysctl?: Record<string, string> };
};

export interface OciDeviceRate { major: number; minor: number; rate: number }
export interface OciResources {
  devices?: NonNullable<OciSpec['linux']['resources']>['devices'];
  memory?: { limit?: number; swap?: number; reservation?: number; kernel?: number; kernelTCP?: number; swappiness?: number | null; disableOOMKiller?: boolean };
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string; realtimeRuntime?: number; realtimePeriod?: number };
  pids?: { limit?: number };
  network?: { classID?: number; priorities?: { name: string; priority: number }[] };
  hugepageLimits?: { pageSize: string; limit: number }[];
  blockIO?: {
    weight?: number; leafWeight?: number;
    weightDevice?: { major: number; minor: number; weight?: number; leafWeight?: number }[];
    throttleReadBpsDevice?: OciDeviceRate[]; throttleWriteBpsDevice?: OciDeviceRate[];
    throttleReadIOPSDevice?: OciDeviceRate[]; throttleWriteIOPSDevice?: OciDeviceRate[];
  };
}

export const CONFIG_MAX_BYTES = 4 << 20;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function readConfig(path: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    throw new BundleError(path, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file (is --bundle right?)' : String((e as Error).message));
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new BundleError(path, 'not a regular file');
    if (st.size > CONFIG_MAX_BYTES) throw new BundleError(path, `${st.size} bytes, more than ${CONFIG_MAX_BYTES}`);
    const buf = Buffer.alloc(st.size);
    let got = 0;
    while (got < st.size) {
      const n = readSync(fd, buf, got, st.size - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

function checkHooks(path: string, hooks: unknown): void {
  if (hooks === undefined) return;
  if (!isObj(hooks)) throw new BundleError(path, 'hooks: not an object');
  for (const [k, list] of Object.entries(hooks)) {
    if (!HOOK_KINDS.includes(k as HookKind)) throw new BundleError(path, `hooks.${k}: unknown hook kind`);
    if (!Array.isArray(list)) throw new BundleError(path, `hooks.${k}: not a list`);
    list.forEach((h: unknown, i) => {
      const f = `hooks.${k}[${i}]`;
      if (!isObj(h) || typeof h.path !== 'string' || !isAbsolute(h.path) || h.path.includes('\0')) throw new BundleError(path, `${f}.path: not an absolute path`);
      for (const key of ['args', 'env'] as const) {
        const v = h[key];
        if (v !== undefined && (!Array.isArray(v) || v.some((a) => typeof a !== 'string' || a.includes('\0')))) throw new BundleError(path, `${f}.${key}: not a list of strings`);
      }
      if (h.timeout !== undefined && (!Number.isInteger(h.timeout) || (h.timeout as number) <= 0 || (h.timeout as number) > 86400)) {
        throw new BundleError(path, `${f}.timeout: ${String(h.timeout)} is not 1..86400 seconds`);
      }
    });
  }
}

/** Which namespace type a sysctl lives in (runc's rule: IPC ones, net.*, and the UTS names), or why it is refused. */
export function sysctlNamespace(key: string): 'ipc' | 'network' | 'uts' | string {
  if (key === 'kernel.hostname' || key === 'kernel.domainname') return 'uts';
  const c = sysctlClass(key);
  return c === 'net' ? 'network' : c;
}

/**
 * linux.sysctl: written by the init in the container's namespaces, so each key must belong
 * to a namespace the container has of its own (a new one, not a path: a joined namespace may
 * be the host's); anything else would set the host's kernel, which runc refuses too.
 */
function checkSysctls(path: string, sysctl: unknown, namespaces: unknown[] | undefined): void {
  if (sysctl === undefined || sysctl === null) return;
  if (!isObj(sysctl)) throw new BundleError(path, 'linux.sysctl: not an object');
  const keys = Object.keys(sysctl);
  if (keys.length > 64) throw new BundleError(path, `linux.sysctl: ${keys.length} keys, more than 64`);
  const own = new Set((namespaces ?? []).filter((n) => isObj(n) && !n.path).map((n) => (n as { type?: unknown }).type));
  for (const k of keys) {
    const f = `linux.sysctl.${k.slice(0, 64)}`;
    const ns = sysctlNamespace(k);
    if (ns !== 'ipc' && ns !== 'network' && ns !== 'uts') throw new BundleError(path, `${f}: ${ns}`);
    if (!own.has(ns)) throw new BundleError(path, `${f}: needs a ${ns} namespace of the container's own (linux.namespaces without a path), or it would set the host's`);
    const v = sysctl[k];
    if (typeof v !== 'string' || !SYSCTL_VALUE_RE.test(v)) throw new BundleError(path, `${f}: the value is one line of printable characters (at most 256), without leading or trailing blanks`);
  }
}

function checkResources(path: string, r: unknown): void {
  if (r === undefined) return;
  if (!isObj(r)) throw new BundleError(path, 'linux.resources: not an object');
  const int = (f: string, v: unknown, min: number, max: number) => {
    if (v === undefined || v === null) return;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new BundleError(path, `linux.resources.${f}: ${String(v)} is not an integer in ${min}..${max}`);
  };
  const m = r.memory, c = r.cpu, p = r.pids, b = r.blockIO;
  if (isObj(m)) {
    for (const k of ['limit', 'swap', 'reservation', 'kernel', 'kernelTCP'] as const) int(`memory.${k}`, m[k], -1, 2 ** 53);
    int('memory.swappiness', m.swappiness, 0, 100);
    if (m.disableOOMKiller !== undefined && m.disableOOMKiller !== null && typeof m.disableOOMKiller !== 'boolean') throw new BundleError(path, 'linux.resources.memory.disableOOMKiller: not a boolean');
  }
  if (isObj(c)) {
    int('cpu.shares', c.shares, 0, 262144); int('cpu.quota', c.quota, -1, 2 ** 53); int('cpu.period', c.period, 0, 1_000_000);
    int('cpu.realtimeRuntime', c.realtimeRuntime, -1, 2 ** 53); int('cpu.realtimePeriod', c.realtimePeriod, 0, 2 ** 53);
    for (const k of ['cpus', 'mems'] as const) {
      if (c[k] !== undefined && (typeof c[k] !== 'string' || !/^[0-9,-]{0,256}$/.test(c[k] as string))) throw new BundleError(path, `linux.resources.cpu.${k}: not a cpu list`);
    }
  }
  if (isObj(p)) int('pids.limit', p.limit, -1, 2 ** 31);
  if (isObj(b)) {
    int('blockIO.weight', b.weight, 0, 1000); int('blockIO.leafWeight', b.leafWeight, 0, 1000);
    const devs = (k: string, extra: Record<string, [number, number]>) => {
      const v = b[k];
      if (v === undefined || v === null) return;
      if (!Array.isArray(v) || v.length > 256) throw new BundleError(path, `linux.resources.blockIO.${k}: not a list (at most 256)`);
      v.forEach((d, i) => {
        if (!isObj(d)) throw new BundleError(path, `linux.resources.blockIO.${k}[${i}]: not an object`);
        int(`blockIO.${k}[${i}].major`, d.major ?? 'missing', 0, 2 ** 32);
        int(`blockIO.${k}[${i}].minor`, d.minor ?? 'missing', 0, 2 ** 32);
        for (const [f, [lo, hi]] of Object.entries(extra)) int(`blockIO.${k}[${i}].${f}`, d[f], lo, hi);
      });
    };
    devs('weightDevice', { weight: [0, 1000], leafWeight: [0, 1000] });
    for (const k of ['throttleReadBpsDevice', 'throttleWriteBpsDevice', 'throttleReadIOPSDevice', 'throttleWriteIOPSDevice']) {
      devs(k, { rate: [0, 2 ** 53] });
      for (const [i, d] of ((b[k] as Record<string, unknown>[] | undefined) ?? []).entries()) if (d.rate === undefined) throw new BundleError(path, `linux.resources.blockIO.${k}[${i}].rate: missing`);
    }
  }
}

/**
 * The init mounts the container's filesystems and pivot_roots in the mount namespace it is
 * in. A path naming sl-runtime's own namespace or the host's (pid 1's) would have it do that
 * to their root: refused. A config with no mount namespace at all (runtime-tools'
 * linux_ns_itype drops every namespace) gets the separate "chroot" path instead (see
 * checkNoMountNamespace): returns whether the config has none.
 */
function checkMountNamespace(path: string, namespaces: unknown[] | undefined): boolean {
  const mnt = (namespaces ?? []).filter((n) => isObj(n) && n.type === 'mount') as { path?: unknown }[];
  if (mnt.length === 0) return true;
  const p = mnt[0]!.path;
  if (p === undefined || p === '') return false;
  if (typeof p !== 'string' || !isAbsolute(p)) throw new BundleError(path, 'linux.namespaces: the mount namespace path is not an absolute path');
  let a: import('node:fs').Stats;
  try { a = statSync(p); } catch { return false; } // a missing path fails at setns with its own error
  // its own, or the host's (pid 1's, where it may be read) when sl-runtime itself runs in another
  const same = ['/proc/self/ns/mnt', '/proc/1/ns/mnt'].some((q) => {
    try { const b = statSync(q); return a.dev === b.dev && a.ino === b.ino; } catch { return false; }
  });
  if (same) throw new BundleError(path, `linux.namespaces: mount namespace ${p} is sl-runtime's own or the host's; pivot_root there would move their root`);
  return false;
}

/**
 * Without a mount namespace the container shares the caller's: runc mounts under the rootfs
 * there and chroots. sl-runtime does the same on a path of its own ("chroot" launch key,
 * native/src/monitor/monitor_init.c): every mount goes below a bind of the rootfs onto
 * itself (resolved inside the rootfs), "/" is never remounted, unmounted or pivoted, and
 * delete detaches that bind. What that path cannot do safely is refused: a rootfs that is not
 * the bundle or inside it, or is "/" (an absolute root.path of "/" would mount over the host's /proc
 * and /dev), a user namespace (its root may not mount in the host's namespace), and the
 * processes that enter the container through setns (startContainer hooks: setns(mount) into
 * the caller's own namespace would put them at the host's root, not the container's).
 */
function checkNoMountNamespace(path: string, bundle: string, rootfs: string, spec: Record<string, unknown>, namespaces: unknown[] | undefined): void {
  const why = 'linux.namespaces has no mount namespace, so the container shares the caller\'s';
  if (rootfs === '/' || (rootfs !== bundle && !rootfs.startsWith(bundle + sep))) {
    throw new BundleError(path, `root.path: ${rootfs} is not the bundle ${bundle} or inside it; ${why} and its mounts may only go below a root there`);
  }
  if ((namespaces ?? []).some((n) => isObj(n) && n.type === 'user')) throw new BundleError(path, `linux.namespaces: a user namespace: ${why}, where the namespace's root may not mount`);
  const hooks = spec.hooks;
  if (isObj(hooks) && Array.isArray(hooks.startContainer) && hooks.startContainer.length) {
    throw new BundleError(path, `hooks.startContainer: ${why}; entering it by setns would not reach its root`);
  }
}

/**
 * Reads and checks <bundle>/config.json. A relative root.path must stay inside the bundle
 * once every symlink is resolved (a bundle handed over by someone else must not point
 * the container at the host's /); an absolute one is the caller's explicit choice, as runc.
 */
export function loadBundle(bundleArg: string): { bundle: string; spec: BundleSpec; rootfs: string; noMountNamespace: boolean } {
  let bundle: string;
  try {
    bundle = realpathSync(resolve(bundleArg));
  } catch {
    throw new BundleError(bundleArg, 'no such bundle directory');
  }
  if (!statSync(bundle).isDirectory()) throw new BundleError(bundle, 'not a directory');
  const path = `${bundle}/config.json`;
  let spec: unknown;
  try {
    spec = JSON.parse(readConfig(path).toString('utf8'));
  } catch (e) {
    if (e instanceof BundleError) throw e;
    throw new BundleError(path, `not JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!isObj(spec)) throw new BundleError(path, 'not a JSON object');
  if (typeof spec.ociVersion !== 'string' || !/^1\.\d+\.\d+/.test(spec.ociVersion)) throw new BundleError(path, `ociVersion: ${JSON.stringify(spec.ociVersion)} is not 1.x.y`);
  const p = spec.process;
  if (!isObj(p)) throw new BundleError(path, 'process: missing');
  if (!Array.isArray(p.args) || p.args.length === 0 || p.args.some((a) => typeof a !== 'string')) throw new BundleError(path, 'process.args: not a non-empty list of strings');
  if (p.env !== undefined && (!Array.isArray(p.env) || p.env.some((a) => typeof a !== 'string'))) throw new BundleError(path, 'process.env: not a list of strings');
  if (p.cwd !== undefined && (typeof p.cwd !== 'string' || !isAbsolute(p.cwd))) throw new BundleError(path, 'process.cwd: not an absolute path');
  if (p.terminal === true) throw new BundleError(path, 'process.terminal: true is not supported by sl-runtime yet (set it to false)');
  if (p.user !== undefined && !isObj(p.user)) throw new BundleError(path, 'process.user: not an object');
  if (!isObj(spec.root) || typeof spec.root.path !== 'string' || !spec.root.path) throw new BundleError(path, 'root.path: missing');
  if (spec.annotations !== undefined && (!isObj(spec.annotations) || Object.values(spec.annotations).some((v) => typeof v !== 'string'))) {
    throw new BundleError(path, 'annotations: not a map of strings');
  }
  if (spec.mounts !== undefined && !Array.isArray(spec.mounts)) throw new BundleError(path, 'mounts: not a list');
  if (spec.linux !== undefined && !isObj(spec.linux)) throw new BundleError(path, 'linux: not an object');
  const linux = (spec.linux ?? {}) as Record<string, unknown>;
  if (linux.namespaces !== undefined && !Array.isArray(linux.namespaces)) throw new BundleError(path, 'linux.namespaces: not a list');
  // Mappings belong to a new user namespace (agent/runtime/launch.ts encodes both, and refuses
  // a mapping that leaves container id 0 out). Without one in linux.namespaces they describe
  // nothing the container gets: runc 1.1 drops them, and so does sl-runtime, saying so. The
  // container is in the host's user namespace either way, as its namespaces list says.
  const userNs = Array.isArray(linux.namespaces) && linux.namespaces.some((n) => isObj(n) && n.type === 'user');
  const mapped = [linux.uidMappings, linux.gidMappings].some((m) => Array.isArray(m) && m.length > 0);
  if (mapped && !userNs) {
    process.stderr.write(`sl-runtime: ${path}: linux.uidMappings/gidMappings ignored: linux.namespaces has no user namespace\n`);
    delete linux.uidMappings;
    delete linux.gidMappings;
  }
  const noMountNamespace = checkMountNamespace(path, linux.namespaces as unknown[] | undefined);
  checkSysctls(path, linux.sysctl, linux.namespaces as unknown[] | undefined);
  checkResources(path, linux.resources);
  checkHooks(path, spec.hooks);
  // createContainer hooks run in the container's mount namespace before pivot_root, with a
  // path of the runtime's: the held init is past pivot_root, so they are refused, not skipped
  if (isObj(spec.hooks) && Array.isArray(spec.hooks.createContainer) && spec.hooks.createContainer.length) {
    throw new BundleError(path, 'hooks.createContainer: not supported by sl-runtime yet (prestart, createRuntime, startContainer, poststart and poststop are)');
  }

  const rootPath = spec.root.path;
  let rootfs: string;
  try {
    rootfs = realpathSync(resolve(bundle, rootPath));
  } catch {
    throw new BundleError(path, `root.path: ${JSON.stringify(rootPath)} does not exist`);
  }
  if (!isAbsolute(rootPath) && rootfs !== bundle && !rootfs.startsWith(bundle + sep)) {
    throw new BundleError(path, `root.path: ${JSON.stringify(rootPath)} leads out of the bundle (to ${rootfs})`);
  }
  if (!statSync(rootfs).isDirectory()) throw new BundleError(path, `root.path: ${rootfs} is not a directory`);
  if (noMountNamespace) checkNoMountNamespace(path, bundle, rootfs, spec, linux.namespaces as unknown[] | undefined);
  const out = { ...spec, linux: { namespaces: [], ...linux }, mounts: spec.mounts ?? [], root: { ...spec.root, path: rootfs } } as unknown as BundleSpec;
  return { bundle, spec: out, rootfs, noMountNamespace };
}
