// sl-runtime, the OCI runtime CLI (agent/oci/): each verb through the real binary
// (bin/sl-runtime), the runtime-spec's state transitions, hooks, signals, exit codes,
// hostile bundles, and runc on the same bundle for the state JSON. Root only for the
// containers (namespaces, cgroups); the pure parts run anywhere. Everything lives under a
// temp dir and a --root of its own; every container is force-deleted at the end.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, rmdirSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { statusOf, ociState, type Meta } from '../agent/oci/state.js';
import { parseArgs } from '../agent/oci/cli.js';
import { parseReport, parseSignal, cgroupNode } from '../agent/oci/container.js';
import { loadBundle, BundleError } from '../agent/oci/bundle.js';
import { groupPath, ociWrites, toResources } from '../agent/oci/resources.js';
import { expandCgroupMounts } from '../agent/oci/cgroup-mount.js';
import { defaultSpec } from '../agent/oci/default-spec.js';
import { parseCapBnd, withoutUngrantable } from '../agent/oci/capabilities.js';
import { CAPABILITIES } from '../agent/runtime/launch.js';
import { detect, hierarchies, removeNodeGroup } from '../agent/cgroups/index.js';

const isRoot = process.getuid?.() === 0;
const BIN = fileURLToPath(new URL('../../bin/sl-runtime', import.meta.url));
const T = mkdtempSync(join(tmpdir(), 'sl-oci-'));
const ROOT = join(T, 'state');
const RUNC_ROOT = join(T, 'runc');
const hasRunc = spawnSync('runc', ['--version']).status === 0;
let seq = 0;
const ids: string[] = [];
const runcIds: string[] = [];

const rootTest = (name: string, fn: () => void | Promise<void>) => {
  if (isRoot) test(name, fn);
  else { console.log(`  skipped "${name}": needs root (namespaces, cgroups)`); test.skip(name, fn); }
};

function buildBundle(dir: string, args: string[], edit: (c: Record<string, any>) => void = () => {}): string {
  mkdirSync(join(dir, 'rootfs', 'bin'), { recursive: true });
  if (!existsSync(join(dir, 'rootfs', 'bin', 'busybox'))) {
    copyFileSync('/usr/bin/busybox', join(dir, 'rootfs', 'bin', 'busybox'));
    for (const a of ['sh', 'sleep', 'echo', 'cat', 'true', 'hostname', 'id', 'ps', 'env']) symlinkSync('busybox', join(dir, 'rootfs', 'bin', a));
  }
  const c = defaultSpec() as Record<string, any>;
  c.process.args = args;
  edit(c);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
  return dir;
}

interface Out { code: number; out: string; err: string }

/** Runs sl-runtime with stdout/stderr in files: a container started by create holds them open for its life. */
function sl(args: string[], cwd = T, bin: string[] = [process.execPath, BIN, '--root', ROOT]): Out {
  const n = seq++;
  const o = join(T, `out.${n}`), e = join(T, `err.${n}`);
  const fo = openSync(o, 'w'), fe = openSync(e, 'w');
  const r = spawnSync(bin[0]!, [...bin.slice(1), ...args], { cwd, stdio: ['ignore', fo, fe], timeout: 60_000 });
  closeSync(fo); closeSync(fe);
  return { code: r.status ?? -1, out: readFileSync(o, 'utf8'), err: readFileSync(e, 'utf8') };
}
const runc = (args: string[], cwd = T) => sl(args, cwd, ['runc', '--root', RUNC_ROOT]);

function newId(): string { const id = `oci${process.pid}x${seq++}`; ids.push(id); return id; }
function state(id: string): Record<string, any> { const r = sl(['state', id]); assert.is(r.code, 0, r.err); return JSON.parse(r.out); }

async function until(what: string, f: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test.after(async () => {
  for (const id of ids) sl(['delete', '--force', id]);
  for (const id of runcIds) runc(['delete', '--force', id]);
  // a child group just emptied by delete can still be EBUSY for a moment: retry, or the
  // node's groups stayed behind in every hierarchy after a run
  if (isRoot) {
    // the no-mount-namespace test has a --root of its own, so a node group of its own
    for (const root of [ROOT, join(T, 'nomnt-state')]) {
      let last: unknown;
      for (let i = 0; i < 50; i++) {
        try { removeNodeGroup(detect(), cgroupNode(root)); last = undefined; break; } catch (e) { last = e; await new Promise((r) => setTimeout(r, 100)); }
      }
      if (last) console.log(`  cleanup: the node's groups stayed: ${(last as Error).message}`);
    }
  }
  rmSync(T, { recursive: true, force: true });
});

// ---- pure parts

test('oci-runtime - status follows the runtime spec: creating, created, running, stopped', () => {
  const running = { pid: 10, monitorPid: 9, pidStart: 1, monitorStart: 1 };
  assert.is(statusOf({ fifo: false, alive: false }), 'creating');
  assert.is(statusOf({ running, fifo: true, alive: true }), 'created');
  assert.is(statusOf({ running, fifo: false, alive: true }), 'running');
  assert.is(statusOf({ running, fifo: false, alive: false }), 'stopped');
  assert.is(statusOf({ running, fifo: true, alive: false }), 'stopped', 'a created container killed before start');
  assert.is(statusOf({ running, exit: { code: 0, signal: null }, fifo: false, alive: true }), 'stopped');
  const meta: Meta = { id: 'x', bundle: '/b', rootfs: '/b/rootfs', created: 'now', annotations: { k: 'v' }, cgroupNode: 'n' };
  assert.is(ociState(meta, 'stopped', 10).pid, 0);
  assert.is(ociState(meta, 'running', 10).pid, 10);
});

test('oci-runtime - argument parsing, signals, the monitor report, resources', () => {
  const p = parseArgs(['--bundle', '/b', '--pid-file=/p', '-d', 'id'], ['--bundle', '--pid-file'], false);
  assert.equal(p.args, ['id']);
  assert.equal(p.flags.get('--bundle'), ['/b']);
  assert.equal(p.flags.get('--pid-file'), ['/p']);
  assert.equal(parseArgs(['-e', 'A=1', 'id', 'sh', '-c', 'x'], ['-e'], true).args, ['id', 'sh', '-c', 'x']);
  assert.is(parseSignal('KILL'), 9);
  assert.is(parseSignal('SIGUSR1'), 10);
  assert.is(parseSignal('15'), 15);
  assert.is(parseSignal('0'), 0, 'runc takes 0: is the process there');
  for (const bad of ['SIGNOPE', '65', '-1', '00x', 'x'.repeat(1000)]) assert.throws(() => parseSignal(bad), /unknown signal/);
  const b = Buffer.alloc(568);
  b.writeInt32LE(1, 0); b.writeInt32LE(2, 4); b.write('exec', 24); b.write('/bin/nope', 56);
  assert.is(parseReport(b).error, 'exec /bin/nope: ENOENT');
  assert.is(parseReport(Buffer.alloc(3)).ok, false);
  assert.equal(toResources({ memory: { limit: 1 << 26 }, cpu: { quota: 50000, period: 100000, shares: 512 }, pids: { limit: 20 } }),
    { memory: 1 << 26, cpuShares: 512, pidsLimit: 20 });
  assert.equal(toResources({ memory: { limit: -1 }, pids: { limit: 0 } }), {});
  assert.is(groupPath(undefined, 'swarmlite/n', 'c'), 'swarmlite/n/c');
  assert.is(groupPath('/cgtest/a', 'swarmlite/n', 'c'), 'cgtest/a');
  assert.is(groupPath('rel', 'swarmlite/n', 'c'), 'swarmlite/n/rel');
  for (const bad of ['/', '/../x', '/a/../../b', 'system.slice:runc:x', 7, '/a//b', '/' + 'a/'.repeat(20)]) assert.throws(() => groupPath(bad, 'p', 'c'), /cgroupsPath/, String(bad));
});

test('oci-runtime - the rest of linux.resources as cgroup files: quota with its own period, realtime, mems, memory knobs, blkio', () => {
  const r = {
    cpu: { period: 500000, quota: 50000, realtimePeriod: 1000000, realtimeRuntime: 950000, mems: '0' },
    memory: { reservation: 1 << 25, kernel: 1 << 25, kernelTCP: 1 << 24, swappiness: 0, disableOOMKiller: true },
    blockIO: { leafWeight: 300, weightDevice: [{ major: 8, minor: 0, weight: 500 }], throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1024 }], throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 7 }] },
  };
  const v1 = ociWrites(r, 'v1');
  assert.equal(v1.writes.map((w) => `${w.controller}/${w.file}=${w.value}`), [
    'cpu/cpu.cfs_period_us=500000', 'cpu/cpu.cfs_quota_us=50000', 'cpu/cpu.rt_period_us=1000000', 'cpu/cpu.rt_runtime_us=950000', 'cpuset/cpuset.mems=0',
    `memory/memory.soft_limit_in_bytes=${1 << 25}`, `memory/memory.kmem.limit_in_bytes=${1 << 25}`, `memory/memory.kmem.tcp.limit_in_bytes=${1 << 24}`,
    'memory/memory.swappiness=0', 'memory/memory.oom_control=1',
    'blkio/blkio.leaf_weight=300', 'blkio/blkio.weight_device=8:0 500', 'blkio/blkio.throttle.read_bps_device=8:0 1024', 'blkio/blkio.throttle.write_iops_device=8:0 7',
  ]);
  assert.equal(v1.unsupported, []);
  const v2 = ociWrites(r, 'v2');
  assert.equal(v2.writes.map((w) => `${w.file}=${w.value}`), ['cpu.max=50000 500000', 'cpuset.mems=0', `memory.low=${1 << 25}`, 'io.max=8:0 rbps=1024 wiops=7']);
  assert.equal(v2.unsupported, ['cpu.realtimeRuntime', 'memory.kernel', 'memory.kernelTCP', 'memory.disableOOMKiller', 'blockIO.leafWeight', 'blockIO.weightDevice']);
  assert.equal(ociWrites({ cpu: { quota: -1 }, memory: { swappiness: null } }, 'v1').writes.map((w) => w.value), ['-1']);
  assert.equal(ociWrites(undefined, 'v1'), { writes: [], unsupported: [] });
});

