// The node's networking as the rest of the agent sees it: one shape for the container
// lifecycle (attach/detach, host/ports.ts NetworkPort), the pipeline (networks asked for in
// the log) and the agent's start (reconcile, describe). Built on NetworkManager (CNM:
// networks, endpoints, sandboxes, IPAM) and the sandbox's /etc files.
import type { ContainerSpec } from '../../shared/events.js';
import type { NetworkPort, NetworkJoin } from '../host/ports.js';
import type { NodeLayout } from '../layout.js';
import { NetworkManager, NoSuchNetworkError, SubnetOverlapError, type NetworkInfo, type ReconcileReport } from './manager.js';
import { SandboxFiles } from './sandbox-files.js';
import { hostname } from 'node:os';
import { splitExtraHost } from '../../shared/host-config.js';
import type { HostEntry } from './dns.js';

/** --add-host entries as hosts lines (host-gateway is resolved against the network's gateway). */
function extraHosts(spec: ContainerSpec): HostEntry[] {
  return (spec.extraHosts ?? []).map((v) => { const h = splitExtraHost(v); return { ip: h.ip, names: [h.name] }; });
}

export interface NodeNetwork extends NetworkPort {
  attach(id: string, spec: ContainerSpec): Promise<NetworkJoin>;
  detach(id: string): Promise<void>;
  createNetwork(name: string, subnet: string, gateway?: string): Promise<{ subnet: string; gateway: string; bridge: string }>;
  /** Removes a network; one that is already gone is not an error. */
  removeNetwork(name: string): Promise<void>;
  /** Frees what containers that are not in `live` left behind (links, rules, addresses). */
  reconcile(live: Iterable<string>): Promise<ReconcileReport>;
  list(): NetworkInfo[];
  close(): void;
}

export async function openNodeNetwork(node: string, layout: NodeLayout, subnet?: string): Promise<NodeNetwork> {
  const mgr = await openManager(node, layout.network, subnet);
  const files = new SandboxFiles(layout.netfiles);
  const hostnames = new Map<string, string>();
  const extras = new Map<string, HostEntry[]>();
  const refresh = (network: string, except?: string) => {
    const info = mgr.listNetworks().find((n) => n.name === network);
    // On the default network a hosts file names only its own container: nothing to refresh.
    if (!info || info.builtin) return;
    for (const m of info.containers) if (m !== except) files.refreshHosts(m, mgr.hostsFor(m, hostnames.get(m), extras.get(m) ?? files.extraHosts(m)));
  };
  return {
    async attach(id, spec) {
      const a = await mgr.attach(id, {
        ...(spec.network === 'bridge' ? {} : { network: spec.network }),
        ports: (spec.ports ?? []).map((p) => ({ host: p.host, container: p.container, proto: p.proto })),
        aliases: [spec.name, ...(spec.hostname !== id.slice(0, 12) ? [spec.hostname] : [])],
      });
      hostnames.set(id, spec.hostname);
      const extra = extraHosts(spec);
      if (extra.length) extras.set(id, extra);
      const resolv = mgr.resolvConf(undefined, {
        ...(spec.dns?.length ? { nameservers: spec.dns } : {}), ...(spec.dnsSearch?.length ? { search: spec.dnsSearch } : {}),
        ...(spec.dnsOptions?.length ? { options: spec.dnsOptions } : {}),
      });
      // --uts host: the container's /etc/hostname is the host's name, as its hostname(1) is
      const mounts = files.write(id, { hosts: mgr.hostsFor(id, spec.hostname, extra), resolvConf: resolv, hostname: spec.utsMode === 'host' ? hostname() : spec.hostname, extraHosts: extra });
      refresh(a.network, id);
      return { mode: 'path', path: a.netnsPath, ip: a.ip, mounts };
    },
    async detach(id) {
      const net = mgr.attachment(id)?.network;
      hostnames.delete(id);
      extras.delete(id);
      // the files go while the links do (a round on a worker thread): neither needs the other
      await Promise.all([net ? mgr.detach(id) : undefined, files.remove(id)]);
      if (net) refresh(net);
    },
    async createNetwork(name, sub, gateway) {
      const n = await mgr.createNetwork({ name, subnet: sub, ...(gateway ? { gateway } : {}) });
      return { subnet: n.subnet, gateway: n.gateway, bridge: n.bridge };
    },
    async removeNetwork(name) {
      try { await mgr.removeNetwork(name); } catch (err) { if (!(err instanceof NoSuchNetworkError)) throw err; }
    },
    reconcile: (live) => mgr.reconcile(live),
    list: () => mgr.listNetworks(),
    close: () => mgr.close(),
  };
}

/**
 * The default network's subnet: the one asked for, or, like docker's pools, the first of
 * 172.17-31.0.0/16 that no host address (another cluster's bridge, say) already uses.
 */
async function openManager(node: string, dir: string, subnet?: string): Promise<NetworkManager> {
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
