import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { eventLog } from './helpers/event-log.js';
import { MemLog } from './helpers/memlog.js';
import { SourceChain } from '../shared/codec.js';
import { emptyView, fold, reduce, findContainer } from '../shared/reducer.js';
import type { ContainerSpec, EventData, EventType, StoredEvent } from '../shared/events.js';

const spec: ContainerSpec = {
  name: 'web', image: 'busybox', imageDigest: `sha256:${'b'.repeat(64)}`, args: ['true'], env: [],
  hostname: 'web', workdir: '/', network: 'none', autoRemove: false,
};

const log = eventLog;

test('reducer - a container goes requested, running, exited, removed', () => {
  const { events, add } = log();
  add('node:n1', 'NodeJoined', 'n1', { hostname: 'h', cpus: 2, memory: 1e9, kernel: '6', features: [], version: '1' });
  add('controller', 'ContainerRequested', 'c1', { node: 'n1', spec, user: 'u' });
  let v = fold(events);
  assert.is(v.containers.c1.state, 'created');
  assert.is(v.nodes.n1.cpus, 2);
  add('node:n1', 'ContainerStarted', 'c1', { pid: 42, receivedAt: 1, runningAt: 2 });
  v = fold(events);
  assert.is(v.containers.c1.state, 'running');
  assert.is(v.containers.c1.pid, 42);
  add('node:n1', 'ContainerExited', 'c1', { exitCode: 7, oomKilled: false, exitedAt: 3 });
  v = fold(events);
  assert.is(v.containers.c1.state, 'exited');
  assert.is(v.containers.c1.exitCode, 7);
  assert.is(v.containers.c1.pid, undefined);
  add('controller', 'ContainerRemoveRequested', 'c1', { force: false, user: 'u' });
  add('node:n1', 'ContainerRemoved', 'c1', { reason: 'requested' });
  v = fold(events);
  assert.is(v.containers.c1, undefined);
  assert.is(v.seq, events.length);
  assert.equal(v.chainIssues, []);
});

test('reducer - folding twice, or a replayed prefix, changes nothing', () => {
  const { events, add } = log();
  add('controller', 'ContainerRequested', 'c1', { node: 'n1', spec, user: 'u' });
  add('node:n1', 'ContainerStarted', 'c1', { pid: 1, receivedAt: 1, runningAt: 2 });
  const once = fold(events);
  const again = fold(events, fold(events));
  assert.equal(again, once);
});

test('reducer - fold of a prefix plus the tail equals the fold of all (snapshot + tail)', () => {
  const { events, add } = log();
  for (let i = 0; i < 5; i++) add('controller', 'ContainerRequested', `c${i}`, { node: 'n1', spec: { ...spec, name: `n${i}` }, user: 'u' });
  const snap = JSON.parse(JSON.stringify(fold(events.slice(0, 3))));
  assert.equal(fold(events.slice(3), snap), fold(events));
});

test('reducer - a tampered chain is reported, not crashed on', () => {
  const { events, add } = log();
  add('controller', 'ContainerRequested', 'c1', { node: 'n1', spec, user: 'u' });
  add('controller', 'ContainerStopRequested', 'c1', { timeout: 1, user: 'u' });
  add('controller', 'ContainerStopRequested', 'c1', { timeout: 2, user: 'u' });
  const cut = [events[0], events[2]]; // the middle event deleted
  const v = fold(cut);
  assert.is(v.chainIssues.length, 1);
  assert.match(v.chainIssues[0].problem, /srcSeq 3, expected 2/);
  const edited = [events[0], { ...events[1], hash: 'f'.repeat(64) }, events[2]];
  assert.is(fold(edited).chainIssues.length, 1);
});

test('reducer - events for unknown containers are ignored', () => {
  const { events, add } = log();
  add('node:n1', 'ContainerStarted', 'ghost', { pid: 1, receivedAt: 1, runningAt: 1 });
  assert.equal(fold(events).containers, {});
});

test('reducer - rejections and images are kept', () => {
  const { events, add } = log();
  add('controller', 'ImageImported', 'x', { name: 'busybox', digest: spec.imageDigest, size: 10, user: 'u' });
  add('node:n1', 'EventRejected', 'c9', { reason: 'bad', rejectedSeq: 1 });
  const v = fold(events);
  assert.is(v.images.busybox.size, 10);
  assert.is(v.rejections[0].reason, 'bad');
  add('controller', 'ImageRemoved', 'x', { name: 'busybox', digest: spec.imageDigest, user: 'u' });
  assert.equal(fold(events).images, {});
});

test('reducer - find by name, id and unique id prefix', () => {
  const v = emptyView();
  const { events, add } = log();
  add('controller', 'ContainerRequested', 'abc123', { node: 'n1', spec, user: 'u' });
  add('controller', 'ContainerRequested', 'abd456', { node: 'n1', spec: { ...spec, name: 'db' }, user: 'u' });
  for (const e of events) reduce(v, e);
  assert.is(findContainer(v, 'web')?.id, 'abc123');
  assert.is(findContainer(v, 'abd')?.id, 'abd456');
  assert.is(findContainer(v, 'ab'), undefined);
  assert.is(findContainer(v, 'abc123')?.name, 'web');
});

test('reducer - a container\'s desire position moves only for an event on exactly ev.desired.<its node>.<its id>', () => {
  const log = new MemLog();
  log.join('n1');
  const id = 'ab'.repeat(32);
  const req = log.append('controller', `ev.desired.n1.${id}`, 'ContainerRequested', id, { node: 'n1', spec, user: 'u' });
  assert.is(log.view.containers[id]!.dseq, req.seq);
  // near misses: each differs from the subject in one place (prefix, node, separator, id, length)
  for (const subject of [`ev.desirEd.n1.${id}`, `ev.desired.n2.${id}`, `ev.desired.n1_${id}`, `ev.desired.n1.${id.slice(0, -1)}c`,
    `ev.desired.n1.${id}.x`, `ev.desired.n1.${id.slice(1)}`, `ev.desired.n11.${id}`, `ev.desired.n.${id}`, `xev.desired.n1.${id}`]) {
    log.append('controller', subject, 'ContainerStartRequested', id, { user: 'u' });
    assert.is(log.view.containers[id]!.dseq, req.seq, subject);
  }
  const stop = log.append('controller', `ev.desired.n1.${id}`, 'ContainerStopRequested', id, { timeout: 1, user: 'u' });
  assert.is(log.view.containers[id]!.dseq, stop.seq);
});

test.run();
