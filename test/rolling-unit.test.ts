// Rolling updates and rollbacks without a server: the real codec, reducer, verb table,
// reconciler and run path over an in-memory log (test/helpers/memlog.ts). The agents are
// played by appending what a node would: a requested task starts (or, for a "bad" spec, exits
// at once), a stopped one exits, a removed one is removed. Also the tsctl flag parsing and
// the service logs line prefixing, both pure.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { apiTable, serialiser, type ApiContext } from '../controller/api/index.js';
import { dispatcher } from '../shared/nats/rpc.js';
import { decodeReply, encodeBody, RpcError, type Verb } from '../shared/rpc.js';
import { controllerApi as api } from '../shared/api/controller.js';
import { Reconciler, live } from '../controller/services.js';
import { failures, versionOf } from '../controller/rolling.js';
import { policyFlags, serviceUpdateRequest } from '../tsctl/commands/services.js';
import { LinePrefixer, lastLines } from '../tsctl/service-logs.js';
import { CliError } from '../tsctl/client.js';
import type { ServiceSpec } from '../shared/events.js';
import type { ContainerView } from '../shared/reducer.js';
import { MemLog } from './helpers/memlog.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const HC = `sha256:${'e7'.repeat(32)}`;

function cluster(nodes = ['n1', 'n2'], o: { failAfter?: number } = {}) {
  const log = new MemLog();
  for (const n of nodes) log.join(n);
  log.append('controller', `ev.image.${DIGEST.slice(7)}`, 'ImageImported', DIGEST.slice(7), { name: 'busybox', digest: DIGEST, size: 1, user: 'u' });
  log.append('controller', `ev.image.${'cd'.repeat(32)}`, 'ImageImported', 'cd'.repeat(32), { name: 'busybox:new', digest: `sha256:${'cd'.repeat(32)}`, size: 1, user: 'u' });
  // an image whose config has a HEALTHCHECK (read through images.read, as a pulled or built one's)
  log.append('controller', `ev.image.${HC.slice(7)}`, 'ImageImported', HC.slice(7), { name: 'busybox:hc', digest: HC, size: 1, user: 'u', layers: [DIGEST] });
  const st = { appends: 0, failAfter: o.failAfter };
  const ctx: ApiContext = {
    view: () => log.view,
    append: async (subject, type, entity, data) => {
      // a controller killed after `failAfter` appends: nothing more of it reaches the log
      if (st.failAfter !== undefined && st.appends >= st.failAfter) throw new Error('killed');
      st.appends++;
      return log.append('controller', subject, type, entity, data);
    },
    waitFor: async () => undefined,
    until: async (cond) => { if (!cond()) throw new Error('no answer'); },
    images: {
      info: async () => null, delete: async () => undefined,
      read: async (key: string) => (key.includes(HC.slice(7)) ? Buffer.from(JSON.stringify({ config: { Healthcheck: { Test: ['CMD', 'true'], Interval: 1e9 } } })) : null),
    },
  };
  const d = dispatcher(apiTable(ctx), { serialise: serialiser() });
  const call = async <Q, P>(v: Verb<Q, P>, req: Q): Promise<P> => decodeReply<P>(await d(v.name, encodeBody(req)));
  const tasks = (name = 'web') => Object.values(log.view.containers).filter((c) => c.spec.service?.name === name);
  const running = (name = 'web') => tasks(name).filter((c) => c.state === 'running' && c.desired === 'running');
  /**
   * What the agents would say: a requested task starts, unless `bad` says its spec fails at
   * once (it exits with 1 right after starting); a stopped task exits; a removed one goes.
   */
  const agents = (bad: (c: ContainerView) => boolean = () => false, now = Date.now()) => {
    for (const c of Object.values(log.view.containers)) {
      const ev = `ev.state.${c.node}.${c.id}`, src = `node:${c.node}`;
      if (c.desired === 'removed') log.append(src, ev, 'ContainerRemoved', c.id, { reason: 'asked' });
      else if (c.desired === 'stopped' && c.state === 'running') log.append(src, ev, 'ContainerExited', c.id, { exitCode: 143, signal: 'SIGTERM', oomKilled: false, exitedAt: now });
      else if (c.state === 'created') {
        log.append(src, ev, 'ContainerStarted', c.id, { pid: 100, receivedAt: 1, runningAt: now });
        if (bad(c)) log.append(src, ev, 'ContainerExited', c.id, { exitCode: 1, oomKilled: false, exitedAt: now + 5 });
      }
    }
  };
  return { log, ctx, call, tasks, running, agents, st, rec: () => new Reconciler(ctx) };
}