test('oci-runtime - linux.resources.network and hugepageLimits as net_cls, net_prio and hugetlb files; junk values refused', () => {
  const r = { network: { classID: 1048577, priorities: [{ name: 'lo', priority: 10 }, { name: 'eth0', priority: 30 }] }, hugepageLimits: [{ pageSize: '2MB', limit: 2 ** 31 }, { pageSize: '1GB', limit: 0 }] };
  assert.equal(ociWrites(r, 'v1').writes.map((w) => `${w.controller}/${w.file}=${w.value}`), [
    'net_cls/net_cls.classid=1048577', 'net_prio/net_prio.ifpriomap=lo 10', 'net_prio/net_prio.ifpriomap=eth0 30',
    `hugetlb/hugetlb.2MB.limit_in_bytes=${2 ** 31}`, 'hugetlb/hugetlb.1GB.limit_in_bytes=0',
  ]);
  const v2 = ociWrites(r, 'v2');
  assert.equal(v2.writes.map((w) => `${w.file}=${w.value}`), [`hugetlb.2MB.max=${2 ** 31}`, 'hugetlb.1GB.max=0']);
  assert.equal(v2.unsupported, ['network.classID', 'network.priorities']);
  // a name or a number that would be a second line of ifpriomap, or no number at all
  for (const [bad, re] of [
    [{ network: { classID: -1 } }, /network\.classID/], [{ network: { classID: 2 ** 32 } }, /network\.classID/], [{ network: { classID: '1\n2' } }, /network\.classID/],
    [{ network: { priorities: [{ name: 'lo 1\neth0', priority: 1 }] } }, /priorities\[0\]\.name/], [{ network: { priorities: [{ name: '', priority: 1 }] } }, /priorities\[0\]\.name/],
    [{ network: { priorities: [{ name: 'a/b', priority: 1 }] } }, /name/], [{ network: { priorities: [{ name: 'x'.repeat(16), priority: 1 }] } }, /name/],
    [{ network: { priorities: [null] } }, /priorities\[0\]/], [{ network: { priorities: [{ name: 'lo', priority: '5\nx' }] } }, /priorities\[0\]\.priority/],
    [{ hugepageLimits: [{ pageSize: '2MB/../x', limit: 1 }] }, /pageSize/], [{ hugepageLimits: [{ pageSize: '0MB', limit: 1 }] }, /pageSize/],
    [{ hugepageLimits: [{ pageSize: '2MB', limit: -1 }] }, /hugepageLimits\[0\]\.limit/], [{ hugepageLimits: [{ pageSize: '2MB', limit: 1.5 }] }, /limit/],
    [{ hugepageLimits: ['2MB'] }, /pageSize/],
  ] as const) {
    for (const v of ['v1', 'v2'] as const) assert.throws(() => ociWrites(bad as never, v), re as RegExp, `${v} ${JSON.stringify(bad)}`);
  }
});

test('oci-runtime - hostile bundles are refused in one line: junk JSON, a root escaping by symlink, absurd values', () => {
  const dir = join(T, 'hostile');
  mkdirSync(join(dir, 'rootfs'), { recursive: true });
  const cfg = (text: string) => () => { writeFileSync(join(dir, 'config.json'), text); return loadBundle(dir); };
  const good = defaultSpec() as Record<string, any>;
  const withSpec = (f: (c: Record<string, any>) => void) => { const c = structuredClone(good); f(c); return cfg(JSON.stringify(c)); };
  assert.not.throws(withSpec(() => {}));
  assert.is(withSpec(() => {})().noMountNamespace, false);
  assert.is(withSpec((c) => { c.linux.namespaces = c.linux.namespaces.filter((n: any) => n.type !== 'mount'); })().noMountNamespace, true);
  assert.is(withSpec((c) => { delete c.linux.namespaces; c.root.path = '.'; })().noMountNamespace, true);
  assert.not.throws(withSpec((c) => { c.linux.sysctl = { 'net.ipv4.ip_forward': '1', 'kernel.shmmni': '1024', 'fs.mqueue.msg_max': '20', 'kernel.hostname': 'h' }; }));
  const cases: [() => unknown, RegExp][] = [
    [cfg('{"ociVersion": "1.0.2", '), /not JSON/],
    [cfg('\u0000\u00ff junk'), /not JSON/],
    [cfg('[]'), /not a JSON object/],
    [cfg('null'), /not a JSON object/],
    [withSpec((c) => { c.ociVersion = 7; }), /ociVersion/],
    [withSpec((c) => { c.process.args = []; }), /process.args/],
    [withSpec((c) => { c.process.args = [1, 2]; }), /process.args/],
    [withSpec((c) => { delete c.root; }), /root.path/],
    [withSpec((c) => { c.root.path = 'nope'; }), /does not exist/],
    [withSpec((c) => { c.linux.resources = { memory: { limit: 1e300 } }; }), /memory.limit/],
    [withSpec((c) => { c.linux.resources = { pids: { limit: 'lots' } }; }), /pids.limit/],
    [withSpec((c) => { c.linux.resources = { cpu: { cpus: '0-1; rm -rf /' } }; }), /cpu.cpus/],
    [withSpec((c) => { c.linux.resources = { cpu: { mems: '0\n1' } }; }), /cpu.mems/],
    [withSpec((c) => { c.linux.resources = { memory: { swappiness: 101 } }; }), /memory.swappiness/],
    [withSpec((c) => { c.linux.resources = { memory: { disableOOMKiller: 'yes' } }; }), /disableOOMKiller/],
    [withSpec((c) => { c.linux.resources = { blockIO: { throttleReadBpsDevice: [{ major: 8, minor: 0 }] } }; }), /rate/],
    [withSpec((c) => { c.linux.resources = { blockIO: { throttleReadBpsDevice: [{ major: '8 0 1\n', minor: 0, rate: 1 }] } }; }), /major/],
    [withSpec((c) => { c.linux.resources = { blockIO: { weightDevice: {} } }; }), /weightDevice: not a list/],
    [withSpec((c) => { c.hooks = { prestart: [{ path: 'relative' }] }; }), /hooks.prestart\[0\].path/],
    [withSpec((c) => { c.hooks = { prestart: [{ path: '/bin/true', timeout: -5 }] }; }), /timeout/],
    [withSpec((c) => { c.hooks = { whenever: [] }; }), /unknown hook kind/],
    [withSpec((c) => { c.annotations = { k: 1 }; }), /annotations/],
    [withSpec((c) => { c.process.terminal = true; }), /terminal/],
    [withSpec((c) => { c.hooks = { createContainer: [{ path: '/bin/true' }] }; }), /hooks.createContainer: not supported/],
    // sysctls: only namespaced ones, only in a namespace of the container's own, one-line values
    [withSpec((c) => { c.linux.sysctl = { 'vm.overcommit_memory': '1' }; }), /vm.overcommit_memory is not a namespaced sysctl/],
    [withSpec((c) => { c.linux.sysctl = { 'kernel.sem': '1 2 3 4' }; c.linux.namespaces = c.linux.namespaces.filter((n: any) => n.type !== 'ipc'); }), /needs a ipc namespace/],
    [withSpec((c) => { c.linux.sysctl = { 'net.ipv4.ip_forward': '1' }; c.linux.namespaces = c.linux.namespaces.filter((n: any) => n.type !== 'network'); }), /needs a network namespace/],
    [withSpec((c) => { c.linux.sysctl = { 'net.ipv4.ip_forward': '1' }; c.linux.namespaces.find((n: any) => n.type === 'network').path = '/proc/1/ns/net'; }), /needs a network namespace/],
    [withSpec((c) => { c.linux.sysctl = { 'net.ipv4.ip_forward': '1\n0' }; }), /one line/],
    [withSpec((c) => { c.linux.sysctl = { 'net.ipv4.ip_forward': 1 }; }), /one line/],
    [withSpec((c) => { c.linux.sysctl = { '../../../proc/sysrq-trigger': 'b' }; }), /sysctl name/],
    [withSpec((c) => { c.linux.sysctl = []; }), /linux.sysctl: not an object/],
    // no mount namespace: the chroot path, but never for a root outside the bundle (an
    // absolute "/" would mount over the host's /proc), a user namespace, or setns-entered hooks
    [withSpec((c) => { c.linux.namespaces = c.linux.namespaces.filter((n: any) => n.type !== 'mount'); c.root.path = '/'; }), /root.path: \/ is not the bundle/],
    [withSpec((c) => { delete c.linux.namespaces; c.root.path = T; }), /is not the bundle .* or inside it/],
    [withSpec((c) => { c.linux.namespaces = [{ type: 'user' }]; c.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }]; c.linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 1 }]; }), /a user namespace: linux.namespaces has no mount namespace/],
    [withSpec((c) => { c.linux.namespaces = []; c.hooks = { startContainer: [{ path: '/bin/true' }] }; }), /hooks.startContainer: linux.namespaces has no mount namespace/],
    [withSpec((c) => { c.linux.namespaces.find((n: any) => n.type === 'mount').path = '/proc/self/ns/mnt'; }), /is sl-runtime's own/],
    [withSpec((c) => { c.linux.namespaces.find((n: any) => n.type === 'mount').path = `/proc/${process.pid}/ns/mnt`; }), /is sl-runtime's own/],
    [withSpec((c) => { c.linux.namespaces.find((n: any) => n.type === 'mount').path = 'proc/1/ns/mnt'; }), /not an absolute path/],
  ];
  for (const [f, re] of cases) {
    try { f(); assert.unreachable(`accepted: ${re}`); } catch (e) {
      assert.instance(e, BundleError, String(e));
      assert.match((e as Error).message, re);
      assert.not.match((e as Error).message, /[\n\0]/);
    }
  }
  // root.path through a symlink that leaves the bundle
  rmSync(join(dir, 'rootfs'), { recursive: true });
  symlinkSync('/', join(dir, 'rootfs'));
  assert.throws(withSpec(() => {}), /leads out of the bundle/);
  assert.throws(withSpec((c) => { c.root.path = '../../../../..'; }), /leads out of the bundle/);
  // a config.json that is a FIFO or a link is not read (no hang, no following)
  rmSync(join(dir, 'config.json'));
  symlinkSync('/etc/passwd', join(dir, 'config.json'));
  assert.throws(() => loadBundle(dir), /config.json/);
  assert.throws(() => loadBundle(join(T, 'no-such-bundle')), /no such bundle/);
});

