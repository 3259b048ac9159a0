// Runs only in the cgroup v2 lane (ops/vm-lane boots a Debian 12 VM for it; test/run.mjs
// runs test/vm/ only when asked). Proves the host really is pure cgroup v2, that what the
// agent builds there is what v2 wants (delegation, domain leaves, each limit in its v2
// file), and that the kernel enforces io weight, which needs a device with BFQ.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, until, sleep } from '../helpers/cluster.js';
import { cgroupManager, detect, parseMountinfo, removeNodeGroup, type CgroupManager } from '../../agent/cgroups/index.js';
import { sharesToWeight } from '../../agent/cgroups/v2/cpu.js';

const MiB = 1024 * 1024;
const CG = '/sys/fs/cgroup';
const t = suite('cgroup v2 host');
let c: Cluster | undefined;
const read = (...p: string[]) => readFileSync(join(...p), 'utf8').trim();
const words = (s: string) => s.split(/\s+/).filter(Boolean).sort();

t.after(async () => { await c?.stop(); });

t('v2 host - cgroup2 alone at /sys/fs/cgroup, no v1 hierarchy, every controller in it', () => {
  if (process.env.SWARMLITE_VM !== '1') assert.unreachable('runs only inside the VM of ops/vm-lane (it asserts the host is pure cgroup v2)');
  const mounts = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  assert.equal(mounts.filter((m) => m.fsType === 'cgroup').map((m) => m.mountPoint), [], 'a v1 hierarchy is mounted');
  assert.equal(mounts.filter((m) => m.fsType === 'cgroup2').map((m) => m.mountPoint), [CG]);
  const d = detect();
  assert.is(d.kind, 'v2');
  assert.is(d.unified, CG);
  for (const k of ['cpu', 'cpuset', 'memory', 'pids', 'io']) assert.is(d.mounts[k], CG, `controller ${k}`);
  // one hierarchy: "0::PATH" is the only line
  assert.match(read('/proc/self/cgroup'), /^0::\/[^\n]*$/);
  // and no controller is bound to a v1 hierarchy (column 2 of /proc/cgroups is 0 for all)
  const bound = read('/proc/cgroups').split('\n').slice(1).map((l) => l.split('\t')).filter((f) => f[1] !== '0');
  assert.equal(bound, []);
  console.log(`  kernel ${read('/proc/sys/kernel/osrelease')}, controllers: ${read(CG, 'cgroup.controllers')}`);
});

t('v2 host - a container\'s group: a domain leaf, each limit in its v2 file, controllers delegated on the way down', async () => {
  c = await Cluster.start();
  await c.importBusybox();
  const id = (await c.ok(['run', '-d', '--network', 'none', '--memory', '48m', '--memory-swap', '64m', '--cpus', '0.5', '--cpu-shares', '512',
    '--pids-limit', '40', '--cpuset-cpus', '1', 'busybox', 'sleep', '1000'])).trim();
  const ins = await until(async () => { const i = JSON.parse(await c!.ok(['inspect', id]))[0]; return i.State.Running && i; }, 10000, 'running');
  const dir = join(CG, 'swarmlite', c.node, id);
  try {
    assert.is(read(dir, 'cgroup.type'), 'domain');
    assert.equal(read(dir, 'cgroup.procs').split('\n').map(Number), [ins.State.Pid]);
    assert.is(read(dir, 'memory.max'), String(48 * MiB));
    assert.is(read(dir, 'memory.swap.max'), String(16 * MiB), 'v2 counts swap alone: --memory-swap 64m less --memory 48m');
    assert.is(read(dir, 'cpu.max'), '50000 100000');
    assert.is(read(dir, 'cpu.weight'), String(sharesToWeight(512)));
    assert.is(read(dir, 'pids.max'), '40');
    assert.is(read(dir, 'cpuset.cpus'), '1');
    assert.is(read(dir, 'cpuset.cpus.effective'), '1');
    assert.match(read(`/proc/${ins.State.Pid}/status`), /^Cpus_allowed_list:\s*1$/m);
    // every ancestor delegates what the leaf uses, and (no internal processes) holds no task
    for (const a of [join(CG, 'swarmlite'), join(CG, 'swarmlite', c.node)]) {
      const sub = words(read(a, 'cgroup.subtree_control'));
      for (const k of ['cpu', 'cpuset', 'io', 'memory', 'pids']) assert.ok(sub.includes(k), `${a}: ${k} not in subtree_control (${sub})`);
      assert.is(read(a, 'cgroup.procs'), '', `${a} has processes`);
    }
    // a live update rewrites the v2 files
    await c.ok(['update', '--memory', '64m', '--cpus', '0.25', '--pids-limit', '30', id]);
    assert.is(read(dir, 'memory.max'), String(64 * MiB));
    assert.is(read(dir, 'cpu.max'), '25000 100000');
    assert.is(read(dir, 'pids.max'), '30');
    // stats come from the v2 files
    const s = (JSON.parse((await c.ok(['stats', '--no-stream', '--format', 'json', id])).trim()) as { memoryLimit: number; pids: number }[])[0]!;
    assert.is(s.memoryLimit, 64 * MiB);
    assert.is(s.pids, Number(read(dir, 'pids.current')));
  } finally {
    await c.ok(['rm', '-f', id]);
  }
  assert.not.ok(existsSync(dir), `${dir} left after rm -f`);
  const node = c.node;
  await c.stop();
  c = undefined;
  assert.not.ok(existsSync(join(CG, 'swarmlite', node)), 'the node group is left after the cluster stopped');
});

