// Rolling updates, rollbacks and service logs with real agents: two nodes of one cluster on
// this machine (test/helpers/cluster.ts). An update with parallelism 2 over 4 replicas never
// has fewer than 2 running (service ps sampled while it rolls); a failing command with failure
// action rollback returns to the old spec; the rollback verb; the controller SIGKILLed
// mid-update carries on from the log; the logs of 2 replicas come interleaved with their
// prefixes; junk flags are one line; a node's forged ServiceUpdateStarted is refused.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Cluster, ROOT, SLOW, sleep, until } from './helpers/cluster.js';
import type { ServiceTaskRow } from '../shared/api/controller.js';
import type { ServiceView } from '../shared/reducer.js';
import { SourceChain } from '../shared/codec.js';
import { subjects } from '../shared/subjects.js';
import { agentIdentity } from '../shared/nats/trust.js';
import { freeSubnet } from './helpers/subnets.js';

const t = suite('services-rolling-e2e');
let c: Cluster;
const second = `t${randomBytes(3).toString('hex')}r`;
const WAIT = 90_000 * SLOW;

t.before(async () => {
  // a node is down after 10 s without a heartbeat, not 3: a loaded machine misses beats
  process.env.SWARMLITE_NODE_SILENCE_MS = '10000';
  try { c = await Cluster.start(); } finally { delete process.env.SWARMLITE_NODE_SILENCE_MS; }
  await c.addNode(second, freeSubnet());
  await c.importBusybox();
  // the same rootfs under a second name: another image as far as a spec goes
  await c.ok(['image', 'import', join(process.env.SWARMLITE_TEST_CACHE ?? c.dir, 'busybox.tar'), '--name', 'busybox2']);
});
t.after(async () => { await c?.stop(); });

const ps = async (svc: string): Promise<ServiceTaskRow[]> => JSON.parse(await c.ok(['service', 'ps', svc, '--format', 'json']));
const inspect = async (svc: string): Promise<ServiceView> => JSON.parse(await c.ok(['service', 'inspect', svc]))[0];
const up = (rows: ServiceTaskRow[]) => rows.filter((r) => r.state === 'running' && r.desired === 'running');

/** Every wanted slot runs one task at `version`, `n` in all, and nothing older still runs. */
async function settled(svc: string, n: number, version: number, what: string): Promise<ServiceTaskRow[]> {
  return until(async () => {
    const rows = await ps(svc);
    const now = up(rows);
    return now.length === n && new Set(now.map((r) => r.slot)).size === n && now.every((r) => r.version === version)
      && !rows.some((r) => r.version !== version && r.desired === 'running' && (r.state === 'running' || r.state === 'created')) && rows;
  }, WAIT, what).catch(async (err) => {
    const rows = (await ps(svc).catch(() => [])).map((r) => `${r.name}#${r.task ?? ''}v${r.version ?? ''}@${r.node ?? ''}:${r.state}/${r.desired ?? ''}${r.reason ? ` (${r.reason})` : ''}`);
    throw new Error(`${(err as Error).message}; tasks: ${rows.join(', ')}`);
  });
}

/** Per (slot, version), how many tasks ran it: an update replaces each slot once. */
function duplicates(rows: ServiceTaskRow[]): string[] {
  const m = new Map<string, number>();
  for (const r of rows) if (r.id) m.set(`${r.slot}@v${r.version}`, (m.get(`${r.slot}@v${r.version}`) ?? 0) + 1);
  return [...m].filter(([, n]) => n > 1).map(([k, n]) => `${k}×${n}`);
}

