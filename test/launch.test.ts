// Pure tests of the OCI spec defaults and the launch description encoder (no root needed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSpec, type ContainerConfig } from '../agent/runtime/spec.js';
import { decodeLaunch, encodeLaunch, LaunchError, parseMountOptions, CAPABILITIES, LAUNCH_MAGIC } from '../agent/runtime/launch.js';
import { MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_SLAVE, MS_STRICTATIME } from '../native/mount-flags.js';

const base: ContainerConfig = {
  id: 'c1', hostname: 'web', args: ['sh', '-c', 'echo hi'], env: ['FOO=bar', 'PATH=/bin'], cwd: '/srv',
  network: { mode: 'none' }, rootfsPath: '/var/lib/x/rootfs',
};
const opts = { stateDir: '/run/sl/c1', logPath: '/run/sl/c1/log', cgroupProcs: ['/sys/fs/cgroup/memory/sl/c1/cgroup.procs'] };

test('spec - default env like Docker, user values override by key', () => {
  const s = createSpec(base);
  assert.equal(s.process.env, ['PATH=/bin', 'HOSTNAME=web', 'TERM=xterm', 'HOME=/root', 'FOO=bar']);
  assert.equal(createSpec({ ...base, env: [], user: { uid: 1000, gid: 1000 } }).process.env.includes('HOME=/'), true);
});

test('spec - namespaces follow the network mode', () => {
  const types = (c: ContainerConfig) => createSpec(c).linux.namespaces;
  assert.equal(types(base).map((n) => n.type), ['pid', 'ipc', 'uts', 'mount', 'network']);
  assert.not.ok(types({ ...base, network: { mode: 'host' } }).some((n) => n.type === 'network'));
  assert.equal(types({ ...base, network: { mode: 'path', path: '/run/netns/x' } }).at(-1), { type: 'network', path: '/run/netns/x' });
});