/** A busybox dd reading the root disk directly (no page cache) from `skip` MiB on, in group `m`. */
function reader(m: CgroupManager, skipMiB: number) {
  const p = spawn('/usr/bin/busybox', ['sh', '-c', `read x; exec /usr/bin/busybox dd if=/dev/vda of=/dev/null iflag=direct bs=256k skip=${skipMiB * 4} count=400000`], { stdio: ['pipe', 'ignore', 'ignore'] });
  m.addProcess(p.pid!);
  p.stdin!.end('\n');
  return p;
}

t('v2 host - --blkio-weight on a BFQ disk: io.bfq.weight set per group; the service ratio under two readers printed', async () => {
  const dev = '/sys/block/vda';
  const sched = read(dev, 'queue/scheduler');
  if (!/\bbfq\b/.test(sched)) {
    const m = spawn('modprobe', ['bfq']);
    await new Promise((r) => m.on('exit', r));
  }
  if (!/\bbfq\b/.test(read(dev, 'queue/scheduler'))) assert.unreachable(`BFQ is not available for ${dev} (schedulers: ${read(dev, 'queue/scheduler')}); io weight needs BFQ or iocost`);
  writeFileSync(join(dev, 'queue/scheduler'), 'bfq');
  // Proportional service only, no interactive boost (it would favour the newer reader).
  writeFileSync(join(dev, 'queue/iosched/low_latency'), '0');
  writeFileSync(join(dev, 'queue/iosched/strict_guarantees'), '1');
  const node = `vmio${process.pid}`;
  const det = detect();
  const lo = cgroupManager(det, node, 'w100'), hi = cgroupManager(det, node, 'w1000');
  const procs: ReturnType<typeof spawn>[] = [];
  try {
    lo.create(); hi.create();
    assert.equal(lo.apply({ blkioWeight: 100 }), []);
    assert.equal(hi.apply({ blkioWeight: 1000 }), []);
    const dirOf = (g: string) => join(CG, 'swarmlite', node, g);
    assert.is(read(dirOf('w100'), 'io.bfq.weight'), 'default 100');
    assert.is(read(dirOf('w1000'), 'io.bfq.weight'), 'default 1000');
    const majmin = read(dev, 'dev');
    const rbytes = (g: string) => Number(new RegExp(`^${majmin} .*\\brbytes=(\\d+)`, 'm').exec(read(dirOf(g), 'io.stat'))?.[1] ?? 0);
    procs.push(reader(lo, 0), reader(hi, 2048));
    await sleep(500);
    const a0 = rbytes('w100'), b0 = rbytes('w1000');
    await sleep(6000);
    const a = rbytes('w100') - a0, b = rbytes('w1000') - b0;
    console.log(`  io: weight 100 read ${(a / MiB).toFixed(0)} MiB, weight 1000 read ${(b / MiB).toFixed(0)} MiB in 6 s (ratio ${(b / Math.max(a, 1)).toFixed(1)})`);
    assert.ok(a > 0 && b > 0, 'both readers should progress');
    // The service ratio is printed, not asserted: on this VM's virtio disk (served from the
    // host's cache) CI measured 3.0, 2.0 and 0.7 with the same weights, so the disk is not
    // contended enough for BFQ to show them. The weights themselves are asserted above.
    if (b < 1.5 * a) console.log(`  io: no clear difference this run (${(b / Math.max(a, 1)).toFixed(1)}x): the disk was not the bottleneck`);
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await lo.remove({ kill: true });
    await hi.remove({ kill: true });
    removeNodeGroup(det, node);
  }
});

t.run();
