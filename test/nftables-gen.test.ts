import { test } from 'uvu';
import { unless } from './helpers/skip.js';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { renderDelete, renderTable, tableName, type NftDesired } from '../agent/network/nftables.js';

const desired: NftDesired = {
  table: 'swarmlite_n1',
  networks: [
    { bridge: 'swln1-1', subnet: '10.231.2.0/24' },
    { bridge: 'swln1-0', subnet: '10.231.1.0/24' },
  ],
  ports: [
    { host: 8443, container: 443, proto: 'tcp', containerIp: '10.231.2.5', owner: 'web-2' },
    { host: 8080, container: 80, proto: 'tcp', containerIp: '10.231.1.2', owner: 'web-1' },
    { host: 5353, container: 53, proto: 'udp', containerIp: '10.231.1.3', owner: 'dns' },
  ],
};

test('nftables-gen - table is replaced atomically: add, delete, define in one buffer', () => {
  const lines = renderTable(desired).split('\n');
  assert.equal(lines.slice(0, 3), ['add table ip swarmlite_n1', 'delete table ip swarmlite_n1', 'table ip swarmlite_n1 {']);
  assert.is(renderDelete('swarmlite_n1'), 'add table ip swarmlite_n1\ndelete table ip swarmlite_n1\n');
});

test('nftables-gen - published ports DNAT in prerouting and output, only to local addresses', () => {
  const t = renderTable(desired);
  assert.match(t, /chain prerouting \{\n\t\ttype nat hook prerouting priority -100; policy accept;\n\t\tfib daddr type local jump published\n/);
  assert.match(t, /chain output \{\n\t\ttype nat hook output priority -100; policy accept;\n\t\tfib daddr type local jump published\n/);
  const published = /chain published \{\n([^}]*)\}/.exec(t)![1]!.trim().split('\n').map((l) => l.trim());
  assert.equal(published, [
    'tcp dport 8080 dnat to 10.231.1.2:80 comment "web-1"',
    'tcp dport 8443 dnat to 10.231.2.5:443 comment "web-2"',
    'udp dport 5353 dnat to 10.231.1.3:53 comment "dns"',
  ]);
});

test('nftables-gen - masquerade leaving a network, loopback sources and hairpin', () => {
  const t = renderTable(desired);
  assert.ok(t.includes('ip saddr 10.231.1.0/24 oifname != "swln1-0" masquerade'));
  assert.ok(t.includes('oifname "swln1-0" ip saddr 127.0.0.0/8 masquerade'));
  assert.ok(t.includes('oifname "swln1-0" ip saddr 10.231.1.0/24 ct status dnat masquerade'));
  assert.ok(t.includes('ip saddr 10.231.2.0/24 oifname != "swln1-1" masquerade'));
});

test('nftables-gen - forward isolates networks: every inbound drop precedes every outbound accept', () => {
  const fwd = /chain forward \{\n([^}]*)\}/.exec(renderTable(desired))![1]!.trim().split('\n').map((l) => l.trim());
  assert.equal(fwd, [
    'type filter hook forward priority 0; policy accept;',
    'iifname "swln1-0" oifname "swln1-0" accept',
    'oifname "swln1-0" ct state established,related accept',
    'oifname "swln1-0" ct status dnat accept',
    'oifname "swln1-0" drop',
    'iifname "swln1-1" oifname "swln1-1" accept',
    'oifname "swln1-1" ct state established,related accept',
    'oifname "swln1-1" ct status dnat accept',
    'oifname "swln1-1" drop',
    'iifname "swln1-0" accept',
    'iifname "swln1-1" accept',
  ]);
});

