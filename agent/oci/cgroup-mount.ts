// A config.json's `cgroup` mount (runc spec and the validation suite's generator put one at
// /sys/fs/cgroup). Mounting the type as given would attach every v1 controller at once
// (EBUSY on a host where they are mounted apart) and show the host's whole tree; runc
// instead shows the container its own groups. Pure: the mount list in, the expanded out.
//   v1: a tmpfs at the destination, one bind per hierarchy of the container's own group at
//       <dest>/<hierarchy>, then the tmpfs remounted read-only when the mount asked for ro
//   v2: a bind of the container's own group at the destination
import { basename, dirname } from 'node:path';
import type { OciMount } from '../runtime/spec.js';

const FLAGS = ['nosuid', 'noexec', 'nodev'];

/** procsFiles: the container's cgroup.procs files (<hierarchy>/<group>/cgroup.procs). */
export function expandCgroupMounts(mounts: readonly OciMount[], procsFiles: readonly string[], version: 'v1' | 'v2', group: string): OciMount[] {
  const out: OciMount[] = [];
  for (const m of mounts) {
    if (m.type !== 'cgroup' && m.type !== 'cgroup2') { out.push(m); continue; }
    const ro = (m.options ?? []).includes('ro');
    const bindOpts = ['rbind', ...FLAGS, ...(ro ? ['ro'] : []), 'rprivate'];
    const groups = procsFiles.map((f) => dirname(f));
    if (version === 'v2') {
      if (groups[0]) out.push({ destination: m.destination, type: 'bind', source: groups[0], options: bindOpts });
      continue;
    }
    out.push({ destination: m.destination, type: 'tmpfs', source: 'tmpfs', options: [...FLAGS, 'mode=755'] });
    for (const g of groups) {
      if (!g.endsWith(`/${group}`)) continue;
      const name = basename(g.slice(0, g.length - group.length - 1));
      if (!/^[A-Za-z0-9_=,.-]+$/.test(name)) continue;
      out.push({ destination: `${m.destination.replace(/\/+$/, '')}/${name}`, type: 'bind', source: g, options: bindOpts });
    }
    if (ro) out.push({ destination: m.destination, type: 'tmpfs', source: 'tmpfs', options: ['remount', 'ro', ...FLAGS] });
  }
  return out;
}
