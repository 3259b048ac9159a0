// Services with real agents: two nodes of one cluster on this machine (test/helpers/cluster.ts).
// Scale up and down, a task killed on the host is replaced, drain moves tasks, constraints hold
// (and an impossible one says why in service ps), a controller SIGKILLed mid-scale converges
// without duplicates, and a down node's tasks move before it is removed.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Cluster, SLOW, until } from './helpers/cluster.js';
import type { ServiceTaskRow } from '../shared/api/controller.js';
import { freeSubnet } from './helpers/subnets.js';

const t = suite('services-e2e');
let c: Cluster;
const second = `t${randomBytes(3).toString('hex')}b`;
const WAIT = 60_000 * SLOW;

t.before(async () => {
  // a node is down after 10 s without a heartbeat, not 3: at a load of 20 an agent may miss
  // 3 s of beats, and a node seen down takes no tasks (the spread assertions would fail)
  process.env.SWARMLITE_NODE_SILENCE_MS = '10000';
  try { c = await Cluster.start(); } finally { delete process.env.SWARMLITE_NODE_SILENCE_MS; }
  await c.addNode(second, freeSubnet());
  await c.importBusybox();
});
t.after(async () => { await c?.stop(); });

const ps = async (svc: string): Promise<ServiceTaskRow[]> => JSON.parse(await c.ok(['service', 'ps', svc, '--format', 'json']));
/** The running tasks per node, once every wanted slot has exactly one running task and `n` run in all. */
async function converged(svc: string, n: number, what: string, ok: (per: Record<string, number>) => boolean = () => true): Promise<Record<string, number>> {
  // on a timeout, say what there was: the service's tasks and the nodes as the controller sees them
  const detail = async (err: Error) => {
    const rows = (await ps(svc).catch(() => [])).map((r) => `${r.name}#${r.task ?? ''}@${r.node ?? ''}:${r.state}/${r.desired ?? ''}${r.reason ? ` (${r.reason})` : ''}`);
    const nodes = await c.ok(['node', 'ls']).catch(() => '');
    throw new Error(`${err.message}; tasks: ${rows.join(', ')}; nodes:\n${nodes}`);
  };
  return untilConverged(svc, n, what, ok).catch(detail);
}

function untilConverged(svc: string, n: number, what: string, ok: (per: Record<string, number>) => boolean): Promise<Record<string, number>> {
  return until(async () => {
    const rows = (await ps(svc)).filter((r) => r.state === 'running' && r.desired === 'running');
    const slots = new Set(rows.map((r) => r.slot));
    if (rows.length !== n || slots.size !== n) return undefined;
    const per: Record<string, number> = {};
    for (const r of rows) per[r.node!] = (per[r.node!] ?? 0) + 1;
    return ok(per) && per;
  }, WAIT, what);
}

t('services - create spreads the replicas over both nodes; scale up and down', async () => {
  const id = (await c.ok(['service', 'create', '--name', 'web', '--replicas', '4', '--network', 'none', 'busybox', 'sleep', '1000'])).trim();
  assert.match(id, /^[0-9a-f]{24}$/);
  assert.equal(await converged('web', 4, '4 tasks running'), { [c.node]: 2, [second]: 2 });
  const ls = JSON.parse(await c.ok(['service', 'ls', '--format', 'json']));
  assert.equal(ls.map((s: { name: string; running: number; replicas: number }) => [s.name, s.running, s.replicas]), [['web', 4, 4]]);
  const names = (await ps('web')).map((r) => r.name).sort();
  assert.equal(names, ['web.1', 'web.2', 'web.3', 'web.4']);
  // the containers carry the task's name and the service's id
  const ctr = JSON.parse(await c.ok(['ps', '--format', 'json'])).filter((x: { name: string }) => x.name.startsWith('web.'));
  assert.is(ctr.length, 4);
  await c.ok(['service', 'scale', 'web=6']);
  assert.equal(await converged('web', 6, '6 tasks running'), { [c.node]: 3, [second]: 3 });
  await c.ok(['service', 'scale', 'web=2']);
  await converged('web', 2, '2 tasks running');
  await until(async () => JSON.parse(await c.ok(['ps', '--format', 'json'])).filter((x: { name: string }) => x.name.startsWith('web.')).length === 2, WAIT, 'the extra containers removed');
  const left = (await ps('web')).filter((r) => r.state === 'running').map((r) => r.slot).sort();
  assert.equal(left, ['1', '2'], 'scale down removes the highest slots');
});

