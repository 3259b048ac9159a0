// Two agents on this machine as two nodes of one cluster: placement spreads containers,
// each node runs and reports its own, and `container:` goes beside its peer.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { Cluster } from './helpers/cluster.js';
import { freeSubnet } from './helpers/subnets.js';

const t = suite('nodes');
let c: Cluster;
const second = `t${randomBytes(3).toString('hex')}b`;

t.before(async () => {
  c = await Cluster.start();
  await c.addNode(second, freeSubnet());
  await c.importBusybox();
});
t.after(async () => { await c?.stop(); });

t('nodes - both nodes joined and each runs its share', async () => {
  const nodes = JSON.parse(await c.ok(['nodes', '--format', 'json'])).map((n: { id: string }) => n.id).sort();
  assert.equal(nodes, [c.node, second].sort());
  for (let i = 0; i < 4; i++) await c.ok(['run', '-d', '--network', 'none', '--name', `spread${i}`, 'busybox', 'sleep', '100']);
  const ps = JSON.parse(await c.ok(['ps', '--format', 'json'])) as { name: string; node: string; state: string }[];
  const per = (n: string) => ps.filter((p) => p.node === n && p.state === 'running').length;
  assert.is(per(c.node), 2);
  assert.is(per(second), 2);
  const events = (await c.ok(['events', '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l));
  for (const p of ps) {
    const id = JSON.parse(await c.ok(['inspect', p.name]))[0].Id;
    const started = events.find((e) => e.type === 'ContainerStarted' && e.entity === id);
    assert.is(started?.src, `node:${p.node}`, 'started by a node other than the one it was placed on');
  }
});

t("nodes - container: networking goes to the peer's node", async () => {
  const peer = JSON.parse(await c.ok(['inspect', 'spread1']))[0];
  const r = await c.tsctl(['run', '--rm', '--network', 'container:spread1', 'busybox', 'hostname']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim(), peer.Config.Hostname);
  const ev = (await c.ok(['events', '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l))
    .filter((e) => e.type === 'ContainerRequested' && e.data.spec.network === `container:${peer.Id}`);
  assert.is(ev.at(-1)?.data.node, peer.Node);
  for (let i = 0; i < 4; i++) await c.ok(['rm', '-f', `spread${i}`]);
});

t.run();
