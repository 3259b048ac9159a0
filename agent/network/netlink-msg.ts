// Pure rtnetlink encoders and decoders (no I/O), built from tiny pieces the way crun's
// net_device.c does it: a header, a fixed family struct, then padded attributes. Every
// request asks for an ACK so the transport (native/netlink.ts) can report the kernel's errno.
// Byte layouts follow <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>; all host order
// (little-endian on every machine we target), addresses in network order.

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_DUMP = 0x300;

const AF_UNSPEC = 0;
const AF_BRIDGE = 7;
export const AF_INET = 2;
export const IFF_UP = 0x1;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_PROTINFO = 12;
const IFLA_NET_NS_FD = 28;
const IFLA_GROUP = 27;
const IFLA_BRPORT_MODE = 4;
const NLA_F_NESTED = 0x8000;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;

const RTA_GATEWAY = 5;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RTN_UNICAST = 1;

const NLMSG_HDRLEN = 16;
const RTA_HDRLEN = 4;
const align4 = (n: number): number => (n + 3) & ~3;

// ---- building blocks ------------------------------------------------------------------------

/** struct nlmsghdr followed by the body parts; nlmsg_len covers everything. seq is set by the transport. */
export function nlmsg(type: number, flags: number, parts: Uint8Array[], seq = 0, pid = 0): Buffer {
  const body = Buffer.concat(parts);
  const h = Buffer.alloc(NLMSG_HDRLEN);
  h.writeUInt32LE(NLMSG_HDRLEN + body.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq >>> 0, 8);
  h.writeUInt32LE(pid >>> 0, 12);
  return Buffer.concat([h, body]);
}

/** struct ifinfomsg (16 bytes). */
export function ifinfomsg(o: { family?: number; type?: number; index?: number; flags?: number; change?: number } = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(o.family ?? AF_UNSPEC, 0);
  b.writeUInt16LE(o.type ?? 0, 2);
  b.writeInt32LE(o.index ?? 0, 4);
  b.writeUInt32LE(o.flags ?? 0, 8);
  b.writeUInt32LE(o.change ?? 0, 12);
  return b;
}

/** struct ifaddrmsg (8 bytes). */
export function ifaddrmsg(o: { family: number; prefixlen: number; flags?: number; scope?: number; index: number }): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(o.family, 0);
  b.writeUInt8(o.prefixlen, 1);
  b.writeUInt8(o.flags ?? 0, 2);
  b.writeUInt8(o.scope ?? 0, 3);
  b.writeUInt32LE(o.index, 4);
  return b;
}

/** struct rtmsg (12 bytes). */
export function rtmsg(o: { family: number; dstLen?: number; srcLen?: number; tos?: number; table: number; protocol: number; scope: number; type: number; flags?: number }): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(o.family, 0);
  b.writeUInt8(o.dstLen ?? 0, 1);
  b.writeUInt8(o.srcLen ?? 0, 2);
  b.writeUInt8(o.tos ?? 0, 3);
  b.writeUInt8(o.table, 4);
  b.writeUInt8(o.protocol, 5);
  b.writeUInt8(o.scope, 6);
  b.writeUInt8(o.type, 7);
  b.writeUInt32LE(o.flags ?? 0, 8);
  return b;
}

/** One attribute: rta_len counts header + payload; the result is zero-padded to 4 bytes. */
export function rtattr(type: number, payload: Uint8Array): Buffer {
  const len = RTA_HDRLEN + payload.length;
  const b = Buffer.alloc(align4(len));
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  b.set(payload, RTA_HDRLEN);
  return b;
}

/** A nested attribute. Children are already padded, so the outer length includes their padding (as iproute2 does). */
export function nested(type: number, children: Uint8Array[]): Buffer {
  return rtattr(type, Buffer.concat(children));
}

export const attrString = (type: number, s: string): Buffer => rtattr(type, Buffer.from(s + '\0', 'utf8'));
export function attrU32(type: number, v: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32LE(v >>> 0, 0);
  return rtattr(type, p);
}
export const attrIPv4 = (type: number, ip: string): Buffer => rtattr(type, ipv4Bytes(ip));

