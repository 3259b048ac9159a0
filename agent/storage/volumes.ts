// A node's named volumes, as docker's local driver keeps them: <volumes>/<name>/_data, made
// by `tsctl volume create` or at a container's first use (-v NAME:DST), kept after its
// containers, removed only by `volume rm|prune` and never while a container of this node
// (running or stopped) names it. The name is checked again here (the log is hostile too):
// one path component of letters, digits, _ . -, so a volume is always a child of <volumes>.
import { mkdirSync, readdirSync, existsSync } from 'node:fs';
import { rm, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { VOLUME_NAME_RE } from '../../shared/volumes.js';
import { failpoint } from '../failpoints.js';
import { recoverCopyUp } from './copy-up.js';

export class VolumeError extends Error {
  constructor(message: string, readonly volume: string) { super(message); this.name = 'VolumeError'; }
}

export class NodeVolumes {
  /** Volumes of containers being made (not yet in the checkpoint), with how many hold each. */
  private held = new Map<string, number>();

  /** `users(name)`: the ids of this node's containers (not removed) whose mounts name the volume. */
  constructor(private root: string, private users: (name: string) => string[]) {
    mkdirSync(root, { recursive: true, mode: 0o700 });
  }

  /** The volume's data dir (what a container mounts); throws on a name that is not one component. */
  path(name: string): string { return join(this.root, checkVolumeName(name), '_data'); }

  /** Makes the volume (idempotent: an existing one is kept with its data); returns its data dir. */
  create(name: string): string {
    const p = this.path(name);
    mkdirSync(p, { recursive: true, mode: 0o755 });
    return p;
  }

  /**
   * Removes the volume and its data, refused while a container here names it. Renamed aside
   * first, so a crash in the middle of a big removal leaves no half volume under its name
   * (the next start's sweep() finishes it).
   */
  async remove(name: string, except?: string): Promise<void> {
    const dir = join(this.root, checkVolumeName(name));
    // `except`: the container whose removal takes its anonymous volumes (still in the checkpoint)
    const users = this.users(name).filter((u) => u !== except);
    if (this.held.has(name)) users.push('(a container being made)');
    if (users.length) throw new VolumeError(`volume ${name} is in use by container ${users.map((u) => (u.startsWith('(') ? u : u.slice(0, 12))).join(', ')}: remove ${users.length > 1 ? 'them' : 'it'} first`, name);
    if (!existsSync(dir)) return;
    const aside = join(this.root, `.rm-${process.pid}-${Date.now()}-${name}`);
    await rename(dir, aside);
    failpoint('volume:mid-remove');
    await rm(aside, { recursive: true, force: true });
  }

  /** Counts the volumes as in use until the returned function is called (once). */
  hold(names: string[]): () => void {
    for (const n of names) this.held.set(n, (this.held.get(n) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const n of names) { const k = (this.held.get(n) ?? 1) - 1; if (k) this.held.set(n, k); else this.held.delete(n); }
    };
  }

  /** Names of the volumes here. */
  list(): string[] {
    try { return readdirSync(this.root).filter((n) => VOLUME_NAME_RE.test(n)); } catch { return []; }
  }

  /** Removes what a crash left renamed aside, and finishes or drops the copy-ups it cut (copy-up.ts). */
  async sweep(): Promise<void> {
    for (const n of readdirSync(this.root)) {
      if (n.startsWith('.rm-')) await rm(join(this.root, n), { recursive: true, force: true });
      else if (VOLUME_NAME_RE.test(n)) await recoverCopyUp(join(this.root, n));
    }
  }
}

/** The name as one path component under the volumes' root, or a VolumeError. */
export function checkVolumeName(name: string | undefined): string {
  if (typeof name !== 'string' || !VOLUME_NAME_RE.test(name)) {
    throw new VolumeError(`invalid volume name "${String(name).slice(0, 64).replace(/[^\x20-\x7e]/g, '?')}": letters, digits, _ . - (at most 128, the first a letter or digit)`, String(name).slice(0, 128));
  }
  return name;
}
