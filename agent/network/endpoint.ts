// Endpoint = a veth pair between a network's bridge and a sandbox. As in libnetwork, create
// (make the pair, plug the host end into the bridge) is apart from join (move the other end
// into the sandbox and configure it there), so the address reserved at create survives a leave.
import { closeSync, openSync } from 'node:fs';
import { withNetlink, type NetlinkSocket } from '../../native/netlink.js';
import * as msg from './netlink-msg.js';
import { deleteLinkIfExists, findLink, mustLink } from './links.js';
import type { Sandbox } from './sandbox.js';

export interface EndpointSpec {
  /** host end, stays on the bridge */
  hostIf: string;
  /** container end until it is renamed to eth0 inside the sandbox */
  peerIf: string;
  bridge: string;
  ip: string;
  prefixLen: number;
  gateway: string;
}

/** Makes the pair and plugs the host end into the bridge. Leftover links of the same names are replaced. */
export function createEndpoint(s: NetlinkSocket, e: EndpointSpec): void {
  deleteLinkIfExists(s, e.hostIf);
  deleteLinkIfExists(s, e.peerIf);
  s.request(msg.newVeth(e.hostIf, e.peerIf), 'RTM_NEWLINK', e.hostIf);
  try {
    const br = mustLink(s, e.bridge);
    const host = mustLink(s, e.hostIf);
    s.request(msg.setLinkMaster(host.index, br.index), 'RTM_NEWLINK', `${e.hostIf} master ${e.bridge}`);
    s.request(msg.setBridgePortHairpin(host.index, true), 'RTM_SETLINK', `${e.hostIf} hairpin`);
    s.request(msg.setLinkUp(host.index), 'RTM_NEWLINK', e.hostIf);
  } catch (err) {
    deleteLinkIfExists(s, e.hostIf);
    throw err;
  }
}

/**
 * Moves the container end into the sandbox and configures it there as eth0 with the address
 * and a default route via the gateway. Returns the MAC address of eth0.
 */
export function joinEndpoint(s: NetlinkSocket, e: EndpointSpec, sb: Sandbox, ifname = 'eth0'): { mac?: string } {
  const peer = mustLink(s, e.peerIf);
  // IFLA_NET_NS_FD takes a descriptor; the kernel takes its own reference, so close it at once.
  const nsFd = openSync(sb.path, 'r');
  try {
    s.request(msg.setLinkNetns(peer.index, nsFd), 'RTM_NEWLINK', `${e.peerIf} netns ${sb.path}`);
  } finally {
    closeSync(nsFd);
  }
  return withNetlink(sb.path, (ns) => {
    const inside = mustLink(ns, e.peerIf);
    ns.request(msg.renameLink(inside.index, ifname), 'RTM_NEWLINK', `${e.peerIf} → ${ifname}`);
    ns.request(msg.addAddress(inside.index, e.ip, e.prefixLen), 'RTM_NEWADDR', `${e.ip}/${e.prefixLen} on ${ifname}`);
    ns.request(msg.setLinkUp(inside.index), 'RTM_NEWLINK', ifname);
    ns.request(msg.addDefaultRoute(e.gateway), 'RTM_NEWROUTE', `default via ${e.gateway}`);
    const mac = findLink(ns, ifname)?.mac;
    return mac ? { mac } : {};
  });
}

/** Deletes the pair through its host end (wherever the other end is); false if already gone. */
export function deleteEndpoint(s: NetlinkSocket, e: Pick<EndpointSpec, 'hostIf' | 'peerIf'>): boolean {
  const a = deleteLinkIfExists(s, e.hostIf);
  const b = deleteLinkIfExists(s, e.peerIf); // a pair that never left the host, half-created
  return a || b;
}
