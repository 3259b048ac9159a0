// Removals at scale through tsctl on a real cluster: 100 `rm -f` of running bridge
// containers leave no veth, namespace file, mount, cgroup, address or DNAT rule behind;
// starts go on while removals run; an agent SIGKILLed in the middle of a batch of removals
// finishes them after its restart, each reported once. Kernel objects are counted for this
// test's node only (its link prefix, its state dir, its cgroup, its nft table).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import { Cluster, until } from './helpers/cluster.js';
import { shortNodeName } from '../agent/network/manager.js';
import { decodeEvent } from '../shared/codec.js';
import { readRaw } from '../shared/nats/log.js';

const t = suite('remove-e2e');
let c: Cluster;
let nc: NatsConnection;

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  nc = await c.connect();
});
t.after(async () => { await nc?.close(); await c?.stop(); });

const nodeDir = () => join(c.dir, 'nodes', c.node);
/** What this node has in the kernel and on disk for its containers. */
function counts(): Record<string, number> {
  const prefix = `swl${shortNodeName(c.node)}`;
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n')
    .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
    .filter((n) => n.startsWith(`${prefix}v`) || n.startsWith(`${prefix}p`));
  const netnsDir = join(nodeDir(), 'network', 'netns');
  const netns = existsSync(netnsDir) ? readdirSync(netnsDir).length : 0;
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(nodeDir())).length;
  // v1: one group per hierarchy; v2: one group (both: swarmlite/<node>/<container>)
  let cgroups = 0;
  for (const base of ['/sys/fs/cgroup', ...readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h))]) {
    const g = join(base, 'swarmlite', c.node);
    try { cgroups += readdirSync(g, { withFileTypes: true }).filter((d) => d.isDirectory()).length; } catch { /* no such hierarchy or group */ }
  }
  const ipam = JSON.parse(readFileSync(join(nodeDir(), 'network', 'ipam.json'), 'utf8')) as { pools: Record<string, { allocations: Record<string, string> }> };
  const addresses = Object.values(ipam.pools).reduce((n, p) => n + Object.keys(p.allocations).length, 0);
  const nft = spawnSync('nft', ['list', 'table', 'ip', `swarmlite_${c.node}`], { encoding: 'utf8' }).stdout;
  const dnat = nft.split('\n').filter((l) => l.includes(' dnat to ')).length; // published ports' rules
  const bundles = readdirSync(join(nodeDir(), 'bundles')).length;
  return { veths: links.length, netns, mounts, cgroups, addresses, dnat, bundles };
}
const none = { veths: 0, netns: 0, mounts: 0, cgroups: 0, addresses: 0, dnat: 0, bundles: 0 };

/** Starts containers named prefix0.., 8 at a time; every `portEvery`-th publishes a port. */
async function startMany(prefix: string, n: number, portBase: number, portEvery = 10): Promise<string[]> {
  const names = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  for (let i = 0; i < n; i += 8) {
    await Promise.all(names.slice(i, i + 8).map((name, k) => {
      const j = i + k;
      const port = j % portEvery === 0 ? ['-p', `${portBase + j}:80`] : [];
      return c.ok(['run', '-d', '--name', name, ...port, 'busybox', 'sleep', '1000']);
    }));
  }
  return names;
}

async function removedEvents(id: string, type = 'ContainerRemoved'): Promise<number> {
  let n = 0;
  for await (const m of readRaw(nc, `ev.state.${c.node}.${id}`)) if (decodeEvent(m.data).type === type) n++;
  return n;
}

const portBase = 21000 + Math.floor(Math.random() * 20000);

t('remove-e2e - 100 rm -f of running bridge containers in one command: nothing of them is left in the kernel or on disk', async () => {
  const names = await startMany('r', 100, portBase);
  const before = counts();
  // the counters see what there is (else "zero left" below would prove nothing)
  // mounts: the rootfs overlay and the namespace file of each
  assert.equal(before, { veths: 100, netns: 100, mounts: 200, cgroups: before.cgroups, addresses: 100, dnat: before.dnat, bundles: 100 });
  assert.ok(before.cgroups >= 100, `cgroups ${before.cgroups}`);
  assert.is(before.dnat, 10, 'one rule per published port');
  const t0 = performance.now();
  const r = await c.tsctl(['rm', '-f', ...names], { timeout: 120_000 });
  const ms = performance.now() - t0;
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n'), names, 'each ref printed, in the order given');
  console.log(`    100 rm -f: ${ms.toFixed(0)} ms`);
  assert.equal(JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])), []);
  // the command returned once every node reported the removal: nothing may be left by then
  assert.equal(counts(), none);
});