const rejects = async (p: Promise<unknown>, re: RegExp) => {
  try { await p; } catch (err) {
    assert.instance(err, RpcError);
    assert.match((err as Error).message, re);
    assert.not.match((err as Error).message, /\n/, 'one line');
    return;
  }
  assert.unreachable('expected an RpcError');
};

/** Ticks the reconciler and plays the agents until `done` or `n` rounds; the running count after every step. */
async function drive(c: ReturnType<typeof cluster>, rec: Reconciler, done: () => boolean, o: { bad?: (t: ContainerView) => boolean; n?: number; sample?: number[] } = {}) {
  for (let i = 0; i < (o.n ?? 60) && !done(); i++) {
    await rec.tick();
    o.sample?.push(c.running().length);
    c.agents(o.bad);
    o.sample?.push(c.running().length);
  }
}

/** Per (slot, version): how many tasks ran it. An update that replaces each slot once has 1 everywhere. */
function runsPerSlotVersion(list: ContainerView[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of list) { const k = `${t.spec.service!.slot}@v${versionOf(t)}`; m.set(k, (m.get(k) ?? 0) + 1); }
  return m;
}

async function webWith4(c: ReturnType<typeof cluster>, extra: Record<string, unknown> = {}) {
  const { id } = await c.call(api.serviceCreate, { name: 'web', replicas: 4, task: { image: 'busybox', args: ['sleep', '100'] }, user: 'alice', ...extra });
  const rec = c.rec();
  await drive(c, rec, () => c.running().length === 4);
  assert.is(c.running().length, 4);
  return { id, rec };
}

test('update - parallelism 2 over 4 replicas, stop-first: never fewer than 2 running; each slot once at the new spec; old tasks kept as shut down', async () => {
  const c = cluster();
  const { id, rec } = await webWith4(c);
  const r = await c.call(api.serviceUpdate, { ref: 'web', image: 'busybox:new', envAdd: ['A=1'], update: { parallelism: 2, monitorMs: 0 }, user: 'alice' });
  assert.is(r.version, 1);
  const svc = () => c.log.view.services![id]!;
  assert.is(svc().updateStatus!.state, 'updating');
  const sample: number[] = [];
  await drive(c, rec, () => svc().updateStatus!.state === 'completed', { sample });
  assert.is(svc().updateStatus!.state, 'completed');
  assert.ok(Math.min(...sample) >= 2, `running never below 2: ${sample.join(',')}`);
  assert.ok(sample.includes(2), 'two at a time were replaced');
  const now = c.running();
  assert.is(now.length, 4);
  assert.ok(now.every((t) => versionOf(t) === 1 && t.spec.image === 'busybox:new' && t.spec.env.includes('A=1')), 'every running task at the new spec');
  const old = c.tasks().filter((t) => versionOf(t) === 0);
  assert.is(old.length, 4);
  assert.ok(old.every((t) => t.desired === 'stopped' && t.state === 'exited'), 'the old ones shut down, still listed');
  for (const [k, n] of runsPerSlotVersion(c.tasks())) assert.is(n, 1, `${k} ran ${n} times`);
  // service ps shows them as docker: the slot's new task, then its shut-down one
  const rows = await c.call(api.servicePs, { ref: 'web' });
  assert.is(rows.length, 8);
  assert.equal(rows.filter((x) => x.desired === 'stopped').map((x) => x.version), [0, 0, 0, 0]);
  // another pass has nothing to do
  const seq = c.log.view.seq;
  await rec.tick(); c.agents();
  assert.is(c.log.view.seq, seq);
});

