// Link lookups and idempotent deletes over a netlink socket, shared by the bridge driver,
// endpoints and reconcile.
import { NetlinkError, type NetlinkSocket } from '../../native/netlink.js';
import * as msg from './netlink-msg.js';

const ENODEV = 19;

/** The link called name, or undefined when there is none. */
export function findLink(s: NetlinkSocket, name: string): msg.LinkInfo | undefined {
  try {
    const r = s.request(msg.getLink(name), 'RTM_GETLINK', name);
    return r.find((m) => m.type === msg.RTM_NEWLINK) ? msg.decodeLink(r.find((m) => m.type === msg.RTM_NEWLINK)!.payload) : undefined;
  } catch (e) {
    if (e instanceof NetlinkError && e.errno === ENODEV) return undefined;
    throw e;
  }
}

/** The link called name; ENODEV as a NetlinkError naming it when missing. */
export function mustLink(s: NetlinkSocket, name: string): msg.LinkInfo {
  const l = findLink(s, name);
  if (!l) throw new NetlinkError('RTM_GETLINK', ENODEV, name, 'no such link');
  return l;
}

export function listLinks(s: NetlinkSocket): msg.LinkInfo[] {
  return s.request(msg.dumpLinks(), 'RTM_GETLINK').filter((m) => m.type === msg.RTM_NEWLINK).map((m) => msg.decodeLink(m.payload));
}

export function listAddresses(s: NetlinkSocket): msg.AddrInfo[] {
  return s.request(msg.dumpAddresses(), 'RTM_GETADDR').filter((m) => m.type === msg.RTM_NEWADDR).map((m) => msg.decodeAddress(m.payload));
}

/** Deletes a link by name; returns false when it was already gone. */
export function deleteLinkIfExists(s: NetlinkSocket, name: string): boolean {
  try {
    s.request(msg.deleteLinkByName(name), 'RTM_DELLINK', name);
    return true;
  } catch (e) {
    if (e instanceof NetlinkError && e.errno === ENODEV) return false;
    throw e;
  }
}
