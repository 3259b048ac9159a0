// agent/cgroups without root: the pure per-controller writes, detection from fake
// mount tables, and both managers against temp directories laid out like cgroupfs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CgroupBusyError, CgroupError, CgroupUnsupportedError, cgroupManager, detect, detectFromMounts, listContainerGroups,
  parseMountinfo, pruneContainerGroups, nodeCapacity, nodeUsage,
} from '../agent/cgroups/index.js';
import * as v1cpu from '../agent/cgroups/v1/cpu.js';
import { workingSet } from '../agent/cgroups/fs.js';
import * as v1cpuset from '../agent/cgroups/v1/cpuset.js';
import * as v1mem from '../agent/cgroups/v1/memory.js';
import * as v1pids from '../agent/cgroups/v1/pids.js';
import * as v1blkio from '../agent/cgroups/v1/blkio.js';
import * as v2cpu from '../agent/cgroups/v2/cpu.js';
import * as v2mem from '../agent/cgroups/v2/memory.js';
import * as v2pids from '../agent/cgroups/v2/pids.js';
import * as v2io from '../agent/cgroups/v2/io.js';
import * as v2freezer from '../agent/cgroups/v2/freezer.js';
import { enableValue } from '../agent/cgroups/v2/subtree.js';
import { checkSegment } from '../agent/cgroups/paths.js';

const MiB = 1024 * 1024;
const none = { files: new Set<string>() };
const files = (...f: string[]) => ({ files: new Set(f) });

// ---- pure writes, v1 ----

test('v1 cpu - cpus becomes period then quota; 0 removes the quota', () => {
  assert.equal(v1cpu.plan({ cpus: 0.5 }).writes, [
    { file: 'cpu.cfs_period_us', value: '100000' }, { file: 'cpu.cfs_quota_us', value: '50000' }]);
  assert.equal(v1cpu.plan({ cpus: 1.5 }).writes[1], { file: 'cpu.cfs_quota_us', value: '150000' });
  assert.equal(v1cpu.plan({ cpus: 0 }).writes[1], { file: 'cpu.cfs_quota_us', value: '-1' });
  assert.equal(v1cpu.plan({ cpuShares: 512 }).writes, [{ file: 'cpu.shares', value: '512' }]);
  assert.equal(v1cpu.plan({ memory: 1 }).writes, []);
});

test('v1 memory - limit and memsw, docker default swap = 2x memory', () => {
  assert.equal(v1mem.plan({ memory: 32 * MiB, memorySwap: 32 * MiB }, files('memory.memsw.limit_in_bytes')), {
    writes: [{ file: 'memory.limit_in_bytes', value: String(32 * MiB) }, { file: 'memory.memsw.limit_in_bytes', value: String(32 * MiB) }],
    warnings: [],
  });
  assert.equal(v1mem.plan({ memory: 32 * MiB }, files('memory.memsw.limit_in_bytes')).writes[1], { file: 'memory.memsw.limit_in_bytes', value: String(64 * MiB) });
  assert.equal(v1mem.plan({}, none), { writes: [], warnings: [] });
});

