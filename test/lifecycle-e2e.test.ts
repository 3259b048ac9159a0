// pause/unpause (the freezer, proven by the kernel's CPU counters), wait, rename and top,
// end to end on a real cluster. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { Cluster, sleep } from './helpers/cluster.js';

const t = suite('lifecycle-e2e');
let c: Cluster;

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
});
t.after(async () => { await c?.stop(); });

const inspect = async (ref: string) => JSON.parse(await c.ok(['inspect', ref]))[0];
/** utime + stime of a host pid, in clock ticks. */
const cpuTicks = (pid: number) => {
  const rest = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(rest[11]) + Number(rest[12]);
};
const typesOf = async (id: string) => (await c.ok(['events', '--filter', `entity=${id}`, '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l).type as string);

t('pause - the freezer stops every task (no CPU time while paused), unpause resumes; both are events', async () => {
  const id = (await c.ok(['run', '-d', '--name', 'spin', '--network', 'none', 'busybox', 'sh', '-c', 'while :; do :; done'])).trim();
  const pid = (await inspect('spin')).State.Pid as number;
  assert.is((await c.ok(['pause', 'spin'])).trim(), 'spin');
  assert.ok((await inspect('spin')).State.Status === 'running');
  assert.is((await inspect('spin')).State.Paused, true);
  assert.match(await c.ok(['ps']), /Up [^\n]*\(Paused\)/);
  const a = cpuTicks(pid);
  await sleep(600);
  assert.is(cpuTicks(pid), a, 'a paused container used CPU time');
  // exec into a paused container: refused in one line (a frozen group would freeze the exec too)
  const ex = await c.tsctl(['exec', 'spin', 'true']);
  assert.is(ex.code, 125);
  assert.match(ex.stderr, /^tsctl: container spin is paused, unpause the container before exec\n$/);
  const again = await c.tsctl(['pause', 'spin']);
  assert.is(again.code, 125);
  assert.match(again.stderr, /already paused/);
  assert.is((await c.ok(['unpause', 'spin'])).trim(), 'spin');
  const b = cpuTicks(pid);
  await sleep(600);
  assert.ok(cpuTicks(pid) > b, 'an unpaused container runs again');
  assert.not.match(await c.ok(['ps']), /\(Paused\)/);
  assert.is((await inspect('spin')).State.Paused, false);
  const un = await c.tsctl(['unpause', 'spin']);
  assert.match(un.stderr, /is not paused/);
  const types = await typesOf(id);
  assert.ok(['ContainerPauseRequested', 'ContainerPaused', 'ContainerUnpauseRequested', 'ContainerUnpaused'].every((x) => types.includes(x)), types.join(' '));
  // a paused container still stops: the stop thaws it after its signal
  await c.ok(['pause', 'spin']);
  const t0 = Date.now();
  await c.ok(['stop', '-t', '1', 'spin']);
  assert.ok(Date.now() - t0 < 10000);
  assert.is((await inspect('spin')).State.Status, 'exited');
  await c.ok(['rm', 'spin']);
});

t('pause - a stopped or unknown container is a one-line error', async () => {
  await c.ok(['run', '-d', '--name', 'done1', '--network', 'none', 'busybox', 'true']);
  await c.ok(['wait', 'done1']);
  for (const args of [['pause', 'done1'], ['unpause', 'done1'], ['pause', 'nosuch'], ['top', 'done1']]) {
    const r = await c.tsctl(args);
    assert.is(r.code, 125, args.join(' '));
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

t('wait - prints the exit code once the container stops; at once when it already has', async () => {
  await c.ok(['run', '-d', '--name', 'w3', '--network', 'none', 'busybox', 'sh', '-c', 'sleep 1; exit 3']);
  const r = await c.tsctl(['wait', 'w3']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '3\n');
  assert.is((await c.tsctl(['wait', 'w3'])).stdout, '3\n');
  const two = await c.tsctl(['wait', 'w3', 'nosuch']);
  assert.is(two.code, 125);
  assert.is(two.stdout, '3\n');
  assert.match(two.stderr, /no such container "nosuch"/);
});

t('rename - the name moves, the old one is free, clashes and bad names are refused; the node keeps it as applied', async () => {
  const id = (await c.ok(['run', '-d', '--name', 'r1', '--network', 'none', 'busybox', 'sleep', '1000'])).trim();
  await c.ok(['run', '-d', '--name', 'other', '--network', 'none', 'busybox', 'sleep', '1000']);
  await c.ok(['rename', 'r1', 'r2']);
  assert.is((await inspect('r2')).Id, id);
  assert.match((await c.tsctl(['inspect', 'r1'])).stderr, /no such container "r1"/);
  const clash = await c.tsctl(['rename', 'r2', 'other']);
  assert.is(clash.code, 125);
  assert.match(clash.stderr, /already in use/);
  const bad = await c.tsctl(['rename', 'r2', '../etc']);
  assert.match(bad.stderr, /invalid name/);
  // the container still runs and its node did not refuse the rename
  await sleep(300);
  const types = await typesOf(id);
  assert.ok(types.includes('ContainerRenameRequested'));
  assert.not.ok(types.includes('EventRejected'), types.join(' '));
  assert.is((await c.tsctl(['exec', 'r2', 'true'])).code, 0);
  await c.ok(['rm', '-f', 'r2', 'other']);
});

t('top - the container\'s processes with host pids, an exec\'s too while it runs', async () => {
  await c.ok(['run', '-d', '--name', 'tp', '--network', 'none', 'busybox', 'sleep', '1000']);
  const pid = (await inspect('tp')).State.Pid;
  const r = await c.tsctl(['top', 'tp']);
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0]!, /^UID\s+PID\s+PPID\s+STIME\s+TIME\s+CMD$/);
  assert.is(lines.length, 2, r.stdout);
  assert.match(lines[1]!, new RegExp(`^0\\s+${pid}\\s+\\d+\\s+\\d\\d:\\d\\d\\s+00:00:00\\s+sleep 1000$`));
  const bg = c.tsctl(['exec', 'tp', 'sleep', '2']);
  await sleep(700);
  const with2 = await c.ok(['top', 'tp']);
  assert.match(with2, /sleep 2$/m);
  await bg;
  await c.ok(['rm', '-f', 'tp']);
});

t.run();
