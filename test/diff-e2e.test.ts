// tsctl diff end to end: what a container changed (added, changed, deleted: an overlay
// whiteout), against the layers it stands on, for a running and a stopped container; names
// with newlines, symlinks to host files, a bounded reply for a container that made many
// files, and the roles that may ask. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Cluster, sleep } from './helpers/cluster.js';

const t = suite('diff-e2e');
let c: Cluster;

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
});
t.after(async () => { await c?.stop(); });

async function diffUntil(name: string, line: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const r = await c.tsctl(['diff', name]);
    if (r.code === 0 && r.stdout.split('\n').includes(line)) return r.stdout;
    await sleep(100);
  }
  throw new Error(`diff ${name} never showed "${line}"`);
}

t('diff - a fresh container has changed nothing', async () => {
  await c.ok(['run', '-d', '--name', 'fresh', '--network', 'none', 'busybox', 'sleep', '100']);
  const r = await c.tsctl(['diff', 'fresh']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '', 'a container that wrote nothing shows changes');
  await c.ok(['rm', '-f', 'fresh']);
});

t('diff - added, changed and deleted paths as docker diff prints them, running and stopped; gone with the container', async () => {
  await c.ok(['run', '-d', '--name', 'chg', '--network', 'none', 'busybox', 'sh', '-c',
    'echo x > /tmp/new; rm /etc/group; mkdir -p /srv/deep/er; echo y >> /etc/passwd; ln -s /etc/shadow /escape; touch "/tmp/a\nb"; touch /tmp/done; sleep 100']);
  const out = (await diffUntil('chg', 'A /tmp/done')).split('\n');
  for (const l of ['C /etc', 'D /etc/group', 'C /etc/passwd', 'A /escape', 'A /srv', 'A /srv/deep', 'A /srv/deep/er', 'A /tmp/new', 'A /tmp/a\\nb']) {
    assert.ok(out.includes(l), `no "${l}" in:\n${out.join('\n')}`);
  }
  // only what changed: the untouched files of the image are not listed
  assert.not.ok(out.some((l) => /\/bin\/|\/etc\/hostname$/.test(l)), out.join('\n'));
  assert.equal([...out].filter(Boolean), [...out].filter(Boolean).sort((a, b) => a.slice(2).localeCompare(b.slice(2))), 'sorted by path');
  await c.ok(['stop', '-t', '1', 'chg']);
  const stopped = await c.tsctl(['diff', 'chg']);
  assert.is(stopped.code, 0, stopped.stderr);
  assert.ok(stopped.stdout.split('\n').includes('D /etc/group'), 'a stopped container\'s diff');
  await c.ok(['rm', 'chg']);
  const gone = await c.tsctl(['diff', 'chg']);
  assert.is.not(gone.code, 0);
  assert.is(gone.stderr.trim().split('\n').length, 1, gone.stderr);
});

t('diff - a container that made many files gets a bounded reply that says so', async () => {
  await c.ok(['run', '-d', '--name', 'many', '--network', 'none', 'busybox', 'sh', '-c',
    'mkdir /m; cd /m; i=0; while [ $i -lt 21000 ]; do : > f$i; i=$((i+1)); done; touch /zz-done; sleep 100']);
  for (let i = 0; i < 600; i++) {
    const r = await c.tsctl(['diff', 'many']);
    if (r.stderr.includes('only the first') && r.stdout.split('\n').length > 20000) {
      assert.match(r.stderr, /^tsctl: diff: only the first 20000 changes of many are shown\n$/);
      await c.ok(['rm', '-f', 'many']);
      return;
    }
    await sleep(200);
  }
  throw new Error('the diff of 21000 new files was never cut');
});

t('diff - a viewer may not look into a container', async () => {
  await c.ok(['run', '-d', '--name', 'seen', '--network', 'none', 'busybox', 'sleep', '100']);
  const creds = (await c.ok(['user', 'add', 'watcher', '--role', 'viewer'])).trim();
  const r = await c.tsctl(['diff', 'seen'], { env: { SWARMLITE_CREDS: creds } });
  assert.is.not(r.code, 0, r.stdout);
  assert.match(r.stderr, /permission denied/i);
  await c.ok(['rm', '-f', 'seen']);
});

t.run();