test('spec - default mounts like runc spec, user binds appended with rbind', () => {
  const s = createSpec({ ...base, mounts: [{ source: '/etc/hosts', destination: '/etc/hosts', options: ['ro'] }] });
  assert.equal(s.mounts.map((m) => m.destination), ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/etc/hosts']);
  assert.equal(s.mounts.at(-1), { destination: '/etc/hosts', type: 'bind', source: '/etc/hosts', options: ['rbind', 'ro', 'rprivate'] });
  assert.ok(s.linux.maskedPaths!.includes('/proc/kcore'));
  assert.ok(s.linux.readonlyPaths!.includes('/proc/sys'));
});

test('options - flags, clearing flags, propagation and data are split apart', () => {
  assert.equal(parseMountOptions(['nosuid', 'strictatime', 'mode=755', 'size=65536k']),
    { flags: MS_NOSUID | MS_STRICTATIME, pflags: 0, data: 'mode=755,size=65536k' });
  assert.equal(parseMountOptions(['rbind', 'ro', 'rw', 'rslave']), { flags: MS_BIND | MS_REC, pflags: MS_SLAVE | MS_REC, data: '' });
});

test('launch - round trip keeps every field in order', () => {
  const spec = createSpec({ ...base, user: { uid: 5, gid: 6, additionalGids: [7, 8] }, mounts: [{ source: '/data', destination: '/data' }] });
  const l = decodeLaunch(encodeLaunch(spec, opts));
  assert.is(l.state, '/run/sl/c1');
  assert.is(l.rootfs, '/var/lib/x/rootfs');
  assert.is(l.hostname, 'web');
  assert.is(l.cwd, '/srv');
  assert.equal([l.uid, l.gid, l.groups], [5, 6, [7, 8]]);
  assert.equal(l.args, ['sh', '-c', 'echo hi']);
  assert.equal(l.env, spec.process.env);
  assert.equal(l.namespaces, [{ type: 'pid', path: '' }, { type: 'ipc', path: '' }, { type: 'uts', path: '' }, { type: 'mount', path: '' }, { type: 'net', path: '' }]);
  assert.equal(l.mounts[0], { dest: '/proc', type: 'proc', source: 'proc', flags: MS_NOSUID | MS_NOEXEC | MS_NODEV, pflags: 0, data: '' });
  assert.equal(l.mounts[5].flags, MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY);
  assert.equal(l.mounts[6], { dest: '/data', type: 'none', source: '/data', flags: MS_BIND | MS_REC, pflags: MS_PRIVATE | MS_REC, data: '' });
  assert.is(l.rootfsPropagation, MS_PRIVATE | MS_REC);
  assert.is(l.caps!.bounding & (1n << BigInt(CAPABILITIES.CAP_SYS_ADMIN)), 0n);
  assert.is(l.caps!.bounding & (1n << BigInt(CAPABILITIES.CAP_KILL)), 1n << BigInt(CAPABILITIES.CAP_KILL));
  assert.is(l.caps!.effective, l.caps!.bounding);
  assert.is(l.caps!.permitted, l.caps!.bounding);
  // Docker since CVE-2022-24769: nothing inheritable, nothing ambient
  assert.is(l.caps!.inheritable, 0n);
  assert.is(l.caps!.ambient, 0n);
  assert.equal(l.cgroupProcs, opts.cgroupProcs);
  assert.equal(l.masked, spec.linux.maskedPaths);
});

test('launch - starts with the magic and ends with NUL', () => {
  const b = encodeLaunch(createSpec(base), opts);
  assert.is(b.subarray(0, LAUNCH_MAGIC.length + 1).toString(), LAUNCH_MAGIC + '\0');
  assert.is(b[b.length - 1], 0);
});

test('launch - relative root resolves against the bundle', () => {
  const spec = createSpec({ ...base, rootfsPath: 'rootfs' });
  assert.is(decodeLaunch(encodeLaunch(spec, { ...opts, bundleDir: '/b/c1' })).rootfs, '/b/c1/rootfs');
  assert.throws(() => encodeLaunch(spec, opts), (e: unknown) => e instanceof LaunchError && e.field === 'root.path');
});

test('launch - network path mode passes the namespace file', () => {
  const l = decodeLaunch(encodeLaunch(createSpec({ ...base, network: { mode: 'path', path: '/run/netns/n1' } }), opts));
  assert.equal(l.namespaces.at(-1), { type: 'net', path: '/run/netns/n1' });
});

const rejects = (what: string, mutate: (s: ReturnType<typeof createSpec>) => void, field: RegExp, o = opts) => {
  test(`launch - rejects ${what}`, () => {
    const s = createSpec(base);
    mutate(s);
    assert.throws(() => encodeLaunch(s, o), (e: unknown) => e instanceof LaunchError && field.test(e.field));
  });
};
rejects('a NUL byte in an argument', (s) => { s.process.args.push('a\0b'); }, /^process\.args\[3\]$/);
rejects('an empty command', (s) => { s.process.args = []; }, /^process\.args$/);
rejects('an env entry without =', (s) => { s.process.env.push('NOEQUALS'); }, /^process\.env/);
rejects('a relative mount destination', (s) => { s.mounts.push({ destination: 'data', type: 'tmpfs', source: 'tmpfs' }); }, /^mounts\[6\]\.destination$/);
rejects('a relative bind source', (s) => { s.mounts.push({ destination: '/d', type: 'bind', source: 'rel' }); }, /^mounts\[6\]\.source$/);
rejects('a relative cwd', (s) => { s.process.cwd = 'srv'; }, /^process\.cwd$/);
rejects('a hostname over 64 bytes', (s) => { s.hostname = 'h'.repeat(65); }, /^hostname$/);
rejects('a negative uid', (s) => { s.process.user.uid = -1; }, /^process\.user\.uid$/);
rejects('a user namespace without mappings', (s) => { s.linux.namespaces.push({ type: 'user' }); }, /^linux\.uidMappings$/);
rejects('a user namespace without a gid map', (s) => { s.linux.namespaces.push({ type: 'user' }); s.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }]; }, /^linux\.gidMappings$/);
rejects('a user mapping that leaves root out', (s) => {
  s.linux.namespaces.push({ type: 'user' });
  s.linux.uidMappings = [{ containerID: 1, hostID: 1000, size: 10 }];
  s.linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 10 }];
}, /^linux\.uidMappings$/);
rejects('a user mapping past 2^32', (s) => {
  s.linux.namespaces.push({ type: 'user' });
  s.linux.uidMappings = [{ containerID: 0, hostID: 0xffffffff, size: 2 }];
  s.linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 10 }];
}, /^linux\.uidMappings\[0\]$/);
rejects('a user mapping that is not ids', (s) => {
  s.linux.namespaces.push({ type: 'user' });
  s.linux.uidMappings = [{ containerID: 0, hostID: '1000\n0 0 1' as unknown as number, size: 1 }];
  s.linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 10 }];
}, /^linux\.uidMappings\[0\]\.hostID$/);
rejects('joining a user namespace by path', (s) => { s.linux.namespaces.push({ type: 'user', path: '/proc/1/ns/user' }); }, /^linux\.namespaces\[5\]\.path$/);
rejects('mappings without a user namespace', (s) => { s.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }]; }, /^linux\.uidMappings$/);

