// tsctl export and commit end to end: the merged root of a running container as a tar GNU
// tar reads (a symlink to a host file stays a link; /proc is not in it), and its writable
// layer committed as a new image that runs with the changes (a new file, a deleted one, a
// directory replaced whole) on every layer of the old one. Attacks: a viewer may not read a
// container's files; a removed container, a bad name, an unknown transfer are one line.
// Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Cluster, ROOT, sleep } from './helpers/cluster.js';
import { dial } from '../tsctl/client.js';
import { readCreds } from '../shared/nats/trust.js';
import { call } from '../shared/nats/rpc.js';
import { agentApi } from '../shared/api/agent.js';
import { subjects } from '../shared/subjects.js';

const t = suite('commit-export');
let c: Cluster;

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  await c.ok(['run', '-d', '--name', 'src', '--network', 'none', 'busybox', 'sh', '-c',
    'echo hi > /etc/greeting; rm /etc/group; rm -rf /usr/sbin; mkdir /usr/sbin; echo m > /usr/sbin/mine; ln -s /etc/shadow /escape; touch /done; sleep 100']);
  for (let i = 0; i < 100 && !(await c.tsctl(['diff', 'src'])).stdout.includes('A /done'); i++) await sleep(100);
});
t.after(async () => { await c?.stop(); });

const oneLine = (r: { code: number; stderr: string }, why: RegExp) => {
  assert.is.not(r.code, 0);
  assert.match(r.stderr, why, r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
};

t('export - the container\'s filesystem as it sees it, a tar GNU tar reads', async () => {
  const file = join(c.dir, 'src.tar');
  await c.ok(['export', '-o', file, 'src']);
  const list = spawnSync('tar', ['-tvf', file], { encoding: 'utf8' });
  assert.is(list.status, 0, list.stderr);
  const names = spawnSync('tar', ['-tf', file], { encoding: 'utf8' }).stdout.split('\n');
  for (const n of ['etc/greeting', 'bin/busybox', 'usr/sbin/mine', 'escape']) assert.ok(names.includes(n), `${n} not exported`);
  assert.not.ok(names.includes('etc/group'), 'a deleted file was exported');
  assert.not.ok(names.some((n) => n.startsWith('proc/') && n !== 'proc/'), 'the container\'s /proc was exported');
  assert.match(list.stdout, /escape -> \/etc\/shadow/);
  assert.is(spawnSync('tar', ['-xOf', file, 'etc/greeting'], { encoding: 'utf8' }).stdout, 'hi\n');
  // stdout: the same archive bytes
  const piped = spawnSync('bash', ['-c', `${join(ROOT, 'bin/tsctl.cjs')} export src | tar -tf - | wc -l`], { encoding: 'utf8', env: { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds } });
  assert.is(Number(piped.stdout.trim()), names.filter(Boolean).length, piped.stderr);
});

t('commit - the writable layer on top of the image: the new image runs with the changes', async () => {
  const r = await c.tsctl(['commit', '-m', 'greeting', 'src', 'snap:1']);
  assert.is(r.code, 0, r.stderr);
  const [img] = JSON.parse(await c.ok(['image', 'inspect', 'snap:1'])) as { digest: string; layers: string[]; source: string }[];
  assert.is(img!.digest, r.stdout.trim());
  assert.is(img!.layers.length, 2, 'the image\'s layer and the container\'s');
  assert.is(img!.source, 'commit:src');
  const run = await c.tsctl(['run', '--rm', '--network', 'none', 'snap:1', 'sh', '-c', 'cat /etc/greeting; test -e /etc/group && echo group || echo no-group; ls /usr/sbin; readlink /escape']);
  assert.is(run.stdout, 'hi\nno-group\nmine\n/etc/shadow\n', run.stderr);
  // the new image saves and reloads like any other (its layers are ordinary blobs)
  const file = join(c.dir, 'snap.tar');
  await c.ok(['image', 'save', '-o', file, 'snap:1']);
  assert.ok(existsSync(file));
});

t('attack - a viewer may not read a container\'s files; bad names, removed containers and unknown transfers are one line', async () => {
  const creds = (await c.ok(['user', 'add', 'peek', '--role', 'viewer'])).trim();
  oneLine(await c.tsctl(['export', '-o', join(c.dir, 'v.tar'), 'src'], { env: { SWARMLITE_CREDS: creds } }), /permission denied/i);
  assert.not.ok(existsSync(join(c.dir, 'v.tar')));
  oneLine(await c.tsctl(['commit', 'src', 'Bad Name']), /invalid image name/);
  oneLine(await c.tsctl(['commit', 'nosuch', 'x:1']), /no such container|not found/i);
  // a page of a transfer nobody opened
  const nc = await dial(c.url, readCreds(c.adminCreds));
  try {
    const id = JSON.parse(await c.ok(['inspect', 'src']))[0].Id as string;
    await call(nc, subjects.agent(c.node), agentApi.archive, { id, what: 'rootfs', transfer: 'a'.repeat(32), offset: 4096 }).then(
      () => assert.unreachable('a page of an unopened transfer'), (e: Error) => assert.match(e.message, /not open/));
    await call(nc, subjects.agent(c.node), agentApi.archive, { id, what: 'rootfs', transfer: '../../etc/passwd', offset: 0 } as never).then(
      () => assert.unreachable('a path as a transfer id'), (e: Error) => assert.match(e.message, /transfer/));
  } finally { await nc.close(); }
  await c.ok(['rm', '-f', 'src']);
  oneLine(await c.tsctl(['export', '-o', join(c.dir, 'gone.tar'), 'src']), /.+/);
  assert.equal(readdirSync(c.dir).filter((f) => f.startsWith('gone.tar')), [], 'a failed export left a file');
  assert.equal(readdirSync(join(c.dir, 'nodes', c.node, 'archives')), [], 'the node kept an archive');
});

t('image history and prune - the commit is the newest line with its comment; prune -a keeps what a container uses', async () => {
  const h = (await c.ok(['image', 'history', 'snap:1'])).split('\n');
  assert.match(h[1]!, /tsctl commit src/);
  assert.match(h[1]!, /greeting/);
  const rows = JSON.parse(await c.ok(['image', 'history', '--format', 'json', 'snap:1'])) as { layer?: string }[];
  assert.is(rows.filter((r) => r.layer).length, 2, 'one row per layer');
  await c.ok(['run', '-d', '--name', 'user', '--network', 'none', 'busybox', 'sleep', '100']);
  assert.match(await c.ok(['image', 'prune']), /no dangling images/);
  const p = await c.ok(['image', 'prune', '-a']);
  assert.match(p, /Deleted: snap:1/);
  assert.match(p, /Total reclaimed space: /);
  const left = JSON.parse(await c.ok(['image', 'ls', '--format', 'json'])) as { name: string }[];
  assert.equal(left.map((i) => i.name), ['busybox'], 'prune removed an image a container uses, or kept an unused one');
  await c.ok(['rm', '-f', 'user']);
});

t.run();