t('services - a task killed on the host is replaced (restart condition any)', async () => {
  await c.ok(['service', 'create', '--name', 'crash', '--replicas', '1', '--restart-delay', '200ms', '--network', 'none', 'busybox', 'sleep', '1000']);
  await converged('crash', 1, 'the task running');
  const first = (await ps('crash')).find((r) => r.state === 'running')!;
  const pid = JSON.parse(await c.ok(['inspect', first.id!]))[0].State.Pid as number;
  assert.ok(pid > 1);
  process.kill(pid, 'SIGKILL');
  const next = await until(async () => (await ps('crash')).find((r) => r.state === 'running' && r.id !== first.id), WAIT, 'a replacement task');
  assert.is(next.slot, first.slot);
  assert.is(next.attempt, 1);
  const rows = await ps('crash');
  assert.ok(rows.some((r) => r.id === first.id && r.state === 'exited'), 'the dead task stays in the slot\'s history');
  // on-failure with one attempt: after two failures the slot stays empty, and ps says so
  await c.ok(['service', 'create', '--name', 'fails', '--replicas', '1', '--restart-condition', 'on-failure', '--restart-max-attempts', '1', '--restart-delay', '100ms', '--network', 'none', 'busybox', 'false']);
  const pending = await until(async () => {
    const r = await ps('fails');
    return r.filter((x) => x.state === 'exited').length === 2 && r.find((x) => x.state === 'pending');
  }, WAIT, 'two failed tasks, then nothing');
  assert.match(pending.reason!, /restart policy/);
  await c.ok(['service', 'rm', 'crash', 'fails']);
});

t('services - drain moves the tasks off a node; pause only stops new ones', async () => {
  await c.ok(['service', 'scale', 'web=2']);
  await converged('web', 2, 'web at 2');
  await c.ok(['service', 'scale', 'web=4']);
  await converged('web', 4, 'web at 4');
  await c.ok(['node', 'update', '--availability', 'pause', second]);
  await c.ok(['service', 'scale', 'web=5']);
  const paused = await converged('web', 5, 'web at 5');  // the fifth can only go to the active node
  assert.is(paused[second], 2, 'pause keeps what runs and takes nothing new');
  await c.ok(['node', 'update', '--availability', 'drain', second]);
  assert.equal(await converged('web', 5, 'web off the drained node', (per) => !per[second]), { [c.node]: 5 });
  await c.ok(['node', 'update', '--availability', 'active', second]);
  await c.ok(['service', 'scale', 'web=2']);
  await converged('web', 2, 'web at 2 again');
});