test('update - --force replaces every task though nothing changed; a no-op update replaces none; placement prefs added and removed', async () => {
  const c = cluster(['n1', 'n2', 'n3']);
  const { id, rec } = await webWith4(c);
  const svc = () => c.log.view.services![id]!;
  const same = await c.call(api.serviceUpdate, { ref: 'web', update: { parallelism: 0, monitorMs: 0 }, user: 'alice' });
  assert.is(same.version, 0, 'nothing the tasks run changed: no new version');
  await drive(c, rec, () => svc().updateStatus!.state === 'completed');
  assert.is(c.tasks().length, 4, 'no task replaced');
  const forced = await c.call(api.serviceUpdate, { ref: 'web', force: true, update: { parallelism: 2, monitorMs: 0 }, user: 'alice' });
  assert.is(forced.version, 1);
  await drive(c, rec, () => svc().updateStatus!.state === 'completed');
  assert.is(svc().updateStatus!.state, 'completed');
  assert.is(c.tasks().length, 8, 'every slot got a new task');
  assert.ok(c.running().every((t) => versionOf(t) === 1), 'the running ones are the new ones');
  const forcedEvent = c.log.events.filter((e) => e.event.type === 'ServiceUpdateStarted').at(-1)!.event.data as { force?: boolean; user: string };
  assert.equal([forcedEvent.force, forcedEvent.user], [true, 'alice'], 'the log says who forced it');
  // preferences: added (normalised, no duplicate), then removed; a change of them is a new version
  await c.call(api.serviceUpdate, { ref: 'web', placementPrefAdd: ['spread=node.labels.zone', ' spread=node.labels.zone'], update: { parallelism: 0, monitorMs: 0 }, user: 'alice' });
  assert.equal(svc().spec.placementPrefs, ['spread=node.labels.zone']);
  assert.is(svc().version, 2);
  await drive(c, rec, () => svc().updateStatus!.state === 'completed');
  await c.call(api.serviceUpdate, { ref: 'web', placementPrefRm: ['spread=node.labels.zone'], update: { parallelism: 0, monitorMs: 0 }, user: 'alice' });
  assert.is(svc().spec.placementPrefs, undefined);
  await rejects(c.call(api.serviceUpdate, { ref: 'web', placementPrefAdd: ['spread=zone'], user: 'alice' }), /^invalid --placement-pref "spread=zone"/);
  const r = serviceUpdateRequest('web', { envAdd: [], envRm: [], force: true, placementPrefAdd: ['spread=node.labels.rack'] } as never, 'me');
  assert.equal([r.force, r.placementPrefAdd], [true, ['spread=node.labels.rack']]);
  assert.throws(() => serviceUpdateRequest('web', { envAdd: [], envRm: [], placementPrefRm: ['x'] } as never, 'me'), (e: Error) => e instanceof CliError && /^invalid --placement-pref-rm "x"/.test(e.message));
});

test('update - start-first keeps every slot running: the old task stops only once its replacement runs', async () => {
  const c = cluster();
  const { id, rec } = await webWith4(c);
  await c.call(api.serviceUpdate, { ref: 'web', args: ['sleep', '200'], update: { parallelism: 1, order: 'start-first', monitorMs: 0 }, user: 'alice' });
  const sample: number[] = [];
  await drive(c, rec, () => c.log.view.services![id]!.updateStatus!.state === 'completed', { sample });
  assert.is(c.log.view.services![id]!.updateStatus!.state, 'completed');
  assert.ok(Math.min(...sample) >= 4, `running never below 4: ${sample.join(',')}`);
  assert.ok(c.running().every((t) => t.spec.args.join(' ') === 'sleep 200'));
});

