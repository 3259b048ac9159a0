// docker run's host-facing flags of issue 13 on a real cluster, proven inside the container:
// --privileged (a bridge made in its own network namespace, every capability, no seccomp,
// the host's devices, /sys and /proc/sys writable), --sysctl (read back inside, the host's
// value unchanged), --shm-size (ENOSPC past it), --dns/--dns-search/--dns-option/--add-host
// (the container's resolv.conf and hosts), and --uts host's HOSTNAME. Attacks: an operator's
// --privileged, non-namespaced or malformed sysctls, newlines into resolv.conf and hosts,
// a forged desired event with a host sysctl. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { encode } from '@msgpack/msgpack';
import type { NatsConnection } from 'nats';
import { Cluster, until } from './helpers/cluster.js';
import { freeSubnet } from './helpers/subnets.js';

const t = suite('host-flags');
let c: Cluster;
let nc: NatsConnection | undefined;
const tag = randomBytes(3).toString('hex');
const run = (flags: string[], ...cmd: string[]) => c.tsctl(['run', '--rm', ...flags, 'busybox', ...cmd]);
const none = (flags: string[], ...cmd: string[]) => run(['--network', 'none', ...flags], ...cmd);
const oneLine = (r: { code: number; stderr: string }, why: RegExp) => {
  assert.is.not(r.code, 0, r.stderr);
  assert.match(r.stderr, why, r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
};

t.before(async () => { c = await Cluster.start(); await c.importBusybox(); });
t.after(async () => { await nc?.close(); await c?.stop(); });

t('privileged - a bridge in its own network namespace only with --privileged; every capability, no seccomp, host devices, writable /sys', async () => {
  const link = 'ip link add sl0 type bridge && ip link show sl0 >/dev/null && echo made';
  const denied = await none([], 'sh', '-c', link);
  assert.not.match(denied.stdout, /made/, 'without --privileged: no CAP_NET_ADMIN');
  assert.match(denied.stderr, /Operation not permitted/);
  const made = await none(['--privileged'], 'sh', '-c', link);
  assert.is(made.code, 0, made.stderr);
  assert.match(made.stdout, /made/);
  const st = (await none(['--privileged'], 'sh', '-c', 'grep -E "^(CapEff|Seccomp):" /proc/self/status; grep -E " /sys | /proc/sys | /proc/kcore " /proc/mounts; ls /dev')).stdout;
  const eff = BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(st)![1]}`);
  // every capability this host's root has (a sandboxed root may lack some: CapBnd says which)
  const bnd = BigInt(`0x${/CapBnd:\s+([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`) & ((1n << 41n) - 1n);
  assert.is(eff.toString(16), bnd.toString(16), 'every capability');
  assert.match(st, /Seccomp:\s+0/);
  assert.match(st, /sysfs \/sys sysfs rw,/, 'sysfs read-write');
  assert.not.match(st, / \/proc\/sys /, '/proc/sys not made read-only');
  assert.not.match(st, / \/proc\/kcore /, '/proc/kcore not masked');
  assert.match(st, /\nkmsg\n/, 'the host\'s /dev/kmsg is there');
  // the device cgroup lets it open a block device no default rule allows (refused without: security-flags.test.ts)
  const dev = await none(['--privileged'], 'sh', '-c', 'mknod /dev/l b 7 0 && head -c 1 /dev/l; echo rc=$?');
  assert.match(dev.stdout, /rc=0/, dev.stderr);
  const plain = (await none([], 'sh', '-c', 'grep -E "^Seccomp:" /proc/self/status; grep " /sys " /proc/mounts')).stdout;
  assert.match(plain, /Seccomp:\s+2/);
  assert.match(plain, /sysfs \/sys sysfs ro,/);
});

t('privileged - an operator is refused in one line; an admin is not', async () => {
  const op = (await c.ok(['user', 'add', `op${tag}`, '--role', 'operator'])).trim();
  oneLine(await c.tsctl(['run', '--rm', '--network', 'none', '--privileged', 'busybox', 'true'], { env: { SWARMLITE_CREDS: op } }), /permission denied: --privileged/);
  assert.is((await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'true'], { env: { SWARMLITE_CREDS: op } })).code, 0, 'the operator may run without it');
  assert.is((await none(['--privileged'], 'true')).code, 0);
});

t('sysctl - namespaced values are set inside before the command runs; the host keeps its own', async () => {
  const host = (k: string) => readFileSync(`/proc/sys/${k.replaceAll('.', '/')}`, 'utf8').trim();
  const keys = ['kernel.shmmax', 'kernel.msgmax', 'fs.mqueue.msg_max', 'net.ipv4.ip_unprivileged_port_start', 'net.ipv4.tcp_syncookies'];
  const before = keys.map(host);
  const want = ['123456789', '4096', '20', '80', before[4] === '0' ? '1' : '0'];
  const flags = keys.flatMap((k, i) => ['--sysctl', `${k}=${want[i]}`]);
  const r = await run(flags, 'sh', '-c', keys.map((k) => `cat /proc/sys/${k.replaceAll('.', '/')}`).join('; '));
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n'), want);
  assert.equal(keys.map(host), before, 'the host\'s values are unchanged');
  const id = (await c.ok(['run', '-d', '--network', 'none', '--sysctl', 'kernel.msgmax=4096', '--shm-size', '1m', 'busybox', 'true'])).trim();
  const hc = JSON.parse(await c.ok(['inspect', id]))[0].HostConfig;
  assert.equal([hc.Sysctls, hc.ShmSize, hc.Privileged], [{ 'kernel.msgmax': '4096' }, 1 << 20, false]);
  await c.ok(['rm', '-f', id]);
  // a key given twice: the last value (docker's map)
  assert.is((await none(['--sysctl', 'kernel.shmmni=100', '--sysctl', 'kernel.shmmni=200'], 'cat', '/proc/sys/kernel/shmmni')).stdout.trim(), '200');
  // a value the kernel refuses fails the start with the reason, in one line
  oneLine(await none(['--sysctl', 'kernel.shmmni=lots'], 'true'), /write \/proc\/sys\/kernel\/shmmni.*(Invalid argument|EINVAL)/);
  oneLine(await none(['--sysctl', 'net.ipv4.no_such_key=1'], 'true'), /open \/proc\/sys\/net\/ipv4\/no_such_key.*(No such file|ENOENT)/);
  assert.equal(keys.map(host), before);
});

t('sysctl - attacks: the host\'s keys, paths, junk and a namespace not its own are one line, before anything is sent', async () => {
  for (const [flags, re] of [
    [['--sysctl', 'kernel.hostname=evil'], /kernel\.hostname is not a namespaced sysctl/],
    [['--sysctl', 'kernel.panic=1'], /kernel\.panic is not a namespaced sysctl/],
    [['--sysctl', 'vm.swappiness=1'], /vm\.swappiness is not a namespaced sysctl/],
    [['--sysctl', 'net/../../kernel/panic=1'], /words separated by dots/],
    [['--sysctl', 'net.ipv4..ip_forward=1'], /words separated by dots/],
    [['--sysctl', '../kernel.panic=1'], /words separated by dots/],
    [['--sysctl', 'net.ipv4.ip_forward'], /use KEY=VALUE/],
    [['--sysctl', 'net.ipv4.ip_forward=1\nkernel.panic=1'], /one line of printable characters/],
    [['--sysctl', 'net.ipv4.ip_forward='], /one line of printable characters/],
    [['--network', 'host', '--sysctl', 'net.ipv4.ip_forward=1'], /conflicts with --network host/],
    [['--ipc', 'host', '--sysctl', 'kernel.shmmax=1'], /conflicts with --ipc host/],
    [['--shm-size', '0'], /invalid --shm-size "0"/],
    [['--shm-size', 'lots'], /invalid --shm-size "lots"/],
    [['--ipc', 'host', '--shm-size', '1m'], /--shm-size conflicts with --ipc host/],
  ] as [string[], RegExp][]) {
    const r = await run(flags, 'true');
    assert.is(r.code, 125, `${flags.join(' ')}: ${r.stderr}`);
    oneLine(r, re);
  }
});

t('sysctl - a forged desired event asking for a host sysctl is rejected by the node, in the log', async () => {
  nc = await c.connect('tamper');
  const id = randomBytes(32).toString('hex');
  const spec = { name: `forged${tag}`, image: 'busybox', imageDigest: `sha256:${'0'.repeat(64)}`, args: ['true'], env: [], hostname: 'x', workdir: '/', network: 'none', autoRemove: false };
  const base = { v: 1, ts: Date.now(), src: 'controller', srcSeq: 999, prev: '', type: 'ContainerRequested' };
  const js = nc.jetstream();
  const bad = [
    ['panic', { ...spec, sysctls: ['kernel.panic=1'] }],
    ['netns', { ...spec, network: 'host', sysctls: ['net.ipv4.ip_forward=1'] }],
    ['nl', { ...spec, network: 'bridge', extraHosts: ['a:1.2.3.4\n6.6.6.6 evil'] }],
  ] as const;
  for (const [k, s] of bad) {
    const e = `${id.slice(0, 60)}${k.slice(0, 4).padEnd(4, '0')}`.replace(/[^0-9a-f]/g, 'f');
    await js.publish(`ev.desired.${c.node}.${e}`, encode({ ...base, id: `forged${k}${tag}`, entity: e, data: { node: c.node, spec: s, user: 'mallory' } }));
  }
  const rej = await until(async () => {
    const l = (await c.ok(['events', '--format', 'json'])).trim().split('\n').filter(Boolean).map((x) => JSON.parse(x) as { type: string; data: { reason?: string } })
      .filter((x) => x.type === 'EventRejected' && /sysctl|extraHosts/.test(x.data.reason ?? ''));
    return l.length >= 3 ? l : undefined;
  }, 20000, 'three rejections');
  const reasons = rej.map((x) => x.data.reason!).join('\n');
  assert.match(reasons, /--sysctl kernel\.panic is not a namespaced sysctl/);
  assert.match(reasons, /--sysctl net\.ipv4\.ip_forward conflicts with --network host/);
  assert.match(reasons, /extraHosts\[0\]/);
});

t('shm-size - /dev/shm is 64m by default and the size asked; writing past it is ENOSPC', async () => {
  const def = (await none([], 'grep', ' /dev/shm ', '/proc/mounts')).stdout;
  assert.match(def, /size=65536k/);
  const r = await none(['--shm-size', '2m'], 'sh', '-c', 'grep " /dev/shm " /proc/mounts; dd if=/dev/zero of=/dev/shm/fill bs=1024 count=4096; echo rc=$?; ls -l /dev/shm/fill');
  assert.match(r.stdout, /size=2048k/, r.stdout);
  assert.match(r.stderr, /No space left on device/);
  assert.match(r.stdout, /rc=1/);
  assert.match(r.stdout, / 2097152 /, 'stopped at the limit');
  const big = await none(['--shm-size', '8m'], 'sh', '-c', 'dd if=/dev/zero of=/dev/shm/fill bs=1024 count=4096 2>/dev/null; echo rc=$?');
  assert.match(big.stdout, /rc=0/);
});

t('dns - resolv.conf and hosts as asked, host-gateway the network\'s gateway; newlines cannot add lines', async () => {
  const r = await run(['--dns', '10.9.8.7', '--dns', '10.9.8.6', '--dns-search', 'example.test', '--dns-option', 'ndots:3', '--dns-option', 'edns0',
    '--add-host', 'db:10.1.2.3', '--add-host', 'gw:host-gateway', '--add-host', 'v6=fd00::1'], 'sh', '-c', 'cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; ip route');
  assert.is(r.code, 0, r.stderr);
  const [resolv, hosts, route] = r.stdout.split('---\n');
  assert.is(resolv, 'nameserver 10.9.8.7\nnameserver 10.9.8.6\nsearch example.test\noptions ndots:3 edns0\n');
  assert.match(hosts!, /^10\.1\.2\.3\tdb$/m);
  assert.match(hosts!, /^fd00::1\tv6$/m);
  const gw = /default via (\S+)/.exec(route!)![1];
  assert.match(hosts!, new RegExp(`^${gw!.replaceAll('.', '\\.')}\\tgw$`, 'm'));
  const nosearch = await run(['--dns-search', '.'], 'cat', '/etc/resolv.conf');
  assert.not.match(nosearch.stdout, /search/);
  for (const [flags, re] of [
    [['--add-host', 'a:1.2.3.4\n6.6.6.6 evil'], /invalid --add-host/],
    [['--add-host', 'a b:1.2.3.4'], /invalid --add-host/],
    [['--add-host', 'noip'], /invalid --add-host/],
    [['--dns', '1.1.1.1\nnameserver 6.6.6.6'], /invalid --dns "/],
    [['--dns', 'resolver.example'], /invalid --dns "/],
    [['--dns-search', 'a b'], /invalid --dns-search/],
    [['--dns-search', 'x\nnameserver 6.6.6.6'], /invalid --dns-search/],
    [['--dns-option', 'ndots:2 rotate'], /invalid --dns-option/],
    [['--network', 'host', '--dns', '10.0.0.1'], /--dns conflicts with --network host/],
    [['--network', 'none', '--add-host', 'a:1.2.3.4'], /--add-host conflicts with --network none/],
  ] as [string[], RegExp][]) {
    const x = await run(flags, 'true');
    assert.is(x.code, 125, `${flags.join(' ')}: ${x.stderr}`);
    oneLine(x, re);
  }
});

t('dns - on a user network a newcomer rewrites the members\' hosts files, an agent restarted since included; their --add-host lines stay', async () => {
  const net = `hf${tag}`;
  await c.ok(['network', 'create', '--subnet', freeSubnet([249, 250]), net]);
  try {
    await c.ok(['run', '-d', '--name', `a${tag}`, '--network', net, '--add-host', 'db:10.1.2.3', 'busybox', 'sleep', '1000']);
    const hostsOfA = async () => (await c.ok(['exec', `a${tag}`, 'cat', '/etc/hosts']));
    await c.ok(['run', '-d', '--name', `b${tag}`, '--network', net, 'busybox', 'sleep', '1000']);
    let h = await until(async () => { const x = await hostsOfA(); return x.includes(`b${tag}`) ? x : undefined; }, 20000, 'b in a\'s hosts');
    assert.match(h, /^10\.1\.2\.3\tdb$/m);
    await c.killAgent();
    c.startAgent();
    await c.waitJoined();
    await c.ok(['run', '-d', '--name', `n${tag}`, '--network', net, 'busybox', 'sleep', '1000']);
    h = await until(async () => { const x = await hostsOfA(); return x.includes(`n${tag}`) ? x : undefined; }, 20000, 'n in a\'s hosts');
    assert.match(h, /^10\.1\.2\.3\tdb$/m, 'the new agent kept a\'s --add-host line');
  } finally {
    await c.tsctl(['rm', '-f', `a${tag}`, `b${tag}`, `n${tag}`]);
    await c.tsctl(['network', 'rm', net]);
  }
});

t('uts host - HOSTNAME and /etc/hostname are the host\'s name', async () => {
  const r = await run(['--uts', 'host'], 'sh', '-c', 'echo "$HOSTNAME"; hostname; cat /etc/hostname');
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n'), [hostname(), hostname(), hostname()]);
  const own = (await run([], 'sh', '-c', 'echo "$HOSTNAME"; hostname')).stdout.trim().split('\n');
  assert.is(own[0], own[1]);
  assert.is.not(own[0], hostname());
});

t.run();