t('rolling - parallelism 2 over 4 replicas: never fewer than 2 running; ps shows the old tasks shut down; inspect has UpdateStatus', async () => {
  await c.ok(['service', 'create', '--name', 'web', '--replicas', '4', '--network', 'none', '--stop-grace-period', '1s', 'busybox', 'sleep', '1000']);
  await settled('web', 4, 0, 'web at 4');
  // sample service ps while the update runs (tsctl waits for its end, as docker without -d)
  let sampling = true;
  const samples: number[] = [];
  const sampler = (async () => { while (sampling) { samples.push(up(await ps('web')).length); await sleep(150); } })();
  const r = await c.tsctl(['service', 'update', '--image', 'busybox2', '--env-add', 'V=2', '--update-parallelism', '2', '--update-monitor', '1s', 'web']);
  sampling = false;
  await sampler;
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /web: updating/);
  assert.match(r.stdout, /web: completed/);
  console.log(`  ${samples.length} samples of running tasks during the update: min ${Math.min(...samples)}, max ${Math.max(...samples)}`);
  assert.ok(Math.min(...samples) >= 2, `never fewer than 2 running: ${samples.join(',')}`);
  // the log says it exactly: replay web's task events and count what runs (and is wanted) after each
  const evs = (await c.ok(['events', '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l));
  const from = evs.findIndex((e) => e.type === 'ServiceUpdateStarted');
  const web = new Set(evs.filter((e) => e.type === 'ContainerRequested' && e.data.spec.service?.name === 'web').map((e) => e.entity));
  const running = new Set<string>(), wanted = new Set<string>();
  let min = Infinity, max = 0;
  for (const [i, e] of evs.entries()) {
    if (!web.has(e.entity)) continue;
    if (e.type === 'ContainerRequested') wanted.add(e.entity);
    else if (e.type === 'ContainerStopRequested' || e.type === 'ContainerRemoveRequested') wanted.delete(e.entity);
    else if (e.type === 'ContainerStarted') running.add(e.entity);
    else if (e.type === 'ContainerExited' || e.type === 'ContainerFailed' || e.type === 'ContainerRemoved') running.delete(e.entity);
    else continue;
    if (i < from) continue;
    const n = [...running].filter((x) => wanted.has(x)).length;
    min = Math.min(min, n); max = Math.max(max, n);
  }
  console.log(`  from the log: running and wanted during the update, min ${min}, max ${max}`);
  assert.is(min, 2, 'never fewer than 2, and two at a time replaced');
  assert.is(max, 4);
  const rows = await settled('web', 4, 1, 'web at the new spec');
  const shut = rows.filter((x) => x.version === 0);
  assert.is(shut.length, 4, 'the four old tasks stay listed');
  assert.ok(shut.every((x) => x.desired === 'stopped' && x.state === 'exited'), JSON.stringify(shut));
  assert.equal(duplicates(rows), [], 'no slot ran twice at one spec');
  assert.match(await c.ok(['service', 'ps', 'web']), /\\_ web\.\d\s+\S+\s+Shutdown\s+Shutdown/);
  const s = await inspect('web');
  assert.is(s.updateStatus?.state, 'completed');
  const docker = (s as unknown as { UpdateStatus: { State: string; Message: string; CompletedAt: string } }).UpdateStatus;
  assert.is(docker.State, 'completed');
  assert.is(docker.Message, 'update completed');
  assert.ok(Date.parse(docker.CompletedAt) > 0);
  assert.is(s.spec.task.image, 'busybox2');
  assert.ok(s.spec.task.env?.includes('V=2'));
  const ctr = JSON.parse(await c.ok(['inspect', up(rows)[0]!.id!]))[0];
  assert.ok(JSON.stringify(ctr).includes('V=2'), 'the new task has the added variable');
});

t('rolling - service rollback returns to the previous spec (with --rollback-parallelism)', async () => {
  const r = await c.tsctl(['service', 'rollback', '--rollback-parallelism', '0', '--rollback-monitor', '0s', 'web']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /web: rollback completed/);
  const rows = await settled('web', 4, 0, 'web back at the first spec');
  const s = await inspect('web');
  assert.is(s.spec.task.image, 'busybox');
  assert.is(s.updateStatus?.state, 'rollback_completed');
  assert.equal(up(rows).map((x) => x.version), [0, 0, 0, 0]);
});

t('rolling - a failing command with failure action rollback: tsctl says so and the service returns to its old spec', async () => {
  const before = (await inspect('web')).spec.task;
  const r = await c.tsctl(['service', 'update', '--args', 'false', '--update-failure-action', 'rollback', '--update-monitor', '3s', '--rollback-monitor', '0s', 'web']);
  assert.is(r.code, 125, r.stdout + r.stderr);
  assert.match(r.stderr, /^tsctl: service web rolled back: update rolled back: 1 task\(s\) failed within the monitor period \(web\.\d+\.\d+: exited \(1\)\)\n$/, r.stderr);
  const s = await inspect('web');
  assert.is(s.updateStatus?.state, 'rollback_completed');
  assert.equal(s.spec.task, before);
  const rows = await settled('web', 4, 0, 'web at the old spec again');
  assert.ok(s.previousVersion !== undefined && s.previousVersion > 1, 'the bad spec had a version of its own');
  assert.equal(rows.filter((x) => x.version === s.previousVersion).map((x) => x.state), ['exited'], 'one slot tried the bad spec, and only one');
});

t('rolling - the controller SIGKILLed mid-update: the restart completes it, right count at the new spec, none at the old, no slot twice', async () => {
  await c.ok(['service', 'update', '-d', '--image', 'busybox2', '--update-parallelism', '1', '--update-delay', '2s', '--update-monitor', '0s', 'web']);
  const v = (await inspect('web')).version!;
  await until(async () => up(await ps('web')).some((r) => r.version === v), WAIT, 'the first task at the new spec');
  // each batch waits 2 s after the one before: the update is still going when the kill lands
  const atKill = up(await ps('web')).filter((r) => r.version === v).length;
  assert.is((await inspect('web')).updateStatus?.state, 'updating');
  await c.restartController();
  console.log(`  killed with ${atKill} of 4 tasks at the new spec`);
  assert.ok(atKill < 4, 'the kill came before the update was done');
  await until(async () => (await inspect('web')).updateStatus?.state === 'completed', WAIT, 'the update completed after the restart');
  const rows = await settled('web', 4, v, 'web at the new spec');
  assert.is(rows.filter((r) => r.version !== v && r.desired === 'running' && (r.state === 'running' || r.state === 'created')).length, 0);
  assert.equal(duplicates(rows), [], 'no slot ran twice at one spec');
  // each update (or rollback) completed at most once, and this one exactly once
  const seqOf = (await c.ok(['events', '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l).type as string)
    .filter((x) => x === 'ServiceUpdateStarted' || x === 'ServiceUpdateCompleted').map((x) => (x === 'ServiceUpdateStarted' ? 'S' : 'C')).join('');
  assert.not.match(seqOf, /CC/, seqOf);
  assert.match(seqOf, /SC$/, seqOf);
});

t('service logs - two replicas interleaved, each line prefixed with task and node; --tail; -f', async () => {
  await c.ok(['service', 'create', '--name', 'talk', '--replicas', '2', '--network', 'none', 'busybox', 'sh', '-c', 'i=0; while true; do echo line$i; i=$((i+1)); sleep 0.3; done']);
  await settled('talk', 2, 0, 'talk at 2');
  const tasks = up(await ps('talk'));
  await sleep(1500 * SLOW);
  const re = /^(talk\.[12]\.[0-9a-f]{12}@\S+)\s* \| line(\d+)$/;
  const all = (await c.ok(['service', 'logs', 'talk'])).trim().split('\n');
  const prefixes = new Set(all.map((l) => re.exec(l)?.[1]));
  assert.ok(all.every((l) => re.test(l)), all.slice(0, 5).join('\n'));
  assert.equal([...prefixes].sort(), tasks.map((x) => `talk.${x.slot}.${x.id!.slice(0, 12)}@${x.node}`).sort());
  const tail = (await c.ok(['service', 'logs', '--tail', '1', 'talk'])).trim().split('\n');
  assert.is(tail.length, 2, 'one line from each task');
  // -f: live lines of both tasks, interleaved as they come
  const p = spawn(process.execPath, [join(ROOT, 'bin/tsctl.cjs'), 'service', 'logs', '-f', '--tail', '0', 'talk'], { env: { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds } });
  let outText = '';
  p.stdout.on('data', (d) => { outText += d; });
  try {
    await until(() => { const ls = outText.trim().split('\n').filter((l) => re.test(l)); return new Set(ls.map((l) => re.exec(l)![1])).size === 2 && ls.length >= 6; }, 30_000 * SLOW, 'live lines of both tasks');
  } finally { p.kill('SIGINT'); }
  const live = outText.trim().split('\n').filter((l) => re.test(l)).map((l) => re.exec(l)![1]);
  let switches = 0;
  for (let i = 1; i < live.length; i++) if (live[i] !== live[i - 1]) switches++;
  assert.ok(switches >= 2, `interleaved: ${live.join(' ')}`);
  await c.ok(['service', 'rm', 'talk']);
});

t('rolling - junk flags are one line from tsctl and from the controller; a viewer may not update', async () => {
  const cases: [string[], RegExp][] = [
    [['--update-parallelism', '-1'], /^tsctl: invalid --update-parallelism "-1": a whole number, 0 to 10000\n$/],
    [['--update-delay', 'soon'], /^tsctl: invalid --update-delay "soon": a duration like 500ms, 10s or 5m\n$/],
    [['--update-monitor', '1s;rm -rf /'], /^tsctl: invalid --update-monitor "1s;rm -rf \/"/],
    [['--update-order', 'random'], /^tsctl: invalid --update-order "random": stop-first or start-first\n$/],
    [['--update-failure-action', 'explode'], /^tsctl: invalid --update-failure-action "explode"/],
    [['--update-max-failure-ratio', '7'], /^tsctl: invalid --update-max-failure-ratio "7": a number from 0 to 1\n$/],
    [['--image', 'no-such-image'], /^tsctl: no such image "no-such-image"/],
    [['--env-add', 'NOVALUE'], /^tsctl: invalid --env-add "NOVALUE": use KEY=VALUE\n$/],
  ];
  for (const [flags, re] of cases) {
    const r = await c.tsctl(['service', 'update', '-d', ...flags, 'web']);
    assert.is(r.code, 125, flags.join(' '));
    assert.match(r.stderr, re, flags.join(' '));
  }
  const none = await c.tsctl(['service', 'rollback', 'nope']);
  assert.is(none.stderr, 'tsctl: no such service "nope" (tsctl service ls lists them)\n');
  const add = await c.tsctl(['user', 'add', 'vera', '--role', 'viewer']);
  assert.is(add.code, 0, add.stderr);
  const vera = (args: string[]) => c.tsctl(args, { env: { SWARMLITE_CREDS: join(c.dir, 'trust/creds/vera.creds') } });
  await until(async () => (await vera(['service', 'ls'])).code === 0, 10_000 * SLOW, 'the viewer to be known');
  for (const args of [['service', 'update', '-d', '--image', 'busybox', 'web'], ['service', 'rollback', '-d', 'web'], ['service', 'logs', 'web']]) {
    const r = await vera(args);
    assert.is(r.code, 125, args.join(' '));
    assert.match(r.stderr, /permission denied/, args.join(' '));
  }
});

t('rolling - the log\'s trust: a node may not write ServiceUpdateStarted; one a superuser forges under a node\'s name changes nothing', async () => {
  const s = await inspect('web');
  const evil = { ...s.spec, task: { image: 'busybox', args: ['sh', '-c', 'evil'] } };
  const policy = { parallelism: 0, delayMs: 0, order: 'stop-first', monitorMs: 0, failureAction: 'continue', maxFailureRatio: 1 };
  const ev = new SourceChain(`node:${c.node}`).next('ServiceUpdateStarted', s.id, { spec: evil, policy, user: 'admin' } as never);
  const node = await c.connect(agentIdentity(c.node));
  try {
    await node.jetstream().publish(subjects.service(s.id), ev.bytes, { timeout: 5000 });
    assert.unreachable('the server took a node\'s service event');
  } catch (err) {
    assert.match((err as Error).message, /permission|timeout|503|no responders/i);
  } finally { await node.close(); }
  const tamper = await c.connect('tamper');
  try { await tamper.jetstream().publish(subjects.service(s.id), ev.bytes); } finally { await tamper.close(); }
  // a write after it: once it is folded, so is the forged one before it
  await c.ok(['service', 'scale', 'web=4']);
  const after = await inspect('web');
  assert.equal(after.spec.task, s.spec.task);
  assert.is(after.version, s.version);
  assert.ok(!up(await ps('web')).some((r) => r.version !== s.version));
  await c.ok(['service', 'rm', 'web']);
});

t.run();
