// Placement is a pure function of the view.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { place, PlacementError } from '../controller/placement.js';
import type { ContainerSpec } from '../shared/events.js';
import { MemLog } from './helpers/memlog.js';
import { parsePlacementPref, parsePlacementPrefs } from '../shared/placement-prefs.js';
import { encodeEvent, decodeEvent } from '../shared/codec.js';

const spec = (over: Partial<ContainerSpec> = {}): ContainerSpec => ({
  name: 'c', image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['true'], env: [], hostname: 'h', workdir: '/', network: 'bridge', autoRemove: false, ...over,
});

test('placement - fewest running containers first; exited ones do not count', () => {
  const log = new MemLog();
  log.join('n1'); log.join('n2');
  const id = 'c'.repeat(64);
  log.append('controller', `ev.desired.n1.${id}`, 'ContainerRequested', id, { node: 'n1', spec: spec(), user: 'u' });
  assert.is(place(log.view, spec()).id, 'n2');
  log.append('node:n1', `ev.state.n1.${id}`, 'ContainerExited', id, { exitCode: 0, oomKilled: false, exitedAt: 1 });
  assert.is(place(log.view, spec()).id, 'n1', 'ties go to the first by id');
});

test('placement - resources must fit a node; the error names the flag and the most there is', () => {
  const log = new MemLog();
  log.join('small', 1, 1024 ** 3); log.join('big', 4, 8 * 1024 ** 3);
  assert.is(place(log.view, spec({ resources: { cpus: 2 } })).id, 'big');
  assert.throws(() => place(log.view, spec({ resources: { cpus: 8 } })), (e: Error) => e instanceof PlacementError && /use at most 4/.test(e.message));
  assert.throws(() => place(log.view, spec({ resources: { memory: 16 * 1024 ** 3 } })), /use at most 8192m/);
  assert.throws(() => place(new MemLog().view, spec()), /no node has joined/);
});

test('placement - container: networking goes beside its peer', () => {
  const log = new MemLog();
  log.join('n1'); log.join('n2');
  const peer = { node: 'n2' };
  assert.is(place(log.view, spec({ network: 'container:web' }), () => peer).id, 'n2');
  assert.throws(() => place(log.view, spec({ network: 'container:web' }), () => undefined), /no such container "web"/);
});

/** Places `n` tasks of one service one after another, as the reconciler does, and counts them per node. */
function placeTasks(log: MemLog, n: number, prefs: string[], strategy?: 'spread' | 'binpack'): Map<string, number> {
  const spread = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const at = place(log.view, spec(), undefined, undefined, { spread, prefs: parsePlacementPrefs(prefs), ...(strategy ? { strategy } : {}) }).id;
    spread.set(at, (spread.get(at) ?? 0) + 1);
  }
  return spread;
}
const label = (log: MemLog, node: string, labelAdd: Record<string, string>) => log.append('controller', `ev.node.${node}`, 'NodeUpdated', node, { labelAdd, user: 'admin' });

test('placement - --placement-pref spreads a service over a label\'s values first, then over nodes', () => {
  const log = new MemLog();
  for (const n of ['a1', 'a2', 'a3', 'b1', 'x']) log.join(n);
  for (const n of ['a1', 'a2', 'a3']) label(log, n, { zone: 'a' });
  label(log, 'b1', { zone: 'b' });
  // x has no zone label: a group of its own, as in docker. 6 tasks: 2 per group (a, b, none)
  const got = placeTasks(log, 6, ['spread=node.labels.zone']);
  const zone = (n: string) => (n.startsWith('a') ? 'a' : n === 'b1' ? 'b' : '-');
  const perZone = new Map<string, number>();
  for (const [n, c] of got) perZone.set(zone(n), (perZone.get(zone(n)) ?? 0) + c);
  assert.equal(Object.fromEntries(perZone), { a: 2, b: 2, '-': 2 });
  // inside zone a the two tasks go to two different nodes
  assert.is([...got].filter(([n, c]) => n.startsWith('a') && c === 1).length, 2);
  // without the preference the nodes alone are spread: zone a gets 3 of 5
  const plain = placeTasks(log, 5, []);
  assert.is([...plain].filter(([n]) => n.startsWith('a')).reduce((s, [, c]) => s + c, 0), 3);
});

