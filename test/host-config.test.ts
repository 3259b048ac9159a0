// The host-facing run flags, pure: parsing and refusing (--sysctl, --shm-size, --dns*,
// --add-host), the schema's whole-spec check (a forged spec is refused as the CLI's is),
// and what the runtime makes of them (privileged spec, /dev/shm size, sysctl launch records,
// hosts and resolv.conf lines that no value can break). No root needed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  HostFlagError, hostConfigProblem, parseDns, parseDnsOption, parseDnsSearch, parseExtraHost, parseSysctl, sysctlMap,
} from '../shared/host-config.js';
import { payloadChecks } from '../shared/schema.js';
import { createSpec, type ContainerConfig } from '../agent/runtime/spec.js';
import { decodeLaunch, encodeLaunch, LaunchError, sysctlPath } from '../agent/runtime/launch.js';
import { hostsFile, resolvConf } from '../agent/network/dns.js';
import { SandboxFiles } from '../agent/network/sandbox-files.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('sysctl - namespaced keys pass; host keys, paths and junk are refused with the reason', () => {
  assert.is(parseSysctl('net.ipv4.ip_forward=1'), 'net.ipv4.ip_forward=1');
  assert.is(parseSysctl('kernel.sem=250 32000 32 128'), 'kernel.sem=250 32000 32 128');
  assert.is(parseSysctl('fs.mqueue.msg_max=20'), 'fs.mqueue.msg_max=20');
  for (const [s, re] of [
    ['kernel.hostname=x', /not a namespaced sysctl/], ['kernel.domainname=x', /not a namespaced sysctl/],
    ['vm.swappiness=1', /not a namespaced sysctl/], ['kernel.panic=1', /not a namespaced sysctl/],
    ['kernel.shm=1', /not a namespaced sysctl/],
    ['net/../../kernel/panic=1', /words separated by dots/], ['net..x=1', /words separated by dots/], ['.net.x=1', /words separated by dots/],
    ['net.x', /KEY=VALUE/], ['=1', /KEY=VALUE/], ['net.x=', /one line/], ['net.x=1\nkernel.panic=1', /one line/], ['net.x= 1', /one line/],
    [`net.x=${'1'.repeat(300)}`, /one line/],
  ] as [string, RegExp][]) {
    assert.throws(() => parseSysctl(s), (e: Error) => e instanceof HostFlagError && re.test(e.message) && !e.message.includes('\n', e.message.indexOf(':')), s);
  }
  assert.equal([...sysctlMap(['a.b=1', 'c.d=2', 'a.b=3'])], [['a.b', '3'], ['c.d', '2']]);
});

test('dns and hosts - values that fit one word of a line, nothing else', () => {
  assert.is(parseDns('10.0.0.1'), '10.0.0.1');
  assert.is(parseDns('fd00::53'), 'fd00::53');
  assert.is(parseDns('::1'), '::1');
  assert.is(parseDns('::ffff:10.0.0.1'), '::ffff:10.0.0.1');
  for (const bad of [':', '::::::::::', 'fd00::12345', '1.2.3', 'fd00:::x']) assert.throws(() => parseDns(bad), (e: Error) => e instanceof HostFlagError, bad);
  assert.is(parseDnsSearch('example.test'), 'example.test');
  assert.is(parseDnsSearch('.'), '.');
  assert.is(parseDnsOption('ndots:2'), 'ndots:2');
  assert.is(parseExtraHost('db:10.1.2.3'), 'db:10.1.2.3');
  assert.is(parseExtraHost('db=10.1.2.3'), 'db:10.1.2.3');
  assert.is(parseExtraHost('gw:host-gateway'), 'gw:host-gateway');
  assert.is(parseExtraHost('v6:fd00::1'), 'v6:fd00::1');
  for (const f of [() => parseDns('1.1.1.1\nnameserver 6.6.6.6'), () => parseDns('999.1.1.1'), () => parseDns('dns.example'),
    () => parseDnsSearch('a b'), () => parseDnsSearch('a\nb'), () => parseDnsOption('a b'), () => parseDnsOption('x\n'),
    () => parseExtraHost('a:1.2.3.4\n5.6.7.8 evil'), () => parseExtraHost('a b:1.2.3.4'), () => parseExtraHost(':1.2.3.4'), () => parseExtraHost('a:')]) {
    assert.throws(f, (e: Error) => e instanceof HostFlagError);
  }
  // even values that got past every check stay inside their line
  const hosts = hostsFile({ ip: '10.0.0.2', names: ['me'] }, [], [{ ip: '1.2.3.4\n6.6.6.6', names: ['x'] }, { ip: '1.2.3.5', names: ['ok'] }]);
  assert.not.match(hosts, /6\.6\.6\.6/);
  assert.match(hosts, /^1\.2\.3\.5\tok$/m);
  assert.is(resolvConf('nameserver 8.8.8.8\n', { nameservers: ['10.0.0.1', '1.1.1.1\nnameserver 6.6.6.6'], search: ['a b', 'ok.test'], options: ['ndots:2'] }),
    'nameserver 10.0.0.1\nsearch ok.test\noptions ndots:2\n');
  assert.is(resolvConf('search host.example\n', { search: ['.'] }), '');
});

