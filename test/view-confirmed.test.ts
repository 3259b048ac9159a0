// The view folds only what the owning side confirmed: desired events from the controller, a
// container's state from its node, a node's join from itself; what a node refused shows as
// refused and can be removed; a node can be removed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ContainerSpec } from '../shared/events.js';
import { controllerApi as api } from '../shared/api/controller.js';
import { apiTable, serialiser, type ApiContext } from '../controller/api/index.js';
import { dispatcher } from '../shared/nats/rpc.js';
import { decodeReply, encodeBody, type Verb } from '../shared/rpc.js';
import { MemLog } from './helpers/memlog.js';

const ID = 'd'.repeat(64);
const spec: ContainerSpec = { name: 'web', image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['true'], env: [], hostname: 'h', workdir: '/', network: 'none', autoRemove: false };

test('view - state from another node, or desired events from a node, change nothing', () => {
  const log = new MemLog();
  log.join('n1'); log.join('n2');
  log.append('controller', `ev.desired.n1.${ID}`, 'ContainerRequested', ID, { node: 'n1', spec, user: 'u' });
  log.append('node:n2', `ev.state.n2.${ID}`, 'ContainerStarted', ID, { pid: 1, receivedAt: 1, runningAt: 1 });
  log.append('node:n2', `ev.state.n2.${ID}`, 'ContainerRemoved', ID, { reason: 'forged' });
  assert.is(log.view.containers[ID].state, 'created');
  const other = 'e'.repeat(64);
  log.append('node:n1', `ev.desired.n1.${other}`, 'ContainerRequested', other, { node: 'n1', spec, user: 'u' });
  assert.is(log.view.containers[other], undefined, 'a node cannot ask for containers');
  log.append('node:n1', `ev.state.n1.${ID}`, 'ContainerStarted', ID, { pid: 7, receivedAt: 1, runningAt: 2 });
  assert.is(log.view.containers[ID].state, 'running');
});

test('view - a node joins only as itself; entities named after Object.prototype are plain keys', () => {
  const log = new MemLog();
  log.append('node:n1', 'ev.node.ghost', 'NodeJoined', 'ghost', { hostname: 'g', cpus: 64, memory: 1, kernel: 'x', features: [], version: 'x' });
  assert.equal(Object.keys(log.view.nodes), []);
  log.append('node:n1', 'ev.state.n1.constructor', 'ContainerStarted', 'constructor', { pid: 1, receivedAt: 1, runningAt: 1 });
  assert.is(({} as Record<string, unknown>).constructor, Object, 'Object.prototype untouched');
  assert.equal(Object.keys(log.view.containers), []);
});

test('view - a request its node refused is "rejected" with the reason, and rm forgets it; "gone" drops a container', () => {
  const log = new MemLog();
  log.join('n1');
  const r = log.append('controller', `ev.desired.n1.${ID}`, 'ContainerRequested', ID, { node: 'n1', spec, user: 'u' });
  log.append('node:n1', `ev.state.n1.${ID}`, 'EventRejected', ID, { reason: 'placed on node n9, this is n1', rejectedSeq: r.seq, rejectedId: r.id, rejectedType: 'ContainerRequested' }, r.id);
  assert.is(log.view.containers[ID].state, 'rejected');
  assert.match(log.view.containers[ID].error!, /placed on node n9/);
  log.append('controller', `ev.desired.n1.${ID}`, 'ContainerRemoveRequested', ID, { force: false, user: 'u' });
  assert.is(log.view.containers[ID], undefined);
  const x = 'f'.repeat(64);
  log.append('controller', `ev.desired.n1.${x}`, 'ContainerRequested', x, { node: 'n1', spec: { ...spec, name: 'x' }, user: 'u' });
  log.append('node:n1', `ev.state.n1.${x}`, 'ContainerStarted', x, { pid: 3, receivedAt: 1, runningAt: 1 });
  log.append('controller', `ev.desired.n1.${x}`, 'ContainerRemoveRequested', x, { force: true, user: 'u' });
  assert.is(log.view.containers[x].state, 'removing');
  log.append('node:n1', `ev.state.n1.${x}`, 'EventRejected', x, { reason: 'no container', rejectedSeq: 9, gone: true });
  assert.is(log.view.containers[x], undefined, 'removing forever no more');
});

function api2(log: MemLog) {
  const ctx: ApiContext = {
    view: () => log.view, append: async (subject, type, entity, data) => log.append('controller', subject, type, entity, data),
    waitFor: async () => undefined, until: async () => undefined, images: { info: async () => null, delete: async () => undefined },
  };
  const d = dispatcher(apiTable(ctx), { serialise: serialiser() });
  return async <Q, P>(v: Verb<Q, P>, req: Q): Promise<P> => decodeReply<P>(await d(v.name, encodeBody(req)));
}

test('view - node rm: refused while it has containers, forced drops them, unknown is not found', async () => {
  const log = new MemLog();
  log.join('n1'); log.join('ghost');
  log.append('controller', `ev.desired.ghost.${ID}`, 'ContainerRequested', ID, { node: 'ghost', spec, user: 'u' });
  const call = api2(log);
  await call(api.nodeRm, { node: 'ghost' }).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /still has 1 container \(web\): remove them first or use --force/));
  await call(api.nodeRm, { node: 'ghost', force: true });
  assert.equal(Object.keys(log.view.nodes), ['n1']);
  assert.equal(Object.keys(log.view.containers), []);
  assert.is(log.events.at(-1)!.subject, 'ev.cluster.ghost');
  await call(api.nodeRm, { node: 'nope' }).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /no such node "nope"/));
  // a rejected container cannot be stopped, only removed
  const y = '1'.repeat(64);
  const r = log.append('controller', `ev.desired.n1.${y}`, 'ContainerRequested', y, { node: 'n1', spec: { ...spec, name: 'y' }, user: 'u' });
  log.append('node:n1', `ev.state.n1.${y}`, 'EventRejected', y, { reason: 'bad', rejectedSeq: r.seq, rejectedType: 'ContainerRequested' });
  await call(api.stop, { ref: 'y' }).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /was refused by node n1: bad \(tsctl rm removes it\)/));
  const d = await call(api.rm, { ref: 'y' });
  assert.is(d.state, 'rejected');
  assert.is(log.view.containers[y], undefined);
});

test.run();