/** "10.1.2.3" → 4 bytes in network order. Throws on anything that is not a dotted quad. */
export function ipv4Bytes(ip: string): Buffer {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw new TypeError(`not an IPv4 address: "${ip}"`);
  return Buffer.from(parts.map(Number));
}

/** Interface names are at most 15 bytes (IFNAMSIZ - 1) and cannot contain '/', ':' or whitespace. */
export function checkIfName(name: string): string {
  if (name.length === 0 || Buffer.byteLength(name) > 15 || /[/:\s]/.test(name) || name === '.' || name === '..') {
    throw new TypeError(`invalid interface name "${name}" (1-15 characters, no "/", ":" or spaces)`);
  }
  return name;
}

// iproute2 sends the kind without a NUL (NLA_STRING accepts both); we match it byte for byte.
const kindAttr = (kind: string): Buffer => rtattr(IFLA_INFO_KIND, Buffer.from(kind, 'utf8'));

const CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
const CHANGE = NLM_F_REQUEST | NLM_F_ACK;

// ---- links -----------------------------------------------------------------------------------

/** `ip link add NAME type bridge` */
export function newBridge(name: string): Buffer {
  return nlmsg(RTM_NEWLINK, CREATE, [ifinfomsg(), attrString(IFLA_IFNAME, checkIfName(name)), nested(IFLA_LINKINFO, [kindAttr('bridge')])]);
}

/** `ip link add NAME type veth peer name PEER`: the peer is a whole ifinfomsg + attrs inside VETH_INFO_PEER. */
export function newVeth(name: string, peer: string): Buffer {
  const peerInfo = rtattr(VETH_INFO_PEER, Buffer.concat([ifinfomsg(), attrString(IFLA_IFNAME, checkIfName(peer))]));
  return nlmsg(RTM_NEWLINK, CREATE, [
    ifinfomsg(),
    attrString(IFLA_IFNAME, checkIfName(name)),
    nested(IFLA_LINKINFO, [kindAttr('veth'), nested(IFLA_INFO_DATA, [peerInfo])]),
  ]);
}

export interface VethIntoNetns {
  /** host end: stays in the caller's namespace, enslaved to master and up */
  name: string;
  master: number;
  /** the other end, created directly (down) in the namespace given by peerNsFd */
  peer: string;
  peerNsFd: number;
  /** "02:42:0a:01:02:03" */
  peerMac?: string;
}

/**
 * `ip link add NAME up master #MASTER type veth peer name PEER address MAC netns FD`, in the
 * attribute order iproute2 sends: one request instead of create + master + up + move + rename. Creating the peer inside the namespace also spares the kernel a namespace move, which
 * costs a full unregister/register of the device (~28 ms measured here).
 */
export function newVethIntoNetns(v: VethIntoNetns): Buffer {
  // The peer cannot be set up here: the kernel answers ENOTCONN for a peer in another namespace.
  const peerAttrs = [ifinfomsg()];
  if (v.peerMac) peerAttrs.push(rtattr(IFLA_ADDRESS, macBytes(v.peerMac)));
  peerAttrs.push(attrU32(IFLA_NET_NS_FD, v.peerNsFd), attrString(IFLA_IFNAME, checkIfName(v.peer)));
  return nlmsg(RTM_NEWLINK, CREATE, [
    ifinfomsg({ flags: IFF_UP, change: IFF_UP }),
    attrU32(IFLA_MASTER, v.master),
    attrString(IFLA_IFNAME, checkIfName(v.name)),
    nested(IFLA_LINKINFO, [kindAttr('veth'), nested(IFLA_INFO_DATA, [rtattr(VETH_INFO_PEER, Buffer.concat(peerAttrs))])]),
  ]);
}

/** "aa:bb:cc:dd:ee:ff" → 6 bytes. */
export function macBytes(mac: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new TypeError(`not a MAC address: "${mac}"`);
  return Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));
}

/**
 * A locally administered unicast MAC from an IPv4 address (02:42:<the four bytes>, as Docker
 * does): known before the link exists, so nobody has to ask the kernel for it afterwards.
 */
export function macForIp(ip: string): string {
  return ['02', '42', ...[...ipv4Bytes(ip)].map((x) => x.toString(16).padStart(2, '0'))].join(':');
}

