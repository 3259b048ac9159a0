// Sandbox = the container's network namespace, kept as a bind-mounted file so it exists before
// the container does (the runtime joins it through the OCI spec's namespace path) and after
// the agent restarts.
import { mkdirSync, readdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { createNetns, deleteNetns } from '../../native/netns.js';
import { withNetlink } from '../../native/netlink.js';
import * as msg from './netlink-msg.js';
import { mustLink } from './links.js';

const NSFS_MAGIC = 0x6e736673;

export class Sandbox {
  constructor(readonly id: string, readonly path: string) {}

  /** Creates the namespace at dir/id with lo up (a leftover file there is removed first). */
  static create(dir: string, id: string): Sandbox {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id)) throw new TypeError(`invalid sandbox id "${id}"`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const sb = new Sandbox(id, join(dir, id));
    deleteNetns(sb.path);
    createNetns(sb.path);
    try {
      withNetlink(sb.path, (s) => s.request(msg.setLinkUp(mustLink(s, 'lo').index), 'RTM_NEWLINK', `lo in ${sb.path}`));
    } catch (e) {
      sb.delete();
      throw e;
    }
    return sb;
  }

  /** True when path is a live namespace mount, not just a leftover file. */
  exists(): boolean {
    return isNetns(this.path);
  }

  /** Unmount + unlink; deleting what is already gone is fine. */
  delete(): void {
    deleteNetns(this.path);
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
