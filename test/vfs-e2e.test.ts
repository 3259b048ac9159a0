// The vfs storage driver end to end (agent --storage-driver vfs): real busybox containers
// start on a plain copy of the image's layers (no overlay mount anywhere), the driver is in
// tsctl info and in the node's NodeJoined, diff and commit work by comparing the copy with the
// layers, and a removed container leaves no copy and no mount. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, sleep, until } from './helpers/cluster.js';

const t = suite('vfs-e2e');
let c: Cluster;
const mountsUnder = (dir: string) => readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.split(' ')[1]?.startsWith(dir));

t.before(async () => {
  c = await Cluster.start({ agentArgs: ['--storage-driver', 'vfs'] });
  await c.importBusybox();
});
t.after(async () => { await c?.stop(); });

t('vfs - busybox runs on a plain copy of its layers; the driver is in info and in NodeJoined', async () => {
  const r = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'echo hello from vfs; grep " / " /proc/mounts | cut -d" " -f3']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^hello from vfs\n/);
  assert.not.match(r.stdout, /overlay/, 'the root is not an overlay');
  assert.match(await c.ok(['info']), /Storage Driver: vfs, root /);
  const nodes = JSON.parse(await c.ok(['nodes', '--format', 'json'])) as { id: string; features: string[] }[];
  assert.ok(nodes.find((n) => n.id === c.node)!.features.includes('storage-driver=vfs'));
  const ev = await c.ok(['events', '--filter', 'type=NodeJoined', '--format', 'json']);
  assert.match(ev, /"storage-driver=vfs"/);
});

t('vfs - diff and commit: the changes found against the layers; the committed image runs with them', async () => {
  await c.ok(['run', '-d', '--name', 'src', '--network', 'none', 'busybox', 'sh', '-c',
    'echo hi > /etc/greeting; rm /etc/group; rm -rf /usr/sbin; mkdir /usr/sbin; echo m > /usr/sbin/mine; ln -s /etc/shadow /escape; touch /done; sleep 100']);
  assert.ok(mountsUnder(c.dir).every((l) => l.split(' ')[2] !== 'overlay'), mountsUnder(c.dir).join('\n'));
  const out = await until(async () => {
    const r = await c.tsctl(['diff', 'src']);
    return r.stdout.split('\n').includes('A /done') ? r.stdout.split('\n') : undefined;
  }, 20000, 'diff shows /done');
  for (const l of ['C /etc', 'A /etc/greeting', 'D /etc/group', 'A /escape', 'C /usr/sbin', 'A /usr/sbin/mine']) assert.ok(out.includes(l), `no "${l}" in:\n${out.join('\n')}`);
  assert.not.ok(out.some((l) => /\/bin\/|\/etc\/passwd$/.test(l)), `untouched files listed:\n${out.join('\n')}`);
  const r = await c.tsctl(['commit', '-m', 'vfs', 'src', 'snapv:1']);
  assert.is(r.code, 0, r.stderr);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', 'snapv:1', 'sh', '-c', 'cat /etc/greeting; test -e /etc/group && echo group || echo no-group; ls /usr/sbin; readlink /escape']);
  assert.is(run.stdout, 'hi\nno-group\nmine\n/etc/shadow\n', run.stderr);
});

t('vfs - a removed container leaves no copy and no mount', async () => {
  await c.ok(['rm', '-f', 'src']);
  await until(async () => (await c.tsctl(['inspect', 'src'])).code !== 0 || undefined, 20000, 'src removed');
  const snaps = join(c.dir, 'nodes', c.node, 'snapshots');
  await until(() => readdirSync(snaps).length === 0 || undefined, 10000, 'snapshots empty');
  for (let i = 0; i < 50 && mountsUnder(join(c.dir, 'nodes', c.node, 'bundles')).length; i++) await sleep(100);
  assert.equal(mountsUnder(join(c.dir, 'nodes', c.node, 'bundles')), []);
});

t.run();
