// Sandbox = the container's network namespace, kept as a bind-mounted file so it exists before
// the container does (the runtime joins it through the OCI spec's namespace path) and after
// the agent restarts.
import { mkdirSync, readdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { createNetnsWithSocket, deleteNetns, deleteNetnsAsync } from '../../native/netns.js';
import { NetlinkSocket } from '../../native/netlink.js';

const NSFS_MAGIC = 0x6e736673;

export class Sandbox {
  constructor(readonly id: string, readonly path: string) {}

  /**
   * Creates the namespace at dir/id and returns it with a netlink socket inside it, made by
   * the same native thread (lo stays down: the caller configures everything in one batch).
   * The caller closes the socket.
   */
  static createWithSocket(dir: string, id: string): { sb: Sandbox; sock: NetlinkSocket } {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id)) throw new TypeError(`invalid sandbox id "${id}"`);
    const sb = new Sandbox(id, join(dir, id));
    deleteNetns(sb.path);
    let fd: number;
    try {
      fd = createNetnsWithSocket(sb.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      mkdirSync(dir, { recursive: true, mode: 0o700 }); // first sandbox: make the directory
      fd = createNetnsWithSocket(sb.path);
    }
    return { sb, sock: NetlinkSocket.adopt(fd, sb.path) };
  }

  /** True when path is a live namespace mount, not just a leftover file. */
  exists(): boolean {
    return isNetns(this.path);
  }

  /** Unmount + unlink; deleting what is already gone is fine. */
  delete(): void {
    deleteNetns(this.path);
  }

  /** delete() on a worker thread (umount2 waits for the mount lock, which starts take too). */
  deleteAsync(): Promise<void> {
    return deleteNetnsAsync(this.path);
  }
}

export function isNetns(path: string): boolean {
  try {
    return Number(statfsSync(path).type) === NSFS_MAGIC;
  } catch {
    return false;
  }
}

/** Ids of every entry in the sandbox directory (live or leftover). */
export function listSandboxes(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
