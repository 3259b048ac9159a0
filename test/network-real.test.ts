// Real kernel test of the network stack (root): bridges, veths, namespaces, nftables.
// It only talks to loopback and to namespaces it creates, uses a random subnet in 10.231/16
// and names starting with "swl", and removes everything it made even when a check fails.
import { test } from 'uvu';
import { unless } from './helpers/skip.js';
import { freeSubnet } from './helpers/subnets.js';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { NetworkInUseError, NetworkManager, PortInUseError, SubnetOverlapError, type Attachment } from '../agent/network/manager.js';
import { Ipam } from '../agent/network/ipam.js';
import { createNetns } from '../native/netns.js';

const root = process.getuid?.() === 0;
const tag = randomBytes(2).toString('hex');
const node = `t${tag}`; // short name = node: links are swlt<tag>..., table swarmlite_t<tag>
const table = `swarmlite_${node}`;
// four /24s of 10.231.x that no interface of this host overlaps (helpers/subnets.ts)
const [oDefault, oA, oB, oClient] = Array.from({ length: 4 }, () => Number(freeSubnet([231, 232]).split('.')[2])) as [number, number, number, number];
const subnetA = `10.231.${oA}.0/24`;
const subnetB = `10.231.${oB}.0/24`;
const clientNs = `swlc${tag}`;
const hostVeth = `swlh${tag}`;
const hostLinkIp = `10.231.${oClient}.1`;
const clientIp = `10.231.${oClient}.2`;
const port1 = randomInt(20000, 30000);

const state = root ? mkdtempSync('/tmp/swl-net-test-') : '';
const www = join(state, 'www');
const procs: ChildProcess[] = [];
const servers: Server[] = [];
let m: NetworkManager | undefined;
const forwardBefore = root ? readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() : '';
const att: Record<string, Attachment> = {};
const timings: Record<string, number> = {};

const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
const links = (): string[] => sh('ip', ['-o', 'link', 'show']).stdout.split('\n').map((l) => l.split(': ')[1]?.split('@')[0] ?? '').filter((n) => n.startsWith(`swl${node}`));
const tableText = (): string => sh('nft', ['list', 'table', 'ip', table]).stdout;
/** HTTP GET with curl, optionally from inside a namespace; returns the body or '' on failure. */
function get(url: string, netns?: string, timeout = 3): string {
  const args = ['-sS', '-m', String(timeout), url];
  const r = netns ? sh('nsenter', [`--net=${netns}`, 'curl', ...args]) : sh('curl', args);
  return r.status === 0 ? r.stdout : '';
}
/** A busybox httpd inside the namespace serving "<name>\n". */
async function serve(name: string, netnsPath: string): Promise<void> {
  const dir = join(www, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'index.html'), `${name}\n`);
  const p = spawn('nsenter', [`--net=${netnsPath}`, 'busybox', 'httpd', '-f', '-p', '80', '-h', dir], { stdio: 'ignore' });
  procs.push(p);
  for (let i = 0; i < 50; i++) {
    if (sh('nsenter', [`--net=${netnsPath}`, 'curl', '-s', '-m', '1', 'http://127.0.0.1/']).status === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`httpd in ${netnsPath} did not start`);
}
async function open(): Promise<NetworkManager> {
  return NetworkManager.open({ node, stateDir: state, defaultSubnet: `10.231.${oDefault}.0/24` });
}
async function time<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const r = await fn();
  timings[what] = Math.round((performance.now() - t0) * 10) / 10;
  return r;
}

test.after(async () => {
  for (const p of procs) p.kill('SIGKILL');
  for (const s of servers) s.close();
  try {
    await (m ?? (root ? await open() : undefined))?.destroy();
  } catch (e) {
    console.error('cleanup: destroy failed:', e);
  }
  m?.close();
  if (!root) return;
  sh('ip', ['netns', 'del', clientNs]);
  sh('ip', ['link', 'del', hostVeth]);
  for (const l of links()) sh('ip', ['link', 'del', l]);
  sh('nft', ['delete', 'table', 'ip', table]);
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const target = line.split(' ')[1];
    if (target?.startsWith(state)) sh('umount', ['-l', target]);
  }
  rmSync(state, { recursive: true, force: true });
  writeFileSync('/proc/sys/net/ipv4/ip_forward', forwardBefore + '\n');
  console.log('timings (ms):', JSON.stringify(timings));
});

