// A plain container whose node went down before it started (issue 11): what the log's view
// says of it (shared/reducer.ts strand) and how tsctl reads the controller's verdicts
// (tsctl/node-watch.ts), forged and junk ones included. Pure: no cluster.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { eventLog } from './helpers/event-log.js';
import { encodeEvent } from '../shared/codec.js';
import { downBeforeStart, fold, indexOf, reduce, emptyView } from '../shared/reducer.js';
import { subjects } from '../shared/subjects.js';
import { status } from '../tsctl/format.js';
import { DownNodes, verdictOf, watchNodes } from '../tsctl/node-watch.js';
import type { NatsConnection } from 'nats';
import type { ContainerSpec } from '../shared/events.js';
import { permissions, type Identity } from '../shared/nats/trust.js';
import { subjectMatches } from './helpers/subject-match.js';

const spec = (name: string): ContainerSpec => ({
  name, image: 'busybox', imageDigest: `sha256:${'b'.repeat(64)}`, args: ['true'], env: [],
  hostname: name, workdir: '/', network: 'none', autoRemove: false,
});
const joined = { cpus: 2, memory: 1e9, kernel: '6', features: [], version: '1' };

function cluster() {
  const l = eventLog();
  l.add('node:n1', 'NodeJoined', 'n1', { hostname: 'h1', ...joined });
  l.add('node:n2', 'NodeJoined', 'n2', { hostname: 'h2', ...joined });
  return l;
}

test('node-lost - a run its node never started says why once the node is down; the others are untouched', () => {
  const { events, add } = cluster();
  add('controller', 'ContainerRequested', 'pending', { node: 'n1', spec: spec('pending'), user: 'u' });
  add('controller', 'ContainerRequested', 'up', { node: 'n1', spec: spec('up'), user: 'u' });
  add('node:n1', 'ContainerStarted', 'up', { pid: 5, receivedAt: 1, runningAt: 2 });
  add('controller', 'ContainerRequested', 'made', { node: 'n1', spec: spec('made'), user: 'u', create: true });
  add('controller', 'ContainerRequested', 'other', { node: 'n2', spec: spec('other'), user: 'u' });
  add('controller', 'NodeDown', 'n1', { silenceMs: 3000 });
  const v = fold(events);
  assert.is(v.nodes.n1.state, 'down');
  assert.is(v.containers.pending.state, 'created', 'still created: nothing of it ran');
  assert.is(v.containers.pending.error, downBeforeStart('n1'));
  assert.is(v.containers.pending.lastSeq, events.length);
  assert.is(status(v.containers.pending), `Created: node n1 went down before it started`);
  assert.is(v.containers.up.error, undefined, 'a running one is not said to have never started');
  assert.is(v.containers.made.error, undefined, 'a created one (tsctl create) was not to start');
  assert.is(v.containers.other.error, undefined, 'another node\'s');
  assert.is(v.containers.other.node, 'n2');
  assert.is(v.containers.pending.node, 'n1', 'not placed again: a plain container waits for its node');
});

test('node-lost - the node back starts it: the start clears the reason; a later NodeDown leaves a started one alone', () => {
  const { events, add } = cluster();
  add('controller', 'ContainerRequested', 'c1', { node: 'n1', spec: spec('c1'), user: 'u' });
  add('controller', 'NodeDown', 'n1', { silenceMs: 3000 });
  add('controller', 'NodeReady', 'n1', { downMs: 10 });
  assert.is(fold(events).containers.c1.error, downBeforeStart('n1'), 'back, but not started yet: still true');
  add('node:n1', 'ContainerStarted', 'c1', { pid: 5, receivedAt: 1, runningAt: 2 });
  const v = fold(events);
  assert.is(v.containers.c1.state, 'running');
  assert.is(v.containers.c1.error, undefined);
  add('controller', 'NodeDown', 'n1', { silenceMs: 3000 });
  assert.is(fold(events).containers.c1.error, undefined);
});

