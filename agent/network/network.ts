// Network = the bridge driver: one Linux bridge per network, the gateway address on it, and
// the host settings routing needs. Idempotent: creating what already exists converges.
import { NetlinkError, type NetlinkSocket } from '../../native/netlink.js';
import * as msg from './netlink-msg.js';
import { deleteLinkIfExists, findLink, mustLink } from './links.js';
import { writeIfSysctl, writeSysctl } from './host.js';

const EEXIST = 17;

export interface BridgeSpec {
  bridge: string;
  gateway: string;
  prefixLen: number;
}

/** Creates (or completes) the bridge: link, gateway address, up, sysctls. */
export function ensureBridge(s: NetlinkSocket, b: BridgeSpec): void {
  let link = findLink(s, b.bridge);
  if (link && link.kind !== 'bridge') throw new NetlinkError('RTM_NEWLINK', EEXIST, b.bridge, `a ${link.kind ?? 'non-bridge'} link of that name exists`);
  if (!link) {
    s.request(msg.newBridge(b.bridge), 'RTM_NEWLINK', b.bridge);
    link = mustLink(s, b.bridge);
  }
  try {
    s.request(msg.addAddress(link.index, b.gateway, b.prefixLen), 'RTM_NEWADDR', `${b.gateway}/${b.prefixLen} on ${b.bridge}`);
  } catch (e) {
    if (!(e instanceof NetlinkError && e.errno === EEXIST)) throw e;
  }
  s.request(msg.setLinkUp(link.index), 'RTM_NEWLINK', b.bridge);
  // Published ports reached at 127.0.0.1 are DNATed with a loopback source; the kernel drops
  // such packets on a non-loopback device unless route_localnet is set there. It would also
  // let a container address the host's loopback: the table's loopback guard forbids that.
  writeIfSysctl(b.bridge, 'route_localnet', '1');
  writeSysctl('net.ipv4.ip_forward', '1');
}

/** Deletes the bridge; false if it was already gone. */
export function removeBridge(s: NetlinkSocket, bridge: string): boolean {
  return deleteLinkIfExists(s, bridge);
}
