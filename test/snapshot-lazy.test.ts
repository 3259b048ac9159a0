// view --at's lazy snapshot reader (shared/snapshot-lazy.ts) against readSnapshot: the same
// view (every field, the same key order), the same listing rows, with only the containers the
// deltas and the fold touch made whole; anything it does not expect (an id a plain object
// orders first, a version 1 snapshot, junk, a container that turns out broken when made) is
// LazyFallback, never a different view; and its containers behave as a plain object's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Encoder } from '@msgpack/msgpack';
import { emptyView, indexOf, reduce, type ChangeTracker, type ContainerView } from '../shared/reducer.js';
import { applyJournal, encodeDelta, readSnapshot, SnapshotError, SnapshotWriter } from '../shared/snapshot.js';
import { applyJournalLazy, LazyFallback, oddKey, readSnapshotLazy } from '../shared/snapshot-lazy.js';
import { containerRows } from '../tsctl/format.js';
import { MemLog } from './helpers/memlog.js';
import { lives } from './helpers/lives.js';

const workload = { oldBy: 300, removeRequested: true, rejoinEvery: 97 };

test('snapshot-lazy - snapshot + deltas + events read lazily equal the whole decode: view, key order, rows; few containers made', () => {
  const log = new MemLog();
  for (const n of ['n1', 'n2', 'n3']) log.join(n);
  lives(log, 1, 2500, workload);
  indexOf(log.view);
  const w = new SnapshotWriter(log.view);
  let i = 2501;
  while (!w.step()) { lives(log, i, 20, workload); i += 20; }
  const full = w.finish();
  const tracker: ChangeTracker = { containers: new Set(), nodes: new Set() };
  indexOf(log.view).trackers.add(tracker);
  const deltas: { seq: number; bytes: Uint8Array }[] = [];
  for (let k = 0; k < 3; k++) {
    lives(log, i, 40 + k * 13, workload); i += 40 + k * 13;
    deltas.push({ seq: log.view.seq, bytes: encodeDelta(log.view, tracker, full.seq) });
  }
  lives(log, i, 30, workload);
  const end = log.view.seq;
  for (const at of [full.seq, deltas[0]!.seq + 3, end]) {
    const whole = readSnapshot(full.bytes);
    const { view: lazyView, lazy } = readSnapshotLazy(full.bytes);
    // its deltas applied through the Proxy by applyJournal (made whole), or lazily
    const { view: viaProxy } = readSnapshotLazy(full.bytes);
    const size = lazy.map.size;
    assert.is(lazyView.seq, whole.seq);
    for (const v of [whole, lazyView, viaProxy]) {
      for (const d of deltas) if (d.seq <= at) assert.is(v === lazyView ? applyJournalLazy(v, lazy, d.bytes, full.seq) : applyJournal(v, d.bytes, full.seq), 1);
      // a delta of another full, or one already applied: not applied
      assert.is(v === lazyView ? applyJournalLazy(v, lazy, deltas[0]!.bytes, full.seq - 1) : applyJournal(v, deltas[0]!.bytes, full.seq - 1), 0);
      if (at >= deltas[0]!.seq) assert.is(v === lazyView ? applyJournalLazy(v, lazy, deltas[0]!.bytes, full.seq) : applyJournal(v, deltas[0]!.bytes, full.seq), 0);
      for (const e of log.events) if (e.seq > v.seq && e.seq <= at) reduce(v, e);
    }
    assert.is(JSON.stringify(viaProxy), JSON.stringify(whole), `through the Proxy at #${at}`);
    // the listing first (it must not make the containers whole), then everything, in order
    const made = lazy.made;
    assert.is(containerRows(lazy.rows()).rows.toString(), containerRows(whole.containers).rows.toString(), `rows at #${at}`);
    // the rows given as arguments (eachRow, what view --at prints): the same lines and count
    assert.equal(containerRows(lazy), containerRows(whole.containers), `eachRow's rows at #${at}`);
    assert.is(lazy.made, made, 'the rows make no container whole');
    if (at === full.seq) assert.is(made, 0, 'nothing made at the snapshot itself');
    else assert.ok(made < size / 4, `at #${at}: ${made} of ${size} made whole`);
    assert.is(JSON.stringify(lazyView), JSON.stringify(whole), `the view at #${at}, key order included`);
  }
});

