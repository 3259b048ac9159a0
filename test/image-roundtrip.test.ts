// Images leave the cluster and come back as docker has them. Across hosts: an image pulled
// from a real registry runs on one node, is committed and pushed; the cluster's other node
// runs it from the cluster's store, and a second cluster (another "host") pulls it back under
// the same digest and runs it. With docker: `tsctl image save` gives an archive a real docker
// daemon loads as the same image id and layers, and `docker save` of it loads back into the
// cluster and runs. Attack: an archive docker would refuse (a tampered layer) is refused here in
// one line and stores nothing. Needs root, docker-registry, skopeo and docker.io (ops/setup --tests).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Cluster, ROOT } from './helpers/cluster.js';
import { tarball } from './helpers/tarball.js';
import { Registry, OciLayout, skopeo, haveRegistryTools } from './helpers/registry.js';
import { Dockerd, haveDockerd } from './helpers/dockerd.js';
import { freeSubnet } from './helpers/subnets.js';

const t = suite('image-roundtrip');
let c: Cluster;
let other: Cluster | undefined;
let reg: Registry;
let dockerd: Dockerd | undefined;
let ref: string;
const second = `rt${randomBytes(3).toString('hex')}`;

t.before(async () => {
  const missing = haveRegistryTools() ?? haveDockerd();
  if (missing) throw new Error(`image-roundtrip needs ${missing}`);
  c = await Cluster.start();
  await c.addNode(second, freeSubnet());
  reg = await Registry.start(join(c.dir, 'registry'));
  const bb = join(c.dir, 'busybox.tar');
  const b = spawnSync(join(ROOT, 'ops/build-busybox-rootfs'), [bb], { encoding: 'utf8' });
  assert.is(b.status, 0, b.stderr);
  const layout = new OciLayout(join(c.dir, 'oci'));
  layout.image('1', [readFileSync(bb), tarball([{ name: 'etc/', type: '5' }, { name: 'etc/greeting', body: 'from the registry\n' }])]);
  skopeo([`oci:${layout.dir}:1`, `docker://${reg.host}/rt/app:1`]);
  ref = `${reg.host}/rt/app:1`;
  await c.ok(['image', 'pull', ref]);
});

t.after(async () => {
  await dockerd?.stop();
  await other?.stop();
  await reg?.stop();
  await c?.stop();
});

const inspect = async (cl: Cluster, name: string) => (JSON.parse(await cl.ok(['image', 'inspect', name])) as { digest: string; layers: string[] }[])[0]!;

t('across hosts - pull, run on one node, commit, push; the other node runs it from the store; another cluster pulls the same digest and runs it', async () => {
  await c.ok(['run', '--name', 'maker', '--network', 'none', '--constraint', `node.id==${c.node}`, ref, 'sh', '-c', 'echo made on the first node > /made']);
  const digest = (await c.ok(['commit', 'maker', 'rt/made:1'])).trim();
  const made = await inspect(c, 'rt/made:1');
  assert.is(made.digest, digest);
  assert.is(made.layers.length, 3, 'two layers of the pulled image and the committed one');
  const push = await c.ok(['image', 'push', 'rt/made:1', `${reg.host}/rt/made:1`]);
  assert.match(push, /\(\d layer\(s\) pushed/, push);
  const there = await c.ok(['run', '--rm', '--network', 'none', '--constraint', `node.id==${second}`, 'rt/made:1', 'cat', '/made', '/etc/greeting']);
  assert.is(there, 'made on the first node\nfrom the registry\n');
  other = await Cluster.start();
  const pulled = (await other.ok(['image', 'pull', `${reg.host}/rt/made:1`])).trim();
  assert.is(pulled, digest, 'the second cluster pulled the committed image under the same digest');
  assert.equal((await inspect(other, `${reg.host}/rt/made:1`)).layers, made.layers);
  const run = await other.ok(['run', '--rm', '--network', 'none', `${reg.host}/rt/made:1`, 'cat', '/made']);
  assert.is(run, 'made on the first node\n');
  await other.stop();
  other = undefined;
});

t('docker - a saved image loads into a real docker as the same id and layers; docker save of it loads back and runs', async () => {
  const dir = join(c.dir, 'docker');
  mkdirSync(dir);
  dockerd = await Dockerd.start(dir);
  const made = await inspect(c, 'rt/made:1');
  const saved = join(c.dir, 'made.tar');
  await c.ok(['image', 'save', '-o', saved, 'rt/made:1']);
  assert.match(dockerd.ok(['load', '-i', saved]), 'Loaded image: rt/made:1');
  const d = JSON.parse(dockerd.ok(['image', 'inspect', 'rt/made:1']))[0] as { Id: string; RootFS: { Layers: string[] }; Config: { Cmd?: string[] } };
  assert.is(d.Id, made.digest, 'docker\'s image id is the config digest the cluster has');
  assert.equal(d.RootFS.Layers, made.layers);
  dockerd.ok(['tag', 'rt/made:1', 'rt/back:2']);
  const back = join(c.dir, 'back.tar');
  dockerd.ok(['save', '-o', back, 'rt/back:2']);
  await c.ok(['rm', 'maker']);
  await c.ok(['image', 'rm', 'rt/made:1']);
  const load = await c.ok(['image', 'load', '-i', back]);
  assert.match(load, `Loaded image: rt/back:2 (${made.digest})`);
  assert.is(await c.ok(['run', '--rm', '--network', 'none', 'rt/back:2', 'cat', '/made']), 'made on the first node\n');
});

t('attack - docker\'s archive with a tampered layer: one line, nothing stored', async () => {
  const back = join(c.dir, 'back.tar');
  const x = join(c.dir, 'tampered');
  mkdirSync(x);
  assert.is(spawnSync('tar', ['-xf', back, '-C', x]).status, 0);
  const manifest = JSON.parse(readFileSync(join(x, 'manifest.json'), 'utf8')) as { Layers: string[]; RepoTags: string[] }[];
  const top = join(x, manifest[0]!.Layers.at(-1)!);
  const bytes = readFileSync(top);
  // same size, one byte off inside the file's data: the layer no longer hashes to its diff_id
  const at = bytes.indexOf(Buffer.from('made on the first node'));
  assert.ok(at > 0, 'the committed file is in the top layer');
  bytes[at] = 'M'.charCodeAt(0);
  writeFileSync(top, bytes);
  manifest[0]!.RepoTags = ['rt/tampered:1'];
  writeFileSync(join(x, 'manifest.json'), JSON.stringify(manifest));
  const tampered = join(c.dir, 'tampered.tar');
  // the cluster forgets the committed layer (a stored layer is not read again from an archive)
  await c.ok(['image', 'rm', 'rt/back:2']);
  assert.is(spawnSync('tar', ['-cf', tampered, '-C', x, '.']).status, 0);
  const res = await c.tsctl(['image', 'load', '-i', tampered]);
  assert.is.not(res.code, 0, res.stdout);
  assert.is(res.stderr.trim().split('\n').length, 1, res.stderr);
  assert.match(res.stderr, /digest|diff_id|sha256/i, res.stderr);
  const ls = await c.ok(['image', 'ls']);
  assert.not.match(ls, 'rt/tampered');
});

t.run();