test('oci-runtime - --version, spec, and a one-line error with exit 1 for an unknown id or verb', () => {
  const v = sl(['--version']);
  assert.is(v.code, 0);
  assert.match(v.out, /^sl-runtime version .*\nspec: 1\.0\.2\n$/);
  const dir = join(T, 'specdir');
  mkdirSync(dir);
  assert.is(sl(['spec'], dir).code, 0);
  const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.equal(spec.process.args, ['sh']);
  assert.is(spec.root.path, 'rootfs');
  const again = sl(['spec'], dir);
  assert.is(again.code, 1, 'spec refuses to overwrite');
  for (const args of [['state', 'nosuch'], ['start', 'nosuch'], ['kill', 'nosuch'], ['delete', 'nosuch'], ['ps', 'nosuch'], ['exec', 'nosuch', 'true'], ['frobnicate'], ['state'], ['state', '../../etc']]) {
    const r = sl(args);
    assert.is(r.code, 1, args.join(' '));
    assert.is(r.err.trim().split('\n').length, 1, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, /^sl-runtime: /);
  }
  assert.is(sl(['delete', '--force', 'nosuch']).code, 0, 'delete --force of a missing container is not an error (runc)');
});

test('oci-runtime - a cgroup mount becomes the container\'s own groups (v1: tmpfs + a bind per hierarchy, ro; v2: one bind)', () => {
  const procs = ['/sys/fs/cgroup/memory/swarmlite/n/c/cgroup.procs', '/sys/fs/cgroup/pids/swarmlite/n/c/cgroup.procs'];
  const m = [{ destination: '/proc', type: 'proc', source: 'proc' }, { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid'] }];
  const v1 = expandCgroupMounts(m, procs, 'v1', 'swarmlite/n/c');
  assert.equal(v1.map((x) => [x.destination, x.type, x.source]), [
    ['/proc', 'proc', 'proc'], ['/sys/fs/cgroup', 'tmpfs', 'tmpfs'],
    ['/sys/fs/cgroup/memory', 'bind', '/sys/fs/cgroup/memory/swarmlite/n/c'], ['/sys/fs/cgroup/pids', 'bind', '/sys/fs/cgroup/pids/swarmlite/n/c'],
    ['/sys/fs/cgroup', 'tmpfs', 'tmpfs'],
  ]);
  assert.ok(v1[2]!.options!.includes('ro') && v1[4]!.options!.includes('remount'));
  const v2 = expandCgroupMounts(m, ['/sys/fs/cgroup/swarmlite/n/c/cgroup.procs'], 'v2', 'swarmlite/n/c');
  assert.equal(v2.map((x) => [x.destination, x.source]), [['/proc', 'proc'], ['/sys/fs/cgroup', '/sys/fs/cgroup/swarmlite/n/c']]);
});

// ---- containers

rootTest('oci-runtime - create, start, state, ps, kill, delete: created holds the process before its exec', async () => {
  const b = buildBundle(join(T, 'b1'), ['sh', '-c', 'trap "exit 7" USR1; while true; do sleep 0.05; done'], (c) => { c.annotations = { 'org.example': 'yes' }; });
  const id = newId();
  const pidFile = join(T, 'b1.pid');
  const cr = sl(['create', '--bundle', b, '--pid-file', pidFile, id]);
  assert.is(cr.code, 0, cr.err);
  const s1 = state(id);
  assert.is(s1.status, 'created');
  assert.is(s1.id, id);
  assert.is(s1.bundle, b);
  assert.equal(s1.annotations, { 'org.example': 'yes' });
  assert.is(s1.ociVersion, '1.0.2');
  assert.is(Number(readFileSync(pidFile, 'utf8')), s1.pid);
  // held: still sl-monitor's code, the command has not exec'd
  assert.is(readFileSync(`/proc/${s1.pid}/comm`, 'utf8').trim(), 'sl-monitor');
  assert.is(sl(['list', '-q']).out.split('\n').includes(id), true);
  const st = sl(['start', id]);
  assert.is(st.code, 0, st.err);
  await until('the exec', () => readFileSync(`/proc/${s1.pid}/comm`, 'utf8').trim() !== 'sl-monitor');
  const s2 = state(id);
  assert.is(s2.status, 'running');
  assert.is(s2.pid, s1.pid);
  assert.is(sl(['start', id]).code, 1, 'a second start is refused');
  const ps = sl(['ps', '--format', 'json', id]);
  assert.is(ps.code, 0, ps.err);
  assert.ok((JSON.parse(ps.out) as number[]).includes(s1.pid));
  const del = sl(['delete', id]);
  assert.is(del.code, 1, 'delete of a running container needs --force');
  assert.match(del.err, /not stopped/);
  assert.is(state(id).status, 'running');
  assert.is(sl(['kill', id, 'USR1']).code, 0);
  await until('stopped', () => state(id).status === 'stopped');
  const ex = JSON.parse(readFileSync(join(ROOT, id, 'exit.json'), 'utf8'));
  assert.is(ex.code, 7, 'the trap ran: the signal reached the process');
  assert.is(sl(['kill', id, 'KILL']).code, 1, 'kill of a stopped container is an error');
  assert.is(sl(['delete', id]).code, 0);
  assert.is(sl(['state', id]).code, 1);
  assert.is(existsSync(join(ROOT, id)), false);
});

rootTest('oci-runtime - kill of a created container, delete --force of a running one; no process or cgroup left', async () => {
  const b = buildBundle(join(T, 'b2'), ['sleep', '1000']);
  const a = newId(), c = newId();
  assert.is(sl(['create', '-b', b, a]).code, 0);
  const pa = state(a).pid;
  // runtime-spec: deleting a container that is not stopped is an error, and created is not stopped
  const d = sl(['delete', a]);
  assert.is(d.code, 1, 'delete of a created container needs --force');
  assert.match(d.err, /not stopped: created/);
  assert.is(state(a).status, 'created', 'the refused delete had no effect');
  assert.is(sl(['kill', a, '9']).code, 0);
  await until('stopped', () => state(a).status === 'stopped');
  assert.is(sl(['delete', a]).code, 0);
  // TERM too, as runc's: the held init is its pid namespace's init, which ignores a signal it has no handler for
  const t = newId();
  assert.is(sl(['create', '-b', b, t]).code, 0);
  assert.is(sl(['kill', t, '0']).code, 0, 'signal 0 asks whether it is there');
  assert.is(state(t).status, 'created');
  assert.is(sl(['kill', t, 'TERM']).code, 0);
  await until('stopped after TERM', () => state(t).status === 'stopped');
  assert.is(sl(['kill', t, 'TERM']).code, 1, 'a stopped container takes no signal');
  assert.is(sl(['delete', t]).code, 0);
  assert.is(sl(['create', '-b', b, c]).code, 0);
  assert.is(sl(['start', c]).code, 0);
  const pc = state(c).pid;
  const groups = readFileSync(`/proc/${pc}/cgroup`, 'utf8');
  assert.match(groups, new RegExp(`${cgroupNode(ROOT)}/${c}`), 'in its own group');
  const r = sl(['delete', '--force', c]);
  assert.is(r.code, 0, r.err);
  for (const p of [pa, pc]) assert.is(existsSync(`/proc/${p}/stat`) && !/\) Z/.test(readFileSync(`/proc/${p}/stat`, 'utf8')), false, `pid ${p} gone`);
  for (const h of ['memory', 'pids', 'unified']) assert.is(existsSync(`/sys/fs/cgroup/${h}/swarmlite/${cgroupNode(ROOT)}/${c}`), false, h);
});

rootTest('oci-runtime - run: output passes through, the exit code is the process\'s, -d detaches; exec joins it', async () => {
  const b = buildBundle(join(T, 'b3'), ['sh', '-c', 'echo out; echo err >&2; hostname; exit 3']);
  const r = sl(['run', '--bundle', b, newId()]);
  assert.is(r.code, 3, r.err);
  assert.is(r.out, 'out\nsl-runtime\n');
  assert.is(r.err, 'err\n');
  const b2 = buildBundle(join(T, 'b4'), ['sleep', '1000'], (c) => { c.process.env.push('FROM_SPEC=1'); });
  const id = newId();
  const d = sl(['run', '-d', '-b', b2, id]);
  assert.is(d.code, 0, d.err);
  assert.is(state(id).status, 'running');
  const e = sl(['exec', '-e', 'EXTRA=2', id, 'sh', '-c', 'echo $FROM_SPEC$EXTRA; hostname; cat /proc/1/comm; exit 5']);
  assert.is(e.code, 5, e.err);
  assert.is(e.out, '12\nsl-runtime\nsleep\n', 'the container\'s env, uts and pid namespaces');
  const procFile = join(T, 'process.json');
  writeFileSync(procFile, JSON.stringify({ args: ['id', '-u'], user: { uid: 65534, gid: 65534 }, cwd: '/' }));
  const e2 = sl(['exec', '--process', procFile, id]);
  assert.is(e2.code, 0, e2.err);
  assert.is(e2.out, '65534\n');
  assert.is(sl(['exec', id, '/bin/nope']).code, 1);
  assert.is(sl(['delete', '-f', id]).code, 0);
});

rootTest('oci-runtime - hooks run in order with the state JSON on stdin; a failing prestart fails create and leaves nothing', async () => {
  const log = join(T, 'hooks.log');
  const hook = (kind: string) => ({ path: '/bin/sh', args: ['sh', '-c', `printf '%s ' ${kind} >> ${log}; cat >> ${log}; echo >> ${log}`], env: ['X=1'], timeout: 30 });
  const b = buildBundle(join(T, 'b5'), ['true'], (c) => {
    c.annotations = { h: 'k' };
    c.hooks = Object.fromEntries(['prestart', 'createRuntime', 'poststart', 'poststop'].map((k) => [k, [hook(k)]]));
    c.hooks.prestart.push({ path: '/bin/true' }); // one that never reads its stdin still succeeds
  });
  const id = newId();
  assert.is(sl(['create', '-b', b, id]).code, 0);
  const pid = state(id).pid;
  assert.is(sl(['start', id]).code, 0);
  await until('stopped', () => state(id).status === 'stopped');
  assert.is(sl(['delete', id]).code, 0);
  const lines = readFileSync(log, 'utf8').trim().split('\n');
  assert.equal(lines.map((l) => l.split(' ')[0]), ['prestart', 'createRuntime', 'poststart', 'poststop']);
  const states = lines.map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)));
  for (const s of states) {
    assert.is(s.id, id);
    assert.is(s.bundle, b);
    assert.equal(s.annotations, { h: 'k' });
    assert.is(s.ociVersion, '1.0.2');
  }
  assert.equal(states.map((s) => s.status), ['creating', 'creating', 'running', 'stopped']);
  assert.is(states[0].pid, pid);
  // `true` has usually exited by the time poststart's state is made: the pid is still the process's
  assert.is(states[2].pid, pid, 'poststart gets the container process\'s pid');
  assert.is(states[3].pid, 0);

  const bad = buildBundle(join(T, 'b6'), ['sleep', '1000'], (c) => { c.hooks = { prestart: [{ path: '/bin/false' }] }; });
  const id2 = newId();
  const r = sl(['create', '-b', bad, id2]);
  assert.is(r.code, 1);
  assert.match(r.err, /prestart hook 0 \(\/bin\/false\): exited with 1/, r.err);
  assert.is(sl(['state', id2]).code, 1);
  assert.is(existsSync(join(ROOT, id2)), false);
  const slow = buildBundle(join(T, 'b7'), ['true'], (c) => { c.hooks = { createRuntime: [{ path: '/bin/sleep', args: ['sleep', '100'], timeout: 1 }] }; });
  const r2 = sl(['create', '-b', slow, newId()]);
  assert.is(r2.code, 1);
  assert.match(r2.err, /timed out after 1 s/);
});

