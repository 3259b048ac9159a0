// Whether a container's groups are frozen, read from the files the freezer uses: v1
// freezer.state (FROZEN, or FREEZING on the way), v2 cgroup.freeze. Given the group
// directories of its cgroup.procs files, so it works on either hierarchy and a hybrid.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Pure: the freezer file's text → frozen (or freezing). */
export function frozenText(file: 'freezer.state' | 'cgroup.freeze', text: string): boolean {
  const t = text.trim();
  return file === 'freezer.state' ? t === 'FROZEN' || t === 'FREEZING' : t === '1';
}

export function isFrozen(procsFiles: readonly string[]): boolean {
  for (const f of procsFiles) {
    for (const file of ['freezer.state', 'cgroup.freeze'] as const) {
      const path = join(dirname(f), file);
      // asked on every SIGKILL: a failed read costs an exception (each hierarchy lacks one
      // of the two files), a failed existsSync does not
      if (!existsSync(path)) continue;
      let text: string;
      try { text = readFileSync(path, 'utf8'); } catch { continue; }
      if (frozenText(file, text)) return true;
    }
  }
  return false;
}