/** `ip link set dev #INDEX up` */
export function setLinkUp(index: number): Buffer {
  return nlmsg(RTM_NEWLINK, CHANGE, [ifinfomsg({ index, flags: IFF_UP, change: IFF_UP })]);
}

/** `ip link set dev #INDEX master #MASTER` */
export function setLinkMaster(index: number, masterIndex: number): Buffer {
  return nlmsg(RTM_NEWLINK, CHANGE, [ifinfomsg({ index }), attrU32(IFLA_MASTER, masterIndex)]);
}

/** `ip link set dev #INDEX netns FD`: nsFd is an open file descriptor of the target namespace. */
export function setLinkNetns(index: number, nsFd: number): Buffer {
  return nlmsg(RTM_NEWLINK, CHANGE, [ifinfomsg({ index }), attrU32(IFLA_NET_NS_FD, nsFd)]);
}

/** `ip link set dev #INDEX name NAME` (the link must be down). */
export function renameLink(index: number, name: string): Buffer {
  return nlmsg(RTM_NEWLINK, CHANGE, [ifinfomsg({ index }), attrString(IFLA_IFNAME, checkIfName(name))]);
}

/** `ip link set dev #INDEX mtu MTU` */
export function setLinkMtu(index: number, mtu: number): Buffer {
  return nlmsg(RTM_NEWLINK, CHANGE, [ifinfomsg({ index }), attrU32(IFLA_MTU, mtu)]);
}

/**
 * `bridge link set dev #INDEX hairpin on`: lets the bridge send a frame back out of the port it
 * came in on, which a container reaching its own published port needs when br_netfilter DNATs
 * the frame on the bridge itself.
 */
export function setBridgePortHairpin(index: number, on: boolean): Buffer {
  return nlmsg(RTM_SETLINK, CHANGE, [ifinfomsg({ family: AF_BRIDGE, index }), nested(IFLA_PROTINFO | NLA_F_NESTED, [rtattr(IFLA_BRPORT_MODE, Buffer.from([on ? 1 : 0]))])]);
}

/** `ip link del dev #INDEX` (deleting one end of a veth pair deletes both). */
export function deleteLink(index: number): Buffer {
  return nlmsg(RTM_DELLINK, CHANGE, [ifinfomsg({ index })]);
}

/** `ip link del dev NAME`, by name so a caller needs no lookup first. */
export function deleteLinkByName(name: string): Buffer {
  return nlmsg(RTM_DELLINK, CHANGE, [ifinfomsg(), attrString(IFLA_IFNAME, checkIfName(name))]);
}

/** `ip link set dev NAME group GROUP`: marks a link for a group delete (deleteLinkGroup). */
export function setLinkGroupByName(name: string, group: number): Buffer {
  return nlmsg(RTM_NEWLINK, CHANGE, [ifinfomsg(), attrString(IFLA_IFNAME, checkIfName(name)), attrU32(IFLA_GROUP, checkGroup(group))]);
}

/**
 * `ip link del group GROUP`: every link of the group in one request, which the kernel
 * unregisters as one batch (one RCU wait for them all instead of one each). ENODEV when the
 * group is empty; group 0 (every link's default) is refused here as the kernel refuses it.
 */
export function deleteLinkGroup(group: number): Buffer {
  return nlmsg(RTM_DELLINK, CHANGE, [ifinfomsg(), attrU32(IFLA_GROUP, checkGroup(group))]);
}

function checkGroup(group: number): number {
  if (!Number.isInteger(group) || group <= 0 || group > 0xffffffff) throw new RangeError(`link group ${group} is not in 1-4294967295`);
  return group;
}

/** `ip link show NAME`: the reply is one RTM_NEWLINK (decode with decodeLink); ENODEV if absent. */
export function getLink(name: string): Buffer {
  return nlmsg(RTM_GETLINK, CHANGE, [ifinfomsg(), attrString(IFLA_IFNAME, checkIfName(name))]);
}

/** `ip link show`: every link, one RTM_NEWLINK each. */
export function dumpLinks(): Buffer {
  return nlmsg(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, [ifinfomsg()]);
}

