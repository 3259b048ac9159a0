// view --at's snapshots without a server (shared/nats/snapshots.ts, shared/snapshot.ts): a full
// snapshot made a chunk at a time while the fold goes on, the chain of deltas the controller
// makes after it (controller/view.ts), then the events after the last delta, must equal a fresh
// fold from the start at every point; which objects a point loads (travelPlan), and what
// thinning keeps (thinPlan): bounded, the newest fulls with their deltas, the rest spread out.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { emptyView, fold, indexOf, reduce, type ChangeTracker, type ClusterView, type ContainerView } from '../shared/reducer.js';
import { containerRows } from '../tsctl/format.js';
import { applyJournal, encodeDelta, readSnapshot, SnapshotWriter } from '../shared/snapshot.js';
import { DENSE, SPARSE, thinPlan, travelPlan, type StoredSnapshot } from '../shared/nats/snapshots.js';
import { MemLog } from './helpers/memlog.js';
import { lives } from './helpers/lives.js';

const plain = (v: ClusterView) => JSON.parse(JSON.stringify(v)) as ClusterView;
const workload = { oldBy: 300, removeRequested: true, rejoinEvery: 97 };

test('travel - a full snapshot, its chain of deltas and the events after the last one equal a fresh fold from the start, at every point', () => {
  const log = new MemLog();
  for (const n of ['n1', 'n2', 'n3']) log.join(n);
  lives(log, 1, 1500, workload);
  indexOf(log.view);
  // the full, made a chunk at a time while folding goes on (as the controller makes it)
  const w = new SnapshotWriter(log.view);
  let i = 1501;
  while (!w.step()) { lives(log, i, 20, workload); i += 20; }
  const full = w.finish();
  // the controller's travel tracker starts at the full's finish
  const tracker: ChangeTracker = { containers: new Set(), nodes: new Set() };
  indexOf(log.view).trackers.add(tracker);
  const deltas: { seq: number; bytes: Uint8Array }[] = [];
  for (let k = 0; k < 4; k++) {
    lives(log, i, 100 + k * 37, workload); i += 100 + k * 37;
    deltas.push({ seq: log.view.seq, bytes: encodeDelta(log.view, tracker, full.seq) });
  }
  lives(log, i, 80, workload);
  const end = log.view.seq;
  assert.ok(deltas[0]!.seq > full.seq && end > deltas[3]!.seq);
  // a point at the full, at each delta, between deltas, and after the last one
  const points = [full.seq, full.seq + 1, ...deltas.flatMap((d) => [d.seq, d.seq + 7]), end];
  for (const at of points) {
    const v = readSnapshot(full.bytes);
    let applied = 0;
    for (const d of deltas) {
      if (d.seq > at) break;
      assert.is(applyJournal(v, d.bytes, full.seq), 1);
      applied += 1;
    }
    assert.is(v.seq, applied ? deltas[applied - 1]!.seq : full.seq);
    for (const e of log.events) if (e.seq > v.seq && e.seq <= at) reduce(v, e);
    const fresh = fold(log.events.filter((e) => e.seq <= at), emptyView());
    assert.equal(plain(v), plain(fresh), `at #${at} (full #${full.seq} + ${applied} deltas)`);
  }
  // a delta of another full is not applied (the journal's base check)
  const other = readSnapshot(full.bytes);
  assert.is(applyJournal(other, deltas[0]!.bytes, full.seq - 1), 0);
  assert.is(other.seq, full.seq);
});

const full = (seq: number, ts = seq): StoredSnapshot => ({ seq, ts, name: `f${seq}` });
const delta = (seq: number, base: number, prev: number, ts = seq): StoredSnapshot => ({ seq, ts, name: `d${seq}-${base}`, base, prev });