test('node-lost - a run requested on a node the log has down already (its append raced the NodeDown) says the same', () => {
  const { events, add } = cluster();
  add('controller', 'NodeDown', 'n1', { silenceMs: 3000 });
  add('controller', 'ContainerRequested', 'late', { node: 'n1', spec: spec('late'), user: 'u' });
  add('controller', 'ContainerRequested', 'made', { node: 'n1', spec: spec('made'), user: 'u', create: true });
  const v = fold(events);
  assert.is(v.containers.late.error, downBeforeStart('n1'));
  assert.is(v.containers.made.error, undefined);
  // tsctl start of the created one while n1 is down: ps -a says why it waits, as for the run's
  add('controller', 'ContainerStartRequested', 'made', { user: 'u' });
  const w = fold(events);
  assert.is(w.containers.made.error, downBeforeStart('n1'));
  assert.is(status(w.containers.made), 'Created: node n1 went down before it started');
  add('node:n1', 'ContainerStarted', 'made', { pid: 5, receivedAt: 1, runningAt: 2 });
  assert.is(fold(events).containers.made.error, undefined);
});

test('node-lost - only the controller\'s NodeDown counts: a node\'s own (forged) one changes nothing', () => {
  const { events, add } = cluster();
  add('controller', 'ContainerRequested', 'c1', { node: 'n1', spec: spec('c1'), user: 'u' });
  add('node:n2', 'NodeDown', 'n1', { silenceMs: 3000 });
  add('node:n1', 'NodeDown', 'n1', { silenceMs: 3000 });
  const v = fold(events);
  assert.is(v.nodes.n1.state, 'ready');
  assert.is(v.containers.c1.error, undefined);
});

test('node-lost - with an index (the controller\'s view), deferred or not, and from a snapshot: the same view, and the change is tracked', () => {
  const { events, add } = cluster();
  for (let i = 0; i < 4; i++) add('controller', 'ContainerRequested', `c${i}`, { node: i % 2 ? 'n2' : 'n1', spec: spec(`c${i}`), user: 'u' });
  const cut = events.length;
  add('controller', 'NodeDown', 'n1', { silenceMs: 3000 });
  const plain = fold(events);
  for (const deferred of [false, true]) {
    const v = fold(events.slice(0, cut));
    const ix = indexOf(v);
    if (deferred) ix.defer();
    const tracked = { containers: new Set<string>(), nodes: new Set<string>() };
    ix.trackers.add(tracked);
    for (const e of events.slice(cut)) reduce(v, e);
    assert.equal(v.containers, plain.containers, `deferred ${deferred}`);
    assert.equal([...tracked.containers].sort(), ['c0', 'c2'], 'a snapshot writer learns which containers changed');
    assert.equal([...ix.onNode('n1')].sort(), ['c0', 'c2']);
  }
  const snap = JSON.parse(JSON.stringify(fold(events.slice(0, cut))));
  assert.equal(fold(events.slice(cut), snap).containers, plain.containers);
  assert.equal(fold(events, emptyView()).containers.c1.error, undefined);
});

test('node-lost - verdictOf: only a controller\'s NodeDown/NodeReady on its own node\'s subject', () => {
  const { add } = eventLog();
  const down = add('controller', 'NodeDown', 'n1', { silenceMs: 3000 });
  const ready = add('controller', 'NodeReady', 'n1', {});
  assert.equal(verdictOf(subjects.cluster('n1'), encodeEvent(down)), { node: 'n1', down: true });
  assert.equal(verdictOf(subjects.cluster('n1'), encodeEvent(ready)), { node: 'n1', down: false });
  // another node's subject: the entity does not name the subject's node
  assert.is(verdictOf(subjects.cluster('n2'), encodeEvent(down)), undefined);
  // a writer that is not the controller (the server refuses it anyway: shared/nats/trust.ts)
  const forged = eventLog().add('node:n2', 'NodeDown', 'n1', { silenceMs: 3000 });
  assert.is(verdictOf(subjects.cluster('n1'), encodeEvent(forged)), undefined);
  const other = eventLog().add('controller', 'NodeUpdated', 'n1', { availability: 'drain', user: 'u' });
  assert.is(verdictOf(subjects.cluster('n1'), encodeEvent(other)), undefined);
  for (const junk of [new Uint8Array(0), new Uint8Array([0xc1]), new TextEncoder().encode('{"type":"NodeDown"}'), encodeEvent(down).subarray(0, 20)]) {
    assert.is(verdictOf(subjects.cluster('n1'), junk), undefined);
  }
});

