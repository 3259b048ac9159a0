// tsctl's temp dirs and files (here-documents, `cp` archives, `load` trees, ADD's unpacked
// archives, unpacked build stages, COPY's layer files).
// A tsctl killed with SIGKILL, or by a power cut, never runs its own cleanup, so each dir
// carries its maker's pid in its name and the next tsctl that makes one removes those whose
// maker is gone. A pid can be reused, and a tsctl in another pid namespace can share this
// /tmp, so a dir is swept only when its pid names no process here and it has not changed for
// a while: at worst a dead tsctl's dir waits for a later sweep.
import { lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NAME = /^tsctl-([a-z]+)-(\d+)-[A-Za-z0-9.]+$/;
/** A dead maker's dir younger than this is left alone (see above). */
export const SWEEP_AFTER_MS = 60_000;

/** A new private temp dir for `kind` (lowercase letters), after sweeping dead tsctls' ones. */
export function scratchDir(kind: string, under = tmpdir()): string {
  sweepScratch(under);
  return mkdtempSync(join(under, `tsctl-${kind}-${process.pid}-`));
}

const alive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code !== 'ESRCH'; }
};

/** Removes `under`'s tsctl scratch dirs and files whose maker is gone; returns their names. Never throws. */
export function sweepScratch(under = tmpdir(), now = Date.now()): string[] {
  const gone: string[] = [];
  let names: string[];
  try { names = readdirSync(under); } catch { return gone; }
  const uid = process.getuid?.();
  for (const name of names) {
    const m = NAME.exec(name);
    if (!m || Number(m[2]) === process.pid || alive(Number(m[2]))) continue;
    const path = join(under, name);
    try {
      const st = lstatSync(path);
      // another user's are theirs to sweep; a symlink, fifo or device by that name is not ours at all
      if (!(st.isDirectory() || st.isFile()) || (uid !== undefined && st.uid !== uid) || now - st.mtimeMs < SWEEP_AFTER_MS) continue;
      rmSync(path, { recursive: true, force: true });
      gone.push(name);
    } catch { /* raced with another sweeper, or unreadable: leave it */ }
  }
  return gone;
}
