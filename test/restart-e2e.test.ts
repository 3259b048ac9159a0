// --restart for plain containers, end to end: the policy's starts counted in inspect
// (RestartCount), docker's back-off, a stop ends it, and it outlives an agent killed in its
// back-off (fault injection: the agent SIGKILLs itself once the exit and the back-off are
// recorded). Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Cluster, sleep, until } from './helpers/cluster.js';

const t = suite('restart-e2e');
let c: Cluster;

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
});
t.after(async () => { await c?.stop(); });

const inspect = async (ref: string) => JSON.parse(await c.ok(['inspect', ref]))[0];
const typesOf = async (id: string) => (await c.ok(['events', '--filter', `entity=${id}`, '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l).type as string);
const count = (xs: string[], x: string) => xs.filter((y) => y === x).length;
const runs = async (ref: string) => ((await c.tsctl(['logs', ref])).stdout.match(/^run$/gm) ?? []).length;
/** Exited, and its policy will not start it again. */
const settled = async (ref: string) => { const i = await inspect(ref); return i.State.Status === 'exited' && !i.State.Restarting ? i : undefined; };

t('on-failure:2 - a container that exits 1 is started exactly 2 more times, then stays exited', async () => {
  const id = (await c.ok(['run', '-d', '--name', 'of2', '--network', 'none', '--restart', 'on-failure:2', 'busybox', 'sh', '-c', 'echo run; exit 1'])).trim();
  const i = await until(() => settled('of2'), 30000, 'of2 settled');
  assert.is(i.RestartCount, 2);
  assert.equal(i.HostConfig.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 2 });
  assert.is(i.State.ExitCode, 1);
  await sleep(1500); // the next back-off would have been 400 ms: nothing more comes
  const types = await typesOf(id);
  assert.is(count(types, 'ContainerStarted'), 3, types.join(' '));
  assert.is(count(types, 'ContainerExited'), 3, types.join(' '));
  assert.is(await runs('of2'), 3);
  assert.is((await inspect('of2')).State.Status, 'exited');
  // exit 0 is not a failure: no start
  const ok = (await c.ok(['run', '-d', '--name', 'of0', '--network', 'none', '--restart', 'on-failure', 'busybox', 'sh', '-c', 'echo run; exit 0'])).trim();
  await until(() => settled('of0'), 20000, 'of0 settled');
  await sleep(800);
  assert.is(count(await typesOf(ok), 'ContainerStarted'), 1);
  await c.ok(['rm', 'of2', 'of0']);
});

t('always - restarts after exit 0 with a growing back-off; stop of the restarting container ends it', async () => {
  const id = (await c.ok(['run', '-d', '--name', 'al', '--network', 'none', '--restart', 'always', 'busybox', 'sh', '-c', 'echo run; exit 0'])).trim();
  // 100+200+400+800+1600 ms of back-off: by the sixth start it waits 3.2 s, long enough to stop it in its back-off
  const i = await until(async () => { const x = await inspect('al'); return x.RestartCount >= 5 && x.State.Restarting ? x : undefined; }, 60000, 'al restarting for the 6th time');
  assert.is(i.State.Status, 'restarting');
  assert.match(await c.ok(['ps', '-a']), /Restarting \(0\)/);
  await c.ok(['stop', 'al']);
  const after = await inspect('al');
  assert.is(after.State.Status, 'exited');
  assert.is(after.State.Restarting, false);
  const n = count(await typesOf(id), 'ContainerStarted');
  await sleep(4500); // past the back-off it was in
  assert.is(count(await typesOf(id), 'ContainerStarted'), n, 'a stopped container was started by its policy');
  assert.is((await inspect('al')).State.Status, 'exited');
  // a user's start resets the count
  await c.ok(['start', 'al']);
  await until(async () => (await inspect('al')).RestartCount >= 1, 20000, 'policy again after start');
  await c.ok(['stop', 'al']);
  // stop of a running one under always: it stays stopped
  await c.ok(['run', '-d', '--name', 'al2', '--network', 'none', '--restart', 'always', 'busybox', 'sleep', '60']);
  await c.ok(['stop', '-t', '1', 'al2']);
  await sleep(1000);
  const s2 = await inspect('al2');
  assert.is(s2.State.Status, 'exited');
  assert.is(s2.RestartCount, 0);
  await c.ok(['rm', 'al', 'al2']);
});

t('agent SIGKILLed in the back-off - the restarted agent carries the policy on from its checkpoint', async () => {
  await c.killAgent();
  const dying = c.startAgent({ SWARMLITE_FAILPOINTS: 'restart:backoff' });
  const gone = new Promise((r) => dying.once('exit', r));
  await c.waitJoined();
  const id = (await c.ok(['run', '-d', '--name', 'kb', '--network', 'none', '--restart', 'on-failure:2', 'busybox', 'sh', '-c', 'echo run; exit 1'])).trim();
  await Promise.race([gone, sleep(30000).then(() => { throw new Error('the failpoint did not kill the agent'); })]);
  // killed with the first exit and its back-off recorded: one start so far, none pending in any memory
  const mid = await typesOf(id);
  assert.is(count(mid, 'ContainerStarted'), 1, mid.join(' '));
  assert.is(count(mid, 'ContainerExited'), 1, mid.join(' '));
  assert.is((await inspect('kb')).State.Restarting, true);
  c.startAgent();
  const i = await until(() => settled('kb'), 60000, 'kb settled after the agent restart');
  assert.is(i.RestartCount, 2);
  await sleep(1500);
  const types = await typesOf(id);
  assert.is(count(types, 'ContainerStarted'), 3, types.join(' '));
  assert.is(await runs('kb'), 3);
  await c.ok(['rm', 'kb']);
});

t('agent SIGKILLed in a start again, between dropping the last run\'s records and the spawn: the redelivered start runs it once', async () => {
  await c.killAgent();
  const dying = c.startAgent({ SWARMLITE_FAILPOINTS: 'start:after-reset' });
  const gone = new Promise((r) => dying.once('exit', r));
  const id = (await c.ok(['run', '-d', '--name', 'sk', '--network', 'none', 'busybox', 'sh', '-c', 'echo run'])).trim();
  assert.is((await c.ok(['wait', 'sk'])).trim(), '0');
  const start = c.tsctl(['start', 'sk'], { timeout: 120000 });
  await Promise.race([gone, sleep(30000).then(() => { throw new Error('the failpoint did not kill the agent'); })]);
  assert.is((await inspect('sk')).State.Status, 'exited');
  c.startAgent();
  const r = await start;
  assert.is(r.code, 0, r.stderr);
  await until(async () => (await runs('sk')) === 2, 20000, 'the second run\'s output');
  await until(() => settled('sk'), 20000, 'sk exited again');
  const types = await typesOf(id);
  assert.is(count(types, 'ContainerStarted'), 2, types.join(' '));
  assert.is(count(types, 'ContainerExited'), 2, types.join(' '));
  await c.ok(['rm', 'sk']);
});

t('agent restart - unless-stopped keeps a user\'s stop, always starts the container again (as docker\'s daemon start)', async () => {
  await c.ok(['run', '-d', '--name', 'us', '--network', 'none', '--restart', 'unless-stopped', 'busybox', 'sleep', '600']);
  await c.ok(['run', '-d', '--name', 'aw', '--network', 'none', '--restart', 'always', 'busybox', 'sleep', '600']);
  await c.ok(['stop', '-t', '0', 'us', 'aw']);
  await c.killAgent();
  c.startAgent();
  await until(async () => (await inspect('aw')).State.Status === 'running', 60000, 'aw started by the agent');
  await sleep(1000);
  assert.is((await inspect('us')).State.Status, 'exited', 'unless-stopped was started after a user stopped it');
  await c.ok(['rm', '-f', 'us', 'aw']);
});

t.run();