test('placement - nested preferences spread inside each group of the first', () => {
  const log = new MemLog();
  const nodes: [string, string, string][] = [['n1', 'a', 'r1'], ['n2', 'a', 'r1'], ['n3', 'a', 'r2'], ['n4', 'b', 'r1']];
  for (const [n, zone, rack] of nodes) { log.join(n); label(log, n, { zone, rack }); }
  const got = placeTasks(log, 4, ['spread=node.labels.zone', 'spread=node.labels.rack']);
  // zone a takes 2 of 4, one per rack (n3 alone in r2 gets one), zone b's only node 2
  assert.is(got.get('n4'), 2);
  assert.is(got.get('n3'), 1);
  assert.is((got.get('n1') ?? 0) + (got.get('n2') ?? 0), 1);
});

test('placement - binpack fills the fullest node that fits before the next; spread does the opposite', () => {
  const log = new MemLog();
  log.join('n1', 4, 8 * 1024 ** 3); log.join('n2', 4, 8 * 1024 ** 3);
  const mem = 3 * 1024 ** 3;
  const first = place(log.view, spec({ resources: { memory: mem } }), undefined, undefined, { strategy: 'binpack' }).id;
  const id = 'd'.repeat(64);
  log.append('controller', `ev.desired.${first}.${id}`, 'ContainerRequested', id, { node: first, spec: spec({ resources: { memory: mem } }), user: 'u' });
  assert.is(place(log.view, spec({ resources: { memory: mem } }), undefined, undefined, { strategy: 'binpack' }).id, first, 'the used node still holds 3g more');
  assert.is.not(place(log.view, spec({ resources: { memory: mem } })).id, first, 'spread goes to the empty node');
  const id2 = 'e'.repeat(64);
  log.append('controller', `ev.desired.${first}.${id2}`, 'ContainerRequested', id2, { node: first, spec: spec({ resources: { memory: mem } }), user: 'u' });
  // 6g of 8g used: another 3g does not fit there any more
  assert.is.not(place(log.view, spec({ resources: { memory: mem } }), undefined, undefined, { strategy: 'binpack' }).id, first);
  // binpack ignores the per-node spread of a service, but not its preferences
  assert.equal([...placeTasks(log, 3, [], 'binpack').keys()], [first]);
});

test('placement prefs - a bad preference is a one-line error; the log refuses a forged one', () => {
  assert.equal(parsePlacementPref(' spread=node.labels.zone '), { label: 'zone', text: 'spread=node.labels.zone' });
  for (const bad of ['spread=zone', 'binpack=node.labels.zone', 'spread=node.labels.', 'spread=node.labels.z one', 'spread=node.hostname', `spread=node.labels.${'k'.repeat(200)}`, '', 'spread=node.labels.$(id)']) {
    assert.throws(() => parsePlacementPref(bad), (e: Error) => /^invalid --placement-pref .*: /.test(e.message) && !e.message.includes('\n'), bad);
  }
  assert.throws(() => parsePlacementPrefs(Array(9).fill('spread=node.labels.z')), /at most 8 preferences/);
  const task = { image: 'busybox' };
  const svc = (placementPrefs: unknown) => ({ spec: { name: 'web', mode: 'replicated', replicas: 1, task, placementPrefs, restart: { condition: 'any', maxAttempts: 0, delayMs: 0 } }, user: 'u' });
  const ok = encodeEvent({ v: 1, id: 'i', type: 'ServiceCreated', entity: 's1', ts: 1, src: 'controller', srcSeq: 1, prev: '', data: svc(['spread=node.labels.zone']) } as never);
  assert.equal((decodeEvent(ok).data as { spec: { placementPrefs: string[] } }).spec.placementPrefs, ['spread=node.labels.zone']);
  for (const forged of [['spread=node.labels.$(rm)'], 'spread=node.labels.zone', Array(9).fill('spread=node.labels.z'), [7]]) {
    assert.throws(() => decodeEvent(encodeEvent({ v: 1, id: 'i', type: 'ServiceCreated', entity: 's1', ts: 1, src: 'controller', srcSeq: 1, prev: '', data: svc(forged) } as never)), /placementPrefs/);
  }
});

test.run();