test('snapshot-lazy - a node removed with --force lists every container (Object.keys): still the same view', () => {
  const log = new MemLog();
  for (const n of ['n1', 'n2']) log.join(n);
  lives(log, 1, 300, { oldBy: 100, removeRequested: true, rejoinEvery: 0 });
  const full = new SnapshotWriter(log.view).finish();
  log.append('controller', 'ev.node.n2', 'NodeRemoved', 'n2', { force: true, user: 'u' } as never);
  const whole = readSnapshot(full.bytes), { view, lazy } = readSnapshotLazy(full.bytes);
  assert.ok(Object.values(whole.containers).some((c) => c.node === 'n2'), 'n2 has containers');
  for (const v of [whole, view]) reduce(v, log.events[log.events.length - 1]!);
  assert.ok(!Object.values(whole.containers).some((c) => c.node === 'n2'), 'n2\'s containers gone');
  assert.is(JSON.stringify(view), JSON.stringify(whole));
  assert.is(containerRows(lazy.rows()).rows.toString(), containerRows(whole.containers).rows.toString());
  assert.equal(containerRows(lazy), containerRows(whole.containers));
});

/** A snapshot of one frame, written by hand. */
const snap = (f: Record<string, unknown>) => {
  const body = new Encoder().encode({ v: 2, d: [], meta: { ...emptyView(), containers: undefined, nodes: undefined, seq: 9 }, nodes: {}, ...f });
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
};
const fallsBack = (b: Uint8Array, why: string) => {
  try { readSnapshotLazy(b); } catch (err) { assert.instance(err, LazyFallback, why); return; }
  assert.unreachable(`${why}: read lazily`);
};

