// Fencing of what acts on a container (controller/lease.ts desiredExpect), without a server:
// two controllers that both believe they lead, one with a stale view, over an in-memory log
// with JetStream's expected-last-subject-sequence rule, the real codec, reducer and verb table.
// The stale one's stop, kill, rm, update, pause and rename are refused in one line and append
// nothing; the fresh one's go through.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { apiTable, serialiser, type ApiContext } from '../controller/api/index.js';
import { dispatcher } from '../shared/nats/rpc.js';
import { decodeReply, encodeBody, RpcError, conflict, type Verb } from '../shared/rpc.js';
import { controllerApi as api } from '../shared/api/controller.js';
import { fold, type ClusterView } from '../shared/reducer.js';
import { desiredExpect } from '../controller/lease.js';
import { MemLog } from './helpers/memlog.js';
import { Membership, decide } from '../controller/membership.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

function setup(o: { nodes?: string[]; silent?: (n: string) => string | undefined } = {}) {
  const log = new MemLog();
  for (const n of o.nodes ?? ['n1']) log.join(n);
  log.append('controller', `ev.image.${DIGEST.slice(7)}`, 'ImageImported', DIGEST.slice(7), { name: 'busybox', digest: DIGEST, size: 1, user: 'u' });
  const refused: string[] = [];
  /** a controller whose view is `view`: its desires fenced as main.ts fences them */
  const controller = (view: () => ClusterView) => {
    const ctx: ApiContext = {
      view,
      append: async (subject, type, entity, data) => log.append('controller', subject, type, entity, data),
      appendFenced: async (subject, type, entity, data, expect) => {
        const last = log.events.filter((e) => e.subject === subject).at(-1)?.seq ?? 0;
        if (last !== expect) { refused.push(type); throw conflict(`container ${entity.slice(0, 12)} was just changed by another controller: this one no longer leads`); }
        return log.append('controller', subject, type, entity, data);
      },
      firstSeq: () => 1,
      ...(o.silent ? { silent: o.silent } : {}),
      waitFor: async () => undefined,
      until: async (cond) => { if (!cond()) throw new Error('no answer'); },
      images: { info: async () => null, delete: async () => undefined },
    };
    const d = dispatcher(apiTable(ctx), { serialise: serialiser() });
    return async <Q, P>(v: Verb<Q, P>, req: Q): Promise<P> => decodeReply<P>(await d(v.name, encodeBody(req)));
  };
  const started = (id: string) => log.append('node:n1', `ev.state.n1.${id}`, 'ContainerStarted', id, { pid: 100, receivedAt: 1, runningAt: Date.now() });
  return { log, refused, controller, started };
}

const rejects = async (p: Promise<unknown>, re: RegExp) => {
  try { await p; } catch (err) {
    assert.instance(err, RpcError);
    assert.is((err as RpcError).code, 'conflict', (err as Error).message);
    assert.match((err as Error).message, re);
    assert.not.match((err as Error).message, /\n/, 'one line');
    return;
  }
  assert.unreachable('expected a refusal');
};

test('fence - desiredExpect: the view\'s last desire, 0 once purged, undefined when the view does not know', () => {
  assert.is(desiredExpect({ dseq: 42 }, 1), 42);
  assert.is(desiredExpect({ dseq: 42 }, 43), 0);
  assert.is(desiredExpect({}, 1), undefined);
});

test('fence - the reducer keeps each container\'s last desire position, not its node\'s events', async () => {
  const s = setup();
  const fresh = s.controller(() => s.log.view);
  const { id } = await fresh(api.run, { image: 'busybox', name: 'web', args: ['sleep', '1'] });
  const req = s.log.events.find((e) => e.event.type === 'ContainerRequested')!;
  assert.is(s.log.view.containers[id]!.dseq, req.seq);
  s.started(id);
  assert.is(s.log.view.containers[id]!.dseq, req.seq, 'a node\'s event is on another subject');
  // an event on another subject about the container (not its desired one) moves nothing
  s.log.append('controller', 'ev.desired.n9.x', 'ContainerKillRequested', id, { signal: 'SIGKILL', user: 'u' });
  assert.is(s.log.view.containers[id]!.dseq, req.seq);
});

