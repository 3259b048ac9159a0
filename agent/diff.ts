// tsctl diff: what a container changed in its filesystem, read from its writable layer (the
// overlay's upper dir) against the layers it stands on, as docker diff reports it: A added,
// C changed, D deleted (an overlay whiteout: a 0/0 character device). Nothing is followed
// (lstat only: a symlink the container made to the host's files is a name, not a way out),
// the walk is asynchronous (a container with many files does not stall the agent) and the
// reply is bounded.
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { DiffReply } from '../shared/api/agent.js';

/** More than this many changes, or this many bytes of paths, and the reply says it was cut. */
export const DIFF_MAX_CHANGES = 20000;
export const DIFF_MAX_BYTES = 512 * 1024;

export interface DiffFs {
  /** trusted.overlay.opaque on a dir of the upper layer: the lower dirs' entries are hidden. */
  opaque(path: string): boolean;
}

const isWhiteout = (s: { isCharacterDevice(): boolean; rdev: number }) => s.isCharacterDevice() && s.rdev === 0;

/** The changes in `upper` (an overlay-style layer dir: the snapshotter's changes()) over `lowers` (topmost first), sorted by path. */
export async function containerDiff(upper: string, lowers: string[], fs: DiffFs): Promise<DiffReply> {
  const changes: [string, string][] = [];
  let bytes = 0, truncated = false;
  /** Whether `rel` is visible in the image (the lower layers, topmost first, stopping at a whiteout). */
  const inImage = async (rel: string): Promise<boolean> => {
    for (const l of lowers) {
      try {
        const s = await lstat(join(l, rel));
        return !isWhiteout(s);
      } catch { /* not in this layer: look lower */ }
    }
    return false;
  };
  const walk = async (rel: string, hidden: boolean): Promise<void> => {
    let names: string[];
    try { names = await readdir(join(upper, rel)); } catch { return; }
    names.sort();
    for (const n of names) {
      if (truncated) return;
      const p = `${rel}/${n}`;
      let s;
      try { s = await lstat(join(upper, p)); } catch { continue; }
      const present = !hidden && await inImage(p);
      const kind = isWhiteout(s) ? 'D' : present ? 'C' : 'A';
      // a whiteout of something the image does not have hides nothing: nothing to say
      if (!(kind === 'D' && !present)) {
        changes.push([kind, p]);
        bytes += p.length + 8;
        if (changes.length >= DIFF_MAX_CHANGES || bytes >= DIFF_MAX_BYTES) { truncated = true; return; }
      }
      if (s.isDirectory()) await walk(p, hidden || !present || fs.opaque(join(upper, p)));
    }
  };
  await walk('', false);
  return { changes, truncated };
}