test('snapshot-lazy - what it does not expect falls back (readSnapshot decides), never a SnapshotError or another view', () => {
  const t = ['n1', 'running', 'alice'];
  const row = (id: string) => [id, 'web', 0, ['web', 1], 1, null, 5, 2];
  const rest = (id: string, m: unknown) => [...row(id), null, null, null, null, null, null, null, null, null, null, m];
  // fine: read lazily, equal
  const good = snap({ t, k: [row('a'.repeat(64)), row('b'.repeat(64))], count: 2 });
  assert.is(JSON.stringify(readSnapshotLazy(good).view), JSON.stringify(readSnapshot(good)));
  // the containers before their table (older snapshots): the same
  const older = snap({ k: [row('b'.repeat(64)), row('a'.repeat(64))], t, count: 2 });
  assert.is(JSON.stringify(readSnapshotLazy(older).view), JSON.stringify(readSnapshot(older)));
  assert.is(readSnapshotLazy(older).lazy.made, 0);
  // an id a plain object would put first (an array index), or not keep as a key
  fallsBack(snap({ t, k: [row('a'.repeat(64)), row('42')], count: 2 }), 'an array-index id');
  assert.is(Object.keys(readSnapshot(snap({ t, k: [row('a'.repeat(64)), row('42')], count: 2 })).containers)[0], '42');
  fallsBack(snap({ t, k: [row('__proto__')], count: 1 }), '__proto__');
  // version 1 (maps), another version, a count that disagrees, junk, frames after the last
  fallsBack(snap({ c: [{ id: 'x', name: 'x' }], count: 1, v: 1 }), 'version 1');
  fallsBack(snap({ t, k: [row('a'.repeat(64))], count: 1, v: 3 }), 'version 3');
  fallsBack(snap({ t, k: [row('a'.repeat(64))], count: 2 }), 'a wrong count');
  fallsBack(new Uint8Array([0, 0, 0, 2, 0xc1, 0xc1]), 'junk');
  fallsBack(Uint8Array.from([...good, ...good]), 'frames after the last one');
  fallsBack(new Uint8Array(0), 'empty');
  // a delta that does not read: LazyFallback (applyJournal's SnapshotError then refuses it)
  const into = readSnapshotLazy(good);
  assert.throws(() => applyJournalLazy(into.view, into.lazy, new Uint8Array([0, 0, 0, 2, 0xc1, 0xc1]), 9), (e: unknown) => e instanceof LazyFallback);
  assert.throws(() => applyJournal(readSnapshot(good), new Uint8Array([0, 0, 0, 2, 0xc1, 0xc1]), 9), (e: unknown) => e instanceof SnapshotError);
  // a row's field out of the table: readSnapshot refuses it, the lazy reader gives up at once
  fallsBack(snap({ t, k: [[...row('a'.repeat(64)).slice(0, 7), 7]], count: 1 }), 'requestedBy out of the table');
  fallsBack(snap({ t, k: [rest('9'.repeat(64), 3)], count: 1 }), 'the fields outside the slots not a map');
  // broken inside a part the listing does not read: read lazily, but making it whole gives up
  const deep = snap({ t, k: [['c'.repeat(64), 'web', 0, ['web', 99], 1, null, 5, 2]], count: 1 });
  assert.throws(() => readSnapshot(deep), (e: unknown) => e instanceof SnapshotError);
  const { view, lazy } = readSnapshotLazy(deep);
  assert.is(lazy.map.size, 1);
  assert.throws(() => view.containers['c'.repeat(64)], (e: unknown) => e instanceof LazyFallback);
  // other shapes (a field of another kind, fields outside the slots): made whole at once, equal
  const odd = snap({ t, k: [['d'.repeat(64), 7, 0, ['web', 1], 1, null, 5, 2], rest('e'.repeat(64), { extra: 1 }), rest('f'.repeat(64), { state: 'x' })], count: 3 });
  const r = readSnapshotLazy(odd);
  assert.is(r.lazy.made, 2, 'made whole at once: a name not a string, a row field given again');
  assert.is(containerRows(r.lazy.rows()).rows.toString(), containerRows(readSnapshot(odd).containers).rows.toString());
  assert.is(r.lazy.made, 2);
  assert.is(JSON.stringify(r.view), JSON.stringify(readSnapshot(odd)));
});

test('snapshot-lazy - its containers behave as a plain object: set, delete, set again, listing order; odd keys fall back', () => {
  const log = new MemLog();
  log.join('n1');
  lives(log, 1, 50, { oldBy: 0, removeRequested: false, rejoinEvery: 0 });
  const full = new SnapshotWriter(log.view).finish();
  const plain = readSnapshot(full.bytes).containers, lazy = readSnapshotLazy(full.bytes).view.containers;
  const ids = Object.keys(plain);
  for (const cs of [plain, lazy]) {
    delete cs[ids[3]!];
    cs['z'.repeat(64)] = { id: 'z'.repeat(64) } as ContainerView;
    cs[ids[3]!] = { id: ids[3]! } as ContainerView; // again: at the end now
    cs[ids[5]!] = { id: ids[5]!, name: 'replaced' } as ContainerView; // in place
  }
  assert.equal(Object.keys(lazy), Object.keys(plain));
  assert.is(JSON.stringify(lazy), JSON.stringify(plain));
  assert.ok(Object.hasOwn(lazy, ids[0]!) && !Object.hasOwn(lazy, 'nope') && ids[0]! in lazy && !('nope' in lazy));
  assert.is(typeof lazy.toString, 'function', 'what a plain object inherits');
  assert.is(lazy.nope, undefined);
  assert.throws(() => { lazy['7'] = {} as ContainerView; }, (e: unknown) => e instanceof LazyFallback);
  assert.throws(() => lazy.__proto__, (e: unknown) => e instanceof LazyFallback);
  assert.ok(oddKey('0') && oddKey('4294967294') && !oddKey('4294967295') && !oddKey('01') && !oddKey('a1') && oddKey('__proto__'));
});

test.run();