test('launch - a user namespace: ns user and both maps as the kernel reads them', () => {
  const s = createSpec(base);
  s.linux.namespaces.push({ type: 'user' });
  s.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  s.linux.gidMappings = [{ containerID: 0, hostID: 200000, size: 1 }, { containerID: 1, hostID: 300000, size: 9 }];
  const l = decodeLaunch(encodeLaunch(s, opts));
  assert.ok(l.namespaces.some((n) => n.type === 'user' && n.path === ''));
  assert.equal(l.idmaps, { uid: '0 100000 65536\n', gid: '0 200000 1\n1 300000 9\n' });
});
rejects('a duplicate namespace', (s) => { s.linux.namespaces.push({ type: 'pid' }); }, /^linux\.namespaces\[5\]\.type$/);
rejects('an unknown capability', (s) => { s.process.capabilities!.bounding!.push('CAP_NOPE'); }, /^process\.capabilities/);
rejects('a relative cgroup.procs path', () => {}, /^cgroupProcs\[0\]$/, { ...opts, cgroupProcs: ['cgroup.procs'] });
rejects('a relative state dir', () => {}, /^stateDir$/, { ...opts, stateDir: 'state' });

test('launch - chroot (sl-runtime, no mount namespace): only without a mount or user namespace, and never by default', () => {
  const s = createSpec(base);
  assert.is(decodeLaunch(encodeLaunch(s, opts)).chroot, undefined, 'the agent\'s containers never get it');
  s.linux.namespaces = s.linux.namespaces.filter((n) => n.type !== 'mount');
  assert.is(decodeLaunch(encodeLaunch(s, { ...opts, chroot: true })).chroot, true);
  assert.throws(() => encodeLaunch(createSpec(base), { ...opts, chroot: true }), /chroot/);
  s.linux.namespaces.push({ type: 'user' });
  s.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 1 }];
  s.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 1 }];
  assert.throws(() => encodeLaunch(s, { ...opts, chroot: true }), /chroot/);
});

test('launch - decode rejects garbage', () => {
  assert.throws(() => decodeLaunch(Buffer.from('nope\0')), (e: unknown) => e instanceof LaunchError);
  assert.throws(() => decodeLaunch(Buffer.from(`${LAUNCH_MAGIC}\0mount\0/x\0`)), (e: unknown) => e instanceof LaunchError);
  assert.throws(() => decodeLaunch(Buffer.from(`${LAUNCH_MAGIC}\0what\0x\0`)), (e: unknown) => e instanceof LaunchError);
});

test.run();
