// The snapshotter interface, in containerd's shape: prepare() makes a container's writable
// root over read-only layers and returns mount *descriptions* (performing them is mounts.ts's
// job); changes() gives what the container wrote as an overlay-style layer dir (whiteouts as
// 0/0 character devices, opaque dirs by xattr) for diff and commit; usage() what it costs;
// remove() leaves nothing. Two drivers: overlay (here; the default) and vfs (vfs.ts: plain
// copies, for hosts without a union filesystem). Each snapshot records the layers it stands
// on (`lowers`), so a layer in use is never removed.
import { mkdirSync, rmSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { rmTreeAsync } from '../../native/libc.js';

export interface MountSpec { type: string; source: string; options: string[] }

/** mount(2) copies one page of options; past this the overlay goes through fsconfig(2). */
export const MOUNT_DATA_MAX = 4095;

export type StorageDriver = 'overlay' | 'vfs';
export const STORAGE_DRIVERS: readonly StorageDriver[] = ['overlay', 'vfs'];

/**
 * A container's changes as a layer dir, and the layers (topmost first) they are relative to;
 * `release()` once read (vfs computes a dir per call, so a diff and a commit at once never share one).
 */
export interface Changes { dir: string; lowers: string[]; release(): Promise<void> }

export interface Usage { bytes: number; inodes: number }

/**
 * How a writable root is made. `volatile`: it dies with its container (run --rm), so nothing
 * in it needs to reach the disk: overlay mounts it with "volatile" (kernel 5.10+), which skips
 * the container's fsyncs and, at the unmount, the sync of the whole filesystem under the upper
 * dir (its dirty pages and a journal commit: 1-3 ms of every `run --rm`'s removal here, more on
 * a host writing to that disk). An upper dir mounted volatile is never mounted again (overlay
 * refuses one after a crash): a create retried after a crash starts from a new one, and a
 * removed container's goes.
 */
export interface PrepareOptions { volatile?: boolean }

export interface Snapshotter {
  readonly driver: StorageDriver;
  /** Makes `key`'s writable root over `lowerDirs` (topmost first); the mounts that show it. */
  prepare(key: string, lowerDirs: string[], o?: PrepareOptions): Promise<MountSpec[]>;
  /** The mounts of a prepared snapshot (again, after an agent restart). */
  mounts(key: string): MountSpec[];
  /** What the container changed, as an overlay-style layer dir (overlay: its upper dir); undefined when there is no such snapshot. */
  changes(key: string): Promise<Changes | undefined>;
  /** Bytes and inodes the snapshot holds (its own, not the layers'). */
  usage(key: string): Promise<Usage>;
  /** The snapshot's own directory (everything of it is under it). */
  dir(key: string): string;
  exists(key: string): boolean;
  keys(): string[];
  /** Every lower dir some snapshot here stands on. */
  lowersInUse(): Set<string>;
  /** Removes the snapshot, the caller having unmounted it; off the event loop. Idempotent. */
  remove(key: string): Promise<void>;
}

/** The snapshots' common bookkeeping: one dir per key, with the `lowers` file. */
export abstract class SnapshotDirs {
  constructor(protected root: string) { mkdirSync(root, { recursive: true }); }

  dir(key: string): string { return join(this.root, key); }

  exists(key: string): boolean { return existsSync(this.dir(key)); }

  keys(): string[] { return existsSync(this.root) ? readdirSync(this.root) : []; }

  protected writeLowers(key: string, lowerDirs: string[]): void { writeFileSync(join(this.dir(key), 'lowers'), `${lowerDirs.join('\n')}\n`); }

  protected readLowers(key: string): string[] { return readFileSync(join(this.dir(key), 'lowers'), 'utf8').split('\n').filter(Boolean); }

  lowersInUse(): Set<string> {
    const used = new Set<string>();
    for (const k of this.keys()) {
      let text = '';
      try { text = readFileSync(join(this.dir(k), 'lowers'), 'utf8'); } catch { continue; }
      for (const l of text.split('\n')) if (l) used.add(l);
    }
    return used;
  }

  usage(key: string): Promise<Usage> { return usageOf(this.dir(key)); }

  /** Synchronous removal (tests, teardown). */
  removeSync(key: string): void { rmSync(this.dir(key), { recursive: true, force: true }); }

  /** One native call on a worker (rmTreeAsync), not a pool trip and a JS callback per entry. */
  remove(key: string): Promise<void> { return rmTreeAsync(this.dir(key)); }
}

/** Overlay: an upper and a work dir per container, the layers as lower dirs. */
export class OverlaySnapshotter extends SnapshotDirs implements Snapshotter {
  readonly driver = 'overlay' as const;

  /** Creates upper/work dirs for `key` and describes the overlay that joins them to the layers (topmost first). */
  prepareSync(key: string, lowerDirs: string[], o: PrepareOptions = {}): MountSpec[] {
    const d = this.dir(key);
    const spec = overlayMount(lowerDirs, join(d, 'upper'), join(d, 'work'), o.volatile === true);
    mkdirSync(join(d, 'upper'), { recursive: true });
    mkdirSync(join(d, 'work'), { recursive: true });
    this.writeLowers(key, lowerDirs);
    return [spec];
  }

  async prepare(key: string, lowerDirs: string[], o?: PrepareOptions): Promise<MountSpec[]> { return this.prepareSync(key, lowerDirs, o); }

  mounts(key: string): MountSpec[] { const d = this.dir(key); return [overlayMount(this.readLowers(key), join(d, 'upper'), join(d, 'work'))]; }

  async changes(key: string): Promise<Changes | undefined> {
    const upper = join(this.dir(key), 'upper');
    if (!existsSync(upper)) return undefined;
    return { dir: upper, lowers: this.readLowers(key), release: async () => undefined };
  }
}

/** Bytes (allocated blocks) and inodes under `dir`, not following links. */
export async function usageOf(dir: string): Promise<Usage> {
  const u = { bytes: 0, inodes: 0 };
  const seen = new Set<bigint>();
  const walk = async (p: string): Promise<void> => {
    let s;
    try { s = await lstat(p, { bigint: true }); } catch { return; }
    if (s.nlink > 1n) { if (seen.has(s.ino)) return; seen.add(s.ino); }
    u.inodes++;
    u.bytes += Number(s.blocks) * 512;
    if (s.isDirectory()) for (const n of await readdir(p).catch(() => [] as string[])) await walk(join(p, n));
  };
  await walk(dir);
  return u;
}

/** Pure: the overlay mount for lower layers (topmost first) plus a writable upper (`volatile`: see PrepareOptions). */
export function overlayMount(lowerDirs: string[], upper: string, work: string, volatile = false): MountSpec {
  if (!lowerDirs.length) throw new Error('an overlay needs at least one lower layer');
  if (lowerDirs.length > 500) throw new Error(`${lowerDirs.length} layers: overlayfs stacks at most 500`);
  for (const p of [...lowerDirs, upper, work]) {
    if (/[,:\\\n]/.test(p)) throw new Error(`overlay path ${p} contains "," ":" "\\" or a newline, which overlayfs options cannot carry`);
  }
  return { type: 'overlay', source: 'overlay', options: [`lowerdir=${lowerDirs.join(':')}`, `upperdir=${upper}`, `workdir=${work}`, ...(volatile ? [VOLATILE] : [])] };
}

/** overlay's option for a writable layer that need not survive a crash (PrepareOptions). */
export const VOLATILE = 'volatile';

/**
 * Pure: how a mount is performed. An option string that fits a page goes to mount(2) as
 * it always did; an overlay past it becomes fsconfig(2) keys, one "lowerdir+" per layer
 * (kernel 6.8+), since no single string could hold them; an option without "=" is a flag
 * (its value null).
 */
export function mountPlan(m: MountSpec): { kind: 'mount'; data: string } | { kind: 'fsconfig'; options: [string, string | null][] } {
  const data = m.options.join(',');
  if (Buffer.byteLength(data) <= MOUNT_DATA_MAX || m.type !== 'overlay') return { kind: 'mount', data };
  const options: [string, string | null][] = [];
  for (const o of m.options) {
    const eq = o.indexOf('=');
    const k = eq < 0 ? o : o.slice(0, eq), v = eq < 0 ? null : o.slice(eq + 1);
    if (k === 'lowerdir' && v !== null) for (const l of v.split(':')) options.push(['lowerdir+', l]);
    else options.push([k, v]);
  }
  return { kind: 'fsconfig', options };
}
