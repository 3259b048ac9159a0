// The node's side of named volumes, without root: the directory made and removed by the agent's
// action, a removal refused while a container (in the checkpoint, or being made) names it, a
// request for another node refused, hostile names refused before any path is formed; the
// reducer's view of the events; entities that are always one subject token.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as actions from '../agent/pipeline/actions.js';
import { NodeVolumes, VolumeError } from '../agent/storage/volumes.js';
import { SourceChain } from '../shared/codec.js';
import type { EventData, EventType, StoredEvent } from '../shared/events.js';
import { emptyView, reduce } from '../shared/reducer.js';
import { volumeEntity } from '../shared/volumes.js';
import { ENTITY_RE } from '../shared/ids.js';
import { classify } from '../agent/pipeline/triage.js';
import { encodeEvent } from '../shared/codec.js';

const rejects = async (p: Promise<unknown>, re: RegExp) => {
  try { await p; } catch (e) { assert.match((e as Error).message, re); return; }
  assert.unreachable(`resolved, expected ${re}`);
};

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'swl-vol-'));
  const users = new Map<string, string[]>();
  const volumes = new NodeVolumes(join(dir, 'volumes'), (n) => [...(users.get(n) ?? [])]);
  const ctx = { node: 'n1', volumes, host: {} as never, networks: {} as never, record: () => undefined, progress: () => undefined } as actions.ActionContext;
  const chain = new SourceChain('controller');
  let seq = 0;
  const desired = <T extends EventType>(type: T, data: EventData[T]) => {
    const { event, hash } = chain.next(type, volumeEntity((data as { name: string }).name), data);
    chain.commit(event.srcSeq, hash);
    return { seq: ++seq, hash, event } as never;
  };
  return { dir, volumes, users, ctx, desired, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('volume action - create makes <volumes>/<name>/_data (idempotent, data kept); remove takes it all', async () => {
  const s = setup();
  try {
    const o = await actions.volume(s.ctx, s.desired('VolumeCreateRequested', { node: 'n1', name: 'data', user: 'u' }));
    assert.equal(o.events.map((e) => e.type), ['VolumeCreated']);
    const mp = join(s.dir, 'volumes', 'data', '_data');
    assert.equal(o.events[0]!.data, { name: 'data', mountpoint: mp });
    writeFileSync(join(mp, 'f'), 'x');
    await actions.volume(s.ctx, s.desired('VolumeCreateRequested', { node: 'n1', name: 'data', user: 'u' }));
    assert.ok(existsSync(join(mp, 'f')), 'a second create keeps the data');
    const r = await actions.volume(s.ctx, s.desired('VolumeRemoveRequested', { node: 'n1', name: 'data', user: 'u' }));
    assert.equal(r.events.map((e) => e.type), ['VolumeRemoved']);
    assert.equal(readdirSync(join(s.dir, 'volumes')), []);
  } finally { s.done(); }
});

test('volume action - removal refused while a container names it (recorded or being made); the data stays', async () => {
  const s = setup();
  try {
    s.volumes.create('db');
    s.users.set('db', ['a'.repeat(64)]);
    const o = await actions.volume(s.ctx, s.desired('VolumeRemoveRequested', { node: 'n1', name: 'db', user: 'u' }));
    assert.equal(o.events.map((e) => e.type), ['EventRejected']);
    assert.match((o.events[0]!.data as { reason: string }).reason, /volume db is in use by container aaaaaaaaaaaa: remove it first/);
    assert.ok(existsSync(join(s.dir, 'volumes', 'db', '_data')));
    s.users.clear();
    const release = s.volumes.hold(['db']);
    await rejects(s.volumes.remove('db'), /in use by container \(a container being made\)/);
    release(); release(); // twice is once
    await s.volumes.remove('db');
    assert.not.ok(existsSync(join(s.dir, 'volumes', 'db')));
  } finally { s.done(); }
});

test('volume action - a request for another node is refused; hostile names never become paths', async () => {
  const s = setup();
  try {
    const o = await actions.volume(s.ctx, s.desired('VolumeCreateRequested', { node: 'n2', name: 'x', user: 'u' }));
    assert.match((o.events[0]!.data as { reason: string }).reason, /addressed to node n2, this is n1/);
    assert.not.ok(existsSync(join(s.dir, 'volumes', 'x')));
    mkdirSync(join(s.dir, 'outside'));
    for (const bad of ['..', '../outside', 'a/b', '/etc', '.', '', 'a\0b', 'x'.repeat(129), '.rm-1-2-x']) {
      assert.throws(() => s.volumes.create(bad), (e: unknown) => e instanceof VolumeError && /invalid volume name/.test((e as Error).message), JSON.stringify(bad));
      await rejects(s.volumes.remove(bad), /invalid volume name/);
    }
    assert.ok(existsSync(join(s.dir, 'outside')), 'nothing outside the volumes dir was removed');
    assert.equal(readdirSync(join(s.dir, 'volumes')), []);
  } finally { s.done(); }
});

test('volume sweep - what a crash left renamed aside is removed at the next start', async () => {
  const s = setup();
  try {
    mkdirSync(join(s.dir, 'volumes', '.rm-1-2-old', '_data'), { recursive: true });
    s.volumes.create('keep');
    await s.volumes.sweep();
    assert.equal(readdirSync(join(s.dir, 'volumes')), ['keep']);
    assert.equal(s.volumes.list(), ['keep']);
  } finally { s.done(); }
});

test('volume entity - always one subject token; distinct names never share one', () => {
  const names = ['cache', 'Cache', 'a.b', 'a-b', 'x'.repeat(100), 'x'.repeat(101), 'X'.repeat(128)];
  const ents = names.map(volumeEntity);
  for (const e of ents) assert.ok(ENTITY_RE.test(e), e);
  assert.is(ents[0], 'vol-cache');
  assert.is(new Set(ents).size, names.length);
  assert.ok(ents[1]!.startsWith('volh-'));
});

test('volume view - requested, made, being removed, gone; a refusal keeps the volume and its reason', () => {
  const ctl = new SourceChain('controller'), node = new SourceChain('node:n1');
  let seq = 0;
  const view = emptyView();
  const push = (c: SourceChain, type: EventType, data: unknown, entity = 'vol-db') => {
    const { event, hash } = c.next(type, entity, data as never);
    c.commit(event.srcSeq, hash);
    reduce(view, { seq: ++seq, hash, event } as StoredEvent);
    return event;
  };
  push(ctl, 'VolumeCreateRequested', { node: 'n1', name: 'db', labels: { a: 'b' }, user: 'alice' });
  assert.is(view.volumes!['n1/db']!.state, 'requested');
  push(node, 'VolumeCreated', { name: 'db', mountpoint: '/v/db/_data' });
  assert.equal(view.volumes!['n1/db'], { name: 'db', node: 'n1', createdAt: view.volumes!['n1/db']!.createdAt, createdBy: 'alice', state: 'ready', labels: { a: 'b' }, mountpoint: '/v/db/_data' });
  // another node's word about n1's volume counts for nothing
  push(new SourceChain('node:n2'), 'VolumeRemoved', { name: 'db' });
  assert.ok(view.volumes!['n1/db']);
  const rq = push(ctl, 'VolumeRemoveRequested', { node: 'n1', name: 'db', user: 'alice' });
  assert.is(view.volumes!['n1/db']!.state, 'removing');
  push(node, 'EventRejected', { reason: 'volume db is in use', rejectedSeq: seq, rejectedId: rq.id, rejectedType: 'VolumeRemoveRequested' });
  assert.is(view.volumes!['n1/db']!.state, 'ready');
  assert.is(view.volumeErrors!['n1/db'], 'volume db is in use');
  push(ctl, 'VolumeRemoveRequested', { node: 'n1', name: 'db', user: 'alice' });
  push(node, 'VolumeRemoved', { name: 'db' });
  assert.equal(view.volumes, {});
});

test('volume triage - volume requests are their own kind; a forged source is refused before anything acts', () => {
  const c = new SourceChain('controller');
  const { event } = c.next('VolumeCreateRequested', 'vol-db', { node: 'n1', name: 'db', user: 'u' });
  const k = classify({ subject: 'ev.desired.n1.vol-db', seq: 1, data: encodeEvent(event) });
  assert.is(k.kind, 'volume');
  const n = new SourceChain('node:n2').next('VolumeRemoveRequested', 'vol-db', { node: 'n1', name: 'db', user: 'u' }).event;
  assert.is(classify({ subject: 'ev.desired.n1.vol-db', seq: 2, data: encodeEvent(n) }).kind, 'reject');
  const bad = c.next('VolumeCreateRequested', 'vol-x', { node: 'n1', name: '../../etc', user: 'u' } as never).event;
  assert.is(classify({ subject: 'ev.desired.n1.vol-x', seq: 3, data: encodeEvent(bad) }).kind, 'reject');
});

test.run();
