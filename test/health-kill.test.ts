// Health checks and a crashing agent (fault injection, agent/failpoints.ts): SIGKILLed between
// the checkpoint's promise of a ContainerHealthChanged and its append, and while a probe runs.
// The agent started again reports the change exactly once, kills and forgets the probe the dead
// one left, and goes on probing. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Cluster, sleep, until } from './helpers/cluster.js';
import { healthOf, procsOf } from './helpers/health.js';

const t = suite('health-kill');
let c: Cluster;

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  ({ inspect, becomes, changes } = healthOf(c));
});
t.after(async () => { await c?.stop(); });

let inspect: ReturnType<typeof healthOf>['inspect'], becomes: ReturnType<typeof healthOf>['becomes'], changes: ReturnType<typeof healthOf>['changes'];
const exited = (p: ChildProcess) => (p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => p.once('exit', () => r())));

t('health-kill - SIGKILL between the checkpoint and the append: the restarted agent appends the change once', async () => {
  await c.killAgent();
  const dying = c.startAgent({ SWARMLITE_FAILPOINTS: 'health:after-checkpoint' });
  await until(async () => (await c.tsctl(['run', '-d', '--name', 'hk1', '--network', 'none', '--health-cmd', 'true', '--health-interval', '200ms', 'busybox', 'sleep', '1000'])).code === 0, 20_000, 'a run');
  await Promise.race([exited(dying), sleep(20_000)]);
  assert.ok(dying.signalCode === 'SIGKILL', 'the agent died at the failpoint');
  const { Id } = await inspect('hk1');
  assert.equal(await changes(Id), [], 'the change was not appended before the crash');
  c.startAgent();
  await becomes('hk1', 'healthy');
  await sleep(1000);
  assert.equal((await changes(Id)).map((e) => e.data.status), ['healthy'], 'appended once, by the recovery, not again by the probing that resumed');
  await c.ok(['rm', '-f', 'hk1']);
});

t('health-kill - SIGKILL while a probe runs: the restarted agent kills what the dead one left, forgets it, and goes on probing', async () => {
  await c.ok(['run', '-d', '--name', 'hk2', '--network', 'none', '--health-cmd', 'sleep 995', '--health-interval', '200ms', '--health-timeout', '2s',
    '--health-retries', '1', '--health-start-period', '1h', 'busybox', 'sleep', '1000']);
  const { Id } = await inspect('hk2');
  await c.killAgent();
  const dying = c.startAgent({ SWARMLITE_FAILPOINTS: 'health:probing' });
  await Promise.race([exited(dying), sleep(20_000)]);
  assert.ok(dying.signalCode === 'SIGKILL', 'the agent died while a probe ran');
  const left = procsOf(Id).filter((p) => p.cmd.includes('sleep 995')).map((p) => p.pid);
  assert.ok(left.length > 0, 'the probe outlived its agent');
  const leftDirs = readdirSync(join(c.dir, 'nodes', c.node, 'runtime', Id, 'exec'));
  assert.is(leftDirs.length, 1);
  c.startAgent();
  // the start period keeps it starting: the check is that the old probe is gone and new ones come and go
  await sleep(4000);
  const procs = procsOf(Id);
  assert.ok(procs.filter((p) => p.cmd.includes('sleep 995')).length <= 2, JSON.stringify(procs));
  assert.is(procs.filter((p) => p.state === 'Z').length, 0, JSON.stringify(procs));
  const dirs = readdirSync(join(c.dir, 'nodes', c.node, 'runtime', Id, 'exec'));
  assert.ok(dirs.length <= 1, `at most the probe in flight: ${dirs.join(' ')}`);
  assert.not.ok(dirs.includes(leftDirs[0]!), 'the dead agent\'s probe forgotten');
  assert.equal(left.filter((pid) => procs.some((p) => p.pid === pid)), [], 'the dead agent\'s probe killed');
  assert.is((await inspect('hk2')).State.Health!.Status, 'starting');
  await c.ok(['rm', '-f', 'hk2']);
});

t.run();