test('travel - travelPlan: the nearest full at or before the point, and its unbroken chain of deltas up to it', () => {
  const all = [full(100), delta(110, 100, 100), delta(120, 100, 110), delta(130, 100, 120), full(150), delta(160, 150, 150), delta(180, 150, 170), full(200)];
  assert.is(travelPlan(all, { seq: 99 }), undefined);
  assert.equal(travelPlan(all, { seq: 125 })!.deltas.map((d) => d.seq), [110, 120]);
  assert.is(travelPlan(all, { seq: 125 })!.full.seq, 100);
  assert.equal(travelPlan(all, { seq: 149 })!.deltas.map((d) => d.seq), [110, 120, 130]);
  // 170 is missing: the chain stops at 160 (180 follows a delta that is not there)
  assert.equal(travelPlan(all, { seq: 199 })!.deltas.map((d) => d.seq), [160]);
  assert.equal(travelPlan(all, { seq: 200 }), { full: all[7], deltas: [] });
  // by time
  assert.equal(travelPlan(all, { time: 121 })!.deltas.map((d) => d.seq), [110, 120]);
  // a delta whose base is another full is not in this chain
  assert.equal(travelPlan([full(100), delta(110, 90, 100)], { seq: 200 })!.deltas, []);
});

test('travel - thinPlan: the newest fulls keep their deltas, at most SPARSE older fulls stay, spread out, the oldest kept', () => {
  const all: StoredSnapshot[] = [];
  const every = 50_000, n = 100; // 5,000,000 events
  for (let k = 1; k <= n; k++) {
    all.push(full(k * every));
    for (let j = 1; j < 5; j++) all.push(delta(k * every + j * 10_000, k * every, k * every + (j - 1) * 10_000));
  }
  const drop = new Set(thinPlan(all));
  const kept = all.filter((s) => !drop.has(s.name));
  const fulls = kept.filter((s) => s.base === undefined);
  assert.is(fulls.length, DENSE + SPARSE);
  assert.is(fulls[0]!.seq, every, 'the oldest stays');
  assert.equal(fulls.slice(-DENSE).map((s) => s.seq), all.filter((s) => s.base === undefined).slice(-DENSE).map((s) => s.seq));
  const dense = new Set(fulls.slice(-DENSE).map((s) => s.seq));
  assert.ok(kept.filter((s) => s.base !== undefined).every((s) => dense.has(s.base!)), 'deltas only of the newest fulls');
  assert.is(kept.filter((s) => s.base !== undefined).length, DENSE * 4);
  // spread out: no gap between kept older fulls is more than three times the even spacing
  const old = fulls.slice(0, SPARSE + 1).map((s) => s.seq);
  const even = (old[old.length - 1]! - old[0]!) / SPARSE;
  for (let k = 1; k < old.length; k++) assert.ok(old[k]! - old[k - 1]! <= 3 * even, `gap ${old[k]! - old[k - 1]!} against ${even}`);
  // thinning again what it kept drops nothing more
  assert.equal(thinPlan(kept), []);
  // few: nothing dropped
  assert.equal(thinPlan(all.slice(0, 20)), []);
});


test('travel - view --at\'s container rows are the lines the padEnd format made, for any name (UTF-8, longer than its column) and past the first buffer', () => {
  const cs: Record<string, ContainerView> = {};
  const names = ['web', 'ünïcødé-名前', 'a-name-longer-than-twenty-units', '', '😀x'];
  for (let i = 0; i < 40_000; i++) {
    const id = i.toString(16).padStart(64, '0');
    cs[id] = { id, name: `${names[i % names.length]}${i}`, node: `n${i % 7}`, state: i % 3 ? 'running' : 'exited', requestedBy: i % 2 ? 'alice' : 'bøb' } as ContainerView;
  }
  const { rows, count } = containerRows(cs);
  const old = Object.values(cs).map((x) => `  ${x.id.slice(0, 12)} ${x.name.padEnd(20)} ${x.state.padEnd(9)} ${x.node} by ${x.requestedBy}\n`).join('');
  assert.is(count, 40_000);
  assert.ok(rows.length > 1 << 20, 'more than the first buffer');
  assert.is(rows.toString('utf8'), old);
  assert.is(containerRows({}).count, 0);
  assert.is(containerRows({}).rows.length, 0);
});

test.run();