test('schema - a spec whose fields clash is refused as the CLI refuses it, forged or not', () => {
  const spec = { name: 'x', image: 'busybox', imageDigest: `sha256:${'0'.repeat(64)}`, args: ['true'], env: [], hostname: 'x', workdir: '/', network: 'bridge', autoRemove: false };
  const check = (s: object) => payloadChecks.ContainerRequested({ node: 'n1', spec: s, user: 'u' }, 'data');
  assert.ok(check({ ...spec, sysctls: ['net.ipv4.ip_forward=1'], shmSize: 1 << 20, dns: ['10.0.0.1'], extraHosts: ['a:host-gateway'], privileged: true }));
  assert.throws(() => check({ ...spec, sysctls: ['kernel.panic=1'] }), /kernel\.panic is not a namespaced sysctl/);
  assert.throws(() => check({ ...spec, network: 'host', sysctls: ['net.ipv4.ip_forward=1'] }), /conflicts with --network host/);
  assert.throws(() => check({ ...spec, ipcMode: 'host', sysctls: ['kernel.shmmax=1'] }), /conflicts with --ipc host/);
  assert.throws(() => check({ ...spec, ipcMode: 'host', shmSize: 1 }), /--shm-size conflicts/);
  assert.throws(() => check({ ...spec, network: 'none', dns: ['10.0.0.1'] }), /--dns conflicts with --network none/);
  assert.throws(() => check({ ...spec, shmSize: 0 }), /shmSize/);
  assert.throws(() => check({ ...spec, dns: ['1.1.1.1\nx'] }), /dns\[0\]/);
  assert.is(hostConfigProblem({ network: 'container:abc', extraHosts: ['a:1.2.3.4'] })?.startsWith('--add-host conflicts'), true);
});

const base: ContainerConfig = { id: 'c1', hostname: 'h', args: ['sh'], env: [], cwd: '/', network: { mode: 'none' }, rootfsPath: '/r' };

test('spec - privileged: all the host\'s capabilities, no seccomp, nothing masked, /sys rw, every device allowed', () => {
  const p = createSpec({ ...base, privileged: true, seccomp: 'unconfined' });
  const d = createSpec(base);
  assert.ok(p.process.capabilities!.bounding!.length > d.process.capabilities!.bounding!.length);
  assert.ok(p.process.capabilities!.bounding!.includes('CAP_SYS_ADMIN'));
  assert.is(createSpec({ ...base, privileged: true }).linux.seccomp, undefined);
  assert.ok(d.linux.seccomp);
  assert.equal(p.linux.maskedPaths, []);
  assert.equal(p.linux.readonlyPaths, []);
  assert.ok(p.mounts.find((m) => m.destination === '/sys')!.options!.includes('rw'));
  assert.ok(d.mounts.find((m) => m.destination === '/sys')!.options!.includes('ro'));
  assert.equal(p.linux.resources!.devices, [{ allow: true, access: 'rwm' }]);
});

test('spec and launch - shm size and sysctls reach the monitor as records; a hostile key never does', () => {
  const s = createSpec({ ...base, shmSize: 2 << 20, sysctls: { 'net.ipv4.ip_forward': '1', 'kernel.sem': '1 2 3 4' } });
  assert.ok(s.mounts.find((m) => m.destination === '/dev/shm')!.options!.includes(`size=${2 << 20}`));
  assert.ok(createSpec(base).mounts.find((m) => m.destination === '/dev/shm')!.options!.includes('size=65536k'));
  const l = decodeLaunch(encodeLaunch(s, { stateDir: '/s', logPath: '/l', cgroupProcs: [] }));
  assert.equal(l.sysctls, [{ path: 'net/ipv4/ip_forward', value: '1' }, { path: 'kernel/sem', value: '1 2 3 4' }]);
  for (const k of ['../kernel/panic', '/proc/sys/kernel/panic', 'net..x', 'net/../x', '', 'a b']) assert.throws(() => sysctlPath(k), (e: Error) => e instanceof LaunchError, k);
  assert.throws(() => encodeLaunch({ ...s, linux: { ...s.linux, sysctl: { 'x.y': 'a\0b' } } }, { stateDir: '/s', logPath: '/l', cgroupProcs: [] }), (e: Error) => e instanceof LaunchError);
  assert.throws(() => createSpec({ ...base, shmSize: 0 }), /shmSize/);
});

test('sandbox files - the --add-host entries outlive the agent: a later rewrite of the hosts file reads them back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sl-hostcfg-'));
  try {
    const f = new SandboxFiles(dir);
    f.write('c1', { hosts: 'h', resolvConf: '', hostname: 'c1', extraHosts: [{ ip: 'host-gateway', names: ['gw'] }, { ip: '10.1.2.3', names: ['db'] }] });
    assert.equal(new SandboxFiles(dir).extraHosts('c1'), [{ ip: 'host-gateway', names: ['gw'] }, { ip: '10.1.2.3', names: ['db'] }]);
    f.write('c2', { hosts: 'h', resolvConf: '', hostname: 'c2' });
    assert.equal(f.extraHosts('c2'), []);
    writeFileSync(join(dir, 'c2', 'extra-hosts.json'), '{"ip":1}');
    assert.equal(f.extraHosts('c2'), [], 'junk is no entry');
    writeFileSync(join(dir, 'c2', 'extra-hosts.json'), '[{"ip":"1.2.3.4","names":[5]},{"ip":"1.2.3.5","names":["ok"]}]');
    assert.equal(f.extraHosts('c2'), [{ ip: '1.2.3.5', names: ['ok'] }]);
    await f.remove('c1');
    assert.equal(f.extraHosts('c1'), []);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test.run();