test('v1 memory - write order follows the direction of the change', () => {
  const ctx = (cur: number) => ({ files: new Set(['memory.memsw.limit_in_bytes']), currentMemoryLimit: cur });
  // Raising 32m → 64m: memsw first, else limit (64m) > memsw (32m) is refused by the kernel.
  const up = v1mem.plan({ memory: 64 * MiB, memorySwap: 64 * MiB }, ctx(32 * MiB)).writes.map((w) => w.file);
  assert.equal(up, ['memory.memsw.limit_in_bytes', 'memory.limit_in_bytes']);
  const down = v1mem.plan({ memory: 16 * MiB, memorySwap: 16 * MiB }, ctx(32 * MiB)).writes.map((w) => w.file);
  assert.equal(down, ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes']);
  const unl = v1mem.plan({ memory: -1 }, ctx(32 * MiB)).writes;
  assert.equal(unl, [{ file: 'memory.memsw.limit_in_bytes', value: '-1' }, { file: 'memory.limit_in_bytes', value: '-1' }]);
});

test('v1 memory - no memsw file: swap skipped with a warning', () => {
  const p = v1mem.plan({ memory: 32 * MiB, memorySwap: 64 * MiB }, none);
  assert.equal(p.writes, [{ file: 'memory.limit_in_bytes', value: String(32 * MiB) }]);
  assert.is(p.warnings.length, 1);
  assert.match(p.warnings[0]!, /--memory-swap not enforced: memory.memsw.limit_in_bytes is missing/);
  // Only an explicit --memory-swap deserves a warning, not docker's implied default.
  assert.equal(v1mem.plan({ memory: 32 * MiB }, none).warnings, []);
});

test('v1 memory - oom_kill counter parsed from memory.oom_control', () => {
  assert.is(v1mem.oomKills('oom_kill_disable 0\nunder_oom 0\noom_kill 3\n'), 3);
  assert.is(v1mem.oomKills('oom_kill_disable 0\nunder_oom 0\n'), 0);
});

test('v1 pids / blkio / cpuset - writes', () => {
  assert.equal(v1pids.plan({ pidsLimit: 20 }).writes, [{ file: 'pids.max', value: '20' }]);
  assert.equal(v1pids.plan({ pidsLimit: -1 }).writes, [{ file: 'pids.max', value: 'max' }]);
  assert.equal(v1blkio.plan({ blkioWeight: 300 }, files('blkio.bfq.weight')).writes, [{ file: 'blkio.bfq.weight', value: '300' }]);
  assert.equal(v1blkio.plan({ blkioWeight: 300 }, files('blkio.weight', 'blkio.bfq.weight')).writes, [{ file: 'blkio.weight', value: '300' }]);
  assert.match(v1blkio.plan({ blkioWeight: 300 }, none).warnings[0]!, /--blkio-weight not enforced/);
  assert.equal(v1cpuset.plan({ cpusetCpus: '0' }).writes, [{ file: 'cpuset.cpus', value: '0' }]);
  assert.equal(v1cpuset.inheritPlan({ cpus: '\n', mems: '\n' }, { cpus: '0-1\n', mems: '0\n' }),
    [{ file: 'cpuset.cpus', value: '0-1' }, { file: 'cpuset.mems', value: '0' }]);
  assert.equal(v1cpuset.inheritPlan({ cpus: '1\n', mems: '0\n' }, { cpus: '0-1\n', mems: '0\n' }), []);
});

// ---- pure writes, v2 ----

test('v2 cpu - cpu.max and runc shares→weight mapping', () => {
  assert.equal(v2cpu.plan({ cpus: 0.5 }).writes, [{ file: 'cpu.max', value: '50000 100000' }]);
  assert.equal(v2cpu.plan({ cpus: 0 }).writes, [{ file: 'cpu.max', value: 'max 100000' }]);
  assert.is(v2cpu.sharesToWeight(2), 1);
  assert.is(v2cpu.sharesToWeight(1024), 100);
  assert.is(v2cpu.sharesToWeight(262144), 10000);
  const w512 = v2cpu.sharesToWeight(512);
  assert.ok(w512 > 1 && w512 < 100, `512 → ${w512}`);
  assert.equal(v2cpu.plan({ cpuShares: 1024 }).writes, [{ file: 'cpu.weight', value: '100' }]);
});

test('v2 memory - memory.max and swap-only memory.swap.max', () => {
  const f = files('memory.swap.max');
  assert.equal(v2mem.plan({ memory: 32 * MiB, memorySwap: 32 * MiB }, f).writes,
    [{ file: 'memory.max', value: String(32 * MiB) }, { file: 'memory.swap.max', value: '0' }]);
  assert.equal(v2mem.plan({ memory: 32 * MiB, memorySwap: 96 * MiB }, f).writes[1], { file: 'memory.swap.max', value: String(64 * MiB) });
  assert.equal(v2mem.plan({ memory: 32 * MiB, memorySwap: -1 }, f).writes[1], { file: 'memory.swap.max', value: 'max' });
  assert.equal(v2mem.plan({ memory: -1 }, f).writes, [{ file: 'memory.max', value: 'max' }, { file: 'memory.swap.max', value: 'max' }]);
  assert.equal(v2mem.plan({ memorySwap: 64 * MiB }, { files: f.files, currentMemoryLimit: 32 * MiB }).writes,
    [{ file: 'memory.swap.max', value: String(32 * MiB) }]);
  assert.match(v2mem.plan({ memory: 32 * MiB, memorySwap: 64 * MiB }, none).warnings[0]!, /memory.swap.max is missing/);
  assert.is(v2mem.oomKills('low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\noom_group_kill 0\n'), 1);
});

test('v2 pids / io / freezer / subtree - writes', () => {
  assert.equal(v2pids.plan({ pidsLimit: 20 }).writes, [{ file: 'pids.max', value: '20' }]);
  assert.is(v2io.blkioToIoWeight(10), 1);
  assert.is(v2io.blkioToIoWeight(1000), 10000);
  assert.is(v2io.blkioToIoWeight(500), 4950);
  assert.equal(v2io.plan({ blkioWeight: 500 }, files('io.bfq.weight', 'io.weight')).writes, [{ file: 'io.bfq.weight', value: '500' }]);
  assert.equal(v2io.plan({ blkioWeight: 500 }, files('io.weight')).writes, [{ file: 'io.weight', value: '4950' }]);
  assert.ok(v2freezer.reached('populated 1\nfrozen 1\n', true));
  assert.not.ok(v2freezer.reached('populated 1\nfrozen 0\n', true));
  assert.is(enableValue('cpuset cpu io memory hugetlb pids rdma', 'cpu memory'), '+cpuset +pids +io');
  assert.is(enableValue('cpu memory', 'cpu memory'), undefined);
  assert.is(enableValue('hugetlb', ''), undefined);
});

test('paths - ids that could escape the tree are refused', () => {
  assert.is(checkSegment('node', 'n1'), 'n1');
  for (const bad of ['..', '.', 'a/b', '', 'x'.repeat(200), 'a b']) {
    assert.throws(() => checkSegment('container', bad), (e: unknown) => e instanceof CgroupError && e.code === 'EINVAL');
  }
});

// ---- detection ----

const HYBRID = (root: string) => `31 23 0:28 / ${root} rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / ${root}/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / ${root}/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / ${root}/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / ${root}/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / ${root}/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / ${root}/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / ${root}/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / ${root}/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / ${root}/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / ${root}/unified rw,relatime - cgroup2 cgroup2 rw
`;
const V2 = (root: string) => `22 1 0:20 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
30 23 0:26 / ${root} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;
const V1_COMOUNT = `25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid shared:13 - cgroup cgroup rw,net_cls,net_prio
`;

test('detect - hybrid layout of this machine', () => {
  const d = detectFromMounts(parseMountinfo(HYBRID('/sys/fs/cgroup')), '/sys/fs/cgroup');
  assert.is(d.kind, 'hybrid');
  assert.is(d.unified, '/sys/fs/cgroup/unified');
  assert.is(d.mounts['memory'], '/sys/fs/cgroup/memory');
  assert.is(d.mounts['cpuacct'], '/sys/fs/cgroup/cpuacct');
  assert.is(d.mounts['name=systemd'], undefined);
  assert.is(d.mounts['systemd'], undefined);
  assert.is(Object.keys(d.mounts).length, 8);
});

test('detect - pure v2 with controllers from cgroup.controllers', () => {
  const d = detectFromMounts(parseMountinfo(V2('/sys/fs/cgroup')), '/sys/fs/cgroup', 'cpuset cpu io memory pids\n');
  assert.is(d.kind, 'v2');
  assert.equal(d.mounts, { cpuset: '/sys/fs/cgroup', cpu: '/sys/fs/cgroup', io: '/sys/fs/cgroup', memory: '/sys/fs/cgroup', pids: '/sys/fs/cgroup' });
});

test('detect - v1 only, co-mounted controllers share a directory', () => {
  const d = detectFromMounts(parseMountinfo(V1_COMOUNT), '/sys/fs/cgroup');
  assert.is(d.kind, 'v1');
  assert.is(d.mounts['cpu'], '/sys/fs/cgroup/cpu,cpuacct');
  assert.is(d.mounts['cpuacct'], '/sys/fs/cgroup/cpu,cpuacct');
  assert.is(d.mounts['net_prio'], '/sys/fs/cgroup/net_cls,net_prio');
  const m = cgroupManager(d, 'n', 'c');
  assert.equal(m.procsFiles(), [
    '/sys/fs/cgroup/cpu,cpuacct/swarmlite/n/c/cgroup.procs', '/sys/fs/cgroup/memory/swarmlite/n/c/cgroup.procs']);
});

test('detect - mounts outside root are ignored, escapes decoded, nothing → CgroupError', () => {
  const text = HYBRID('/elsewhere') + '50 31 0:40 / /tmp/my\\040dir/memory rw - cgroup cgroup rw,memory\n';
  const d = detectFromMounts(parseMountinfo(text), '/tmp/my dir');
  assert.equal(d.mounts, { memory: '/tmp/my dir/memory' });
  assert.throws(() => detectFromMounts(parseMountinfo(V2('/sys/fs/cgroup')), '/opt/none'),
    (e: unknown) => e instanceof CgroupError && e.code === 'ENOENT' && /no cgroup filesystem/.test(e.message));
});

test('detect - reads the real machine', () => {
  const d = detect();
  assert.ok(['v1', 'hybrid', 'v2'].includes(d.kind));
  assert.ok(Object.keys(d.mounts).length > 0);
});

// ---- managers on temp directories ----

function tempTree(): string {
  return mkdtempSync(join(tmpdir(), 'swarmlite-cg-'));
}
const put = (path: string, text: string) => writeFileSync(path, text);
const get = (path: string) => readFileSync(path, 'utf8');

/** A temp dir laid out like this host: v1 hierarchies + an empty cgroup2. */
function fakeV1(root: string) {
  for (const c of ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'unified']) {
    mkdirSync(join(root, c));
    put(join(root, c, 'cgroup.procs'), '');
  }
  put(join(root, 'cpuset', 'cpuset.cpus'), '0-1\n');
  put(join(root, 'cpuset', 'cpuset.mems'), '0\n');
  put(join(root, 'mountinfo'), HYBRID(root));
  return detect(root, join(root, 'mountinfo'));
}

function fakeV2(root: string) {
  const u = join(root, 'cg');
  mkdirSync(u);
  put(join(u, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma misc\n');
  put(join(u, 'cgroup.subtree_control'), '');
  put(join(root, 'mountinfo'), V2(u));
  return detect(u, join(root, 'mountinfo'));
}

test('v1 manager - create makes every hierarchy dir and seeds cpuset at each level', () => {
  const root = tempTree();
  try {
    const det = fakeV1(root);
    assert.is(det.kind, 'hybrid');
    const m = cgroupManager(det, 'node1', 'ctr1');
    assert.is(m.version, 'v1');
    m.create();
    m.create(); // idempotent
    assert.is(m.procsFiles().length, 8);
    for (const f of m.procsFiles()) assert.ok(f.startsWith(root) && f.endsWith('/swarmlite/node1/ctr1/cgroup.procs'), f);
    assert.not.ok(existsSync(join(root, 'unified', 'swarmlite')), 'hybrid: v1 only');
    for (const lvl of ['swarmlite', 'swarmlite/node1', 'swarmlite/node1/ctr1']) {
      assert.is(get(join(root, 'cpuset', lvl, 'cpuset.cpus')), '0-1');
      assert.is(get(join(root, 'cpuset', lvl, 'cpuset.mems')), '0');
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('v1 manager - apply writes the right values into the right hierarchy', () => {
  const root = tempTree();
  try {
    const det = fakeV1(root);
    const m = cgroupManager(det, 'node1', 'ctr1');
    m.create();
    const g = (c: string, f: string) => get(join(root, c, 'swarmlite/node1/ctr1', f));
    // What the kernel would have put there on mkdir.
    put(join(root, 'memory/swarmlite/node1/ctr1/memory.limit_in_bytes'), '9223372036854771712\n');
    put(join(root, 'memory/swarmlite/node1/ctr1/memory.memsw.limit_in_bytes'), '9223372036854771712\n');
    const warnings = m.apply({ cpus: 0.5, cpuShares: 512, cpusetCpus: '0', memory: 32 * MiB, memorySwap: 32 * MiB, pidsLimit: 20, blkioWeight: 300 });
    assert.is(g('cpu', 'cpu.cfs_period_us'), '100000');
    assert.is(g('cpu', 'cpu.cfs_quota_us'), '50000');
    assert.is(g('cpu', 'cpu.shares'), '512');
    assert.is(g('cpuset', 'cpuset.cpus'), '0');
    assert.is(g('memory', 'memory.limit_in_bytes'), String(32 * MiB));
    assert.is(g('memory', 'memory.memsw.limit_in_bytes'), String(32 * MiB));
    assert.is(g('pids', 'pids.max'), '20');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /--blkio-weight not enforced/);
    // Live update: only what is given changes.
    m.apply({ pidsLimit: -1, cpus: 1 });
    assert.is(g('pids', 'pids.max'), 'max');
    assert.is(g('cpu', 'cpu.cfs_quota_us'), '100000');
    assert.is(g('memory', 'memory.limit_in_bytes'), String(32 * MiB));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('v1 manager - addProcess, pids, stats, oomKilled, freeze, remove refuses a busy group', async () => {
  const root = tempTree();
  try {
    const det = fakeV1(root);
    const m = cgroupManager(det, 'node1', 'ctr1');
    m.create();
    m.addProcess(4242);
    for (const f of m.procsFiles()) assert.is(get(f), '4242');
    assert.equal(m.pids(), [4242]);
    const d = (c: string) => join(root, c, 'swarmlite/node1/ctr1');
    put(join(d('cpuacct'), 'cpuacct.usage'), '123456789\n');
    put(join(d('memory'), 'memory.usage_in_bytes'), '1048576\n');
    put(join(d('memory'), 'memory.limit_in_bytes'), '33554432\n');
    put(join(d('memory'), 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n');
    put(join(d('pids'), 'pids.current'), '3\n');
    assert.equal(m.stats(), { cpuUsageNs: 123456789, memoryUsage: MiB, memoryLimit: 32 * MiB, pids: 3, oomKills: 0 });
    assert.is(m.oomKilled(), false);
    put(join(d('memory'), 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
    assert.is(m.oomKilled(), true);
    assert.is(m.stats().oomKills, 2);
    put(join(d('memory'), 'memory.limit_in_bytes'), '9223372036854771712\n');
    assert.is(m.stats().memoryLimit, null);
    await m.freeze(true);
    assert.is(get(join(d('freezer'), 'freezer.state')), 'FROZEN');
    await m.freeze(false);
    assert.is(get(join(d('freezer'), 'freezer.state')), 'THAWED');
    try {
      await m.remove();
      assert.unreachable('remove should refuse');
    } catch (e) {
      assert.instance(e, CgroupBusyError);
      assert.equal((e as CgroupBusyError).pids, [4242]);
      assert.match((e as Error).message, /still has 1 process \(4242\); stop them first or remove with \{ kill: true \}/);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('v1 manager - a limit whose controller is not mounted fails clearly', () => {
  const root = tempTree();
  try {
    mkdirSync(join(root, 'memory'));
    put(join(root, 'mountinfo'), `35 31 0:32 / ${root}/memory rw,relatime - cgroup cgroup rw,memory\n`);
    const m = cgroupManager(detect(root, join(root, 'mountinfo')), 'n', 'c');
    m.create();
    assert.equal(m.apply({ memory: 32 * MiB }), []);
    assert.throws(() => m.apply({ pidsLimit: 5 }),
      (e: unknown) => e instanceof CgroupUnsupportedError && /controller pids is not available .* --pids-limit cannot be enforced/.test((e as Error).message));
    // Refused as a whole: the memory limit in the same call was not written either.
    assert.throws(() => m.apply({ memory: 64 * MiB, pidsLimit: 5 }), (e: unknown) => e instanceof CgroupUnsupportedError);
    assert.is(get(join(root, 'memory/swarmlite/n/c/memory.limit_in_bytes')), String(32 * MiB));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('v1 manager - write errors carry path and errno', () => {
  const root = tempTree();
  try {
    const det = fakeV1(root);
    const m = cgroupManager(det, 'node1', 'ctr1');
    // No create(): the directories do not exist.
    assert.throws(() => m.apply({ pidsLimit: 5 }), (e: unknown) =>
      e instanceof CgroupError && e.code === 'ENOENT' && e.path === join(root, 'cpu/swarmlite/node1/ctr1'));
    m.create();
    mkdirSync(join(root, 'pids/swarmlite/node1/ctr1/pids.max'));
    assert.throws(() => m.apply({ pidsLimit: 5 }), (e: unknown) =>
      e instanceof CgroupError && e.code === 'EISDIR' && e.path === join(root, 'pids/swarmlite/node1/ctr1/pids.max')
      && (e as Error).message.startsWith('cgroup: write "5" to '));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('v2 manager - create enables controllers down the tree; apply writes one dir', () => {
  const root = tempTree();
  try {
    const det = fakeV2(root);
    assert.is(det.kind, 'v2');
    const u = det.unified!;
    const m = cgroupManager(det, 'node1', 'ctr1');
    assert.is(m.version, 'v2');
    m.create();
    assert.equal(m.procsFiles(), [join(u, 'swarmlite/node1/ctr1/cgroup.procs')]);
    for (const lvl of ['', 'swarmlite', 'swarmlite/node1']) assert.is(get(join(u, lvl, 'cgroup.subtree_control')), '+cpu +cpuset +memory +pids +io');
    assert.not.ok(existsSync(join(u, 'swarmlite/node1/ctr1/cgroup.subtree_control')), 'leaf: no internal-process conflict');
    const d = join(u, 'swarmlite/node1/ctr1');
    put(join(d, 'memory.max'), 'max\n');
    put(join(d, 'memory.swap.max'), 'max\n');
    put(join(d, 'io.weight'), 'default 100\n');
    const w = m.apply({ cpus: 0.5, cpuShares: 1024, cpusetCpus: '0-1', memory: 32 * MiB, memorySwap: 48 * MiB, pidsLimit: 20, blkioWeight: 1000 });
    assert.equal(w, []);
    assert.is(get(join(d, 'cpu.max')), '50000 100000');
    assert.is(get(join(d, 'cpu.weight')), '100');
    assert.is(get(join(d, 'cpuset.cpus')), '0-1');
    assert.is(get(join(d, 'memory.max')), String(32 * MiB));
    assert.is(get(join(d, 'memory.swap.max')), String(16 * MiB));
    assert.is(get(join(d, 'pids.max')), '20');
    assert.is(get(join(d, 'io.weight')), '10000');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('v2 manager - stats, oomKilled, freeze, busy remove', async () => {
  const root = tempTree();
  try {
    const det = fakeV2(root);
    const m = cgroupManager(det, 'node1', 'ctr1');
    m.create();
    const d = join(det.unified!, 'swarmlite/node1/ctr1');
    put(join(d, 'cpu.stat'), 'usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n');
    put(join(d, 'memory.current'), '4096\n');
    put(join(d, 'memory.max'), 'max\n');
    put(join(d, 'memory.events'), 'low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n');
    put(join(d, 'pids.current'), '2\n');
    assert.equal(m.stats(), { cpuUsageNs: 2_500_000, memoryUsage: 4096, memoryLimit: null, pids: 2, oomKills: 1 });
    assert.is(m.oomKilled(), true);
    put(join(d, 'cgroup.events'), 'populated 1\nfrozen 1\n');
    await m.freeze(true);
    assert.is(get(join(d, 'cgroup.freeze')), '1');
    m.addProcess(77);
    assert.equal(m.pids(), [77]);
    try {
      await m.remove();
      assert.unreachable('remove should refuse');
    } catch (e) {
      assert.instance(e, CgroupBusyError);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('v2 manager - a controller the parent does not delegate fails clearly', () => {
  const root = tempTree();
  try {
    const det = fakeV2(root);
    put(join(det.unified!, 'cgroup.controllers'), 'memory\n');
    const m = cgroupManager(det, 'n', 'c');
    m.create();
    assert.throws(() => m.apply({ pidsLimit: 5 }), (e: unknown) => e instanceof CgroupUnsupportedError && e.controller === 'pids');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('housekeeping - list and prune a node\'s groups, keep the kept, report the busy', async () => {
  const root = tempTree();
  try {
    const det = fakeV2(root);
    for (const c of ['a', 'b', 'c', 'busy']) cgroupManager(det, 'node1', c).create();
    cgroupManager(det, 'node2', 'other').create();
    cgroupManager(det, 'node1', 'busy').addProcess(99);
    assert.equal(listContainerGroups(det, 'node1'), ['a', 'b', 'busy', 'c']);
    const r = await pruneContainerGroups(det, 'node1', ['b']);
    assert.equal(r.removed, ['a', 'c']);
    assert.equal(r.failed.map((f) => f.container), ['busy']);
    assert.instance(r.failed[0]!.error, CgroupBusyError);
    assert.equal(listContainerGroups(det, 'node1'), ['b', 'busy']);
    assert.equal(listContainerGroups(det, 'node2'), ['other'], 'another node untouched');
    assert.equal(listContainerGroups(det, 'node3'), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('capacity - host totals and allocation', () => {
  const cap = nodeCapacity();
  assert.ok(cap.cpus >= 1 && Number.isInteger(cap.cpus));
  assert.ok(cap.memory > 64 * MiB);
  const u = nodeUsage([{ cpus: 0.5, memory: 64 * MiB }, { cpusetCpus: '1' }], { cpus: 2, memory: 1024 * MiB });
  assert.equal(u, { cpus: 2, memory: 1024 * MiB, allocated: { cpus: 1.5, memory: 64 * MiB }, free: { cpus: 0.5, memory: 960 * MiB } });
  assert.equal(nodeUsage([{ cpus: 2 }, { cpus: 1 }], { cpus: 2, memory: 0 }).free, { cpus: 0, memory: 0 });
});

test('stats - memory usage leaves out inactive page cache, as docker stats does', () => {
  assert.is(workingSet(10_000, 'cache 9000\ntotal_inactive_file 4000\n', 'total_inactive_file'), 6000);
  assert.is(workingSet(10_000, 'inactive_file 12000\n', 'inactive_file'), 10_000); // never below zero
  assert.is(workingSet(10_000, undefined, 'inactive_file'), 10_000);
});

test.run();
