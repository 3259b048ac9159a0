// A path as the container sees it, turned into a host path under the container's root:
// symlinks are followed as the container would follow them (an absolute target starts again
// at the container's root, ".." stops at it), so a link to "/" or "../../.." the container
// made can never lead a copy onto the host's own files. The caller freezes the container
// first (tsctl cp does), so no process of it can swap a directory for a link between this
// walk and the copy, the race docker cp had (CVE-2018-15664).
import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';

/** How the walk looks at the tree: injectable for unit tests. */
export interface TreeFs { lstat(p: string): Stats | undefined; readlink(p: string): string }

const realFs: TreeFs = {
  lstat: (p) => { try { return lstatSync(p); } catch { return undefined; } },
  readlink: (p) => readlinkSync(p),
};

/** A path that cannot be resolved in the container: which path and why, in one line. */
export class ResolveError extends Error {
  constructor(readonly path: string, readonly code: 'ENOENT' | 'ENOTDIR' | 'ELOOP' | 'EINVAL', why: string) {
    super(`${path}: ${why}`);
    this.name = 'ResolveError';
  }
}

const MAX_LINKS = 40; // as the kernel's path walk

export interface Resolved {
  /** The host path of the directory that holds the last component (under root). */
  dir: string;
  /** The last component, not followed (empty when the path is the root itself). */
  name: string;
  /** The components from the root to `dir`, as the container would name it. */
  parts: string[];
}

/**
 * Resolves `path` (absolute, as the container sees it) under `root`. Every component but the
 * last is followed if it is a link; the last is followed too when `follow`. The directories on
 * the way must exist; the last component need not.
 */
export function resolveInRoot(root: string, path: string, o: { follow?: boolean; fs?: TreeFs } = {}): Resolved {
  const fs = o.fs ?? realFs;
  if (!path.startsWith('/')) throw new ResolveError(path, 'EINVAL', 'the path in the container must be absolute');
  if (path.includes('\0')) throw new ResolveError(path, 'EINVAL', 'the path holds a NUL byte');
  const todo = path.split('/').filter((c) => c !== '' && c !== '.');
  const at: string[] = [];
  let links = 0;
  while (todo.length) {
    const c = todo.shift()!;
    if (c === '..') { at.pop(); continue; }
    const last = todo.length === 0;
    const host = join(root, ...at, c);
    const st = fs.lstat(host);
    if (last && !o.follow) { at.push(c); break; }
    if (st === undefined) {
      if (last) { at.push(c); break; }
      throw new ResolveError(path, 'ENOENT', `${'/' + [...at, c].join('/')} does not exist in the container`);
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw new ResolveError(path, 'ELOOP', `more than ${MAX_LINKS} symbolic links on the way`);
      const target = fs.readlink(host);
      if (target.startsWith('/')) at.length = 0;
      todo.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
      continue;
    }
    if (!last && !st.isDirectory()) throw new ResolveError(path, 'ENOTDIR', `${'/' + [...at, c].join('/')} is not a directory`);
    at.push(c);
  }
  const name = at.pop() ?? '';
  return { dir: join(root, ...at), name, parts: at };
}