rootTest('oci-runtime - a failed poststart or poststop hook is a warning and the hooks after it still run', async () => {
  const log = join(T, 'hooks-warn.log');
  const ok = (kind: string) => ({ path: '/bin/sh', args: ['sh', '-c', `echo ${kind} >> ${log}`] });
  const b = buildBundle(join(T, 'b17'), ['true'], (c) => {
    c.hooks = { poststart: [{ path: '/bin/false' }, ok('poststart')], poststop: [{ path: '/bin/false' }, ok('poststop')] };
  });
  const id = newId();
  assert.is(sl(['create', '-b', b, id]).code, 0);
  const st = sl(['start', id]);
  assert.is(st.code, 0, 'the lifecycle goes on');
  assert.match(st.err, /warning: poststart hook 0 \(\/bin\/false\): exited with 1/);
  await until('stopped', () => state(id).status === 'stopped');
  const d = sl(['delete', id]);
  assert.is(d.code, 0);
  assert.match(d.err, /warning: poststop hook 0/);
  assert.is(readFileSync(log, 'utf8'), 'poststart\npoststop\n');
});

rootTest('oci-runtime - startContainer hooks run in the container (its root, namespaces) after start and before the process; one failing fails start', async () => {
  const b = buildBundle(join(T, 'b18'), ['sh', '-c', 'cat /hook.out'], (c) => {
    c.annotations = { s: 't' };
    c.root.readonly = false;
    c.hooks = { startContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'hostname > /hook.out; cat > /hook.state; echo $HOOKVAR >> /hook.out'], env: ['HOOKVAR=v'], timeout: 30 }] };
  });
  const id = newId();
  const c = sl(['create', '-b', b, id]);
  assert.is(c.code, 0, c.err);
  assert.is(existsSync(join(b, 'rootfs', 'hook.out')), false, 'not at create');
  const pid = state(id).pid;
  assert.is(sl(['start', id]).code, 0);
  await until('stopped', () => state(id).status === 'stopped');
  // the process read what the hook wrote: the hook ran first, inside the container's root and uts namespace
  assert.is(readFileSync(join(b, 'rootfs', 'hook.out'), 'utf8'), 'sl-runtime\nv\n');
  const hs = JSON.parse(readFileSync(join(b, 'rootfs', 'hook.state'), 'utf8'));
  assert.is(hs.id, id);
  assert.is(hs.pid, pid);
  assert.is(hs.status, 'created');
  assert.equal(hs.annotations, { s: 't' });
  assert.is(sl(['delete', id]).code, 0);

  const log = join(T, 'start-fail.log');
  const bad = buildBundle(join(T, 'b19'), ['sh', '-c', 'echo process > /ran'], (c) => {
    c.root.readonly = false;
    c.hooks = { startContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'exit 3'] }], poststop: [{ path: '/bin/sh', args: ['sh', '-c', `echo poststop >> ${log}`] }] };
  });
  const id2 = newId();
  assert.is(sl(['create', '-b', bad, id2]).code, 0);
  const r = sl(['start', id2]);
  assert.is(r.code, 1);
  assert.match(r.err, /startContainer hook 0 \(\/bin\/sh\): exited with 3/);
  assert.is(state(id2).status, 'stopped', 'the container is stopped');
  assert.is(sl(['delete', id2]).code, 0);
  assert.is(readFileSync(log, 'utf8'), 'poststop\n', 'poststop ran');
  assert.is(existsSync(join(bad, 'rootfs', 'ran')), false, 'the process never ran');
  const r2 = sl(['run', '-b', bad, newId()]);
  assert.is(r2.code, 1, 'run fails the same way');
});