t('services - constraints are honoured; an impossible one is pending with the reason; run --constraint', async () => {
  await c.ok(['node', 'update', '--label-add', 'zone=a', second]);
  await c.ok(['service', 'create', '--name', 'zoned', '--replicas', '3', '--constraint', 'node.labels.zone==a', '--network', 'none', 'busybox', 'sleep', '1000']);
  assert.equal(await converged('zoned', 3, 'zoned tasks'), { [second]: 3 });
  await c.ok(['service', 'create', '--name', 'nowhere', '--replicas', '2', '--constraint', 'node.labels.zone==b', '--network', 'none', 'busybox', 'sleep', '1000']);
  const rows = await until(async () => { const r = await ps('nowhere'); return r.every((x) => x.reason === 'no node satisfies node.labels.zone==b') && r.length === 2 && r; }, WAIT, 'the reason in service ps');
  assert.equal(rows.map((r) => r.state), ['pending', 'pending']);
  const human = await c.ok(['service', 'ps', 'nowhere']);
  assert.match(human, /Pending\s+no node satisfies node\.labels\.zone==b/);
  // capacity appears: the pending tasks are placed
  await c.ok(['node', 'update', '--label-add', 'zone=b', c.node]);
  assert.equal(await converged('nowhere', 2, 'placed once a node matches'), { [c.node]: 2 });
  const run = await c.tsctl(['run', '-d', '--network', 'none', '--constraint', `node.id==${second}`, 'busybox', 'sleep', '1000']);
  assert.is(run.code, 0, run.stderr);
  const ctr = JSON.parse(await c.ok(['inspect', run.stdout.trim()]))[0];
  assert.is(ctr.Node, second);
  await c.ok(['rm', '-f', run.stdout.trim()]);
  const no = await c.tsctl(['run', '-d', '--network', 'none', '--constraint', 'node.labels.zone==c', 'busybox', 'true']);
  assert.is(no.code, 125);
  assert.is(no.stderr, 'tsctl: no node satisfies node.labels.zone==c\n');
  await c.ok(['service', 'rm', 'zoned', 'nowhere']);
});

t('services - malformed specs get one line from tsctl; a viewer may not create services', async () => {
  const cases: [string[], RegExp][] = [
    [['--replicas', '999999999999'], /^tsctl: invalid --replicas 999999999999: at most 10000\n$/],
    [['--constraint', 'node.labels.zone=a'], /^tsctl: invalid --constraint "node.labels.zone=a": use KEY==VALUE or KEY!=VALUE\n$/],
    [['--constraint', 'zone==a'], /^tsctl: invalid --constraint "zone==a": KEY is node.id/],
    [['--placement-pref', 'spread=zone'], /^tsctl: invalid --placement-pref "spread=zone": use spread=node\.labels\.<name>/],
    [['--name', '../../etc'], /^tsctl: invalid --name "..\/..\/etc"/],
    [['--name', 'a/b'], /^tsctl: invalid --name "a\/b"/],
    [['--mode', 'global', '--replicas', '2'], /^tsctl: --replicas has no meaning with --mode global/],
    [['--restart-condition', 'always'], /^tsctl: invalid --restart-condition "always"/],
  ];
  for (const [flags, re] of cases) {
    const args = ['service', 'create', ...(flags.includes('--name') ? [] : ['--name', 'bad']), ...flags, 'busybox', 'true'];
    const r = await c.tsctl(args);
    assert.is(r.code, 125, args.join(' '));
    assert.match(r.stderr, re, args.join(' '));
  }
  const missing = await c.tsctl(['service', 'ps', 'nope']);
  assert.is(missing.stderr, 'tsctl: no such service "nope" (tsctl service ls lists them)\n');
  const add = await c.tsctl(['user', 'add', 'sven', '--role', 'viewer']);
  assert.is(add.code, 0, add.stderr);
  const sven = (args: string[]) => c.tsctl(args, { env: { SWARMLITE_CREDS: join(c.dir, 'trust/creds/sven.creds') } });
  await until(async () => (await sven(['service', 'ls'])).code === 0, 10_000 * SLOW, 'the viewer to be known');
  const made = await sven(['service', 'create', '--name', 'mine', 'busybox', 'true']);
  assert.is(made.code, 125);
  assert.match(made.stderr, /^tsctl: permission denied: "sven" may not ask service\.create/);
  for (const args of [['service', 'scale', 'web=9'], ['service', 'rm', 'web']]) {
    const r = await sven(args);
    assert.is(r.code, 125, args.join(' '));
    assert.match(r.stderr, /permission denied/);
  }
  assert.is((await sven(['service', 'ps', 'web'])).code, 0, 'a viewer reads services');
  assert.not.ok((await c.ok(['service', 'ls'])).includes('mine'));
});

