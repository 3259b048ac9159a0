// Byte-level checks of the rtnetlink encoders against what iproute2 sends for the same
// command (captured with `strace -e write=3` inside `unshare -n`, seq zeroed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as m from '../agent/network/netlink-msg.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const eq = (got: Buffer, want: string): void => assert.is(got.toString('hex'), hex(want).toString('hex'));

test('netlink-msg - new bridge matches `ip link add swlbr0 type bridge`', () => {
  eq(m.newBridge('swlbr0'), `
    3c000000 1000 0506 00000000 00000000
    00000000 00000000 00000000 00000000
    0b000300 73776c62 72300000 10001200
    0a000100 62726964 67650000`);
});

test('netlink-msg - new veth pair puts the peer in IFLA_INFO_DATA/VETH_INFO_PEER', () => {
  eq(m.newVeth('swlv0', 'swlp0'), `
    5c000000 1000 0506 00000000 00000000
    00000000 00000000 00000000 00000000
    0a000300 73776c76 30000000 30001200
    08000100 76657468 24000200 20000100
    00000000 00000000 00000000 00000000
    0a000300 73776c70 30000000`);
});

test('netlink-msg - veth with its peer made in a namespace matches `ip link add swlv0 up master #2 type veth peer name eth0 address 02:42:0a:01:02:03 netns FD4`', () => {
  eq(m.newVethIntoNetns({ name: 'swlv0', master: 2, peer: 'eth0', peerNsFd: 4, peerMac: '02:42:0a:01:02:03' }), `
    78000000 1000 0506 00000000 00000000
    00000000 00000000 01000000 01000000
    08000a00 02000000 0a000300 73776c76
    30000000 44001200 08000100 76657468
    38000200 34000100 00000000 00000000
    00000000 00000000 0a000100 02420a01
    02030000 08001c00 04000000 09000300
    65746830 00000000`);
});

test('netlink-msg - MAC from an IPv4 address is 02:42 and the four bytes; bad input throws', () => {
  assert.is(m.macForIp('10.1.2.3'), '02:42:0a:01:02:03');
  assert.is(m.macForIp('172.17.255.254'), '02:42:ac:11:ff:fe');
  assert.throws(() => m.macForIp('10.1.2'), /not an IPv4/);
  assert.throws(() => m.macBytes('02:42:0a:01:02'), /not a MAC/);
  assert.throws(() => m.newVethIntoNetns({ name: 'swlv0', master: 2, peer: 'a/b', peerNsFd: 4 }), /invalid interface name/);
});

test('netlink-msg - set link up sets IFF_UP in flags and change', () => {
  eq(m.setLinkUp(2), `20000000 1000 0500 00000000 00000000 00000000 02000000 01000000 01000000`);
});

test('netlink-msg - set master is IFLA_MASTER u32', () => {
  eq(m.setLinkMaster(4, 2), `28000000 1000 0500 00000000 00000000 00000000 04000000 00000000 00000000 08000a00 02000000`);
});

test('netlink-msg - rename is IFLA_IFNAME on the index', () => {
  eq(m.renameLink(3, 'eth0'), `2c000000 1000 0500 00000000 00000000 00000000 03000000 00000000 00000000 09000300 65746830 00000000`);
});

test('netlink-msg - move to netns is IFLA_NET_NS_FD (28) u32', () => {
  eq(m.setLinkNetns(5, 17), `28000000 1000 0500 00000000 00000000 00000000 05000000 00000000 00000000 08001c00 11000000`);
});

test('netlink-msg - hairpin matches `bridge link set dev #4 hairpin on`', () => {
  eq(m.setBridgePortHairpin(4, true), `2c000000 1300 0500 00000000 00000000 07000000 04000000 00000000 00000000 0c000c80 05000400 01000000`);
});

test('netlink-msg - delete link by index matches `ip link del`', () => {
  eq(m.deleteLink(4), `20000000 1100 0500 00000000 00000000 00000000 04000000 00000000 00000000`);
});

