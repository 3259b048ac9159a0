// A bridge container against the host's loopback, through tsctl on a real cluster: the
// attack of issue 8 (a frame to the gateway MAC "to 127.0.0.1" while route_localnet=1 is set
// on the bridge) with a static probe that only needs CAP_NET_RAW, on the default bridge and
// on a user network; each of the two nft checks alone must hold, and without both the same
// probe gets through (so this test can fail). Published ports keep answering at 127.0.0.1,
// and a publish over a listening host socket is refused with the reason.
// Listeners are this test's own sockets; the only addresses used are loopback and the
// gateways of this cluster's bridges.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { existsSync, mkdirSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Cluster, ROOT, freePort, sleep, until } from './helpers/cluster.js';
import { freeSubnet } from './helpers/subnets.js';

const t = suite('loopback-guard');
let c: Cluster;
const tag = randomBytes(2).toString('hex');
const userNet = `lo${tag}`;
const userSubnet = freeSubnet([254, 255]);
const closers: (() => void)[] = [];
const sh = (cmd: string, args: string[], input?: string) => spawnSync(cmd, args, { encoding: 'utf8', input, timeout: 60000 });
const gatewayOf = (subnet: string) => subnet.replace(/\.0\/\d+$/, '.1');
const table = () => `swarmlite_${c.node}`;

/** What the host's own sockets received: TCP connections (with their data) and UDP datagrams. */
interface Seen { tcp: string[]; udp: { data: string; from: string }[] }

async function tcpListener(host: string, port = 0): Promise<{ port: number; seen: Seen; srv: Server }> {
  const seen: Seen = { tcp: [], udp: [] };
  const conns: Socket[] = [];
  const srv = createServer((s) => {
    conns.push(s);
    const i = seen.tcp.push(`from ${s.remoteAddress}: `) - 1;
    s.on('data', (d) => (seen.tcp[i] += d.toString()));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r, j) => srv.once('error', j).listen(port, host, r));
  // a crafted connection's peer never closes it (the container drops the host's packets)
  closers.push(() => { srv.close(); for (const s of conns) s.destroy(); });
  return { port: (srv.address() as { port: number }).port, seen, srv };
}

async function udpListener(host: string, port: number, seen: Seen, type: 'udp4' | 'udp6' = 'udp4'): Promise<UdpSocket> {
  const u = createSocket(type);
  u.on('message', (m, ri) => seen.udp.push({ data: m.toString(), from: ri.address }));
  await new Promise<void>((r, j) => u.once('error', j).bind(port, host, r));
  closers.push(() => u.close());
  return u;
}