t('services - the controller SIGKILLed mid-scale: the count converges, no slot placed twice', async () => {
  // a controller that waits 1 s between deciding a task and claiming its name (the claim test
  // hook), so the kill lands inside the scale, not after it
  await c.ok(['service', 'scale', 'web=2']);
  await converged('web', 2, 'web at 2');
  process.env.SWARMLITE_TEST_CLAIM_DELAY_MS = '1000';
  try { await c.restartController(); } finally { delete process.env.SWARMLITE_TEST_CLAIM_DELAY_MS; }
  await c.ok(['service', 'scale', 'web=12']);
  await until(async () => (await ps('web')).filter((r) => r.state !== 'pending' && r.desired === 'running').length > 2, WAIT, 'the scale begun');
  await c.restartController(); // SIGKILL, then a controller without the delay
  const all = (await c.ok(['events', '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l));
  const lastIdx = (f: (e: { type: string; data: { replicas?: number } }) => boolean) => { for (let i = all.length - 1; i >= 0; i--) if (f(all[i])) return i; return -1; };
  const lastStart = lastIdx((e) => e.type === 'ControllerStarted');
  const scaleAt = lastIdx((e) => e.type === 'ServiceUpdated' && e.data.replicas === 12);
  const before = all.slice(scaleAt, lastStart).filter((e) => e.type === 'ContainerRequested' && e.data.spec.service?.name === 'web').length;
  console.log(`  killed after ${before} of 10 new tasks were requested`);
  assert.ok(before < 10, 'the kill came before the scale was done');
  await converged('web', 12, '12 tasks after the restart');
  const rows = await ps('web');
  const live = rows.filter((r) => r.desired === 'running' && (r.state === 'running' || r.state === 'created'));
  assert.is(live.length, 12);
  assert.equal([...new Set(live.map((r) => r.slot))].length, 12, 'one task per slot');
  // and the log agrees: one request per task number, never two ids for one name
  const ev = (await c.ok(['events', '--format', 'json', '--filter', 'type=ContainerRequested'])).trim().split('\n').map((l) => JSON.parse(l))
    .filter((e) => e.data.spec.service?.name === 'web');
  const byName = new Map<string, Set<string>>();
  for (const e of ev) (byName.get(e.data.spec.name) ?? byName.set(e.data.spec.name, new Set()).get(e.data.spec.name)!).add(e.entity);
  for (const [name, ids] of byName) assert.is(ids.size, 1, `${name} requested with ${ids.size} ids`);
  await c.ok(['service', 'scale', 'web=4']);
  await converged('web', 4, 'back to 4');
});

t('services - a node that goes down: its tasks run on the other; then node rm of the down node', async () => {
  await c.ok(['service', 'scale', 'web=4']);
  const before = await converged('web', 4, 'web at 4');
  assert.ok((before[c.node] ?? 0) > 0, 'the first node runs some of web');
  await c.killAgent();
  await until(async () => JSON.parse(await c.ok(['node', 'ls', '--format', 'json'])).find((n: { id: string }) => n.id === c.node)?.state === 'down', WAIT, 'the node seen down');
  assert.equal(await converged('web', 4, 'web moved to the node that is up', (per) => !per[c.node]), { [second]: 4 });
  const busy = await c.tsctl(['node', 'rm', second]);
  assert.is(busy.code, 125, 'a ready node with containers needs --force');
  await c.ok(['node', 'rm', c.node]);
  const nodes = JSON.parse(await c.ok(['node', 'ls', '--format', 'json'])).map((n: { id: string }) => n.id);
  assert.equal(nodes, [second]);
  await c.ok(['service', 'rm', 'web']);
  await until(async () => JSON.parse(await c.ok(['ps', '--format', 'json'])).filter((x: { name: string }) => x.name.startsWith('web.')).length === 0, WAIT, 'web\'s tasks removed');
});

t.run();
