// Image layers through a whole cluster: a hostile layer fails `run` with one clear line
// and the agent keeps serving; ten `run -d` at once of a freshly imported image all start
// on a cold host (one unpack, no shared temp dir). Needs root (namespaces, mounts).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Cluster, ROOT, until } from './helpers/cluster.js';
import { tarball } from './helpers/tarball.js';

const t = suite('layers-e2e');
let c: Cluster;

t.before(async () => { c = await Cluster.start(); });
t.after(async () => { await c?.stop(); });

const layersDir = () => join(c.dir, 'nodes', c.node, 'layers');

t('hostile layer - run fails with the entry and the reason; the agent lives and serves the next run', async () => {
  const cases: [string, Parameters<typeof tarball>[0], RegExp][] = [
    ['dotdot', [{ name: 'bin/', type: '5' }, { name: '../../../../tmp/swl-pwned', body: 'x' }], /entry "\.\.\/\.\.\/\.\.\/\.\.\/tmp\/swl-pwned": path has a "\.\." component/],
    ['symlink-then-file', [{ name: 'etc', type: '2', linkname: '/etc' }, { name: 'etc/swl-pwned', body: 'x' }], /entry "etc\/swl-pwned": file goes through the symlink "etc"/],
    ['hardlink-out', [{ name: 'shadow', type: '1', linkname: '../../../../etc/shadow' }], /entry "shadow": hard link target .*"\.\." component/],
    ['device', [{ name: 'dev/sda', type: '4', devmajor: 8, devminor: 0 }], /entry "dev\/sda": block device 8:0 refused/],
  ];
  const agentPid = c.agent().pid;
  for (const [name, entries, why] of cases) {
    const file = join(c.dir, `${name}.tar`);
    writeFileSync(file, tarball(entries));
    await c.ok(['image', 'import', file, '--name', name]);
    const r = await c.tsctl(['run', '--rm', '--network', 'none', name, 'true']);
    assert.is.not(r.code, 0, `${name}: run must fail`);
    assert.match(r.stderr, why, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /layer sha256:[0-9a-f]{64} refused/);
    assert.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.is(c.agent().exitCode, null, `${name}: the agent is still running`);
    assert.is(c.agent().pid, agentPid);
  }
  // nothing partial was left: no temp dirs, no layer dirs for the refused images
  assert.equal(readdirSync(layersDir()).filter((n) => !/^[0-9a-f]{64}$/.test(n)), []);
  assert.equal(readdirSync(layersDir()), []);
  const pwned = spawnSync('find', [c.dir, '/tmp', '/etc', '-maxdepth', '6', '-name', 'swl-pwned'], { encoding: 'utf8' }).stdout;
  assert.is(pwned, '', 'no file written outside a layer');
  // and the agent still does its job
  await c.importBusybox();
  const r = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'still serving']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'still serving\n');
});

t('single flight - ten run -d at once of a freshly imported image all start', async () => {
  // a new image on this host: its layer is not unpacked yet
  const tar = join(c.dir, 'busybox2.tar');
  const b = spawnSync(join(ROOT, 'ops/build-busybox-rootfs'), [tar], { encoding: 'utf8' });
  assert.is(b.status, 0, b.stderr);
  // a different digest than the busybox already here: one more file
  const extra = spawnSync('tar', ['-rf', tar, '--owner=0', '--group=0', '-C', ROOT, 'package.json'], { encoding: 'utf8' });
  assert.is(extra.status, 0, extra.stderr);
  await c.ok(['image', 'import', tar, '--name', 'busybox2']);
  const before = readdirSync(layersDir()).length;
  const t0 = Date.now();
  const runs = await Promise.all(Array.from({ length: 10 }, (_, i) => c.tsctl(['run', '-d', '--network', 'none', '--name', `sf${i}`, 'busybox2', 'sleep', '300'], { timeout: 90000 })));
  try {
    for (const r of runs) assert.is(r.code, 0, r.stderr);
    const ps = JSON.parse(await c.ok(['ps', '--format', 'json'])) as { name: string; state: string }[];
    const mine = ps.filter((p) => /^sf\d$/.test(p.name));
    assert.is(mine.length, 10);
    assert.ok(mine.every((p) => p.state === 'running'), JSON.stringify(mine));
    assert.is(readdirSync(layersDir()).length, before + 1, 'one new layer, no temp dirs');
    console.log(`  ten run -d of a cold image: all running after ${Date.now() - t0} ms`);
    assert.is(c.agent().exitCode, null);
  } finally {
    await c.tsctl(['rm', '-f', ...Array.from({ length: 10 }, (_, i) => `sf${i}`)], { timeout: 90000 });
  }
  await until(async () => !(await c.ok(['ps', '-a', '--format', 'json'])).includes('"sf'), 30000, 'the ten removed');
  assert.ok(readFileSync(join(c.dir, 'nodes', c.node, 'layers', readdirSync(layersDir())[0], 'bin/busybox')).length > 0);
});

t.run();
