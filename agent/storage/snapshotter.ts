// Snapshotter in containerd's shape: prepare() returns mount *descriptions* for a
// container's writable root over a read-only layer; performing them is mounts.ts's job.
import { mkdirSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface MountSpec { type: string; source: string; options: string[] }

export class Snapshotter {
  constructor(private root: string) { mkdirSync(root, { recursive: true }); }

  dir(key: string): string { return join(this.root, key); }

  /** Creates upper/work dirs for `key` and describes the overlay that joins them to the layers. */
  prepare(key: string, lowerDirs: string[]): MountSpec[] {
    const d = this.dir(key);
    mkdirSync(join(d, 'upper'), { recursive: true });
    mkdirSync(join(d, 'work'), { recursive: true });
    return [overlayMount(lowerDirs, join(d, 'upper'), join(d, 'work'))];
  }

  exists(key: string): boolean { return existsSync(this.dir(key)); }

  keys(): string[] { return existsSync(this.root) ? readdirSync(this.root) : []; }

  /** Removes the writable layer; the caller has unmounted it. */
  remove(key: string): void { rmSync(this.dir(key), { recursive: true, force: true }); }
}

/** Pure: the overlay mount for lower layers (topmost first) plus a writable upper. */
export function overlayMount(lowerDirs: string[], upper: string, work: string): MountSpec {
  for (const p of [...lowerDirs, upper, work]) {
    if (/[,:]/.test(p)) throw new Error(`overlay path ${p} contains "," or ":", which overlayfs options cannot carry`);
  }
  return { type: 'overlay', source: 'overlay', options: [`lowerdir=${lowerDirs.join(':')}`, `upperdir=${upper}`, `workdir=${work}`] };
}