test('node-lost - DownNodes: a verdict heard before the node is known counts, a later NodeReady undoes it, a heard verdict beats a seed', () => {
  const a = new DownNodes();
  assert.is(a.hear({ node: 'n1', down: true }), false, 'no node waited on yet');
  assert.is(a.placed('n1'), true, 'down before the reply named it');
  const b = new DownNodes();
  b.hear({ node: 'n1', down: true });
  b.hear({ node: 'n1', down: false });
  assert.is(b.placed('n1'), false, 'down and back before the reply');
  assert.is(b.hear({ node: 'n2', down: true }), false, 'another node');
  assert.is(b.hear({ node: 'n1', down: true }), true);
  const c = new DownNodes();
  c.placed('n1');
  c.hear({ node: 'n1', down: false });
  assert.is(c.seed(['n1']), false, 'the seed is older than what was heard');
  const d = new DownNodes();
  d.placed('n3');
  assert.is(d.seed(['n1']), false);
  assert.is(d.seed(['n3']), true, 'down already when the watch began');
});

test('node-lost - the verdicts\' subject: the controller alone publishes there; operators and admins may read it, viewers not', () => {
  const ids: Identity[] = [{ name: 'controller', kind: 'controller', key: 'K' }, { name: 'node-a', kind: 'agent', node: 'a', key: 'A' },
    { name: 'alice', kind: 'user', role: 'admin', key: 'C' }, { name: 'olive', kind: 'user', role: 'operator', key: 'O' },
    { name: 'vera', kind: 'user', role: 'viewer', key: 'V' }];
  const matches = subjectMatches;
  const verdict = subjects.cluster('a');
  const may = (who: Identity, what: 'publish' | 'subscribe') => {
    const g = permissions(who, ids)[what];
    return g.allow.some((x) => matches(x, verdict)) && !(g.deny ?? []).some((x) => matches(x, verdict));
  };
  assert.ok(may(ids[0], 'publish'));
  for (const who of ids.slice(1)) assert.not.ok(may(who, 'publish'), `${who.name} may publish a verdict`);
  assert.ok(may(ids[2], 'subscribe'));
  assert.ok(may(ids[3], 'subscribe'));
  assert.not.ok(may(ids[4], 'subscribe'), 'a viewer reads the verdicts');
});

/** A connection that hands the test the ev.cluster.* subscription's callback. */
function fakeConn() {
  let cb: ((err: Error | null, m: { subject: string; data: Uint8Array }) => void) | undefined;
  let unsubscribed = false;
  const c = { subscribe: (_s: string, o: { callback: typeof cb }) => { cb = o.callback; return { unsubscribe: () => { unsubscribed = true; } }; } };
  const deliver = (node: string, type: 'NodeDown' | 'NodeReady') =>
    cb!(null, { subject: subjects.cluster(node), data: encodeEvent(eventLog().add('controller', type, node, type === 'NodeDown' ? { silenceMs: 1 } : {})) });
  return { c: c as unknown as NatsConnection, deliver, unsubscribed: () => unsubscribed };
}
const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('node-lost - watchNodes: a NodeDown heard (forged or replayed: the subject proves nothing) ends the wait only once the controller has the node down', async () => {
  // the controller says ready: a forged verdict, asked about a few times, then let be
  const asked: string[] = [];
  const f = fakeConn();
  const w = watchNodes(f.c, 'n1', async (n) => { asked.push(n); return false; });
  let fired = false;
  void w.down.then(() => { fired = true; });
  f.deliver('n1', 'NodeDown');
  await settle(50);
  assert.ok(asked.length >= 1, 'the controller was not asked');
  assert.not.ok(fired, 'a NodeDown the controller does not hold ended the wait');
  w.cancel();
  const n = asked.length;
  await settle(700);
  assert.is(asked.length, n, 'asked on after the cancel');
  assert.ok(f.unsubscribed());
  assert.not.ok(fired);
  // the controller folds its NodeDown a moment after the verdict is heard: asked again until it has it
  const g = fakeConn();
  let k = 0;
  const w2 = watchNodes(g.c, undefined, async () => ++k >= 3);
  g.deliver('n2', 'NodeDown');
  w2.placed('n2');
  assert.is(await Promise.race([w2.down, settle(3000).then(() => 'timeout')]), 'n2');
  assert.is(k, 3);
  w2.cancel();
  // heard down, then ready before the controller confirmed: not ended
  const h = fakeConn();
  let asks = 0;
  const w3 = watchNodes(h.c, 'n3', async () => { asks += 1; await settle(100); return true; });
  let fired3 = false;
  void w3.down.then(() => { fired3 = true; });
  h.deliver('n3', 'NodeDown');
  h.deliver('n3', 'NodeReady');
  await settle(300);
  assert.is(asks, 1);
  assert.not.ok(fired3, 'ended on a verdict undone before the controller answered');
  w3.cancel();
});

test.run();