test('netlink-msg - delete and get by name carry IFLA_IFNAME', () => {
  const d = m.deleteLinkByName('swlv0');
  assert.is(d.readUInt16LE(4), m.RTM_DELLINK);
  assert.is(d.subarray(32).toString('hex'), '0a00030073776c7630000000');
  const g = m.getLink('swlv0');
  assert.is(g.readUInt16LE(4), m.RTM_GETLINK);
  assert.is(g.readUInt16LE(6), m.NLM_F_REQUEST | m.NLM_F_ACK);
});

test('netlink-msg - add address matches `ip addr add 10.231.5.1/24 dev #2`', () => {
  eq(m.addAddress(2, '10.231.5.1', 24), `
    28000000 1400 0506 00000000 00000000
    02180000 02000000 08000200 0ae70501
    08000100 0ae70501`);
});

test('netlink-msg - default route matches `ip route add default via 10.231.5.1`', () => {
  eq(m.addDefaultRoute('10.231.5.1'), `
    24000000 1800 0506 00000000 00000000
    020000 00 fe 03 00 01 00000000 08000500
    0ae70501`);
});

test('netlink-msg - dumps ask for NLM_F_DUMP', () => {
  assert.is(m.dumpLinks().readUInt16LE(6), m.NLM_F_REQUEST | m.NLM_F_DUMP);
  assert.is(m.dumpAddresses().readUInt16LE(6), m.NLM_F_REQUEST | m.NLM_F_DUMP);
  assert.is(m.dumpAddresses().readUInt8(16), m.AF_INET);
});

test('netlink-msg - rtattr pads to 4 bytes and nests with children padding included', () => {
  assert.is(m.rtattr(1, Buffer.from([1, 2, 3])).toString('hex'), '0700010001020300');
  const n = m.nested(18, [m.attrString(1, 'veth')]);
  assert.is(n.readUInt16LE(0), 4 + 12);
  assert.is(m.nlmsg(16, 5, [], 7, 9).toString('hex'), '1000000010000500' + '07000000' + '09000000');
});

test('netlink-msg - invalid names and addresses are rejected before anything is sent', () => {
  assert.throws(() => m.newBridge('swl-name-too-long'), /invalid interface name/);
  assert.throws(() => m.newVeth('ok', 'bad/name'), /invalid interface name/);
  assert.throws(() => m.addAddress(1, '10.0.0.256', 24), /not an IPv4 address/);
  assert.throws(() => m.addAddress(1, '10.0.0.1', 33), /prefix length/);
  assert.not.throws(() => m.newBridge('a23456789012345'));
});

test('netlink-msg - decodeLink reads index, name, kind, master and mac', () => {
  const payload = Buffer.concat([
    m.ifinfomsg({ index: 7, flags: m.IFF_UP }),
    m.attrString(3, 'swlx-1'),
    m.rtattr(1, Buffer.from([0x02, 0x42, 0xac, 0x11, 0x00, 0x02])),
    m.attrU32(10, 3),
    m.nested(18 | 0x8000, [m.attrString(1, 'veth')]),
  ]);
  assert.equal(m.decodeLink(payload), { index: 7, flags: 1, name: 'swlx-1', kind: 'veth', master: 3, mac: '02:42:ac:11:00:02' });
  assert.equal(m.decodeLink(m.ifinfomsg({ index: 1 })), { index: 1, flags: 0, name: '' });
  assert.throws(() => m.decodeLink(Buffer.alloc(8)), /shorter/);
});

test('netlink-msg - decodeAddress reads index, prefix and IFA_LOCAL', () => {
  const msg = m.addAddress(9, '10.231.5.7', 24);
  assert.equal(m.decodeAddress(msg.subarray(16)), { index: 9, prefixLen: 24, address: '10.231.5.7' });
});

test.run();