t('remove-e2e - rm of a name that does not exist fails alone; the others are removed', async () => {
  await c.ok(['run', '-d', '--name', 'x1', 'busybox', 'sleep', '1000']);
  const r = await c.tsctl(['rm', '-f', 'x1', 'no-such-container']);
  assert.is(r.code, 125, r.stderr);
  assert.match(r.stderr, /no such container "no-such-container"/);
  assert.is(r.stdout.trim(), 'x1');
  assert.equal(JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])), []);
  await c.ok(['run', '-d', '--name', 'x2', 'busybox', 'sleep', '1000']);
  const running = await c.tsctl(['rm', 'x2']);
  assert.is(running.code, 125);
  assert.match(running.stderr, /cannot remove running container x2/);
  await c.ok(['rm', '-f', 'x2']);
  assert.equal(counts(), none);
});

t('remove-e2e - starts interleaved with removals all work; the removed leave nothing, the started run', async () => {
  const old = await startMany('o', 24, portBase + 200, 6);
  const rm = c.tsctl(['rm', '-f', ...old], { timeout: 120_000 });
  const starts = Array.from({ length: 6 }, (_, i) => c.tsctl(['run', '-d', '--name', `n${i}`, ...(i % 2 ? ['-p', `${portBase + 300 + i}:80`] : []), 'busybox', 'sleep', '1000']));
  const attached = Array.from({ length: 3 }, () => c.tsctl(['run', '--rm', 'busybox', 'sh', '-c', 'ip -o -4 addr show eth0 | wc -l']));
  const rs = await Promise.all([rm, ...starts, ...attached]);
  for (const r of rs) assert.is(r.code, 0, r.stderr);
  for (const r of rs.slice(1 + starts.length)) assert.is(r.stdout.trim(), '1', 'a bridge container started during removals has its address');
  const ps = JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])) as { name: string }[];
  assert.equal(ps.map((p) => p.name).sort(), ['n0', 'n1', 'n2', 'n3', 'n4', 'n5']);
  await until(async () => counts().veths === 6, 10000, '--rm containers removed');
  assert.equal(counts(), { veths: 6, netns: 6, mounts: 12, cgroups: counts().cgroups, addresses: 6, dnat: 3, bundles: 6 });
  await c.ok(['rm', '-f', 'n0', 'n1', 'n2', 'n3', 'n4', 'n5']);
  assert.equal(counts(), none);
});

/** The agent restarted armed with `failpoint`; `act` runs; once the agent died there, a clean one starts. */
async function crashAt<T>(failpoint: string, act: () => Promise<T>): Promise<T> {
  await c.killAgent();
  const armed = c.startAgent({ SWARMLITE_FAILPOINTS: failpoint });
  await c.waitJoined();
  const result = act();
  await until(() => armed.exitCode !== null || armed.signalCode !== null, 60000, `the agent to die at ${failpoint}`);
  assert.is(armed.signalCode, 'SIGKILL', `killed at ${failpoint}`);
  c.startAgent();
  return result;
}

// remove:after-early-detach: an rm -f detaches the network while the container dies, before
// its exit is recorded; the agent dies there with links gone and the exit not yet reported
// detach:before-unmount: a round is done (links gone, addresses released) and the namespace
// files, unmounted outside the round, are still there
for (const [k, fp] of [[0, 'detach:after-forget'], [1, 'detach:after-links'], [2, 'remove:after-early-detach'], [3, 'detach:before-unmount']] as const) {
  t(`remove-e2e - agent SIGKILLed in a batch of removals (${fp}): the restart finishes every removal, each reported once, nothing left`, async () => {
    const names = await startMany(`k${k}x`, 20, portBase + 400 + k * 50, 5);
    const ids = await Promise.all(names.map(async (n) => JSON.parse(await c.ok(['inspect', n]))[0].Id as string));
    const r = await crashAt(fp, () => c.tsctl(['rm', '-f', ...names], { timeout: 120_000 }));
    // the command may have seen the crash (a request unanswered) or not: the removals are done either way
    assert.ok(r.code === 0 || r.code === 1, r.stderr);
    await c.waitJoined();
    await until(async () => !(JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])) as { name: string }[]).some((p) => names.includes(p.name)), 60000, 'every container removed after the restart');
    for (const id of ids) assert.is(await removedEvents(id), 1, `ContainerRemoved of ${id.slice(0, 12)} once`);
    if (fp === 'remove:after-early-detach') {
      for (const id of ids) assert.is(await removedEvents(id, 'ContainerExited'), 1, `ContainerExited of ${id.slice(0, 12)} once`);
    }
    await until(() => counts().veths === 0, 10000, 'links gone');
    assert.equal(counts(), none);
  });
}

t.run();