// ---- addresses and routes --------------------------------------------------------------------

/** `ip addr add IP/PREFIX dev #INDEX` (IFA_LOCAL and IFA_ADDRESS both, as iproute2 sends for a non-p2p link). */
export function addAddress(index: number, ip: string, prefixLen: number): Buffer {
  if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > 32) throw new TypeError(`invalid prefix length ${prefixLen}`);
  return nlmsg(RTM_NEWADDR, CREATE, [ifaddrmsg({ family: AF_INET, prefixlen: prefixLen, index }), attrIPv4(IFA_LOCAL, ip), attrIPv4(IFA_ADDRESS, ip)]);
}

/** `ip -4 addr show`: every IPv4 address, one RTM_NEWADDR each. */
export function dumpAddresses(): Buffer {
  return nlmsg(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, [ifaddrmsg({ family: AF_INET, prefixlen: 0, index: 0 })]);
}

/** `ip route add default via GATEWAY` in the main table. */
export function addDefaultRoute(gateway: string): Buffer {
  return nlmsg(RTM_NEWROUTE, CREATE, [
    rtmsg({ family: AF_INET, table: RT_TABLE_MAIN, protocol: RTPROT_BOOT, scope: RT_SCOPE_UNIVERSE, type: RTN_UNICAST }),
    attrIPv4(RTA_GATEWAY, gateway),
  ]);
}

// ---- decoders --------------------------------------------------------------------------------

/** Attributes of a message body as type → payload (the last one wins; nested flag bits masked off). */
export function parseAttrs(buf: Uint8Array, offset = 0): Map<number, Buffer> {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out = new Map<number, Buffer>();
  for (let off = offset; off + RTA_HDRLEN <= b.length; ) {
    const len = b.readUInt16LE(off);
    if (len < RTA_HDRLEN || off + len > b.length) break;
    out.set(b.readUInt16LE(off + 2) & 0x3fff, b.subarray(off + RTA_HDRLEN, off + len));
    off += align4(len);
  }
  return out;
}

const cstr = (p: Buffer | undefined): string | undefined => (p ? p.toString('utf8').replace(/\0.*$/s, '') : undefined);

export interface LinkInfo {
  index: number;
  name: string;
  flags: number;
  /** "bridge", "veth", ... (absent for plain devices) */
  kind?: string;
  /** index of the bridge this link is enslaved to */
  master?: number;
  /** "aa:bb:cc:dd:ee:ff" */
  mac?: string;
}

/** Payload of an RTM_NEWLINK (after the nlmsghdr) → LinkInfo. */
export function decodeLink(payload: Uint8Array): LinkInfo {
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (b.length < 16) throw new RangeError('RTM_NEWLINK payload shorter than struct ifinfomsg');
  const attrs = parseAttrs(b, 16);
  const info: LinkInfo = { index: b.readInt32LE(4), flags: b.readUInt32LE(8), name: cstr(attrs.get(IFLA_IFNAME)) ?? '' };
  const linkinfo = attrs.get(IFLA_LINKINFO);
  if (linkinfo) {
    const kind = cstr(parseAttrs(linkinfo).get(IFLA_INFO_KIND));
    if (kind) info.kind = kind;
  }
  const master = attrs.get(IFLA_MASTER);
  if (master && master.length >= 4) info.master = master.readUInt32LE(0);
  const mac = attrs.get(IFLA_ADDRESS);
  if (mac && mac.length === 6) info.mac = [...mac].map((x) => x.toString(16).padStart(2, '0')).join(':');
  return info;
}

export interface AddrInfo {
  index: number;
  prefixLen: number;
  address: string;
}

/** Payload of an RTM_NEWADDR (IPv4) → AddrInfo. */
export function decodeAddress(payload: Uint8Array): AddrInfo {
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (b.length < 8) throw new RangeError('RTM_NEWADDR payload shorter than struct ifaddrmsg');
  const attrs = parseAttrs(b, 8);
  const a = attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS);
  return { index: b.readUInt32LE(4), prefixLen: b.readUInt8(1), address: a && a.length === 4 ? [...a].join('.') : '' };
}
