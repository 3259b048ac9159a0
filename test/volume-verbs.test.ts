// tsctl volume create|ls|inspect|rm|prune end to end with real containers: data kept across
// containers, a volume in use (running or stopped) not removed, prune leaving used ones, every
// volume an event in the log. Attacks: names with '..', '/', NUL, huge; requests written by
// hand for a node that is not there. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, until } from './helpers/cluster.js';
import { dial } from '../tsctl/client.js';
import { readCreds } from '../shared/nats/trust.js';
import { call } from '../shared/nats/rpc.js';
import { controllerApi } from '../shared/api/controller.js';
import { SourceChain, encodeEvent } from '../shared/codec.js';
import { subjects } from '../shared/subjects.js';
import { volumeEntity } from '../shared/volumes.js';
import { freeSubnet } from './helpers/subnets.js';

const t = suite('volume-verbs');
let c: Cluster;
let vols: string;

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  vols = join(c.dir, 'nodes', c.node, 'volumes');
});
t.after(async () => { await c?.stop(); });

const oneLine = (r: { code: number; stderr: string }, why: RegExp) => {
  assert.is.not(r.code, 0, 'refused');
  assert.match(r.stderr, why, r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
};
const ls = async () => JSON.parse(await c.ok(['volume', 'ls', '--format', 'json'])) as { name: string; node: string; state: string; labels: Record<string, string>; mountpoint: string }[];

t('create, ls, inspect - a volume with labels on the node, its directory made by the agent', async () => {
  assert.is((await c.ok(['volume', 'create', '--label', 'team=a', '--label', 'tier=db', 'data'])).trim(), 'data');
  const v = (await ls()).find((x) => x.name === 'data')!;
  assert.ok(v, 'listed');
  assert.is(v.node, c.node);
  assert.is(v.state, 'ready');
  assert.equal(v.labels, { team: 'a', tier: 'db' });
  assert.is(v.mountpoint, join(vols, 'data', '_data'));
  assert.ok(existsSync(v.mountpoint));
  const [i] = JSON.parse(await c.ok(['volume', 'inspect', 'data'])) as { name: string; containers: unknown[]; createdBy: string }[];
  assert.is(i!.name, 'data');
  assert.is(i!.createdBy, 'admin');
  assert.equal(i!.containers, []);
  // creating it again is not an error (docker's), and changes nothing
  await c.ok(['volume', 'create', 'data']);
  assert.is((await ls()).filter((x) => x.name === 'data').length, 1);
  const table = await c.ok(['volume', 'ls']);
  assert.match(table, /^DRIVER\s+VOLUME NAME\s+NODE/);
  assert.match(table, new RegExp(`local\\s+data\\s+${c.node}\\s+ready`));
});

t('data - written by one container, read by the next', async () => {
  await c.ok(['run', '--rm', '--network', 'none', '-v', 'data:/d', 'busybox', 'sh', '-c', 'echo persisted > /d/f']);
  const r = await c.tsctl(['run', '--rm', '--network', 'none', '-v', 'data:/x', 'busybox', 'cat', '/x/f']);
  assert.is(r.stdout, 'persisted\n', r.stderr);
});

t('rm - refused while a container uses it, running or stopped; then removed with its data', async () => {
  await c.ok(['run', '-d', '--name', 'holder', '--network', 'none', '-v', 'data:/d', 'busybox', 'sleep', '1000']);
  oneLine(await c.tsctl(['volume', 'rm', 'data']), /volume "data" on node \S+ is in use by container holder: remove it first/);
  const [i] = JSON.parse(await c.ok(['volume', 'inspect', 'data'])) as { containers: { name: string }[] }[];
  assert.equal(i!.containers.map((x) => x.name), ['holder']);
  await c.ok(['stop', '-t', '0', 'holder']);
  await until(async () => /"Status":\s*"exited"/.test(await c.ok(['inspect', 'holder'])) || undefined, 20000, 'holder exited');
  oneLine(await c.tsctl(['volume', 'rm', 'data']), /in use by container holder/);
  assert.ok(existsSync(join(vols, 'data', '_data', 'f')), 'the data is still there');
  await c.ok(['rm', 'holder']);
  await until(async () => (await c.tsctl(['inspect', 'holder'])).code !== 0 || undefined, 20000, 'holder removed');
  assert.is((await c.ok(['volume', 'rm', 'data'])).trim(), 'data');
  assert.not.ok(existsSync(join(vols, 'data')), 'the directory went');
  assert.not.ok((await ls()).some((x) => x.name === 'data'));
  oneLine(await c.tsctl(['volume', 'rm', 'data']), /no such volume "data"/);
});

t('run - a -v NAME whose volume is new makes it, listed and in the log', async () => {
  await c.ok(['run', '--rm', '--network', 'none', '-v', 'implicit:/i', 'busybox', 'true']);
  const v = await until(async () => (await ls()).find((x) => x.name === 'implicit' && x.state === 'ready'), 10000, 'implicit volume listed');
  assert.is(v.node, c.node);
  const ev = await c.ok(['events', '--filter', 'type=VolumeCreated', '--format', 'json']);
  assert.match(ev, /"name":"implicit"/);
  assert.match(ev, /"entity":"vol-implicit"/);
  const all = await c.ok(['events', '--filter', 'entity=vol-implicit', '--format', 'json']);
  assert.match(all, /VolumeCreateRequested/);
  assert.match(all, /"user":"admin"/);
  assert.match(await c.ok(['history', 'vol-implicit']), /VolumeCreated/);
});

t('prune - named volumes only with -a (docker 23+); removes the unused ones, keeps those a container uses', async () => {
  await c.ok(['volume', 'create', 'spare']);
  await c.ok(['run', '--name', 'user1', '--network', 'none', '-v', 'kept:/k', 'busybox', 'true']); // exits, not removed
  assert.match(await c.ok(['volume', 'prune']), /^Removed 0 volumes$/m);
  assert.equal((await ls()).map((x) => x.name).sort(), ['implicit', 'kept', 'spare']);
  const out = await c.ok(['volume', 'prune', '-a']);
  assert.match(out, /^spare \(/m);
  assert.match(out, /^implicit \(/m);
  assert.match(out, /Removed 2 volumes/);
  const names = (await ls()).map((x) => x.name);
  assert.equal(names, ['kept']);
  assert.equal(readdirSync(vols).sort(), ['kept']);
  await c.ok(['rm', 'user1']);
  await until(async () => (await c.tsctl(['inspect', 'user1'])).code !== 0 || undefined, 20000, 'user1 removed');
  assert.match(await c.ok(['volume', 'prune', '--all']), /Removed 1 volume$/m);
  assert.equal(readdirSync(vols), []);
});

t('attack - hostile names and requests for other nodes refused in one line; nothing made outside the volumes dir', async () => {
  const before = readdirSync(join(c.dir, 'nodes', c.node)).sort();
  for (const bad of ['..', '../etc', 'a/b', '/abs', '.hidden', 'x'.repeat(129), 'x'.repeat(100000).slice(0, 60000)]) {
    oneLine(await c.tsctl(['volume', 'create', bad]), /invalid volume name|invalid request: name: longer than 256/);
  }
  oneLine(await c.tsctl(['volume', 'create', '--node', 'ghost', 'v']), /no such node "ghost"/);
  oneLine(await c.tsctl(['volume', 'create', '--label', 'bad key=v', 'v']), /invalid --label/);
  oneLine(await c.tsctl(['volume', 'rm', '../../etc']), /invalid volume name/);
  const nc = await dial(c.url, readCreds(c.adminCreds));
  try {
    for (const [req, why] of [
      [{ name: 'a\0b' }, /NUL byte|invalid volume name/],
      [{ name: 'ok', node: '../../etc' }, /no such node/],
      [{ name: 'ok', node: 'ghost' }, /no such node "ghost"/],
      [{ name: 'ok', node: 'constructor' }, /no such node "constructor"/],
      [{ name: 'x'.repeat(300) }, /too long|at most|invalid/],
      [{ name: 42 }, /invalid|string/],
    ] as const) {
      await call(nc, 'api.admin', controllerApi.volumeCreate, req as never).then(
        () => assert.unreachable(`accepted ${JSON.stringify(req).slice(0, 80)}`), (e: Error) => {
          assert.match(e.message, why);
          assert.ok(e.message.length < 400 && !e.message.includes('\n'), e.message);
        });
    }
    await call(nc, 'api.admin', controllerApi.volumeRm, { name: 'ok', node: 'ghost' }).then(
      () => assert.unreachable('rm on ghost'), (e: Error) => assert.match(e.message, /no such volume "ok" on node ghost/));
    // a run whose -v names a hostile volume never reaches the node
    await call(nc, 'api.admin', controllerApi.run, { image: 'busybox', args: ['true'], network: 'none', mounts: [{ type: 'volume', source: '..', target: '/x' }] } as never).then(
      () => assert.unreachable('run with ..'), (e: Error) => assert.match(e.message, /invalid volume name/));
  } finally { await nc.close(); }
  assert.equal(readdirSync(join(c.dir, 'nodes', c.node)).sort(), before);
  assert.equal(readdirSync(vols), []);
  assert.not.ok(existsSync(join(c.dir, 'nodes', 'etc')));
});

t('viewer - may list and inspect volumes, not create or remove them', async () => {
  const viewer = (await c.ok(['user', 'add', 'vv', '--role', 'viewer'])).trim();
  await c.ok(['volume', 'create', 'seen']);
  const env = { SWARMLITE_CREDS: viewer };
  const l = await c.tsctl(['volume', 'ls', '-q'], { env });
  assert.is(l.stdout.trim(), 'seen', l.stderr);
  oneLine(await c.tsctl(['volume', 'create', 'nope'], { env }), /permission|denied|not allowed/i);
  oneLine(await c.tsctl(['volume', 'rm', 'seen'], { env }), /permission|denied|not allowed/i);
  await c.ok(['volume', 'rm', 'seen']);
});

t('nodes - a volume belongs to one node; a request for another node, by the API or forged into the log, changes nothing there', async () => {
  await c.addNode(`${c.node}b`, freeSubnet());
  const other = `${c.node}b`;
  oneLine(await c.tsctl(['volume', 'create', 'two']), /a volume lives on one node and this cluster has 2: say which with --node/);
  await c.ok(['volume', 'create', '--node', other, 'two']);
  const v = (await ls()).find((x) => x.name === 'two')!;
  assert.is(v.node, other);
  assert.ok(existsSync(join(c.dir, 'nodes', other, 'volumes', 'two', '_data')));
  assert.not.ok(existsSync(join(vols, 'two')), 'not on the first node');
  const nc = await dial(c.url, readCreds(c.adminCreds));
  try {
    await call(nc, 'api.admin', controllerApi.volumeRm, { name: 'two', node: c.node }).then(
      () => assert.unreachable('removed from the wrong node'), (e: Error) => assert.match(e.message, /no such volume "two" on node t/));
  } finally { await nc.close(); }
  // a superuser of the server writes a removal for the other node into the log: not the controller's signature
  const tamper = await c.connect('tamper');
  try {
    const chain = new SourceChain('controller', 1_000_000, 'f'.repeat(64));
    const { event } = chain.next('VolumeRemoveRequested', volumeEntity('two'), { node: other, name: 'two', user: 'admin' });
    const ack = await tamper.jetstream().publish(subjects.desired(other, volumeEntity('two')), encodeEvent(event));
    await until(async () => (await c.ok(['events', '--filter', 'type=EventRejected', '--format', 'json'])).includes(`"rejectedSeq":${ack.seq}`) || undefined, 20000, 'the forged removal refused');
  } finally { await tamper.close(); }
  assert.ok(existsSync(join(c.dir, 'nodes', other, 'volumes', 'two', '_data')), 'the forged removal removed nothing');
  assert.is((await ls()).find((x) => x.name === 'two')?.state, 'ready');
  // a container naming the volume goes where the volume is, whichever node would take it otherwise
  for (let i = 0; i < 3; i++) {
    const id = (await c.ok(['run', '-d', '--network', 'none', '-v', 'two:/data', 'busybox', 'sh', '-c', `echo ${i} > /data/n${i}`])).trim();
    assert.is(JSON.parse(await c.ok(['inspect', id]))[0].Node, other, `run ${i} went to the volume's node`);
    await c.ok(['wait', id]);
    await c.ok(['rm', id]);
  }
  assert.ok(existsSync(join(c.dir, 'nodes', other, 'volumes', 'two', '_data', 'n2')));
  await c.ok(['volume', 'rm', 'two']);
  assert.not.ok(existsSync(join(c.dir, 'nodes', other, 'volumes', 'two')));
});

t.run();
