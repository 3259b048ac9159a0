// Snapshotter in containerd's shape: prepare() returns mount *descriptions* for a
// container's writable root over read-only layers; performing them is mounts.ts's job.
// Each snapshot records the layers it stands on, so a layer in use is never removed.
import { mkdirSync, rmSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';

export interface MountSpec { type: string; source: string; options: string[] }

/** mount(2) copies one page of options; past this the overlay goes through fsconfig(2). */
export const MOUNT_DATA_MAX = 4095;

export class Snapshotter {
  constructor(private root: string) { mkdirSync(root, { recursive: true }); }

  dir(key: string): string { return join(this.root, key); }

  /** Creates upper/work dirs for `key` and describes the overlay that joins them to the layers (topmost first). */
  prepare(key: string, lowerDirs: string[]): MountSpec[] {
    const d = this.dir(key);
    const spec = overlayMount(lowerDirs, join(d, 'upper'), join(d, 'work'));
    mkdirSync(join(d, 'upper'), { recursive: true });
    mkdirSync(join(d, 'work'), { recursive: true });
    writeFileSync(join(d, 'lowers'), `${lowerDirs.join('\n')}\n`);
    return [spec];
  }

  exists(key: string): boolean { return existsSync(this.dir(key)); }

  keys(): string[] { return existsSync(this.root) ? readdirSync(this.root) : []; }

  /** Every lower dir some snapshot here stands on. */
  lowersInUse(): Set<string> {
    const used = new Set<string>();
    for (const k of this.keys()) {
      let text = '';
      try { text = readFileSync(join(this.dir(k), 'lowers'), 'utf8'); } catch { continue; }
      for (const l of text.split('\n')) if (l) used.add(l);
    }
    return used;
  }

  /** Removes the writable layer; the caller has unmounted it. */
  remove(key: string): void { rmSync(this.dir(key), { recursive: true, force: true }); }

  /** remove() through the thread pool: a container's writes can be many files. */
  removeAsync(key: string): Promise<void> { return rm(this.dir(key), { recursive: true, force: true }); }
}

/** Pure: the overlay mount for lower layers (topmost first) plus a writable upper. */
export function overlayMount(lowerDirs: string[], upper: string, work: string): MountSpec {
  if (!lowerDirs.length) throw new Error('an overlay needs at least one lower layer');
  if (lowerDirs.length > 500) throw new Error(`${lowerDirs.length} layers: overlayfs stacks at most 500`);
  for (const p of [...lowerDirs, upper, work]) {
    if (/[,:\\\n]/.test(p)) throw new Error(`overlay path ${p} contains "," ":" "\\" or a newline, which overlayfs options cannot carry`);
  }
  return { type: 'overlay', source: 'overlay', options: [`lowerdir=${lowerDirs.join(':')}`, `upperdir=${upper}`, `workdir=${work}`] };
}

/**
 * Pure: how a mount is performed. An option string that fits a page goes to mount(2) as
 * it always did; an overlay past it becomes fsconfig(2) keys, one "lowerdir+" per layer
 * (kernel 6.8+), since no single string could hold them.
 */
export function mountPlan(m: MountSpec): { kind: 'mount'; data: string } | { kind: 'fsconfig'; options: [string, string][] } {
  const data = m.options.join(',');
  if (Buffer.byteLength(data) <= MOUNT_DATA_MAX || m.type !== 'overlay') return { kind: 'mount', data };
  const options: [string, string][] = [];
  for (const o of m.options) {
    const eq = o.indexOf('=');
    const k = eq < 0 ? o : o.slice(0, eq), v = eq < 0 ? '' : o.slice(eq + 1);
    if (k === 'lowerdir') for (const l of v.split(':')) options.push(['lowerdir+', l]);
    else options.push([k, v]);
  }
  return { kind: 'fsconfig', options };
}