test('nftables-gen - loopback guard: nothing from a bridge reaches 127.0.0.0/8 except DNAT replies', () => {
  const t = renderTable(desired);
  const body = (name: string) => new RegExp(`\\n\\t(?:chain|set) ${name} \\{\\n([\\s\\S]*?)\\n\\t\\}`).exec(t)![1]!.trim().split('\n').map((l) => l.trim());
  // every network's bridge, sorted: one set the rules below refer to
  assert.equal(body('bridges'), ['type ifname;', 'elements = { "swln1-0", "swln1-1" }']);
  // before conntrack and NAT (raw priority): as the container sent it, never a loopback address
  assert.equal(body('loopback_guard'), [
    'type filter hook prerouting priority -300; policy accept;',
    'iifname @bridges ip daddr 127.0.0.0/8 drop',
    'iifname @bridges ip saddr 127.0.0.0/8 drop',
  ]);
  // after NAT, at delivery: only the de-masqueraded reply of the host's own 127.0.0.1:PORT connection
  assert.equal(body('input'), [
    'type filter hook input priority 0; policy accept;',
    'iifname @bridges ip daddr 127.0.0.0/8 ct status dnat accept',
    'iifname @bridges ip daddr 127.0.0.0/8 drop',
  ]);
  // the guard comes before the NAT chains in the text, and its hook runs before NAT's (-100)
  assert.ok(t.indexOf('chain loopback_guard') < t.indexOf('chain prerouting'));
  // no network yet: the set is empty but declared, so the rules stay valid
  const empty = renderTable({ table: 'swarmlite_n1', networks: [], ports: [] });
  assert.ok(empty.includes('\tset bridges {\n\t\ttype ifname;\n\t}\n'), empty);
  assert.ok(empty.includes('iifname @bridges ip daddr 127.0.0.0/8 drop'));
});

test('nftables-gen - output does not depend on input order (reconcile converges)', () => {
  const shuffled = { ...desired, networks: [...desired.networks].reverse(), ports: [...desired.ports].reverse() };
  assert.is(renderTable(shuffled), renderTable(desired));
});

test('nftables-gen - empty state is a valid table with the base chains', () => {
  const t = renderTable({ table: 'swarmlite_n1', networks: [], ports: [] });
  for (const c of ['loopback_guard', 'input', 'prerouting', 'output', 'published', 'postrouting', 'forward']) assert.ok(t.includes(`chain ${c} {`), c);
});

test('nftables-gen - invalid input is rejected, never spliced into rules', () => {
  const bad = (patch: Partial<NftDesired>) => () => renderTable({ ...desired, ...patch });
  assert.throws(bad({ table: 'filter' }), /swarmlite_/);
  assert.throws(bad({ networks: [{ bridge: 'br" accept', subnet: '10.0.0.0/24' }] }), /cannot be used/);
  assert.throws(bad({ networks: [{ bridge: 'swlx', subnet: '10.0.0.1/24' }] }), /host bits/);
  assert.throws(bad({ ports: [{ host: 70000, container: 80, proto: 'tcp', containerIp: '10.0.0.2', owner: 'x' }] }), /1-65535/);
  assert.throws(bad({ ports: [{ host: 80, container: 80, proto: 'sctp' as 'tcp', containerIp: '10.0.0.2', owner: 'x' }] }), /tcp or udp/);
  assert.throws(bad({ ports: [{ host: 80, container: 80, proto: 'tcp', containerIp: '10.0.0.2; drop', owner: 'x' }] }), /invalid address/);
  const twice = [desired.ports[0]!, { ...desired.ports[0]!, owner: 'other' }];
  assert.throws(bad({ ports: twice }), /published twice/);
  assert.ok(renderTable({ ...desired, ports: [{ ...desired.ports[0]!, owner: 'a"b;c' }] }).includes('comment "a_b_c"'));
});

test('nftables-gen - tableName keeps only identifier characters', () => {
  assert.is(tableName('node-1.local'), 'swarmlite_node_1_local');
  assert.is(tableName('N2'), 'swarmlite_n2');
});

unless(test, process.getuid?.() === 0 && spawnSync('nft', ['--version']).status === 0 ? undefined : 'nft check mode needs root and the nft binary')('nftables-gen - nft -c accepts the generated text (needs root and nft)', () => {
  // Check mode only parses and validates against the kernel; nothing is applied.
  for (const d of [desired, { table: 'swarmlite_n1', networks: [], ports: [] }]) {
    const r = spawnSync('nft', ['-c', '-f', '-'], { input: renderTable(d), encoding: 'utf8' });
    assert.is(r.stderr, '');
    assert.is(r.status, 0);
  }
});

test.run();