test('update - a failing spec with failure action rollback returns to the old spec; the untouched slots keep their tasks', async () => {
  const c = cluster();
  // the rollback's own monitor period is waited for before it is complete: none here
  const { id, rec } = await webWith4(c, { rollback: { monitorMs: 0 } });
  const before = new Set(c.running().map((t) => t.id));
  await c.call(api.serviceUpdate, { ref: 'web', args: ['false'], update: { parallelism: 1, failureAction: 'rollback', monitorMs: 5000 }, user: 'alice' });
  const bad = (t: ContainerView) => t.spec.args.join(' ') === 'false';
  await drive(c, rec, () => c.log.view.services![id]!.updateStatus!.state === 'rollback_completed', { bad });
  const s = c.log.view.services![id]!;
  assert.is(s.updateStatus!.state, 'rollback_completed');
  assert.equal(s.spec.task.args, ['sleep', '100'], 'the spec is the old one again');
  assert.is(s.version, 0, 'and so is its version');
  assert.equal(s.previous!.task.args, ['false']);
  const now = c.running();
  assert.is(now.length, 4);
  assert.ok(now.every((t) => t.spec.args.join(' ') === 'sleep 100'));
  assert.is(now.filter((t) => before.has(t.id)).length, 3, 'only the slot that was updated got a new task');
  const started = c.log.events.filter((e) => e.event.type === 'ServiceUpdateStarted').map((e) => e.event.data as { rollback?: boolean; reason?: string });
  assert.is(started.length, 2);
  assert.match(started[1]!.reason!, /^update rolled back: 1 task\(s\) failed within the monitor period \(web\.\d+\.\d+: exited \(1\)\)$/);
});

test('update - health: a new task counts once its check passes (the next batch waits); one that turns unhealthy fails the update', async () => {
  const c = cluster();
  const { id, rec } = await webWith4(c, { rollback: { monitorMs: 0 } });
  await c.call(api.serviceUpdate, { ref: 'web', image: 'busybox:hc', update: { parallelism: 1, failureAction: 'rollback', monitorMs: 0 }, user: 'alice' });
  const fresh = () => c.tasks().filter((t) => versionOf(t) === 1 && t.desired === 'running');
  const health = (t: ContainerView, status: 'healthy' | 'unhealthy') => c.log.append(`node:${t.node}`, `ev.state.${t.node}.${t.id}`, 'ContainerHealthChanged', t.id, {
    status, failingStreak: status === 'healthy' ? 0 : 3, runningAt: t.startedAt!, log: [{ start: t.startedAt! + 1, end: t.startedAt! + 2, exitCode: status === 'healthy' ? 0 : 1, output: '' }],
  });
  for (let i = 0; i < 8; i++) { await rec.tick(); c.agents(); }
  assert.is(fresh().length, 1, 'one batch of 1');
  assert.is(fresh()[0]!.state, 'running');
  assert.is(fresh()[0]!.health?.status, 'starting', 'the image\'s check is the task\'s');
  assert.is(c.log.view.services![id]!.updateStatus!.state, 'updating', 'no further batch while the new task is unproven');
  health(fresh()[0]!, 'healthy');
  for (let i = 0; i < 8 && fresh().length < 2; i++) { await rec.tick(); c.agents(); }
  assert.is(fresh().length, 2, 'healthy: the next batch went');
  const second = fresh().find((t) => t.health?.status === 'starting')!;
  health(second, 'unhealthy');
  await drive(c, rec, () => c.log.view.services![id]!.updateStatus!.state === 'rollback_completed');
  const started = c.log.events.filter((e) => e.event.type === 'ServiceUpdateStarted').map((e) => e.event.data as { reason?: string });
  assert.match(started.at(-1)!.reason!, /^update rolled back: 1 task\(s\) failed within the monitor period \(web\.\d+\.\d+: unhealthy\)$/);
  assert.ok(c.running().every((t) => t.spec.image === 'busybox') && c.running().length === 4, 'the old spec on every slot');
});

test('update - failure action pause stops the rollout; a rollback verb then returns to the old spec with --rollback-parallelism', async () => {
  const c = cluster();
  const { id, rec } = await webWith4(c);
  await c.call(api.serviceUpdate, { ref: 'web', args: ['false'], update: { parallelism: 1, monitorMs: 5000 }, user: 'alice' });
  const bad = (t: ContainerView) => t.spec.args.join(' ') === 'false';
  await drive(c, rec, () => c.log.view.services![id]!.updateStatus!.state === 'paused', { bad });
  assert.is(c.log.view.services![id]!.updateStatus!.state, 'paused');
  assert.match(c.log.view.services![id]!.updateStatus!.message, /^update paused: 1 task\(s\) failed/);
  for (let i = 0; i < 5; i++) { await rec.tick(); c.agents(bad); }
  assert.is(c.tasks().filter((t) => versionOf(t) === 0 && t.desired === 'running').length, 3, 'paused: no further slot replaced');
  await c.call(api.serviceRollback, { ref: 'web', rollback: { parallelism: 0, monitorMs: 0 }, user: 'alice' });
  await drive(c, rec, () => c.log.view.services![id]!.updateStatus!.state === 'rollback_completed', { bad });
  assert.is(c.log.view.services![id]!.updateStatus!.state, 'rollback_completed');
  assert.ok(c.running().every((t) => t.spec.args.join(' ') === 'sleep 100') && c.running().length === 4);
  // and a rollback of the rollback goes forward again (docker's toggling)
  assert.equal(c.log.view.services![id]!.previous!.task.args, ['false']);
});