const rtest = (name: string, fn: () => Promise<void>): void => unless(test, root ? undefined : 'needs root (netns, bridges, nftables)')(name, fn);

rtest('network-real - open creates the default network and the table', async () => {
  m = await time('open', open);
  const def = m.listNetworks().find((n) => n.name === 'bridge')!;
  assert.is(def.subnet, `10.231.${oDefault}.0/24`);
  assert.ok(links().includes(def.bridge));
  assert.match(tableText(), new RegExp(`table ip ${table}`));
});

rtest('network-real - createNetwork puts the gateway on a new bridge; overlap is a typed error', async () => {
  const a = await time('createNetwork', () => m!.createNetwork({ name: 'neta', subnet: subnetA }));
  assert.is(a.gateway, `10.231.${oA}.1`);
  assert.ok(a.bridge.length <= 15);
  assert.match(sh('ip', ['-br', 'addr', 'show', 'dev', a.bridge]).stdout, new RegExp(`10\\.231\\.${oA}\\.1/24`));
  assert.is(readFileSync(`/proc/sys/net/ipv4/conf/${a.bridge}/route_localnet`, 'utf8').trim(), '1');
  assert.equal(await m!.createNetwork({ name: 'neta', subnet: subnetA }), a); // twice equals once
  const overlap = await m!.createNetwork({ name: 'other', subnet: `10.231.${oA}.128/25` }).catch((e) => e);
  assert.instance(overlap, SubnetOverlapError);
  const host = await m!.createNetwork({ name: 'lo-overlap', subnet: '127.1.0.0/16' }).catch((e) => e);
  assert.instance(host, SubnetOverlapError);
  assert.match(host.message, /used by the host/);
});