rootTest('oci-runtime - SIGKILL of sl-runtime in the middle of create: state still answers, delete --force leaves nothing', async () => {
  const hookPid = join(T, 'hook.pid');
  const b = buildBundle(join(T, 'b13'), ['sleep', '1000'], (c) => {
    c.hooks = { createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', `echo $$ > ${hookPid}; exec sleep 1000`] }] };
  });
  const id = newId();
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [BIN, '--root', ROOT, 'create', '-b', b, id], { stdio: 'ignore' });
  let hp = 0;
  try {
    // the init is held and the hook runs: the step between the monitor's report and the end of create
    await until('the hook', () => existsSync(hookPid) && readFileSync(hookPid, 'utf8').trim() !== '');
    hp = Number(readFileSync(hookPid, 'utf8'));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const s = state(id);
    assert.is(s.status, 'created', 'the held init is still there');
    const pid = s.pid;
    const r = sl(['delete', '--force', id]);
    assert.is(r.code, 0, r.err);
    assert.is(existsSync(join(ROOT, id)), false);
    assert.is(existsSync(`/proc/${pid}/stat`) && !/\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')), false, 'the init is gone');
    for (const h of ['memory', 'pids', 'unified']) assert.is(existsSync(`/sys/fs/cgroup/${h}/swarmlite/${cgroupNode(ROOT)}/${id}`), false, h);
  } finally {
    child.kill('SIGKILL');
    if (hp) { try { process.kill(hp, 'SIGKILL'); } catch { /* gone */ } }
  }
});

rootTest('oci-runtime - bad bundles and commands fail create with one line and leave no state', () => {
  const b = buildBundle(join(T, 'b8'), ['/bin/no-such-command']);
  const id = newId();
  const r = sl(['create', '-b', b, id]);
  assert.is(r.code, 1);
  assert.match(r.err, /exec \/bin\/no-such-command: ENOENT/);
  assert.is(existsSync(join(ROOT, id)), false);
  writeFileSync(join(b, 'config.json'), '{"junk"');
  const r2 = sl(['create', '-b', b, newId()]);
  assert.is(r2.code, 1);
  assert.is(r2.err.trim().split('\n').length, 1);
  const ok = buildBundle(join(T, 'b9'), ['sleep', '1000']);
  const dup = newId();
  assert.is(sl(['create', '-b', ok, dup]).code, 0);
  const r3 = sl(['create', '-b', ok, dup]);
  assert.is(r3.code, 1);
  assert.match(r3.err, /already exists/);
  assert.is(sl(['delete', '-f', dup]).code, 0);
  const huge = buildBundle(join(T, 'b10'), ['true'], (c) => { c.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 2 ** 60, hard: 1 }]; });
  assert.is(sl(['create', '-b', huge, newId()]).code, 1);
});

rootTest('oci-runtime - linux.resources reach the cgroup (kernel-enforced memory limit)', async () => {
  const b = buildBundle(join(T, 'b11'), ['sleep', '1000'], (c) => {
    c.linux.resources.memory = { limit: 64 << 20 };
    c.linux.resources.pids = { limit: 17 };
    c.mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] });
  });
  const id = newId();
  assert.is(sl(['create', '-b', b, id]).code, 0);
  const det = detect();
  const node = cgroupNode(ROOT);
  const mem = det.kind === 'v2' ? readFileSync(`${det.unified}/swarmlite/${node}/${id}/memory.max`, 'utf8') : readFileSync(`/sys/fs/cgroup/memory/swarmlite/${node}/${id}/memory.limit_in_bytes`, 'utf8');
  assert.is(Number(mem.trim()), 64 << 20);
  const pids = det.kind === 'v2' ? readFileSync(`${det.unified}/swarmlite/${node}/${id}/pids.max`, 'utf8') : readFileSync(`/sys/fs/cgroup/pids/swarmlite/${node}/${id}/pids.max`, 'utf8');
  assert.is(pids.trim(), '17');
  // the cgroup mount shows the container its own groups, read-only
  assert.is(sl(['start', id]).code, 0);
  const inside = sl(['exec', id, 'sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; mkdir /sys/fs/cgroup/x 2>/dev/null && echo writable; true']);
  assert.is(inside.code, 0, inside.err);
  assert.is(inside.out, `${64 << 20}\n`);
  assert.is(sl(['delete', '-f', id]).code, 0);
});

