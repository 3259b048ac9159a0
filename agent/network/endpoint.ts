// Endpoint = a veth pair between a network's bridge and a sandbox. The address comes from IPAM
// before the endpoint exists (libnetwork's create ≠ join); the pair itself is made in one
// request with its container end already inside the sandbox, because moving a device between
// namespaces afterwards costs the kernel a full unregister/register (~28 ms here).
import { closeSync, openSync } from 'node:fs';
import { NetlinkError, NetlinkSocket } from '../../native/netlink.js';
import * as msg from './netlink-msg.js';
import { deleteLinkIfExists } from './links.js';
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

const EEXIST = 17;
/** Every new network namespace numbers its loopback 1 (LOOPBACK_IFINDEX, Linux >= 3.18). */
const LOOPBACK_IFINDEX = 1;

/**
 * The start path in one go, on a sandbox just made (`ns` is a socket inside it): the veth pair
 * is created with its host end already up on the bridge and its other end already *inside* the
 * sandbox as `ifname` with `mac` (so the kernel never moves a device between namespaces,
 * the expensive part), then lo up, the address and the default route inside. Four netlink
 * round trips: [create, look up the host end] on the host, [hairpin], and in the sandbox
 * [lo up, look up eth0], [eth0 up, address, route]. A leftover host link of the same name is replaced.
 */
export function plugEndpoint(s: NetlinkSocket, ns: NetlinkSocket, e: EndpointSpec & { mac: string; bridgeIndex: number }, sb: Sandbox, ifname = 'eth0'): void {
  const nsFd = openSync(sb.path, 'r');
  let hostIndex: number;
  try {
    const create = () => s.batch([
      { msg: msg.newVethIntoNetns({ name: e.hostIf, master: e.bridgeIndex, peer: ifname, peerNsFd: nsFd, peerMac: e.mac }), op: 'RTM_NEWLINK', target: `${e.hostIf} (veth to ${sb.path})` },
      { msg: msg.getLink(e.hostIf), op: 'RTM_GETLINK', target: e.hostIf },
    ]);
    let r: ReturnType<typeof create>;
    try {
      r = create();
    } catch (err) {
      if (!(err instanceof NetlinkError && err.errno === EEXIST)) throw err;
      deleteLinkIfExists(s, e.hostIf); // left by a crash between create and record
      r = create();
    }
    const host = r[1]!.find((m) => m.type === msg.RTM_NEWLINK);
    if (!host) throw new NetlinkError('RTM_GETLINK', 19, e.hostIf, 'created link not found');
    hostIndex = msg.decodeLink(host.payload).index;
  } finally {
    closeSync(nsFd);
  }
  try {
    s.batch([{ msg: msg.setBridgePortHairpin(hostIndex, true), op: 'RTM_SETLINK', target: `${e.hostIf} hairpin` }]);
    const [, inside] = ns.batch([
      { msg: msg.setLinkUp(LOOPBACK_IFINDEX), op: 'RTM_NEWLINK', target: `lo in ${sb.path}` },
      { msg: msg.getLink(ifname), op: 'RTM_GETLINK', target: `${ifname} in ${sb.path}` },
    ]);
    const link = inside!.find((m) => m.type === msg.RTM_NEWLINK);
    if (!link) throw new NetlinkError('RTM_GETLINK', 19, ifname, 'created link not found in the sandbox');
    const index = msg.decodeLink(link.payload).index;
    ns.batch([
      { msg: msg.setLinkUp(index), op: 'RTM_NEWLINK', target: `${ifname} in ${sb.path}` },
      { msg: msg.addAddress(index, e.ip, e.prefixLen), op: 'RTM_NEWADDR', target: `${e.ip}/${e.prefixLen} on ${ifname}` },
      { msg: msg.addDefaultRoute(e.gateway), op: 'RTM_NEWROUTE', target: `default via ${e.gateway}` },
    ]);
  } catch (err) {
    deleteLinkIfExists(s, e.hostIf);
    throw err;
  }
}

/** Deletes the pair through its host end (wherever the other end is); false if already gone. */
export function deleteEndpoint(s: NetlinkSocket, e: Pick<EndpointSpec, 'hostIf' | 'peerIf'>): boolean {
  const a = deleteLinkIfExists(s, e.hostIf);
  const b = deleteLinkIfExists(s, e.peerIf); // a pair that never left the host, half-created
  return a || b;
}