rtest('network-real - two containers on a network reach each other and resolve by alias', async () => {
  att.c1 = await time('attach', () => m!.attach(`c1-${tag}`, { network: 'neta', ports: [{ host: port1, container: 80, proto: 'tcp' }], aliases: ['web'] }));
  att.c2 = await m!.attach(`c2-${tag}`, { network: 'neta', aliases: ['db'] });
  assert.is(att.c1.gateway, `10.231.${oA}.1`);
  assert.is.not(att.c1.ip, att.c2.ip);
  assert.match(att.c1.mac ?? '', /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  assert.ok(existsSync(att.c1.netnsPath));
  const inside = sh('nsenter', [`--net=${att.c1.netnsPath}`, 'ip', '-br', 'addr']).stdout;
  assert.match(inside, new RegExp(`eth0@\\S+\\s+UP\\s+${att.c1.ip.replaceAll('.', '\\.')}/24`));
  assert.match(inside, /^lo\s+UNKNOWN/m);
  assert.match(sh('nsenter', [`--net=${att.c1.netnsPath}`, 'ip', 'route']).stdout, new RegExp(`default via ${att.c1.gateway.replaceAll('.', '\\.')} dev eth0`));
  await serve('c1', att.c1.netnsPath);
  await serve('c2', att.c2.netnsPath);
  assert.is(get(`http://${att.c2.ip}/`, att.c1.netnsPath), 'c2\n');
  assert.is(get(`http://${att.c1.ip}/`, att.c2.netnsPath), 'c1\n');
  assert.match(m!.hostsFor(`c1-${tag}`), new RegExp(`${att.c2.ip.replaceAll('.', '\\.')}\\tdb c2-${tag}`));
  // again (a redelivered event) returns the same attachment
  assert.equal(await m!.attach(`c1-${tag}`, { network: 'neta' }), att.c1);
});

rtest('network-real - published port answers at 127.0.0.1:HOSTPORT on the host', async () => {
  assert.is(get(`http://127.0.0.1:${port1}/`), 'c1\n');
});

rtest('network-real - published port answers to members of its network through the gateway (hairpin)', async () => {
  assert.is(get(`http://${att.c1!.gateway}:${port1}/`, att.c2!.netnsPath), 'c1\n');
  assert.is(get(`http://${att.c1!.gateway}:${port1}/`, att.c1!.netnsPath), 'c1\n');
});

rtest('network-real - published port answers from a client host at the host address of its link', async () => {
  // The "client host": a namespace joined to the host by a veth pair in its own /30.
  for (const args of [
    ['netns', 'add', clientNs],
    ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', clientNs],
    ['addr', 'add', `${hostLinkIp}/30`, 'dev', hostVeth],
    ['link', 'set', hostVeth, 'up'],
    ['-n', clientNs, 'addr', 'add', `${clientIp}/30`, 'dev', 'eth0'],
    ['-n', clientNs, 'link', 'set', 'eth0', 'up'],
    ['-n', clientNs, 'link', 'set', 'lo', 'up'],
  ]) assert.is(sh('ip', args).status, 0, `ip ${args.join(' ')}`);
  assert.is(get(`http://${hostLinkIp}:${port1}/`, `/run/netns/${clientNs}`), 'c1\n');
  // but the container's own address is not reachable from outside without a published port
  assert.is(get(`http://${att.c1!.ip}/`, `/run/netns/${clientNs}`, 2), '');
});

rtest('network-real - two different networks cannot reach each other', async () => {
  await m!.createNetwork({ name: 'netb', subnet: subnetB });
  att.c3 = await m!.attach(`c3-${tag}`, { network: 'netb' });
  await serve('c3', att.c3.netnsPath);
  assert.is(get(`http://${att.c3.gateway}:1/`, att.c3.netnsPath, 1), ''); // sanity: curl fails fast on refusal
  assert.is(get(`http://${att.c1!.ip}/`, att.c3.netnsPath, 2), '');
  assert.is(get(`http://${att.c3.ip}/`, att.c1!.netnsPath, 2), '');
  // a published port is public, also to other networks (through the host address)
  assert.is(get(`http://${att.c3.gateway}:${port1}/`, att.c3.netnsPath), 'c1\n');
  assert.is(sh('nsenter', [`--net=${att.c3.netnsPath}`, 'ping', '-c', '1', '-W', '1', att.c1!.ip]).status !== 0, true);
});

rtest('network-real - a host port in use is a typed error and leaves nothing behind', async () => {
  const e1 = await m!.attach(`c5-${tag}`, { network: 'neta', ports: [{ host: port1, container: 80 }] }).catch((e) => e);
  assert.instance(e1, PortInUseError);
  assert.match(e1.message, new RegExp(`port ${port1}/tcp is already in use on the host \\(published by container c1-${tag}\\)`));
  const srv = createServer();
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const busy = (srv.address() as { port: number }).port;
  const e2 = await m!.attach(`c5-${tag}`, { network: 'neta', ports: [{ host: busy, container: 80 }] }).catch((e) => e);
  assert.instance(e2, PortInUseError);
  assert.match(e2.message, new RegExp(`^port ${busy}/tcp is already in use on the host \\(listening on 127\\.0\\.0\\.1:${busy} by pid ${process.pid} \\(node\\)\\); publish another port$`));
  assert.is(m!.attachment(`c5-${tag}`), undefined);
  assert.not.ok(existsSync(join(state, 'netns', `c5-${tag}`)));
  assert.not.ok(Object.keys(Ipam.open(join(state, 'ipam.json')).pool('neta')!.allocations).includes(`c5-${tag}`));
});

rtest('network-real - removing a network in use is a typed error', async () => {
  const e = await m!.removeNetwork('neta').catch((x) => x);
  assert.instance(e, NetworkInUseError);
  assert.match(e.message, /in use by 2 container/);
});

rtest('network-real - detach removes veth, rules, namespace and address', async () => {
  const before = links().length;
  await time('detach', () => m!.detach(`c2-${tag}`));
  assert.is(links().length, before - 1);
  assert.not.ok(existsSync(att.c2!.netnsPath));
  assert.not.ok(readFileSync('/proc/mounts', 'utf8').includes(att.c2!.netnsPath));
  assert.not.ok(Object.keys(Ipam.open(join(state, 'ipam.json')).pool('neta')!.allocations).includes(`c2-${tag}`));
  await m!.detach(`c2-${tag}`); // twice equals once
  // c1's rule stays, published once
  assert.is(tableText().split(`dnat to ${att.c1!.ip}:80`).length - 1, 1);
  await m!.detach(`c1-${tag}`);
  assert.not.ok(tableText().includes(`dport ${port1}`));
  assert.is(get(`http://127.0.0.1:${port1}/`, undefined, 1), '');
  att.c1 = await m!.attach(`c1-${tag}`, { network: 'neta', ports: [{ host: port1, container: 80 }], aliases: ['web'] });
  await serve('c1b', att.c1.netnsPath);
  assert.is(get(`http://127.0.0.1:${port1}/`), 'c1b\n');
});

rtest('network-real - reconcile after a restart removes leaks, duplicates nothing, reuses no address', async () => {
  m!.close();
  // What a crash could leave: a veth with our prefix, a namespace file, an address of a dead container.
  const leakLink = `swl${node}v${'f'.repeat(15 - 3 - node.length - 1)}`;
  const leakPeer = `swl${node}p${'f'.repeat(15 - 3 - node.length - 1)}`;
  assert.is(sh('ip', ['link', 'add', leakLink, 'type', 'veth', 'peer', 'name', leakPeer]).status, 0);
  createNetns(join(state, 'netns', 'leaked'));
  Ipam.open(join(state, 'ipam.json')).allocate('neta', 'dead-container');

  m = await open(); // "restart": a new manager over the same state directory
  const live = [`c1-${tag}`, `c3-${tag}`];
  const report = await time('reconcile', () => m!.reconcile(live));
  assert.equal(report.endpoints, []);
  // deleting either end of the leaked pair removes both, so one name is reported
  assert.is(report.links.length, 1);
  assert.ok([leakLink, leakPeer].includes(report.links[0]!));
  assert.equal(report.sandboxes, ['leaked']);
  assert.equal(report.addresses, ['neta/dead-container']);
  assert.not.ok(links().includes(leakLink));
  assert.not.ok(existsSync(join(state, 'netns', 'leaked')));
  assert.is(tableText().split(`dnat to ${att.c1!.ip}:80`).length - 1, 1);
  const again = await m!.reconcile(live);
  assert.equal(again, { endpoints: [], links: [], sandboxes: [], addresses: [] });
  // the live containers still work
  assert.is(get(`http://127.0.0.1:${port1}/`), 'c1b\n');
  assert.is(get(`http://${att.c1!.ip}/`, att.c1!.netnsPath), 'c1b\n');
  // and a new container gets an address nobody holds
  const c6 = await m!.attach(`c6-${tag}`, { network: 'neta' });
  assert.ok(![att.c1!.ip, att.c1!.gateway].includes(c6.ip));
  // a container that died while the agent was away is cleaned up
  const r2 = await m!.reconcile([`c1-${tag}`, `c6-${tag}`]);
  assert.equal(r2.endpoints, [`c3-${tag}`]);
  assert.not.ok(existsSync(att.c3!.netnsPath));
});

rtest('network-real - removeNetwork deletes an unused network and its bridge', async () => {
  const b = m!.listNetworks().find((n) => n.name === 'netb')!;
  await m!.removeNetwork('netb');
  assert.not.ok(links().includes(b.bridge));
  assert.not.ok(tableText().includes(b.bridge));
});

rtest('network-real - destroy removes bridges, endpoints, namespaces and the table', async () => {
  for (const p of procs) p.kill('SIGKILL');
  await time('destroy', () => m!.destroy());
  assert.equal(links(), []);
  assert.is(sh('nft', ['list', 'table', 'ip', table]).status !== 0, true);
  assert.not.ok(readFileSync('/proc/mounts', 'utf8').includes(state));
  assert.equal(sh('ls', [join(state, 'netns')]).stdout.trim(), '');
});

test.run();
