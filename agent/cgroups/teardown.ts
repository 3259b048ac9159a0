// Emptying and removing a group, shared by both managers.
import { CgroupError } from './errors.js';
import { removeDirAsync, sleep } from './fs.js';

export function signalAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch (e) {
      // ESRCH: it exited between reading cgroup.procs and now, which is what we want.
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw CgroupError.from(`kill ${pid} in`, String(pid), e);
    }
  }
}

/**
 * Kills until the group is empty. Killing again each round catches children forked
 * before the first signal landed (when there was no freezer to stop them).
 */
export async function killUntilEmpty(path: string, pids: () => number[], kill: (p: number[]) => void, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (let left = pids(); left.length > 0; left = pids()) {
    if (Date.now() > end) throw new CgroupError(`cgroup: ${path} still has processes ${left.slice(0, 8).join(', ')} after SIGKILL`, path, 'EBUSY');
    kill(left);
    await sleep(20);
  }
}

/** rmdir; the kernel may report EBUSY for a moment after the last task exited. */
export async function removeDirRetry(path: string, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      await removeDirAsync(path);
      return;
    } catch (e) {
      if (!(e instanceof CgroupError) || e.code !== 'EBUSY' || Date.now() > end) throw e;
      await sleep(20);
    }
  }
}

/**
 * swarmlite/ may vanish under a create when another agent's removeNodeGroup() empties it
 * between our mkdirs: walk the path again (twice at most).
 */
export function retryVanishedParent(create: () => void): void {
  for (let attempt = 0; ; attempt++) {
    try {
      return create();
    } catch (e) {
      if (!(e instanceof CgroupError) || e.code !== 'ENOENT' || attempt >= 2) throw e;
    }
  }
}
