// Fault injection for the multi-step storage actions: the agent SIGKILLed in the middle of a
// vfs copy (a container's root half made) and in the middle of a volume removal (the dir
// renamed aside, not yet deleted). The restarted agent finishes each: the container runs on a
// whole copy, reported started once; the volume is gone, reported removed, nothing aside left.
// Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, until } from './helpers/cluster.js';

const t = suite('vfs-kill');
let c: Cluster;

t.before(async () => {
  c = await Cluster.start({ agentArgs: ['--storage-driver', 'vfs'] });
  await c.importBusybox();
});
t.after(async () => { await c?.stop(); });

async function crashAt<T>(fp: string, act: () => Promise<T>): Promise<T> {
  await c.killAgent();
  const armed = c.startAgent({ SWARMLITE_FAILPOINTS: fp });
  await c.waitJoined();
  const result = act();
  await until(() => armed.exitCode !== null || armed.signalCode !== null, 60000, `the agent to die at ${fp}`);
  assert.is(armed.signalCode, 'SIGKILL', `killed at ${fp}`);
  c.startAgent();
  return result;
}

t('vfs kill - SIGKILL halfway through copying a container\'s root: the restart copies it again and starts it once', async () => {
  const r = await crashAt('vfs:mid-copy', () => c.tsctl(['run', '-d', '--network', 'none', '--name', 'k1', 'busybox', 'sleep', '300'], { timeout: 60000 }));
  const id = r.code === 0 ? r.stdout.trim() : undefined;
  await until(async () => /"Status":\s*"running"/.test((await c.tsctl(['inspect', 'k1'])).stdout) || undefined, 60000, 'k1 running');
  const ls = await c.tsctl(['exec', 'k1', 'sh', '-c', 'ls /bin | wc -l; cat /etc/passwd | head -1']);
  assert.is(ls.code, 0, ls.stderr);
  const layers = join(c.dir, 'nodes', c.node, 'layers');
  const [layer] = readdirSync(layers).filter((n) => /^[0-9a-f]{64}$/.test(n));
  const want = readdirSync(join(layers, layer!, 'bin')).length;
  assert.ok(want > 50, `the image's /bin has ${want} names`);
  assert.is(Number(ls.stdout.split('\n')[0]), want, `a whole copy: ${ls.stdout}`);
  const started = await c.ok(['events', '--filter', 'type=ContainerStarted', '--format', 'json']);
  const kid = id ?? JSON.parse(await c.ok(['inspect', 'k1']))[0].Id;
  assert.is(started.split('\n').filter((l) => l.includes(kid)).length, 1, 'started once');
  const snaps = join(c.dir, 'nodes', c.node, 'snapshots');
  assert.equal(readdirSync(snaps), [kid]);
  await c.ok(['rm', '-f', 'k1']);
  await until(() => readdirSync(snaps).length === 0 || undefined, 20000, 'the copy removed');
});

t('volume kill - SIGKILL between renaming a volume aside and deleting it: the restart finishes, nothing left aside', async () => {
  await c.ok(['volume', 'create', 'doomed']);
  await c.ok(['run', '--rm', '--network', 'none', '-v', 'doomed:/d', 'busybox', 'sh', '-c', 'echo x > /d/f']);
  await crashAt('volume:mid-remove', () => c.tsctl(['volume', 'rm', 'doomed'], { timeout: 60000 }));
  const vols = join(c.dir, 'nodes', c.node, 'volumes');
  await until(async () => !(await c.ok(['volume', 'ls', '-q'])).split('\n').includes('doomed') || undefined, 30000, 'doomed gone from the view');
  assert.not.ok(existsSync(join(vols, 'doomed')));
  await until(() => readdirSync(vols).length === 0 || undefined, 10000, 'nothing left aside');
  const ev = await c.ok(['events', '--filter', 'entity=vol-doomed', '--format', 'json']);
  assert.is(ev.split('\n').filter((l) => l.includes('"VolumeRemoved"')).length, 1, ev);
});

t.run();
