import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hostsFile, resolvConf } from '../agent/network/dns.js';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseProcNet, parseProcNetSockets, socketHolder } from '../agent/network/host.js';
import { parseCidr, overlaps, intToIp } from '../shared/cidr.js';
import { shortNodeName } from '../agent/network/manager.js';

test('network-dns - hosts file lists self then the other members, skipping bad names', () => {
  const text = hostsFile({ ip: '10.231.1.2', names: ['web', 'web-alias'] }, [
    { ip: '10.231.1.10', names: ['db'] },
    { ip: '10.231.1.3', names: ['cache', 'bad name'] },
    { ip: '10.231.1.2', names: ['web'] },
    { ip: '10.231.1.4', names: ['-x'] },
  ]);
  const tail = text.trim().split('\n').slice(6);
  assert.equal(tail, ['10.231.1.2\tweb web-alias', '10.231.1.3\tcache', '10.231.1.10\tdb']);
  assert.ok(text.startsWith('127.0.0.1\tlocalhost\n'));
});

test('network-dns - resolv.conf drops loopback nameservers and keeps search/options', () => {
  const host = 'nameserver 127.0.0.53\nnameserver 10.255.255.53 # corp\nsearch example.internal\noptions edns0 trust-ad\n';
  assert.is(resolvConf(host), 'nameserver 10.255.255.53\nsearch example.internal\noptions edns0 trust-ad\n');
  assert.is(resolvConf(host, { nameservers: ['10.0.0.1'], search: [] }), 'nameserver 10.0.0.1\noptions edns0 trust-ad\n');
  assert.is(resolvConf(''), '');
});

test('network-host - /proc/net parser: tcp LISTEN only, udp any bound socket', () => {
  const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0050 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
`;
  assert.equal(parseProcNet(tcp, 'tcp'), [8080]);
  const udp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  5: 00000000000000000000000000000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 0000000000000000 0
`;
  assert.equal(parseProcNet(udp6, 'udp'), [53]);
});

test('network-host - /proc/net sockets: addresses decoded as ss prints them, inode kept', () => {
  const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0102A8C0:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0000000000000000 100 0 0 10 0
`;
  assert.equal(parseProcNetSockets(tcp, 'tcp'), [
    { port: 8080, address: '127.0.0.1', inode: 4242 },
    { port: 22, address: '192.168.2.1', inode: 17 },
  ]);
  const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 8 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:0051 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9 1 0000000000000000 100 0 0 10 0
   3: 000080FE00000000FF0042420300FFFE:0052 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 10 1 0000000000000000 100 0 0 10 0
`;
  assert.equal(parseProcNetSockets(tcp6, 'tcp').map((s) => s.address), ['::1', '::', '::ffff:127.0.0.1', 'fe80::4242:ff:feff:3']);
  // junk lines are skipped, never thrown on
  assert.equal(parseProcNetSockets('header\n\ngarbage line\n 0: zz:zz 0 0A', 'tcp'), []);
});

test('network-host - the holder of a socket inode, its name kept to one printable line', () => {
  const proc = mkdtempSync(join(tmpdir(), 'swl-proc-'));
  try {
    mkdirSync(join(proc, '17/fd'), { recursive: true });
    mkdirSync(join(proc, '42/fd'), { recursive: true });
    mkdirSync(join(proc, 'self'));
    symlinkSync('/dev/null', join(proc, '17/fd/0'));
    symlinkSync('socket:[999]', join(proc, '17/fd/3'));
    symlinkSync('socket:[4242]', join(proc, '42/fd/7'));
    writeFileSync(join(proc, '42/comm'), 'evil\n\x1b[2Jx\n');
    assert.is(socketHolder(4242, proc), 'pid 42 (evil??[2Jx)');
    assert.is(socketHolder(999, proc), 'pid 17'); // no comm: exited meanwhile
    assert.is(socketHolder(1, proc), undefined);
    assert.is(socketHolder(0, proc), undefined);
    assert.is(socketHolder(5, join(proc, 'missing')), undefined);
  } finally {
    rmSync(proc, { recursive: true, force: true });
  }
});

test('network-cidr - parse, overlap and formatting', () => {
  assert.equal(parseCidr('10.231.0.0/16'), { base: 0x0ae70000, prefix: 16, size: 65536 });
  assert.ok(overlaps(parseCidr('10.231.0.0/16'), parseCidr('10.231.200.0/24')));
  assert.not.ok(overlaps(parseCidr('10.231.0.0/24'), parseCidr('10.231.1.0/24')));
  assert.is(intToIp(0xffffffff), '255.255.255.255');
  assert.throws(() => parseCidr('10.231.0.0'), /CIDR/);
});

test('network-names - short node names fit link names', () => {
  assert.is(shortNodeName('n1'), 'n1');
  assert.is(shortNodeName('Node-2'), 'node2');
  assert.match(shortNodeName('a-very-long-node-id'), /^[0-9a-f]{5}$/);
});

test.run();
