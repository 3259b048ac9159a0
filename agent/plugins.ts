// Wires the host parts that the container host uses through small plugin interfaces:
// cgroups (agent/cgroups) and networking (agent/network).
import type { CgroupPlugin, NetworkPlugin } from './containers.js';
import { detect, cgroupManager, pruneContainerGroups, type Detection } from './cgroups/index.js';
import type { Resources } from '../shared/limits.js';
import { mkdirSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { NetworkManager, SubnetOverlapError } from './network/manager.js';

export function cgroupPlugin(node: string, det: Detection = detect()): CgroupPlugin & { detection: Detection; stats: (id: string) => ReturnType<ReturnType<typeof cgroupManager>['stats']>; prune: (keep: string[]) => Promise<void> } {
  const mgr = (id: string) => cgroupManager(det, node, id);
  return {
    detection: det,
    async create(id, r) {
      const m = mgr(id);
      m.create();
      const warnings = m.apply(r as Resources);
      for (const w of warnings) console.error(`agent: ${id.slice(0, 12)}: ${w}`);
      return m.procsFiles();
    },
    async update(id, r) { mgr(id).apply(r as Resources); },
    oomKilled: (id) => { try { return mgr(id).oomKilled(); } catch { return false; } },
    async remove(id) { await mgr(id).remove({ kill: true }); },
    stats: (id) => mgr(id).stats(),
    async prune(keep) {
      const r = await pruneContainerGroups(det, node, keep, { kill: true });
      for (const f of r.failed) console.error(`agent: cgroup of ${f.container.slice(0, 12)}: ${f.error.message}`);
    },
  };
}

/**
 * Networking for the container host: an endpoint on the container's network, and the
 * /etc/hosts, /etc/resolv.conf and /etc/hostname files bind-mounted into it. Hosts files
 * are rewritten in place (same inode) so running members see a newcomer at once.
 */
export function networkPlugin(mgr: NetworkManager, dir: string): NetworkPlugin {
  mkdirSync(dir, { recursive: true });
  const files = (id: string) => join(dir, id);
  const hostnames = new Map<string, string>();
  const refresh = (network: string, except?: string) => {
    const info = mgr.listNetworks().find((n) => n.name === network);
    // On the default network a hosts file names only its own container: nothing to refresh.
    if (!info || info.builtin) return;
    for (const m of info?.containers ?? []) {
      if (m === except || !existsSync(join(files(m), 'hosts'))) continue;
      try { writeFileSync(join(files(m), 'hosts'), mgr.hostsFor(m, hostnames.get(m))); } catch { /* detached meanwhile */ }
    }
  };
  return {
    async attach(id, spec) {
      const a = await mgr.attach(id, {
        ...(spec.network === 'bridge' ? {} : { network: spec.network }),
        ports: (spec.ports ?? []).map((p) => ({ host: p.host, container: p.container, proto: p.proto })),
        aliases: [spec.name, ...(spec.hostname !== id.slice(0, 12) ? [spec.hostname] : [])],
      });
      hostnames.set(id, spec.hostname);
      const d = files(id);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'hosts'), mgr.hostsFor(id, spec.hostname));
      writeFileSync(join(d, 'resolv.conf'), mgr.resolvConf());
      writeFileSync(join(d, 'hostname'), `${spec.hostname}\n`);
      refresh(a.network, id);
      return {
        mode: 'path', path: a.netnsPath, ip: a.ip,
        mounts: ['hosts', 'resolv.conf', 'hostname'].map((f) => ({ source: join(d, f), destination: `/etc/${f}` })),
      };
    },
    async detach(id) {
      const net = mgr.attachment(id)?.network;
      if (net) await mgr.detach(id);
      hostnames.delete(id);
      rmSync(files(id), { recursive: true, force: true });
      if (net) refresh(net);
    },
  };
}

export interface Plugins {
  net: NetworkPlugin;
  network: NetworkManager;
  cgroups: ReturnType<typeof cgroupPlugin>;
  close: () => Promise<void>;
  describe: () => unknown;
}

export async function plugins(node: string, stateDir: string, subnet?: string): Promise<Plugins> {
  const cgroups = cgroupPlugin(node);
  const network = await openNetwork(node, join(stateDir, 'network'), subnet);
  const net = networkPlugin(network, join(stateDir, 'netfiles'));
  return {
    net, network, cgroups,
    close: async () => network.close(),
    describe: () => ({ cgroups: cgroups.detection.kind, networks: network.listNetworks() }),
  };
}

/**
 * The default network's subnet: the one asked for, or, like docker's pools, the first of
 * 172.17-31.0.0/16 that no host address (another cluster's bridge, say) already uses.
 */
async function openNetwork(node: string, dir: string, subnet?: string): Promise<NetworkManager> {
  const candidates = subnet ? [subnet] : Array.from({ length: 15 }, (_, i) => `172.${17 + i}.0.0/16`);
  for (const [i, cand] of candidates.entries()) {
    try {
      return await NetworkManager.open({ node, stateDir: dir, defaultSubnet: cand });
    } catch (err) {
      if (!(err instanceof SubnetOverlapError) || i === candidates.length - 1) throw err;
    }
  }
  throw new Error('unreachable');
}