test('update - a controller killed mid-update: a fresh one carries on from the log; right count at the new spec, none at the old, no slot twice', async () => {
  const c = cluster(['n1', 'n2', 'n3']);
  const { id } = await c.call(api.serviceCreate, { name: 'web', replicas: 6, task: { image: 'busybox', args: ['sleep', '100'] }, user: 'alice' });
  let rec = c.rec();
  await drive(c, rec, () => c.running().length === 6);
  await c.call(api.serviceUpdate, { ref: 'web', image: 'busybox:new', update: { parallelism: 2, monitorMs: 0 }, user: 'alice' });
  // kill after each possible number of appends: the stop of a batch, its first place, ...
  for (let k = 1; k <= 5; k++) {
    c.st.appends = 0; c.st.failAfter = k;
    await rec.tick().catch(() => undefined);
    c.agents();
    c.st.failAfter = undefined;
    rec = c.rec(); // the restarted controller: nothing but the log
  }
  await drive(c, rec, () => c.log.view.services![id]!.updateStatus!.state === 'completed');
  assert.is(c.log.view.services![id]!.updateStatus!.state, 'completed');
  const now = c.running();
  assert.is(now.length, 6);
  assert.ok(now.every((t) => t.spec.image === 'busybox:new'));
  assert.is(c.tasks().filter((t) => live(t) && t.spec.image === 'busybox').length, 0, 'none at the old spec');
  for (const [k, n] of runsPerSlotVersion(c.tasks())) assert.is(n, 1, `${k} ran ${n} times`);
  assert.is(c.log.events.filter((e) => e.event.type === 'ServiceUpdateCompleted').length, 1);
});

test('update - a delay between batches is waited for (the next batch starts only after it)', async () => {
  const c = cluster();
  const { id, rec } = await webWith4(c);
  await c.call(api.serviceUpdate, { ref: 'web', args: ['sleep', '3'], update: { parallelism: 2, delayMs: 60_000, monitorMs: 0 }, user: 'alice' });
  for (let i = 0; i < 6; i++) { await rec.tick(); c.agents(); }
  assert.is(c.tasks().filter((t) => versionOf(t) === 1).length, 2, 'one batch, then the delay');
  assert.is(c.log.view.services![id]!.updateStatus!.state, 'updating');
});

test('update - a global service rolls node by node', async () => {
  const c = cluster(['n1', 'n2', 'n3']);
  const { id } = await c.call(api.serviceCreate, { name: 'mon', mode: 'global', task: { image: 'busybox', args: ['sleep', '100'] }, user: 'alice' });
  const rec = c.rec();
  await drive(c, rec, () => c.running('mon').length === 3);
  await c.call(api.serviceUpdate, { ref: 'mon', image: 'busybox:new', update: { parallelism: 1, monitorMs: 0, failureAction: 'rollback' }, user: 'alice' });
  const sample: number[] = [];
  for (let i = 0; i < 60 && c.log.view.services![id]!.updateStatus!.state !== 'completed'; i++) {
    await rec.tick(); sample.push(c.running('mon').length); c.agents();
  }
  assert.is(c.log.view.services![id]!.updateStatus!.state, 'completed');
  assert.ok(Math.min(...sample) >= 2, `one node at a time: ${sample.join(',')}`);
  assert.equal(c.running('mon').map((t) => t.node).sort(), ['n1', 'n2', 'n3']);
  assert.ok(c.running('mon').every((t) => t.spec.image === 'busybox:new'));
});