test('fence - two leaders, one with a stale view: its stop, kill, rm, update, pause, rename are refused in one line and append nothing', async () => {
  const s = setup();
  const fresh = s.controller(() => s.log.view);
  const { id } = await fresh(api.run, { image: 'busybox', name: 'web', args: ['sleep', '100'] });
  s.started(id);
  const stale = fold(s.log.events); // the deposed controller's view stops here
  const old = s.controller(() => stale);
  // the new leader acts on the container
  await fresh(api.kill, { ref: 'web', signal: 'TERM' });
  const before = s.log.events.length;
  await rejects(old(api.stop, { ref: 'web' }), /changed by another controller/);
  await rejects(old(api.kill, { ref: 'web' }), /changed by another controller/);
  await rejects(old(api.rm, { ref: 'web', force: true }), /changed by another controller/);
  await rejects(old(api.update, { ref: 'web', resources: { cpus: 0.5 } }), /changed by another controller/);
  await rejects(old(api.pause, { ref: 'web' }), /changed by another controller/);
  await rejects(old(api.rename, { ref: 'web', name: 'web2' }), /changed by another controller/);
  assert.is(s.log.events.length, before, 'nothing appended by the stale controller');
  assert.is(s.refused.length, 6);
  // the leader's own next desires go through (its view has its own writes)
  await fresh(api.stop, { ref: 'web' });
  await fresh(api.rm, { ref: 'web', force: true });
  const kinds = s.log.events.filter((e) => e.event.entity === id && e.event.src === 'controller').map((e) => e.event.type);
  assert.equal(kinds, ['ContainerRequested', 'ContainerKillRequested', 'ContainerStopRequested', 'ContainerRemoveRequested']);
});

test('fence - a desire whose subject was purged expects nothing there; a view that does not know goes unfenced', async () => {
  const s = setup();
  const fresh = s.controller(() => s.log.view);
  const { id } = await fresh(api.run, { image: 'busybox', name: 'web', args: ['sleep', '100'] });
  s.started(id);
  delete s.log.view.containers[id]!.dseq; // as from a snapshot made before dseq
  await fresh(api.stop, { ref: 'web' });
  assert.is(s.refused.length, 0);
  assert.ok(s.log.view.containers[id]!.dseq! > 0, 'known again from its next desire');
});

test('failover - a run passes over a node not heard from while another can take it, and goes there when none can', async () => {
  let quiet = new Set(['n1']);
  const s = setup({ nodes: ['n1', 'n2'], silent: (n) => (quiet.has(n) ? `node ${n} not heard from for 2000 ms` : undefined) });
  const run = s.controller(() => s.log.view);
  const placed = [];
  for (let i = 0; i < 4; i++) placed.push((await run(api.run, { image: 'busybox', name: `r${i}`, args: ['x'] })).node);
  assert.equal(placed, ['n2', 'n2', 'n2', 'n2']);
  quiet = new Set(['n1', 'n2']);
  assert.ok(['n1', 'n2'].includes((await run(api.run, { image: 'busybox', name: 'any', args: ['x'] })).node), 'placed all the same');
});

test('failover - a run sent again (same container id, same user) is answered as the first was; nothing is placed twice', async () => {
  const s = setup();
  const run = s.controller(() => s.log.view);
  const id = 'ab'.repeat(32);
  const first = await run(api.run, { id, image: 'busybox', name: 'once', args: ['x'], user: 'u' } as never);
  const again = await run(api.run, { id, image: 'busybox', name: 'once', args: ['x'], user: 'u' } as never);
  assert.equal(again, first);
  assert.is(s.log.events.filter((e) => e.event.type === 'ContainerRequested').length, 1);
  // another image or name under that id is not the same request
  try { await run(api.run, { id, image: 'busybox', name: 'other', args: ['x'], user: 'u' } as never); assert.unreachable('a different request'); } catch (err) {
    assert.match((err as Error).message, /already exists/);
  }
});

test('failover - Membership.silent: a node not heard for half the silence (at least 1.5 s), counted from the start when never heard', () => {
  const m = new Membership({ view: () => new MemLog().view, append: async () => undefined, silenceMs: 3000 });
  const t0 = Date.now();
  assert.is(m.silent('n1', t0 + 1000), undefined);
  assert.match(m.silent('n1', t0 + 2000) ?? '', /^node n1 not heard from for \d+ ms$/);
  const slow = new Membership({ view: () => new MemLog().view, append: async () => undefined, silenceMs: 10_000 });
  assert.is(slow.silent('n1', t0 + 4000), undefined);
  assert.ok(slow.silent('n1', t0 + 6000));
});

test('failover - a silence counts from when the controller could hear (its start, its reconnect), not from beats it missed itself', () => {
  const log = new MemLog();
  log.join('n1');
  const t0 = 1_000_000;
  const seen = new Map([['n1', t0 - 10_000]]); // heard last long ago, before our own connection came back at t0
  assert.equal(decide(log.view, seen, new Map(), t0 + 1000, 3000, t0).down, []);
  assert.equal(decide(log.view, seen, new Map(), t0 + 4000, 3000, t0).down.map((d) => d.node), ['n1']);
});

test.run();
