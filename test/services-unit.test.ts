// Services without a server: constraints, placement, the reconciler's plan and its runs over
// an in-memory log with the real codec, reducer, verb table and run path. Agents are played
// by appending what a node would (started, exited).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { apiTable, serialiser, type ApiContext } from '../controller/api/index.js';
import { dispatcher } from '../shared/nats/rpc.js';
import { decodeReply, encodeBody, RpcError, type Verb } from '../shared/rpc.js';
import { controllerApi as api } from '../shared/api/controller.js';
import { parseConstraint, parseConstraints, satisfies, ConstraintError } from '../shared/constraints.js';
import { eligible, place, PlacementError } from '../controller/placement.js';
import { plan, Reconciler, taskId, live, tasksByService } from '../controller/services.js';
import { serviceCreateRequest, scalePair } from '../tsctl/commands/services.js';
import { CliError } from '../tsctl/client.js';
import type { ContainerSpec } from '../shared/events.js';
import { fold, own, type ClusterView, type ContainerView } from '../shared/reducer.js';
import { claim, isFenced } from '../controller/lease.js';
import { MemLog } from './helpers/memlog.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

function cluster(nodes = ['n1', 'n2'], o: { roles?: Record<string, string>; failAfter?: number; imageConfig?: object } = {}) {
  const log = new MemLog();
  for (const n of nodes) log.join(n);
  // with a config: an image of layers whose config the run path reads (Cmd, Healthcheck, ...)
  log.append('controller', `ev.image.${DIGEST.slice(7)}`, 'ImageImported', DIGEST.slice(7), { name: 'busybox', digest: DIGEST, size: 1, user: 'u', ...(o.imageConfig ? { layers: [`sha256:${'cd'.repeat(32)}`] } : {}) });
  let appends = 0;
  const ctx: ApiContext = {
    view: () => log.view,
    append: async (subject, type, entity, data) => {
      // a controller killed after `failAfter` appends: nothing more reaches the log
      if (o.failAfter !== undefined && appends >= o.failAfter) throw new Error('killed');
      appends++;
      return log.append('controller', subject, type, entity, data);
    },
    waitFor: async () => undefined,
    until: async (cond) => { if (!cond()) throw new Error('no answer'); },
    images: { info: async () => null, delete: async () => undefined, ...(o.imageConfig ? { read: async () => Buffer.from(JSON.stringify(o.imageConfig)) } : {}) },
    ...(o.roles ? { roleOf: (u: string) => o.roles![u] } : {}),
  };
  const d = dispatcher(apiTable(ctx), { serialise: serialiser() });
  const call = async <Q, P>(v: Verb<Q, P>, req: Q): Promise<P> => decodeReply<P>(await d(v.name, encodeBody(req)));
  const raw = async (name: string, body: unknown) => decodeReply(await d(name, typeof body === 'string' ? new TextEncoder().encode(body) : encodeBody(body)));
  const rec = new Reconciler(ctx);
  const tasks = (name = 'web') => Object.values(log.view.containers).filter((c) => c.spec.service?.name === name);
  const running = (name = 'web') => tasks(name).filter(live);
  /** what the agents would say: every requested task started, every removal done */
  const agents = () => {
    for (const c of Object.values(log.view.containers)) {
      if (log.view.nodes[c.node]?.state === 'down') continue;
      if (c.desired === 'removed') log.append(`node:${c.node}`, `ev.state.${c.node}.${c.id}`, 'ContainerRemoved', c.id, { reason: 'asked' });
      else if (c.state === 'created') log.append(`node:${c.node}`, `ev.state.${c.node}.${c.id}`, 'ContainerStarted', c.id, { pid: 100, receivedAt: 1, runningAt: Date.now() });
    }
  };
  return { log, ctx, call, raw, rec, tasks, running, agents };
}

const rejects = async (p: Promise<unknown>, code: RpcError['code'], re: RegExp) => {
  try { await p; } catch (err) {
    assert.instance(err, RpcError);
    assert.is((err as RpcError).code, code, (err as Error).message);
    assert.match((err as Error).message, re);
    assert.not.match((err as Error).message, /\n/, 'one line');
    return;
  }
  assert.unreachable('expected an RpcError');
};