test('update - failures: the update\'s own tasks at the new version that ended within the monitor period, or never ran; not stopped ones', () => {
  const svc = { id: 'x', version: 2, updateStatus: { fromTask: 10 } } as never;
  const t = (task: number, o: Partial<ContainerView>, version = 2) => ({ spec: { service: { task, version } }, desired: 'running', state: 'exited', startedAt: 1000, finishedAt: 1500, ...o }) as unknown as ContainerView;
  const list = [
    t(11, {}),                                  // ended 500 ms after its start: failed
    t(12, { finishedAt: 9000 }),                // ran 8 s, past the 5 s monitor: the restart policy's
    t(13, { state: 'failed', startedAt: undefined }), // never ran: failed
    t(14, { desired: 'stopped' }),              // stopped by someone: not a failure
    t(9, {}),                                   // before the update began
    t(15, {}, 1),                               // another version
    t(16, { state: 'running', finishedAt: undefined }),
    t(17, { state: 'running', finishedAt: undefined, health: { status: 'unhealthy', failingStreak: 3, log: [] } }), // failed its check: failed
    t(18, { state: 'running', finishedAt: undefined, health: { status: 'starting', failingStreak: 1, log: [] } }),
    t(19, { state: 'running', finishedAt: undefined, health: { status: 'healthy', failingStreak: 0, log: [] } }),
  ];
  assert.equal(failures(list, svc, 5000).map((c) => c.spec.service!.task), [11, 13, 17]);
});

test('update - the log\'s trust: a node\'s forged ServiceUpdateStarted/Paused/Completed changes nothing', async () => {
  const c = cluster();
  const { id } = await webWith4(c);
  const svc = c.log.view.services![id]!;
  const evil: ServiceSpec = { ...svc.spec, task: { image: 'busybox', args: ['sh', '-c', 'evil'] } };
  c.log.append('node:n1', `ev.service.${id}`, 'ServiceUpdateStarted', id, { spec: evil, policy: { parallelism: 0, delayMs: 0, order: 'stop-first', monitorMs: 0, failureAction: 'continue', maxFailureRatio: 1 }, user: 'admin' });
  c.log.append('node:n1', `ev.service.${id}`, 'ServiceUpdateCompleted', id, {});
  const after = c.log.view.services![id]!;
  assert.equal(after.spec.task.args, ['sleep', '100']);
  assert.is(after.updateStatus, undefined);
  assert.is(after.version, undefined);
  // and one from the controller for a service it never made does nothing either
  c.log.append('controller', 'ev.service.ffffffffffffffffffffffff', 'ServiceUpdateStarted', 'ffffffffffffffffffffffff', { spec: evil, policy: svc.spec.update ?? { parallelism: 1, delayMs: 0, order: 'stop-first', monitorMs: 0, failureAction: 'pause', maxFailureRatio: 0 }, user: 'x' });
  assert.not.ok(c.log.view.services!.ffffffffffffffffffffffff);
});

test('update - bad requests are one-line errors from the controller (hand-made, past tsctl)', async () => {
  const c = cluster();
  await webWith4(c);
  await rejects(c.call(api.serviceUpdate, { ref: 'web', update: { parallelism: -1 }, user: 'a' } as never), /parallelism/);
  await rejects(c.call(api.serviceUpdate, { ref: 'web', update: { maxFailureRatio: 2 }, user: 'a' } as never), /maxFailureRatio/);
  await rejects(c.call(api.serviceUpdate, { ref: 'web', update: { order: 'sideways' }, user: 'a' } as never), /order/);
  await rejects(c.call(api.serviceUpdate, { ref: 'web', update: { delayMs: 'soon' }, user: 'a' } as never), /delayMs/);
  await rejects(c.call(api.serviceUpdate, { ref: 'web', image: 'nope', user: 'a' }), /^no such image "nope"/);
  await rejects(c.call(api.serviceUpdate, { ref: 'web', envAdd: ['NOEQUALS'], user: 'a' }), /^invalid --env-add "NOEQUALS"/);
  await rejects(c.call(api.serviceUpdate, { ref: 'web', workdir: 'rel', user: 'a' }), /^invalid --workdir/);
  await rejects(c.call(api.serviceUpdate, { ref: 'web', replicas: 1e9, user: 'a' }), /at most 10000/);
  await rejects(c.call(api.serviceUpdate, { ref: '__proto__', user: 'a' }), /^no such service "__proto__"/);
  await rejects(c.call(api.serviceRollback, { ref: 'web', user: 'a' }), /^service web has no previous spec to roll back to/);
});