rootTest('oci-runtime - HOME as runc sets it: the user\'s home from the container\'s passwd, "/" without one, never from a passwd out of the root', async () => {
  const run = (dir: string, edit: (c: Record<string, any>) => void, passwd?: (etc: string) => void) => {
    const b = buildBundle(join(T, dir), ['sh', '-c', 'echo $HOME'], edit);
    if (passwd) { mkdirSync(join(b, 'rootfs', 'etc'), { recursive: true }); passwd(join(b, 'rootfs', 'etc')); }
    const r = sl(['run', '-b', b, newId()]);
    assert.is(r.code, 0, r.err);
    return r.out.trim();
  };
  assert.is(run('b21', () => {}), '/');
  assert.is(run('b22', (c) => { c.process.user = { uid: 1000, gid: 1000 }; }, (etc) => writeFileSync(join(etc, 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n')), '/home/u');
  assert.is(run('b23', (c) => { c.process.env.push('HOME=/given'); }, (etc) => writeFileSync(join(etc, 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n')), '/given');
  const evil = join(T, 'evil-passwd');
  writeFileSync(evil, 'root:x:0:0:root:/host-secret:/bin/sh\n');
  assert.is(run('b24', () => {}, (etc) => symlinkSync(evil, join(etc, 'passwd'))), '/', 'a passwd linked out of the root is not read');
});

rootTest('oci-runtime - a non-root user gets the capability sets the config lists (runc\'s meaning), ambient ones included', async () => {
  const caps = ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_RAW']; // bits 0, 5, 13
  const b = buildBundle(join(T, 'b25'), ['sh', '-c', 'grep -E "^Cap(Inh|Prm|Eff|Bnd|Amb)" /proc/self/status; id -u'], (c) => {
    c.process.user = { uid: 1000, gid: 1000 };
    c.process.capabilities = { bounding: [...caps, 'CAP_SYS_ADMIN'], effective: caps, permitted: caps, inheritable: caps, ambient: caps };
  });
  const r = sl(['run', '-b', b, newId()]);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, 'CapInh:\t0000000000002021\nCapPrm:\t0000000000002021\nCapEff:\t0000000000002021\nCapBnd:\t0000000000202021\nCapAmb:\t0000000000002021\n1000\n');
  // and none beyond them: an empty list is empty for that user too
  const b2 = buildBundle(join(T, 'b26'), ['sh', '-c', 'grep -E "^Cap(Prm|Eff)" /proc/self/status'], (c) => {
    c.process.user = { uid: 1000, gid: 1000 };
    c.process.capabilities = { bounding: caps, effective: [], permitted: [], inheritable: [] };
  });
  const r2 = sl(['run', '-b', b2, newId()]);
  assert.is(r2.code, 0, r2.err);
  assert.is(r2.out, 'CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n');
});

test('oci-runtime - capabilities outside the runtime\'s bounding set are left out of every set; unknown names stay for the encoder', () => {
  const all = Object.keys(CAPABILITIES);
  const mask = ~(1n << BigInt(CAPABILITIES.CAP_SYS_NICE!)) & ((1n << BigInt(all.length)) - 1n);
  const r = withoutUngrantable({ bounding: [...all, 'CAP_TEST'], effective: ['CAP_SYS_NICE', 'CAP_CHOWN'], permitted: all, inheritable: [], ambient: ['CAP_SYS_NICE'], extra: 1 }, mask);
  assert.equal(r.dropped, ['CAP_SYS_NICE'], 'named once');
  const c = r.capabilities as Record<string, unknown>;
  assert.equal(c.bounding, [...all.filter((n) => n !== 'CAP_SYS_NICE'), 'CAP_TEST']);
  assert.equal(c.effective, ['CAP_CHOWN']);
  assert.equal(c.ambient, []);
  assert.equal(c.inheritable, []);
  assert.is(c.extra, 1, 'what is not a set is kept');
  assert.equal(withoutUngrantable({ bounding: all }, (1n << 64n) - 1n).dropped, []);
  // junk is handed on as it came, for the encoder's error
  for (const junk of [null, 'CAP_CHOWN', ['CAP_CHOWN'], 7, { bounding: 'CAP_SYS_NICE' }, { effective: [1, null, {}] }]) {
    const j = withoutUngrantable(junk, 0n);
    assert.equal(j.capabilities, junk);
    assert.equal(j.dropped, []);
  }
  assert.is(parseCapBnd('Name:\tx\nCapBnd:\t000001fffeffffff\nCapAmb:\t0\n'), 0x1fffeffffffn);
  for (const junk of ['', 'CapBnd:\tzz\n', 'CapBnd:\t' + 'f'.repeat(17) + '\n', 'XCapBnd:\t1\n']) assert.is(parseCapBnd(junk), undefined, JSON.stringify(junk));
});

rootTest('oci-runtime - a capability the runtime itself lacks is a warning, not a failure (runtime-spec); CAP_TEST still fails create', async () => {
  // sl-runtime under a bounding set without CAP_SYS_NICE: the config asks for it in every set
  const setpriv = ['setpriv', '--bounding-set', '-sys_nice', process.execPath, BIN, '--root', ROOT];
  const want = ['CAP_CHOWN', 'CAP_SYS_NICE', 'CAP_KILL'];
  const b = buildBundle(join(T, 'b27'), ['sh', '-c', 'grep -E "^Cap(Prm|Bnd|Amb)" /proc/self/status'], (c) => {
    c.process.capabilities = { bounding: want, effective: want, permitted: want, inheritable: want, ambient: want };
  });
  const r = sl(['run', '-b', b, newId()], T, setpriv);
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /warning: process\.capabilities: CAP_SYS_NICE not in this runtime's bounding set and cannot be granted, left out/);
  assert.is(r.out, 'CapPrm:\t0000000000000021\nCapBnd:\t0000000000000021\nCapAmb:\t0000000000000021\n', 'CHOWN and KILL, no SYS_NICE');
  const bad = buildBundle(join(T, 'b28'), ['true'], (c) => { c.process.capabilities.bounding.push('CAP_TEST'); });
  const r2 = sl(['run', '-b', bad, newId()], T, setpriv);
  assert.is(r2.code, 1);
  assert.match(r2.err, /unknown capability "CAP_TEST"/);
});

rootTest('oci-runtime - network classID and priorities, hugepage limits: in the groups where the hierarchy is mounted, else a warning naming the file', async () => {
  const b = buildBundle(join(T, 'b29'), ['true'], (c) => {
    c.linux.resources = { network: { classID: 1048577, priorities: [{ name: 'lo', priority: 7 }] }, hugepageLimits: [{ pageSize: '2MB', limit: 4 << 20 }] };
  });
  const id = newId();
  const r = sl(['create', '-b', b, id]);
  assert.is(r.code, 0, r.err);
  const group = (h: string) => `/sys/fs/cgroup/${h}/swarmlite/${cgroupNode(ROOT)}/${id}`;
  const checks: [string, string, string][] = [['net_cls', 'net_cls.classid', '1048577'], ['net_prio', 'net_prio.ifpriomap', 'lo 7'], ['hugetlb', 'hugetlb.2MB.limit_in_bytes', String(4 << 20)]];
  for (const [h, file, want] of checks) {
    const f = join(group(h), file);
    if (existsSync(f)) assert.ok(readFileSync(f, 'utf8').split('\n').some((l) => l.trim() === want), `${f}: ${want}`);
    else assert.match(r.err, new RegExp(`warning: linux\\.resources\\.[a-zA-Z.]+: this kernel offers no ${file.replace(/\./g, '\\.')}, ignored`), `${file}: ${r.err}`);
  }
  assert.is(sl(['delete', '-f', id]).code, 0);
  const junk = buildBundle(join(T, 'b30'), ['true'], (c) => { c.linux.resources = { network: { priorities: [{ name: 'lo 1\neth0', priority: 1 }] } }; });
  const id2 = newId();
  const r2 = sl(['create', '-b', junk, id2]);
  assert.is(r2.code, 1);
  assert.match(r2.err, /^sl-runtime: linux\.resources\.network\.priorities\[0\]\.name: not an interface name/);
  assert.is(r2.err.trim().split('\n').length, 1, 'one line');
  assert.is(sl(['state', id2]).code, 1, 'nothing left');
});

rootTest('oci-runtime - no mount namespace (runtime-tools linux_ns_itype): chroot below the bundle, "/" untouched, every mount gone after delete', async () => {
  // The container shares its caller's mount namespace, so the test makes that namespace a
  // throwaway one first (unshare -m, private): even a regression that mounted on or pivoted
  // "/" could not reach the host's. Inside it a script creates, starts and deletes the
  // container and reports what it saw; outside it the test checks its own namespace too.
  const dir = buildBundle(join(T, 'nomnt'), ['sleep', '600'], (c) => { c.linux.namespaces = []; delete c.hostname; });
  // hostile: a mount whose destination is a link out of the rootfs must land inside it
  const outside = join(T, 'nomnt-outside');
  mkdirSync(outside, { recursive: true });
  symlinkSync(outside, join(dir, 'rootfs', 'escape'));
  mkdirSync(join(dir, 'rootfs', outside), { recursive: true }); // where the link leads inside the root
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  c.mounts.push({ destination: '/escape', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'size=64k'] });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
  const bad = buildBundle(join(T, 'nomnt-bad'), ['true'], (c) => {
    c.linux.namespaces = []; delete c.hostname;
    c.mounts.push({ destination: '/data', type: 'bind', source: join(T, 'no-such-source'), options: ['rbind'] });
  });
  const id = `nomnt${process.pid}`;
  const script = join(T, 'nomnt.mjs');
  writeFileSync(script, `
    import { spawnSync } from 'node:child_process';
    import { readFileSync, readlinkSync, openSync, closeSync } from 'node:fs';
    const sl = (...a) => {
      const o = openSync(${JSON.stringify(join(T, 'nomnt.out'))}, 'w');
      const r = spawnSync(process.execPath, [${JSON.stringify(BIN)}, '--root', ${JSON.stringify(join(T, 'nomnt-state'))}, ...a], { stdio: ['ignore', o, 'pipe'], encoding: 'utf8', timeout: 60000 });
      closeSync(o);
      return { code: r.status, err: r.stderr, out: readFileSync(${JSON.stringify(join(T, 'nomnt.out'))}, 'utf8') };
    };
    const mi = () => readFileSync('/proc/self/mountinfo', 'utf8');
    const rootLine = () => mi().split('\\n').find((l) => l.split(' ')[4] === '/');
    const res = { before: mi(), rootBefore: rootLine(), ns: readlinkSync('/proc/self/ns/mnt') };
    res.create = sl('create', '--bundle', ${JSON.stringify(dir)}, ${JSON.stringify(id)});
    if (res.create.code === 0) {
      const st = JSON.parse(sl('state', ${JSON.stringify(id)}).out);
      res.status = st.status;
      res.cns = readlinkSync('/proc/' + st.pid + '/ns/mnt');
      res.croot = readlinkSync('/proc/' + st.pid + '/root');
      res.during = mi();
      res.start = sl('start', ${JSON.stringify(id)});
      res.running = JSON.parse(sl('state', ${JSON.stringify(id)}).out).status;
      res.exec = sl('exec', ${JSON.stringify(id)}, 'true');
    }
    res.del = sl('delete', '--force', ${JSON.stringify(id)});
    res.after = mi();
    // faults: the init killed while held, then a plain delete; a create whose init dies
    // after the rootfs bind (a bind source that does not exist): nothing may stay mounted
    res.killed = sl('create', '--bundle', ${JSON.stringify(dir)}, ${JSON.stringify(id + 'k')});
    if (res.killed.code === 0) {
      process.kill(JSON.parse(sl('state', ${JSON.stringify(id + 'k')}).out).pid, 'SIGKILL');
      for (let i = 0; i < 400 && JSON.parse(sl('state', ${JSON.stringify(id + 'k')}).out).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 50));
      res.killedDel = sl('delete', ${JSON.stringify(id + 'k')});
    }
    res.afterKill = mi();
    res.bad = sl('create', '--bundle', ${JSON.stringify(bad)}, ${JSON.stringify(id + 'b')});
    res.afterBad = mi();
    res.badLeft = sl('list', '-q').out;
    res.rootAfter = rootLine();
    console.log(JSON.stringify(res));
  `);
  const ours = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(T) || l.split(' ')[4] === '/').join('\n');
  const outerBefore = ours();
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', process.execPath, script], { encoding: 'utf8', timeout: 180_000 });
  assert.is(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.is(res.create.code, 0, res.create.err);
  assert.is(res.status, 'created');
  assert.is(res.cns, res.ns, 'the container is in its caller\'s mount namespace');
  assert.is(res.croot, join(dir, 'rootfs'), 'its root is the bundle\'s rootfs (chroot)');
  const mounted = (text: string) => text.split('\n').filter(Boolean).map((l) => l.split(' ')[4]!);
  const added = mounted(res.during).filter((m) => !mounted(res.before).includes(m));
  assert.ok(added.includes(join(dir, 'rootfs')) && added.includes(join(dir, 'rootfs', 'proc')), `mounts made: ${added.join(' ')}`);
  for (const m of added) assert.ok(m === join(dir, 'rootfs') || m.startsWith(join(dir, 'rootfs') + '/'), `a mount outside the rootfs: ${m}`);
  assert.ok(added.includes(join(dir, 'rootfs', T.slice(1), 'nomnt-outside')), 'the link was resolved inside the rootfs');
  assert.not.ok(mounted(res.during).includes(outside), 'nothing mounted where the link pointed on the host');
  assert.is(res.start.code, 0, res.start.err);
  assert.is(res.running, 'running');
  assert.is.not(res.exec.code, 0, 'exec is refused (setns into the caller\'s namespace would not reach the container\'s root)');
  assert.match(res.exec.err, /no mount namespace/);
  assert.is(res.del.code, 0, res.del.err);
  assert.is(res.rootAfter, res.rootBefore, '"/" is the same mount with the same propagation');
  // Other tests on the machine unmount their own mounts meanwhile (their copies leave this
  // namespace too), so "the same" is: nothing added anywhere, and "/", the system mounts and
  // everything under this test's directory exactly as before.
  const same = (after: string, what: string) => {
    const lines = (t: string) => new Set(t.split('\n').filter(Boolean));
    const b = lines(res.before), a = lines(after);
    assert.equal([...a].filter((l) => !b.has(l)), [], `${what}: mounts added`);
    const kept = (t: string) => t.split('\n').filter((l) => {
      const m = l.split(' ')[4] ?? '';
      return ['/', '/proc', '/sys', '/dev', '/tmp', '/run'].includes(m) || m === T || m.startsWith(T + '/');
    }).join('\n');
    assert.is(kept(after), kept(res.before), `${what}: "/", the system mounts and the test's own tree`);
  };
  same(res.after, 'after delete');
  assert.is(res.killed.code, 0, res.killed.err);
  assert.is(res.killedDel?.code, 0, res.killedDel?.err);
  same(res.afterKill, 'a killed container, deleted');
  assert.is.not(res.bad.code, 0, 'a bind of a missing source fails create');
  assert.match(res.bad.err, /no-such-source/);
  same(res.afterBad, 'a failed create');
  assert.is(res.badLeft, '', 'nor a container');
  assert.is(ours(), outerBefore, 'the test\'s own namespace saw nothing');
});

rootTest('oci-runtime - rootfsPropagation shared and unbindable reach the container\'s root (they made pivot_root or the root\'s bind fail)', async () => {
  // the propagation of the container's "/" as its own mountinfo says; the host's root keeps its own
  const hostRoot = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === '/')!;
  for (const [prop, want] of [['shared', /shared:\d+/], ['rshared', /shared:\d+/], ['unbindable', /unbindable/], ['rslave', /^(?!.*shared:)/], ['private', /^(?!.*(shared:|unbindable))/]] as [string, RegExp][]) {
    const b = buildBundle(join(T, `bprop-${prop}`), ['sh', '-c', 'while read -r a b c d e f rest; do [ "$e" = / ] && echo "$f $rest"; done < /proc/self/mountinfo; true'], (c) => {
      c.linux.rootfsPropagation = prop;
    });
    const r = sl(['run', '-b', b, newId()]);
    assert.is(r.code, 0, `${prop}: ${r.err}`);
    const line = r.out.trim().split('\n')[0] ?? '';
    assert.match(line, want, `${prop}: ${r.out}`);
  }
  assert.is(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === '/'), hostRoot, 'the host\'s root mount unchanged');
});

rootTest('oci-runtime - linux.sysctl is written in the container\'s own namespaces, the host\'s values stay', async () => {
  const hostFwd = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
  const hostShm = readFileSync('/proc/sys/kernel/shmmni', 'utf8');
  const want = hostShm.trim() === '2048' ? '1024' : '2048';
  const b = buildBundle(join(T, 'b15'), ['sh', '-c', 'cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni'], (c) => {
    c.linux.sysctl = { 'net.ipv4.ip_forward': hostFwd.trim() === '1' ? '0' : '1', 'kernel.shmmni': want };
  });
  const r = sl(['run', '-b', b, newId()]);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, `${hostFwd.trim() === '1' ? '0' : '1'}\n${want}\n`);
  assert.is(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8'), hostFwd);
  assert.is(readFileSync('/proc/sys/kernel/shmmni', 'utf8'), hostShm);
  // a host-wide key never reaches the C side: create refuses it and leaves no state
  const bad = buildBundle(join(T, 'b16'), ['true'], (c) => { c.linux.sysctl = { 'kernel.panic': '1' }; });
  const id = newId();
  const r2 = sl(['create', '-b', bad, id]);
  assert.is(r2.code, 1);
  assert.match(r2.err, /kernel.panic is not a namespaced sysctl/);
  assert.is(existsSync(join(ROOT, id)), false);
});

rootTest('oci-runtime - cpu period and quota as given, mems, memory reservation, swappiness and the OOM killer reach the groups', async () => {
  const cg = `slrt-res-${process.pid}`;
  const det = detect();
  const dirs = () => hierarchies(det).map((h) => join(h, cg));
  try {
    const b = buildBundle(join(T, 'b20'), ['sleep', '1000'], (c) => {
      c.linux.cgroupsPath = `/${cg}`;
      c.linux.resources.cpu = { shares: 2048, period: 500000, quota: 50000, mems: '0' };
      c.linux.resources.memory = { limit: 48 << 20, reservation: 32 << 20, swappiness: 10, disableOOMKiller: true };
    });
    const id = newId();
    const r = sl(['create', '-b', b, id]);
    assert.is(r.code, 0, r.err);
    const read = (ctrl: string, file: string) => readFileSync(det.kind === 'v2' ? join(det.unified!, cg, file) : join(det.mounts[ctrl as 'cpu']!, cg, file), 'utf8').trim();
    if (det.kind === 'v2') {
      assert.is(read('cpu', 'cpu.max'), '50000 500000');
      assert.is(read('memory', 'memory.low'), String(32 << 20));
    } else {
      assert.is(read('cpu', 'cpu.cfs_period_us'), '500000', 'the period as given, not docker\'s 100 ms');
      assert.is(read('cpu', 'cpu.cfs_quota_us'), '50000');
      assert.is(read('cpuset', 'cpuset.mems'), '0');
      assert.is(read('memory', 'memory.soft_limit_in_bytes'), String(32 << 20));
      assert.is(read('memory', 'memory.swappiness'), '10');
      assert.match(read('memory', 'memory.oom_control'), /oom_kill_disable 1/);
    }
    assert.is(sl(['delete', '-f', id]).code, 0);
    for (const d of dirs()) assert.is(existsSync(d), false, d);
  } finally {
    for (const d of dirs()) { try { rmdirSync(d); } catch { /* gone */ } }
  }
});

rootTest('oci-runtime - linux.cgroupsPath places the groups (absolute: at that path); an existing group is never adopted', async () => {
  const cg = `slrt-test-${process.pid}`;
  const det = detect();
  const dirs = () => hierarchies(det).map((h) => join(h, cg));
  try {
    const b = buildBundle(join(T, 'b14'), ['sleep', '1000'], (c) => { c.linux.cgroupsPath = `/${cg}`; c.linux.resources.pids = { limit: 9 }; });
    const id = newId();
    const r = sl(['create', '-b', b, id]);
    assert.is(r.code, 0, r.err);
    const pidsDir = det.kind === 'v2' ? join(det.unified!, cg) : join(det.mounts.pids!, cg);
    assert.is(readFileSync(join(pidsDir, 'pids.max'), 'utf8').trim(), '9');
    assert.ok(readFileSync(join(pidsDir, 'cgroup.procs'), 'utf8').split('\n').includes(String(state(id).pid)));
    const id2 = newId();
    const r2 = sl(['create', '-b', b, id2]);
    assert.is(r2.code, 1, 'a second container may not take the same group');
    assert.match(r2.err, /already exists/);
    assert.is(state(id).status, 'created', 'and the first one is untouched');
    assert.is(sl(['delete', '-f', id]).code, 0);
    for (const d of dirs()) assert.is(existsSync(d), false, d);
  } finally {
    for (const d of dirs()) { try { rmdirSync(d); } catch { /* gone */ } }
  }
});

(isRoot && hasRunc ? test : test.skip)('oci-runtime - same bundle under runc: the same state fields and transitions', async () => {
  if (!hasRunc) console.log('  skipped: runc is not installed');
  const b = buildBundle(join(T, 'b12'), ['sleep', '1000'], (c) => { c.annotations = { a: 'b' }; });
  chmodSync(b, 0o755);
  const id = newId();
  const rid = `runc${process.pid}x${seq++}`;
  runcIds.push(rid);
  assert.is(sl(['create', '-b', b, id]).code, 0);
  const rc = runc(['create', '-b', b, rid]);
  assert.is(rc.code, 0, rc.err);
  const ours = state(id), theirs = JSON.parse(runc(['state', rid]).out);
  for (const k of Object.keys(theirs)) assert.ok(k in ours, `runc's state field ${k}`);
  assert.is(ours.status, theirs.status);
  assert.equal(ours.annotations, theirs.annotations);
  assert.is(sl(['start', id]).code, 0);
  assert.is(runc(['start', rid]).code, 0);
  assert.is(state(id).status, JSON.parse(runc(['state', rid]).out).status);
  assert.is(sl(['kill', id, 'KILL']).code, 0);
  assert.is(runc(['kill', rid, 'KILL']).code, 0);
  await until('both stopped', () => state(id).status === 'stopped' && JSON.parse(runc(['state', rid]).out).status === 'stopped');
  assert.is(state(id).pid, JSON.parse(runc(['state', rid]).out).pid);
  assert.is(sl(['delete', id]).code, 0);
  assert.is(runc(['delete', rid]).code, 0);
  assert.is(sl(['state', id]).code, runc(['state', rid]).code, 'both exit 1 for a deleted container');
});


rootTest('oci-runtime - a user namespace: the maps inside, files made inside belong to the mapped host ids, exec joins it, no host root', async () => {
  const HOST = 100000;
  const map = [{ containerID: 0, hostID: HOST, size: 65536 }];
  const b = buildBundle(join(T, 'bu'), ['sh', '-c', 'cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /made/root; touch /made/nobody && chown 1000:1001 /made/nobody; echo x > /dev/null && echo devnull-ok; cat /sys/kernel/mm/transparent_hugepage/enabled >/dev/null 2>&1; exit 0'], (c) => {
    c.linux.namespaces.push({ type: 'user' });
    c.linux.uidMappings = map;
    c.linux.gidMappings = map;
    c.root.readonly = false;
    // chown inside is the namespace's CAP_CHOWN: the ids it gives are mapped ones outside
    for (const k of ['bounding', 'effective', 'permitted']) c.process.capabilities[k].push('CAP_CHOWN');
    c.mounts.push({ destination: '/made', type: 'bind', source: join(T, 'made'), options: ['rbind', 'rw'] });
  });
  mkdirSync(join(T, 'made'), { recursive: true });
  // the container's root is host uid 100000: it may write here only as the mapped owner
  spawnSync('chown', [`${HOST}:${HOST}`, join(T, 'made')]);
  chmodSync(T, 0o755);
  const r = sl(['run', '-b', b, newId()]);
  assert.is(r.code, 0, r.err);
  const lines = r.out.split('\n').map((l) => l.trim().split(/\s+/).join(' '));
  assert.equal(lines.slice(0, 4), [`0 ${HOST} 65536`, `0 ${HOST} 65536`, '0', 'devnull-ok'], r.out);
  const st = (p: string) => { const s = spawnSync('stat', ['-c', '%u:%g', join(T, 'made', p)], { encoding: 'utf8' }); return s.stdout.trim(); };
  assert.is(st('root'), `${HOST}:${HOST}`, 'root inside is the mapped host id outside');
  assert.is(st('nobody'), `${HOST + 1000}:${HOST + 1001}`);

  // a long-running one: exec joins its user namespace (never the host's root), and its
  // pid 1 is unprivileged towards the host
  const b2 = buildBundle(join(T, 'bu2'), ['sleep', '1000'], (c) => {
    c.linux.namespaces.push({ type: 'user' });
    c.linux.uidMappings = map;
    c.linux.gidMappings = map;
  });
  const id = newId();
  const d = sl(['run', '-d', '-b', b2, id]);
  assert.is(d.code, 0, d.err);
  const pid = state(id).pid as number;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  assert.match(status, new RegExp(`\\nUid:\\s+${HOST}\\s+${HOST}\\s+${HOST}\\s+${HOST}\\n`), 'pid 1 runs as the mapped host uid');
  const e = sl(['exec', id, 'sh', '-c', 'cat /proc/self/uid_map; id -u']);
  assert.is(e.code, 0, e.err);
  assert.equal(e.out.split('\n').map((l) => l.trim().split(/\s+/).join(' ')).slice(0, 2), [`0 ${HOST} 65536`, '0']);
  assert.is(sl(['delete', '-f', id]).code, 0);

  // refused in one line: no root mapping, joining by path, a gid map missing
  for (const [edit, re] of [
    [(c: any) => { c.linux.uidMappings = [{ containerID: 1, hostID: HOST, size: 10 }]; c.linux.gidMappings = map; }, /container id 0 is not mapped/],
    [(c: any) => { c.linux.uidMappings = map; }, /gidMappings/],
    // one the kernel refuses (overlapping ranges): the monitor kills the waiting init, nothing ran unmapped
    [(c: any) => { c.linux.uidMappings = [...map, { containerID: 10, hostID: HOST + 10, size: 5 }]; c.linux.gidMappings = map; }, /uid_map: EINVAL/],
    [(c: any) => { c.linux.uidMappings = map; c.linux.gidMappings = map; c.linux.namespaces.at(-1).path = '/proc/1/ns/user'; }, /joining a user namespace/],
  ] as const) {
    const bb = buildBundle(join(T, 'bu3'), ['true'], (c) => { c.linux.namespaces.push({ type: 'user' }); edit(c); });
    const x = sl(['run', '-b', bb, newId()]);
    assert.is(x.code, 1, x.out);
    assert.match(x.err, re);
    assert.is(x.err.trim().split('\n').length, 1, x.err);
  }
  // mappings without a user namespace are dropped, as runc 1.1 does: the host's namespace, said on stderr
  const bn = buildBundle(join(T, 'bu4'), ['cat', '/proc/self/uid_map'], (c) => { c.linux.uidMappings = map; });
  const n = sl(['run', '-b', bn, newId()]);
  assert.is(n.code, 0, n.err);
  assert.match(n.err, /ignored: linux.namespaces has no user namespace/);
  assert.is(n.out.trim().split(/\s+/).join(' '), '0 0 4294967295');
});

test.run();