const perNode = (list: ContainerView[]) => list.reduce<Record<string, number>>((m, c) => ({ ...m, [c.node]: (m[c.node] ?? 0) + 1 }), {});
const spec = (over: Partial<ContainerSpec> = {}): ContainerSpec => ({
  name: 'c', image: 'busybox', imageDigest: DIGEST, args: ['true'], env: [], hostname: 'h', workdir: '/', network: 'bridge', autoRemove: false, ...over,
});

test('constraints - docker\'s forms parse and normalise; anything else is one line naming the flag', () => {
  assert.equal(parseConstraint(' node.labels.zone == a '), { field: 'node.labels.zone', op: '==', value: 'a', text: 'node.labels.zone==a' });
  assert.is(parseConstraint('node.hostname!=h3').op, '!=');
  assert.is(parseConstraint('node.id==n1').field, 'node.id');
  for (const bad of ['node.labels.zone=a', 'zone==a', 'node.labels.==a', 'node.hostname==', 'node.hostname==a b', 'node.labels.z==$(id)', 'node.role==manager', '==', `node.labels.${'k'.repeat(600)}==v`]) {
    assert.throws(() => parseConstraint(bad), (e: Error) => e instanceof ConstraintError && /^invalid --constraint "/.test(e.message) && !e.message.includes('\n'), bad);
  }
  assert.throws(() => parseConstraints(Array(33).fill('node.id==a')), /at most 32 constraints/);
  const n = { id: 'n1', hostname: 'h1', labels: { zone: 'a' } } as never;
  assert.ok(satisfies(n, parseConstraint('node.labels.zone==a')));
  assert.not.ok(satisfies(n, parseConstraint('node.labels.rack==a')), 'a missing label is never equal');
  assert.ok(satisfies(n, parseConstraint('node.labels.rack!=a')), 'and always unequal');
  assert.not.ok(satisfies({ id: 'n1', hostname: 'h', labels: {} } as never, parseConstraint('node.labels.constructor==x')), 'no inherited members');
});

test('placement - constraints filter nodes; an impossible one names itself; spread and port clashes', async () => {
  const { log } = cluster(['n1', 'n2', 'n3']);
  log.append('controller', 'ev.cluster.n2', 'NodeUpdated', 'n2', { labelAdd: { zone: 'a' }, user: 'u' });
  assert.is(place(log.view, spec({ constraints: ['node.labels.zone==a'] })).id, 'n2');
  assert.is(place(log.view, spec({ constraints: ['node.hostname==n3'] })).id, 'n3');
  assert.is.not(place(log.view, spec({ constraints: ['node.labels.zone!=a'] })).id, 'n2');
  assert.throws(() => place(log.view, spec({ constraints: ['node.labels.zone==b'] })), (e: Error) => e instanceof PlacementError && e.message === 'no node satisfies node.labels.zone==b');
  assert.throws(() => place(log.view, spec({ constraints: ['node.labels.zone==a', 'node.hostname==n1'] })), /no node satisfies node.labels.zone==a and node.hostname==n1 together/);
  // a paused node takes nothing new, even when it alone matches
  log.append('controller', 'ev.cluster.n2', 'NodeUpdated', 'n2', { availability: 'pause', user: 'u' });
  assert.throws(() => place(log.view, spec({ constraints: ['node.labels.zone==a'] })), /no node satisfies node.labels.zone==a/);
  assert.equal(eligible(log.view, []).map((n) => n.id), ['n1', 'n3']);
  // spread: fewest tasks of the same service first, whatever else the node runs
  assert.is(place(log.view, spec(), undefined, undefined, { spread: new Map([['n1', 2], ['n3', 1]]) }).id, 'n3');
  assert.throws(() => place(log.view, spec(), undefined, undefined, { clash: () => 'port 80/tcp is already published' }), /port 80\/tcp is already published on every node/);
  assert.is(place(log.view, spec(), undefined, undefined, { clash: (n) => (n === 'n1' ? 'x' : undefined) }).id, 'n3');
});

test('services - create places the replicas spread over the nodes; another pass (or a fresh controller) does nothing', async () => {
  const c = cluster(['n1', 'n2']);
  const { id } = await c.call(api.serviceCreate, { name: 'web', replicas: 4, task: { image: 'busybox', args: ['sleep', '100'] }, user: 'alice' });
  await c.rec.tick();
  const t = c.tasks();
  assert.is(t.length, 4);
  assert.equal(perNode(t), { n1: 2, n2: 2 });
  assert.equal(t.map((x) => x.name).sort(), ['web.1.1', 'web.2.2', 'web.3.3', 'web.4.4']);
  for (const x of t) { assert.is(x.id, taskId(id, x.spec.service!.task)); assert.is(x.requestedBy, 'alice'); }
  c.agents();
  const before = c.log.events.length;
  await c.rec.tick();
  await new Reconciler(c.ctx).tick();
  assert.is(c.log.events.length, before, 'nothing more appended');
  assert.equal(plan(c.log.view, Date.now()), []);
  const ls = await c.call(api.serviceLs, {});
  assert.equal(ls.map((s) => [s.name, s.running, s.replicas]), [['web', 4, 4]]);
});

test('services - a named volume is each node\'s own (as swarm): the tasks spread, each node asked for its copy; a run still goes where the volume is', async () => {
  const c = cluster(['n1', 'n2']);
  const mounts = [{ type: 'volume' as const, source: 'data', target: '/data' }];
  await c.call(api.serviceCreate, { name: 'web', replicas: 4, task: { image: 'busybox', args: ['sleep', '100'], mounts }, user: 'alice' });
  await c.rec.tick();
  assert.equal(perNode(c.tasks()), { n1: 2, n2: 2 }, 'a volume made on the first task\'s node does not pull the others there');
  const asked = c.log.events.filter((e) => e.event.type === 'VolumeCreateRequested').map((e) => (e.event.data as { node: string }).node).sort();
  assert.equal(asked, ['n1', 'n2'], 'one volume per node, asked once each');
  // a plain run naming a volume that exists on one node only still goes to that node
  const one = cluster(['n1', 'n2']);
  await one.call(api.volumeCreate, { name: 'solo', node: 'n2', user: 'alice' }).catch(() => undefined);
  for (let i = 0; i < 3; i++) {
    const r = await one.call(api.run, { image: 'busybox', args: ['true'], mounts: [{ type: 'volume', source: 'solo', target: '/d' }], user: 'alice' });
    assert.is(r.node, 'n2');
  }
});

test('services - a controller killed mid-scale: the next one converges to the count, no slot twice', async () => {
  for (let k = 0; k < 4; k++) {
    const c = cluster(['n1', 'n2'], { failAfter: 2 + k });
    await c.call(api.serviceCreate, { name: 'web', replicas: 2, task: { image: 'busybox', args: ['sleep', '100'] } });
    await c.rec.tick(); // 1 create + k... appends, then "killed"
    assert.ok(c.tasks().length < 6);
    c.log.append('controller', 'ev.service.x', 'ServiceUpdated', Object.keys(c.log.view.services!)[0]!, { replicas: 6, user: 'u' });
    await c.rec.tick(); // dies again part-way
    // the restarted controller: same log, a fresh reconciler that can write
    const again = new Reconciler({ ...c.ctx, append: async (s, ty, e, d) => c.log.append('controller', s, ty, e, d) });
    await again.tick();
    await again.tick();
    const slots = c.tasks().map((x) => x.spec.service!.slot).sort();
    assert.equal(slots, ['1', '2', '3', '4', '5', '6'], `k=${k}`);
    assert.is(new Set(c.tasks().map((x) => x.id)).size, 6);
  }
});

test('services - two controllers that both lead, one with a stale view: the fenced name claim lets each task through once', async () => {
  const c = cluster(['n1', 'n2']);
  await c.call(api.serviceCreate, { name: 'web', replicas: 3, task: { image: 'busybox', args: ['x'] } });
  // JetStream's expected-last-subject-sequence, over the in-memory log (controller/lease.ts claim())
  const fenced = (view: () => ClusterView): ApiContext => ({
    ...c.ctx, view,
    claim: async (kind, key, entity) => {
      try {
        await claim({
          view, firstSeq: () => 1, known: (_k, e) => own(view().containers, e) !== undefined,
          appendExpecting: async (subject, type, ent, data, expect) => {
            const last = c.log.events.filter((e) => e.subject === subject).at(-1)?.seq ?? 0;
            if (last !== expect) throw Object.assign(new Error(`wrong last sequence ${last}, expected ${expect}`), { fenced: true });
            return c.log.append('controller', subject, type, ent, data);
          },
        }, kind, key, entity);
      } catch (err) { if (isFenced(err)) throw new RpcError('conflict', `the ${kind} name "${key}" was just taken by another controller`); throw err; }
    },
  });
  const stale = fold(c.log.events); // the second controller's view stops here
  await new Reconciler(fenced(() => c.log.view)).tick();
  await new Reconciler(fenced(() => stale)).tick();
  const asked = c.log.events.filter((e) => e.event.type === 'ContainerRequested');
  assert.is(asked.length, 3, 'three tasks, not six');
  assert.is(new Set(asked.map((e) => (e.event.data as { spec: ContainerSpec }).spec.name)).size, 3);
  assert.ok(c.log.events.some((e) => e.event.type === 'ServiceTaskPending' && /just taken by another controller/.test((e.event.data as { reason: string }).reason)), 'the stale one was fenced');
  const claims = () => c.log.events.filter((e) => e.event.type === 'Claimed').length;
  assert.is(claims(), 3 + 3, 'each task\'s number and name');
  // a slot that cannot be placed claims nothing, however often it is tried
  await c.call(api.serviceCreate, { name: 'nowhere', replicas: 1, task: { image: 'busybox', args: ['x'] }, constraints: ['node.id==n9'] });
  const before = claims();
  for (let i = 0; i < 3; i++) await new Reconciler(fenced(() => c.log.view)).tick();
  assert.is(claims(), before);
});

test('services - an unhealthy task has failed: the restart policy replaces it (an attempt, after the delay) or leaves it', async () => {
  const c = cluster(['n1'], { imageConfig: { config: { Cmd: ['sleep', '1000'], Healthcheck: { Test: ['CMD-SHELL', 'check'], Retries: 2 } } } });
  const sicken = (name: string, endedAgo: number) => {
    const t = c.running(name)[0]!;
    assert.equal(t.spec.healthcheck, { Test: ['CMD-SHELL', 'check'], Retries: 2 }, 'the image\'s HEALTHCHECK reaches the task');
    assert.is(t.health?.status, 'starting');
    const end = Date.now() - endedAgo;
    c.log.append(`node:${t.node}`, `ev.state.${t.node}.${t.id}`, 'ContainerHealthChanged', t.id,
      { status: 'unhealthy', failingStreak: 2, runningAt: t.startedAt!, log: [{ start: end - 5, end, exitCode: 1, output: 'no' }] });
    return t;
  };
  await c.call(api.serviceCreate, { name: 'any', replicas: 1, task: { image: 'busybox' }, restartMaxAttempts: 1, restartDelayMs: 5000 });
  await c.call(api.serviceCreate, { name: 'none', replicas: 1, task: { image: 'busybox' }, restartCondition: 'none' });
  await c.rec.tick(); c.agents();
  const sick = sicken('any', 1000), kept = sicken('none', 60_000);
  // one attempt allowed: the replacement, once unhealthy too, is left running (below)
  // within the delay from its last probe: not yet
  const due = { at: Infinity };
  assert.equal(plan(c.log.view, Date.now(), due).filter((a) => a.kind !== 'status'), []);
  assert.ok(due.at > Date.now() && due.at <= Date.now() + 4000, 'told when to look again');
  assert.ok(plan(c.log.view, Date.now() + 5000).some((a) => a.kind === 'remove' && a.id === sick.id && /is unhealthy/.test(a.why)));
  const later = plan(c.log.view, Date.now() + 5000).find((a) => a.kind === 'place');
  assert.ok(later && later.kind === 'place' && later.attempt === 1 && later.slot === '1' && /is unhealthy/.test(later.why), JSON.stringify(later));
  // condition none: it stays, unhealthy, as it is
  assert.not.ok(plan(c.log.view, Date.now() + 5000).some((a) => a.kind !== 'status' && 'id' in a && a.id === kept.id));
  // the delay over (its last probe a minute ago), the reconciler replaces it
  c.log.append(`node:${sick.node}`, `ev.state.${sick.node}.${sick.id}`, 'ContainerHealthChanged', sick.id,
    { status: 'unhealthy', failingStreak: 2, runningAt: sick.startedAt!, log: [{ start: Date.now() - 60_005, end: Date.now() - 60_000, exitCode: 1, output: 'no' }] });
  await c.rec.tick(); c.agents();
  assert.is(c.log.view.containers[sick.id], undefined, 'the unhealthy task removed');
  assert.equal(c.running('any').map((t) => t.spec.service!.attempt), [1]);
  sicken('any', 60_000);
  assert.equal(plan(c.log.view, Date.now()).filter((a) => a.kind === 'remove' || a.kind === 'place'), [], 'max attempts reached');
});

test('services - scale down removes the highest slots; rm removes every task', async () => {
  const c = cluster();
  await c.call(api.serviceCreate, { name: 'web', replicas: 5, task: { image: 'busybox', args: ['sleep', '100'] } });
  await c.rec.tick(); c.agents();
  await c.call(api.serviceScale, { ref: 'web', replicas: 2 });
  await c.rec.tick();
  const gone = c.tasks().filter((x) => x.desired === 'removed').map((x) => x.spec.service!.slot).sort();
  assert.equal(gone, ['3', '4', '5']);
  c.agents();
  assert.is(c.running().length, 2);
  await c.call(api.serviceRm, { ref: 'web' });
  await c.rec.tick();
  assert.ok(c.tasks().every((x) => x.desired === 'removed'));
  c.agents();
  assert.is(c.tasks().length, 0);
  await rejects(c.call(api.servicePs, { ref: 'web' }), 'not_found', /no such service "web"/);
});

test('services - a task on a node that went down or was drained is placed elsewhere; the old copy is asked to go', async () => {
  const c = cluster(['n1', 'n2', 'n3']);
  await c.call(api.serviceCreate, { name: 'web', replicas: 3, task: { image: 'busybox', args: ['sleep', '100'] } });
  await c.rec.tick(); c.agents();
  assert.equal(perNode(c.running()), { n1: 1, n2: 1, n3: 1 });
  c.log.append('controller', 'ev.cluster.n2', 'NodeDown', 'n2', { silenceMs: 3000 });
  await c.rec.tick(); c.agents();
  assert.is(c.running().length, 3);
  assert.not.ok(c.running().some((x) => x.node === 'n2'));
  const old = c.tasks().find((x) => x.node === 'n2')!;
  assert.is(old.desired, 'removed', 'the down node removes its copy when it comes back');
  c.log.append('controller', 'ev.cluster.n3', 'NodeUpdated', 'n3', { availability: 'drain', user: 'u' });
  await c.rec.tick(); c.agents();
  assert.equal(perNode(c.running()), { n1: 3 });
  // the node returns: its stale copy goes, nothing is placed twice
  c.log.append('controller', 'ev.cluster.n2', 'NodeReady', 'n2', {});
  c.agents();
  await c.rec.tick();
  assert.is(c.running().length, 3);
  assert.is(c.tasks().filter((x) => x.node === 'n2').length, 0);
});

test('services - restart conditions, max attempts and the delay', async () => {
  const c = cluster(['n1']);
  const exit = (name: string, code: number) => {
    const t = c.running(name)[0]!;
    c.log.append(`node:${t.node}`, `ev.state.${t.node}.${t.id}`, 'ContainerExited', t.id, { exitCode: code, oomKilled: false, exitedAt: Date.now() - 10_000 });
  };
  await c.call(api.serviceCreate, { name: 'of', replicas: 1, task: { image: 'busybox', args: ['x'] }, restartCondition: 'on-failure', restartMaxAttempts: 2, restartDelayMs: 0 });
  await c.call(api.serviceCreate, { name: 'no', replicas: 1, task: { image: 'busybox', args: ['x'] }, restartCondition: 'none' });
  await c.call(api.serviceCreate, { name: 'slow', replicas: 1, task: { image: 'busybox', args: ['x'] }, restartDelayMs: 60_000 });
  await c.rec.tick(); c.agents();
  exit('of', 0); exit('no', 1);
  await c.rec.tick(); c.agents();
  assert.is(c.running('of').length, 0, 'on-failure: a clean exit is done');
  assert.is(c.running('no').length, 0, 'none: never again');
  const ps = await c.call(api.servicePs, { ref: 'no' });
  assert.is(ps[0]!.state, 'pending');
  assert.match(ps[0]!.reason!, /restart policy/);
  // on-failure with 2 attempts: two replacements, then it stays down
  await c.call(api.serviceRm, { ref: 'of' });
  await c.call(api.serviceCreate, { name: 'of2', replicas: 1, task: { image: 'busybox', args: ['x'] }, restartCondition: 'on-failure', restartMaxAttempts: 2, restartDelayMs: 0 });
  await c.rec.tick(); c.agents();
  for (let i = 0; i < 3; i++) { if (c.running('of2').length) exit('of2', 3); await c.rec.tick(); c.agents(); }
  assert.equal(c.tasks('of2').map((x) => x.spec.service!.attempt).sort(), [0, 1, 2]);
  assert.is(c.running('of2').length, 0);
  // the delay is counted from the exit
  const t = c.running('slow')[0]!;
  c.log.append('node:n1', `ev.state.n1.${t.id}`, 'ContainerExited', t.id, { exitCode: 1, oomKilled: false, exitedAt: Date.now() });
  await c.rec.tick();
  assert.is(c.tasks('slow').length, 1, 'not before the delay');
  const due = { at: Infinity };
  assert.is(plan(c.log.view, Date.now(), due).length, 0);
  assert.ok(due.at > Date.now() + 50_000 && due.at <= Date.now() + 60_000, 'the plan says when the delay ends');
  assert.is(plan(c.log.view, Date.now() + 61_000).filter((a) => a.kind === 'place').length, 1);
});

test('services - an unsatisfiable constraint leaves the slot pending with the reason, once; a label makes it run', async () => {
  const c = cluster(['n1', 'n2']);
  await c.call(api.serviceCreate, { name: 'web', replicas: 2, task: { image: 'busybox', args: ['x'] }, constraints: ['node.labels.zone==b'] });
  await c.rec.tick();
  await c.rec.tick();
  const pend = c.log.events.filter((e) => e.event.type === 'ServiceTaskPending');
  assert.is(pend.length, 2, 'one per slot, not one per pass');
  const ps = await c.call(api.servicePs, { ref: 'web' });
  assert.equal(ps.map((r) => [r.name, r.state, r.reason]), [['web.1', 'pending', 'no node satisfies node.labels.zone==b'], ['web.2', 'pending', 'no node satisfies node.labels.zone==b']]);
  c.log.append('controller', 'ev.cluster.n2', 'NodeUpdated', 'n2', { labelAdd: { zone: 'b' }, user: 'u' });
  await c.rec.tick(); c.agents();
  assert.equal(perNode(c.running()), { n2: 2 });
  assert.is(c.log.view.services![Object.keys(c.log.view.services!)[0]!]!.pending, undefined);
  // the label goes: the tasks must leave (and wait, pending, for a node that matches)
  c.log.append('controller', 'ev.cluster.n2', 'NodeUpdated', 'n2', { labelRm: ['zone'], user: 'u' });
  await c.rec.tick(); c.agents();
  assert.is(c.running().length, 0);
});

test('services - --placement-pref spreads the tasks over a label\'s values; the controller\'s binpack packs them', async () => {
  const c = cluster(['a1', 'a2', 'b1']);
  for (const [n, zone] of [['a1', 'a'], ['a2', 'a'], ['b1', 'b']]) c.log.append('controller', `ev.cluster.${n}`, 'NodeUpdated', n!, { labelAdd: { zone: zone! }, user: 'u' });
  await c.call(api.serviceCreate, { name: 'web', replicas: 4, task: { image: 'busybox', args: ['x'] }, placementPrefs: ['spread=node.labels.zone'] });
  await c.rec.tick(); c.agents();
  // two per zone; spreading over nodes alone would give b1 one of four
  assert.equal(perNode(c.running()), { a1: 1, a2: 1, b1: 2 });
  const svc = Object.values(c.log.view.services!)[0]!;
  assert.equal(svc.spec.placementPrefs, ['spread=node.labels.zone']);
  await rejects(c.call(api.serviceCreate, { name: 'bad', task: { image: 'busybox' }, placementPrefs: ['spread=node.labels.zone', 'spread=zone'] }), 'invalid', /^invalid --placement-pref "spread=zone": use spread=node\.labels\.<name>/);
  assert.is(Object.values(c.log.view.services!).length, 1, 'nothing appended for the bad one');
  const packed = cluster(['n1', 'n2', 'n3']);
  const rec = new Reconciler({ ...packed.ctx, strategy: 'binpack' });
  await packed.call(api.serviceCreate, { name: 'web', replicas: 3, task: { image: 'busybox', args: ['x'] } });
  await rec.tick(); packed.agents();
  assert.equal(perNode(packed.running()), { n1: 3 });
});

test('services - global mode: one task per eligible node, following joins, drains and constraints', async () => {
  const c = cluster(['n1', 'n2']);
  await c.call(api.serviceCreate, { name: 'mon', mode: 'global', task: { image: 'busybox', args: ['x'] }, constraints: ['node.hostname!=n3'] });
  await c.rec.tick(); c.agents();
  assert.equal(perNode(c.running('mon')), { n1: 1, n2: 1 });
  c.log.join('n3'); c.log.join('n4');
  await c.rec.tick(); c.agents();
  assert.equal(perNode(c.running('mon')), { n1: 1, n2: 1, n4: 1 });
  c.log.append('controller', 'ev.cluster.n1', 'NodeUpdated', 'n1', { availability: 'drain', user: 'u' });
  await c.rec.tick(); c.agents();
  assert.equal(perNode(c.running('mon')), { n2: 1, n4: 1 });
  await rejects(c.call(api.serviceScale, { ref: 'mon', replicas: 3 }), 'invalid', /is global/);
});

test('services - hostile requests: one line each, nothing appended; a viewer may not write', async () => {
  const c = cluster(['n1'], { roles: { alice: 'admin', val: 'viewer' } });
  const before = c.log.events.length;
  const mk = (over: Record<string, unknown>) => ({ name: 'web', task: { image: 'busybox', args: ['x'] }, ...over });
  await rejects(c.call(api.serviceCreate, mk({ replicas: 1e15 }) as never), 'invalid', /^invalid --replicas 1000000000000000: at most 10000$/);
  await rejects(c.raw('service.create', mk({ replicas: -1 })), 'invalid', /replicas/);
  await rejects(c.raw('service.create', mk({ replicas: 1e300 })), 'invalid', /replicas/);
  await rejects(c.call(api.serviceCreate, mk({ constraints: ['node.labels.zone=a'] }) as never), 'invalid', /^invalid --constraint "node.labels.zone=a": use KEY==VALUE/);
  await rejects(c.call(api.serviceCreate, mk({ constraints: Array(40).fill('node.id==a') }) as never), 'invalid', /at most 32/);
  for (const name of ['../etc', 'a/b', 'web.1', '', '-x', 'x'.repeat(64), 'a\nb', 'a b']) {
    await rejects(c.call(api.serviceCreate, mk({ name }) as never), 'invalid', /^invalid --name /);
  }
  await rejects(c.call(api.serviceCreate, mk({ mode: 'both' }) as never), 'invalid', /invalid --mode/);
  await rejects(c.call(api.serviceCreate, mk({ mode: 'global', replicas: 2 }) as never), 'invalid', /no meaning with --mode global/);
  await rejects(c.call(api.serviceCreate, mk({ restartCondition: 'always' }) as never), 'invalid', /invalid --restart-condition/);
  await rejects(c.call(api.serviceCreate, mk({ task: { image: 'nope' } }) as never), 'not_found', /no such image "nope"/);
  await rejects(c.call(api.serviceCreate, mk({ task: { image: 'busybox', network: 'container:x' } }) as never), 'invalid', /not for services/);
  await rejects(c.raw('service.create', mk({ task: { image: 'busybox', env: ['NOEQUALS'] } })), 'invalid', /env/);
  await rejects(c.raw('service.create', { name: 'web' }), 'invalid', /task/);
  await rejects(c.raw('service.create', '\x00{'), 'invalid', /not JSON/);
  await rejects(c.call(api.serviceCreate, { ...mk({}), user: 'val' } as never), 'invalid', /permission denied: a viewer may not change services/);
  await rejects(c.call(api.servicePs, { ref: '__proto__' }), 'not_found', /no such service/);
  await rejects(c.call(api.serviceInspect, { ref: 'constructor' }), 'not_found', /no such service/);
  assert.is(c.log.events.length, before, 'nothing was appended');
  await c.call(api.serviceCreate, { ...mk({}), user: 'alice' } as never);
  await rejects(c.call(api.serviceCreate, mk({}) as never), 'conflict', /service "web" already exists/);
  await rejects(c.call(api.serviceScale, { ref: 'web', replicas: 10_001 }), 'invalid', /at most 10000/);
  await rejects(c.call(api.serviceScale, { ref: 'web', replicas: 2, user: 'val' }), 'invalid', /permission denied/);
  await rejects(c.call(api.serviceRm, { ref: 'web', user: 'val' }), 'invalid', /permission denied/);
  // a run with a bad constraint is refused the same way
  await rejects(c.call(api.run, { image: 'busybox', args: ['x'], constraints: ['node.zone==a'] }), 'invalid', /^invalid --constraint "node.zone==a"/);
  await rejects(c.call(api.run, { image: 'busybox', args: ['x'], constraints: ['node.labels.zone==a'] }), 'conflict', /^no node satisfies node.labels.zone==a$/);
});

test('tsctl - service flags become a request; bad ones are one-line errors naming the flag', () => {
  const o = { name: 'web', env: [], publish: ['8080:80'], constraint: ['node.labels.zone == a'], placementPref: ['spread=node.labels.rack'], replicas: '3', restartCondition: 'on-failure', restartMaxAttempts: '2', restartDelay: '1s', memory: '32m' };
  const r = serviceCreateRequest('busybox', ['httpd'], o as never, 'me');
  assert.equal(r.constraints, ['node.labels.zone==a']);
  assert.equal(r.placementPrefs, ['spread=node.labels.rack']);
  assert.is(r.replicas, 3); assert.is(r.restartDelayMs, 1000); assert.is(r.task.resources?.memory, 32 * 1024 * 1024);
  assert.equal(r.task.ports, [{ host: 8080, container: 80, proto: 'tcp' }]);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ replicas: '99999999999999999999' }, /invalid --replicas/], [{ replicas: '1e3' }, /invalid --replicas "1e3"/], [{ replicas: '20000' }, /at most 10000/],
    [{ name: 'a/b' }, /invalid --name/], [{ constraint: ['zone==a'] }, /invalid --constraint "zone==a"/], [{ mode: 'x' }, /invalid --mode/],
    [{ restartCondition: 'always' }, /invalid --restart-condition/], [{ restartDelay: 'soon' }, /invalid --restart-delay/],
    [{ placementPref: ['spread=node.hostname'] }, /invalid --placement-pref "spread=node.hostname"/],
  ];
  for (const [over, re] of bad) {
    assert.throws(() => serviceCreateRequest('busybox', [], { name: 'web', env: [], publish: [], ...over } as never, 'me'), (e: Error) => e instanceof CliError && re.test(e.message) && !e.message.includes('\n'), JSON.stringify(over));
  }
  assert.equal(scalePair('web=4'), { ref: 'web', replicas: 4 });
  assert.throws(() => scalePair('web'), /use SERVICE=REPLICAS/);
  assert.throws(() => scalePair('web=-1'), /a whole number/);
});

test('reducer - only the controller writes services: a node\'s ServiceCreated or forged task counter is ignored', () => {
  const c = cluster(['n1']);
  const sid = 'a'.repeat(24);
  const svc = { name: 'evil', mode: 'replicated' as const, replicas: 1, task: { image: 'busybox' }, restart: { condition: 'any' as const, maxAttempts: 0, delayMs: 0 } };
  c.log.append('node:n1', `ev.service.${sid}`, 'ServiceCreated', sid, { spec: svc, user: 'x' });
  assert.equal(c.log.view.services ?? {}, {});
  c.log.append('controller', `ev.service.${sid}`, 'ServiceCreated', sid, { spec: svc, user: 'x' });
  c.log.append('node:n1', `ev.service.${sid}`, 'ServiceUpdated', sid, { replicas: 50, user: 'x' });
  c.log.append('node:n1', `ev.service.${sid}`, 'ServiceRemoved', sid, { user: 'x' });
  assert.is(c.log.view.services![sid]!.spec.replicas, 1);
});

test.run();