/** Runs a shell script in a fresh container and returns its `key=value` lines. */
async function inContainer(network: string | undefined, script: string): Promise<Record<string, string>> {
  const r = await c.tsctl(['run', '--rm', ...(network ? ['--network', network] : []), 'probe', 'sh', '-c', script], { timeout: 60000 });
  assert.is(r.code, 0, `container script exited ${r.code}: ${r.stderr}`);
  return Object.fromEntries(r.stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

t.before(async () => {
  c = await Cluster.start();
  // The probe is compiled here, static: the image has no libc. No gcc is a failure, not a skip.
  const bin = join(c.dir, 'probe-root/bin');
  mkdirSync(bin, { recursive: true });
  const cc = sh('gcc', ['-static', '-O2', '-o', join(bin, 'rawprobe'), join(ROOT, 'test/fixtures/rawprobe.c')]);
  assert.is(cc.status, 0, `gcc -static rawprobe.c (apt-get install gcc libc6-dev): ${cc.stderr ?? cc.error}`);
  const tar = join(c.dir, 'probe.tar');
  const b = sh(join(ROOT, 'ops/build-busybox-rootfs'), [tar]);
  assert.is(b.status, 0, b.stderr);
  const a = sh('tar', ['-rf', tar, '-C', join(c.dir, 'probe-root'), './bin/rawprobe']);
  assert.is(a.status, 0, a.stderr);
  await c.ok(['image', 'import', tar, '--name', 'probe']);
  await c.ok(['network', 'create', '--subnet', userSubnet, userNet]);
});

t.after(async () => {
  for (const f of closers.splice(0)) {
    try { f(); } catch { /* already closed */ }
  }
  await c?.stop();
});

/**
 * The attack from a container of `network` against a loopback-only TCP and UDP listener, with
 * controls proving the probe's frames do reach the host. Returns what the host saw.
 */
async function attack(network: string | undefined, subnet: string) {
  const gw = gatewayOf(subnet);
  const lo = await tcpListener('127.0.0.1');
  await udpListener('127.0.0.1', lo.port, lo.seen);
  // control target: the same kind of socket on the gateway address, which a container may reach
  const ctl: Seen = { tcp: [], udp: [] };
  const ctlPort = await freePort();
  await udpListener(gw, ctlPort, ctl);
  // IPv6: ::1 and, as the control, the bridge's link-local address
  const lo6: Seen = { tcp: [], udp: [] }, ctl6: Seen = { tcp: [], udp: [] };
  const ll = await bridgeLinkLocal(gw);
  if (ll) {
    await udpListener('::1', lo.port, lo6, 'udp6');
    await udpListener(`${ll.address}%${ll.bridge}`, ctlPort, ctl6, 'udp6');
  }
  const out = await inContainer(network, [
    `echo gw=$(ip route | awk '/default/{print $3}')`,
    // the ordinary tools: 127.0.0.1 is the container's own lo, the gateway has no such listener
    `timeout 3 nc 127.0.0.1 ${lo.port} </dev/null >/dev/null 2>&1; echo nc_lo=$?`,
    `timeout 3 nc ${gw} ${lo.port} </dev/null >/dev/null 2>&1; echo nc_gw=$?`,
    // crafted frames to the gateway MAC
    `rawprobe udp ${gw} ${gw} ${ctlPort} >/dev/null; echo udp_ctl=$?`,
    `rawprobe tcp ${gw} 127.0.0.1 ${lo.port}; echo tcp_lo=$?`,
    `rawprobe udp ${gw} 127.0.0.1 ${lo.port} >/dev/null; echo udp_lo=$?`,
    `rawprobe udp ${gw} 127.1.2.3 ${lo.port} >/dev/null; echo udp_lo8=$?`,
    // a spoofed loopback source to a host address: services that trust 127.0.0.1 peers
    `rawprobe udp ${gw} ${gw} ${ctlPort} 127.0.0.1 >/dev/null; echo udp_spoof=$?`,
    ...(ll ? [
      `rawprobe udp6 ${gw} ${ll.address} ${ctlPort} >/dev/null; echo udp6_ctl=$?`,
      `rawprobe udp6 ${gw} ::1 ${lo.port} >/dev/null; echo udp6_lo=$?`,
      `rawprobe udp6 ${gw} ${ll.address} ${ctlPort} ::1 >/dev/null; echo udp6_spoof=$?`,
    ] : []),
  ].join('; '));
  await until(() => ctl.udp.length > 0 && (!ll || ctl6.udp.length > 0), 3000, 'the control datagrams').catch(() => undefined);
  await sleep(300); // anything in flight to the loopback listeners
  return { out, gw, lo: lo.seen, ctl, ipv6: ll ? { lo: lo6, ctl: ctl6 } : undefined };
}

/** The bridge holding gateway address gw and its IPv6 link-local address, if the host has IPv6. */
async function bridgeLinkLocal(gw: string): Promise<{ bridge: string; address: string } | undefined> {
  const v4 = sh('ip', ['-o', '-4', 'addr', 'show', 'to', `${gw}/32`]).stdout.trim().split(/\s+/);
  const bridge = v4[1];
  assert.ok(bridge, `no host interface holds the gateway ${gw}`);
  const show = () => sh('ip', ['-o', '-6', 'addr', 'show', 'dev', bridge!, 'scope', 'link']).stdout;
  const v6 = /inet6 (fe80::[0-9a-f:]+)\//.exec(show());
  if (!v6 || !existsSync('/proc/net/if_inet6')) {
    console.log(`  IPv6 part skipped: bridge ${bridge} has no IPv6 link-local address (IPv6 disabled on this host)`);
    return undefined;
  }
  // a fresh bridge's address stays tentative for its duplicate-address detection (about 1 s),
  // and the kernel refuses a bind to it until then (EADDRNOTAVAIL)
  await until(() => !/tentative/.test(show()), 10000, `${bridge}'s link-local address past duplicate-address detection`);
  return { bridge: bridge!, address: v6[1]! };
}

function assertBlocked(r: Awaited<ReturnType<typeof attack>>, subnet: string) {
  assert.is(r.out.gw, r.gw, 'the container routes through the expected gateway');
  assert.is.not(r.out.nc_lo, '0', 'nc 127.0.0.1 from a container reaches only its own lo');
  assert.is.not(r.out.nc_gw, '0', 'the listener is on loopback only');
  // control: a crafted frame from this container reaches the host, with the container's source
  assert.is(r.out.udp_ctl, '0');
  const prefix = subnet.replace(/\.0\/\d+$/, '.');
  assert.equal(r.ctl.udp.filter((m) => m.from.startsWith(prefix)).map((m) => m.data), ['rawprobe'], JSON.stringify(r.ctl.udp));
  // the attack: no SYN-ACK, no connection, no datagram, on any 127/8 address, and no spoofed source
  assert.is(r.out['syn-ack'], undefined);
  assert.is(r.out.tcp_lo, '2', 'rawprobe tcp must get no SYN-ACK from the host loopback');
  assert.is(r.out.udp_lo, '0');
  assert.is(r.out.udp_lo8, '0');
  assert.is(r.out.udp_spoof, '0');
  assert.equal(r.lo.tcp, [], 'the host loopback TCP listener saw a connection');
  assert.equal(r.lo.udp, [], 'the host loopback UDP socket got a datagram');
  assert.equal(r.ctl.udp.filter((m) => m.from.startsWith('127.')), [], 'a spoofed 127.0.0.1 source was delivered');
  // IPv6 has no route_localnet: the kernel itself drops ::1 arriving on a bridge (RFC 4291 2.5.3)
  if (r.ipv6) {
    assert.is(r.out.udp6_ctl, '0');
    assert.equal(r.ipv6.ctl.udp.filter((m) => m.from.startsWith('fe80:')).map((m) => m.data), ['rawprobe'], JSON.stringify(r.ipv6.ctl.udp));
    assert.is(r.out.udp6_lo, '0');
    assert.is(r.out.udp6_spoof, '0');
    assert.equal(r.ipv6.lo.udp, [], 'the host ::1 UDP socket got a datagram');
    assert.equal(r.ipv6.ctl.udp.filter((m) => m.from === '::1'), [], 'a spoofed ::1 source was delivered');
  }
}

t('default bridge: a crafted frame cannot reach a loopback-only host listener', async () => {
  assertBlocked(await attack(undefined, c.subnet!), c.subnet!);
});

t('user network: a crafted frame cannot reach a loopback-only host listener', async () => {
  assertBlocked(await attack(userNet, userSubnet), userSubnet);
});

/** Replaces the table for the duration of f with one whose chains `flush` are emptied, then restores it. */
async function withChainsFlushed(flush: string[], f: () => Promise<void>): Promise<void> {
  const saved = sh('nft', ['list', 'table', 'ip', table()]);
  assert.is(saved.status, 0, saved.stderr);
  try {
    for (const chain of flush) {
      const r = sh('nft', ['flush', 'chain', 'ip', table(), chain]);
      assert.is(r.status, 0, r.stderr);
    }
    await f();
  } finally {
    const r = sh('nft', ['-f', '-'], `delete table ip ${table()}\n${saved.stdout}`);
    assert.is(r.status, 0, `restoring the agent's table: ${r.stderr}`);
  }
}

t('each check holds alone, and without both the probe gets through (the test can fail)', async () => {
  await withChainsFlushed(['loopback_guard'], async () => assertBlocked(await attack(undefined, c.subnet!), c.subnet!));
  await withChainsFlushed(['input'], async () => assertBlocked(await attack(undefined, c.subnet!), c.subnet!));
  await withChainsFlushed(['loopback_guard', 'input'], async () => {
    const r = await attack(undefined, c.subnet!);
    assert.is(r.out.tcp_lo, '0', `without the guard the host loopback answers the crafted SYN (kernel: route_localnet): ${JSON.stringify(r.out)}`);
    await until(() => r.lo.tcp.some((x) => x.includes('rawprobe')), 3000, 'the crafted connection on the host listener');
    assert.ok(r.lo.udp.some((m) => m.data === 'rawprobe'), JSON.stringify(r.lo.udp));
    // whether a spoofed 127.0.0.1 source gets in without the guard depends on the host (accept_local, rp_filter): the kernel drops a local source by itself
    const rp = sh('sysctl', ['-n', 'net.ipv4.conf.all.rp_filter']).stdout.trim();
    console.log(`  without the guard: spoofed 127.0.0.1 source delivered: ${r.ctl.udp.some((m) => m.from === '127.0.0.1')} (rp_filter=${rp})`);
  });
  // restored: blocked again
  assertBlocked(await attack(undefined, c.subnet!), c.subnet!);
});

t('a published port still answers at 127.0.0.1 on the default bridge and on a user network', async () => {
  for (const network of [undefined, userNet]) {
    const port = await freePort();
    const name = `web${network ? 'u' : 'd'}${tag}`;
    await c.ok(['run', '-d', '--name', name, ...(network ? ['--network', network] : []), '-p', `${port}:80`, 'probe', 'sh', '-c',
      `mkdir -p /www && echo hello-${name} > /www/index.html && exec httpd -f -p 80 -h /www`]);
    const body = await until(async () => fetch(`http://127.0.0.1:${port}/`).then((r) => r.text()).catch(() => undefined), 5000, `${name} at 127.0.0.1:${port}`);
    assert.is(body, `hello-${name}\n`);
    await c.ok(['rm', '-f', name]);
  }
});

t('a publish over a listening host socket is refused with the holder; nothing is shadowed', async () => {
  const tcp = await tcpListener('127.0.0.1');
  const r = await c.tsctl(['run', '-d', '--name', `busy${tag}`, '-p', `${tcp.port}:80`, 'probe', 'sleep', '60']);
  assert.is(r.code, 125, r.stdout + r.stderr);
  assert.match(r.stderr, new RegExp(`port ${tcp.port}/tcp is already in use on the host \\(listening on 127\\.0\\.0\\.1:${tcp.port} by pid ${process.pid} \\(node\\)\\)`));
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.not.ok(sh('nft', ['list', 'table', 'ip', table()]).stdout.includes(`dport ${tcp.port} `), 'no DNAT rule for the refused port');
  // the host socket keeps its traffic
  await new Promise<void>((res, rej) => { const k = connect(tcp.port, '127.0.0.1', () => { k.end('mine'); res(); }); k.on('error', rej); });
  await until(() => tcp.seen.tcp.some((x) => x.endsWith('mine')), 3000, 'the host listener still gets its connection');
  // UDP and an IPv6-only socket count as well
  // freePort is a free TCP port: some other UDP socket may hold the same number (then another)
  let uport = 0;
  for (let k = 0; ; k++) {
    uport = await freePort();
    try { await udpListener('0.0.0.0', uport, { tcp: [], udp: [] }); break; } catch (err) {
      if (k >= 4 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
  const u = await c.tsctl(['run', '-d', '-p', `${uport}:53/udp`, 'probe', 'sleep', '60']);
  assert.is(u.code, 125);
  assert.match(u.stderr, new RegExp(`port ${uport}/udp is already in use on the host \\(bound to 0\\.0\\.0\\.0:${uport} by pid ${process.pid}`));
  const v6 = await tcpListener('::1');
  const w = await c.tsctl(['run', '-d', '-p', `${v6.port}:80`, 'probe', 'sleep', '60']);
  assert.is(w.code, 125);
  assert.match(w.stderr, new RegExp(`port ${v6.port}/tcp is already in use on the host \\(listening on \\[::1\\]:${v6.port}`));
});

t('a host service bound after the publish is shadowed by the DNAT (documented, as with Docker)', async () => {
  const port = await freePort();
  const name = `shadow${tag}`;
  await c.ok(['run', '-d', '--name', name, '-p', `${port}:80`, 'probe', 'sh', '-c', `mkdir -p /www && echo from-${name} > /www/index.html && exec httpd -f -p 80 -h /www`]);
  await until(async () => fetch(`http://127.0.0.1:${port}/`).then((r) => r.text()).catch(() => undefined), 5000, 'httpd');
  // the DNAT holds no socket, so the bind succeeds, and the container keeps the traffic
  const late = await tcpListener('127.0.0.1', port);
  assert.is(await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text()), `from-${name}\n`);
  assert.equal(late.seen.tcp, []);
  late.srv.close();
  await c.ok(['rm', '-f', name]);
});

t.run();