test('tsctl - update flags: durations, orders, ratios, counts; junk is one line naming the flag', () => {
  assert.equal(policyFlags({ updateParallelism: '2', updateDelay: '1s', updateOrder: 'start-first', updateMonitor: '0', updateFailureAction: 'rollback', updateMaxFailureRatio: '0.25' }, 'update'),
    { parallelism: 2, delayMs: 1000, order: 'start-first', monitorMs: 0, failureAction: 'rollback', maxFailureRatio: 0.25 });
  assert.is(policyFlags({}, 'update'), undefined);
  const bad: [Record<string, string>, 'update' | 'rollback', RegExp][] = [
    [{ updateParallelism: '-1' }, 'update', /^invalid --update-parallelism "-1": a whole number/],
    [{ updateParallelism: '1e3' }, 'update', /^invalid --update-parallelism/],
    [{ updateDelay: 'soon' }, 'update', /^invalid --update-delay "soon": a duration/],
    [{ updateDelay: '-5s' }, 'update', /^invalid --update-delay/],
    [{ updateDelay: '99999h' }, 'update', /^invalid --update-delay/],
    [{ updateMonitor: '1s\n2s' }, 'update', /^invalid --update-monitor/],
    [{ updateOrder: 'random' }, 'update', /^invalid --update-order "random": stop-first or start-first$/],
    [{ updateFailureAction: 'explode' }, 'update', /^invalid --update-failure-action/],
    [{ rollbackFailureAction: 'rollback' }, 'rollback', /^invalid --rollback-failure-action "rollback": pause, continue$/],
    [{ updateMaxFailureRatio: '1.5' }, 'update', /^invalid --update-max-failure-ratio "1.5"/],
    [{ updateMaxFailureRatio: 'NaN' }, 'update', /^invalid --update-max-failure-ratio/],
  ];
  for (const [o, k, re] of bad) {
    assert.throws(() => policyFlags(o, k), (e: Error) => e instanceof CliError && re.test(e.message) && !e.message.includes('\n'), JSON.stringify(o));
  }
  const req = serviceUpdateRequest('web', { envAdd: ['A=1'], envRm: ['B'], args: 'sleep  5', image: 'busybox', updateParallelism: '2', stopGracePeriod: '3s' }, 'u');
  assert.equal(req, { ref: 'web', user: 'u', image: 'busybox', args: ['sleep', '5'], envAdd: ['A=1'], envRm: ['B'], update: { parallelism: 2 }, stopGraceS: 3 });
  assert.throws(() => serviceUpdateRequest('web', { envAdd: ['A'], envRm: [] }, 'u'), /^invalid --env-add "A": use KEY=VALUE$/);
  assert.throws(() => serviceUpdateRequest('web', { envAdd: [], envRm: ['A=B'] }, 'u'), /^invalid --env-rm "A=B"/);
  assert.throws(() => serviceUpdateRequest('web', { envAdd: [], envRm: [], stopGracePeriod: '1500ms' }, 'u'), /whole seconds/);
});

test('service logs - lines prefixed per task, partial lines held until their end, --tail per task', () => {
  const p = new LinePrefixer('web.1.abc@n1 | ');
  assert.equal(p.push(1, 'one\ntw'), ['web.1.abc@n1 | one\n']);
  assert.equal(p.push(2, 'err\n'), ['web.1.abc@n1 | err\n']);
  assert.equal(p.push(1, 'o\nthree'), ['web.1.abc@n1 | two\n']);
  assert.equal(p.flush(), [[1, 'web.1.abc@n1 | three\n']]);
  assert.equal(p.flush(), []);
  assert.equal(lastLines([1, 2, 3], 2), [2, 3]);
  assert.equal(lastLines([1, 2, 3], 0), []);
  assert.equal(lastLines([1, 2, 3], undefined), [1, 2, 3]);
});

test.run();
