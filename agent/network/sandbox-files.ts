// The files a sandbox gives its container, as libnetwork's sandbox does: /etc/hosts,
// /etc/resolv.conf and /etc/hostname, kept under netfiles/<id>/ and bind-mounted read-only.
// Hosts files are rewritten in place (same inode), so running members see a newcomer at once.
import { mkdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import type { HostEntry } from './dns.js';
import { rmTreeAsync } from '../../native/libc.js';
import { join } from 'node:path';

const FILES = ['hosts', 'resolv.conf', 'hostname'] as const;

export class SandboxFiles {
  constructor(private dir: string) { mkdirSync(dir, { recursive: true }); }

  private of(id: string): string { return join(this.dir, id); }

  write(id: string, f: { hosts: string; resolvConf: string; hostname: string; extraHosts?: HostEntry[] }): { source: string; destination: string }[] {
    const d = this.of(id);
    mkdirSync(d, { recursive: true });
    // --add-host entries, kept beside the files: a rewrite of the hosts file by an agent started
    // since (which has only the files) must keep them
    if (f.extraHosts?.length) writeFileSync(join(d, 'extra-hosts.json'), JSON.stringify(f.extraHosts));
    writeFileSync(join(d, 'hosts'), f.hosts);
    writeFileSync(join(d, 'resolv.conf'), f.resolvConf);
    writeFileSync(join(d, 'hostname'), `${f.hostname}\n`);
    return FILES.map((n) => ({ source: join(d, n), destination: `/etc/${n}` }));
  }

  /** The --add-host entries the container was given (none when the file is missing or not a list of entries). */
  extraHosts(id: string): HostEntry[] {
    try {
      const v = JSON.parse(readFileSync(join(this.of(id), 'extra-hosts.json'), 'utf8')) as unknown;
      return Array.isArray(v) ? v.filter((e): e is HostEntry => typeof e?.ip === 'string' && Array.isArray(e?.names) && e.names.every((n: unknown) => typeof n === 'string')) : [];
    } catch { return []; }
  }

  /** Rewrites a member's hosts file in place; false when it has none (detached meanwhile). */
  refreshHosts(id: string, hosts: string): boolean {
    const p = join(this.of(id), 'hosts');
    if (!existsSync(p)) return false;
    try { writeFileSync(p, hosts); return true; } catch { return false; }
  }

  /**
   * On a worker thread, in one native call (rmTreeAsync): three unlinks and an rmdir on the
   * event loop cost 1-5 ms a container (more on a loaded host), which 100 removals at once spent
   * one after another, and fs.promises.rm still made a pool trip and a JS callback per entry.
   */
  remove(id: string): Promise<void> { return rmTreeAsync(this.of(id)); }
}
