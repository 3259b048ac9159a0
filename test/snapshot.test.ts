// The view's snapshots (shared/snapshot.ts) and the checked fold (shared/fold.ts) without a
// server: a snapshot made a chunk at a time while the fold goes on, then its journal of deltas,
// must equal a fresh fold of the same events; a torn or foreign journal is skipped, a broken
// snapshot refused; checking signatures a run at a time refuses exactly what checking each
// event refuses.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes, sign as edSign } from 'node:crypto';
import { SourceChain, decodeEvent } from '../shared/codec.js';
import { keyOf, registration, signer, KeyRing } from '../shared/signing.js';
import { emptyView, fold, indexOf, type ClusterView } from '../shared/reducer.js';
import { CheckedFold } from '../shared/fold.js';
import { applyJournal, compact, encodeDelta, peekSnapshot, readSnapshot, SnapshotError, SnapshotWriter, CHUNK } from '../shared/snapshot.js';
import type { ContainerSpec, EventData, EventType, StoredEvent } from '../shared/events.js';
import { MemLog } from './helpers/memlog.js';
import { cid, lives, spec } from './helpers/lives.js';
import { encode } from '@msgpack/msgpack';
import { rootKey, scenarios, Source, store } from './helpers/bursts.js';

const plain = (v: ClusterView) => JSON.parse(JSON.stringify(v)) as ClusterView;
const freshFold = (log: MemLog, upTo: number) => plain(fold(log.events.filter((e) => e.seq <= upTo), emptyView()));

test('snapshot - made a chunk at a time while folding, it equals a fresh fold at its sequence', () => {
  const log = new MemLog();
  for (const n of ['n1', 'n2', 'n3']) log.join(n);
  lives(log, 1, 5000);
  indexOf(log.view);
  const w = new SnapshotWriter(log.view);
  let steps = 0, i = 3001;
  while (!w.step()) { lives(log, i, 50); i += 50; steps += 1; }
  assert.ok(steps >= 2, `folds went on between ${steps} chunks of ${CHUNK}`);
  const snap = w.finish();
  assert.is(snap.seq, log.view.seq);
  const restored = readSnapshot(snap.bytes);
  assert.equal(plain(restored), plain(log.view));
  assert.equal(plain(restored), freshFold(log, snap.seq));
});

test('snapshot - the journal of deltas after it brings it to the live view; torn tails and older bases are skipped', () => {
  const log = new MemLog();
  for (const n of ['n1', 'n2', 'n3']) log.join(n);
  lives(log, 1, 500);
  const tracker = { containers: new Set<string>(), nodes: new Set<string>() };
  indexOf(log.view).trackers.add(tracker);
  const snap = new SnapshotWriter(log.view).finish();
  tracker.containers.clear(); tracker.nodes.clear();
  const parts: Uint8Array[] = [encodeDelta(log.view, { containers: new Set([cid(1)]), nodes: new Set() }, snap.seq - 1)]; // an older snapshot's: skipped
  for (let k = 0; k < 4; k++) {
    lives(log, 501 + k * 100, 100);
    if (k === 2) log.append('controller', 'ev.cluster.n2', 'NodeRemoved', 'n2', { force: true, user: 'u' });
    parts.push(encodeDelta(log.view, tracker, snap.seq));
  }
  const journal = Buffer.concat([...parts, parts[parts.length - 1]!.subarray(0, 40)]); // a torn last append
  const v = readSnapshot(snap.bytes);
  assert.is(applyJournal(v, journal, snap.seq), 4);
  assert.equal(plain(v), plain(log.view));
  assert.equal(plain(v), freshFold(log, log.view.seq));
  assert.is(v.containers[cid(1)], undefined, 'n2\'s containers left with it (node rm --force)');
  // the peek a reader thread begins from: where snapshot + journal stand, without reading the containers
  assert.equal(peekSnapshot(snap.bytes, journal), { seq: v.seq, keys: { ...(v.keys ?? {}) } });
  assert.equal(peekSnapshot(snap.bytes, parts[0]), { seq: snap.seq, keys: { ...(readSnapshot(snap.bytes).keys ?? {}) } }, 'an older snapshot\'s journal is not followed');
});

test('snapshot - a broken or incomplete one is a SnapshotError, not a wrong view', () => {
  const log = new MemLog();
  log.join('n1');
  lives(log, 1, 30);
  const { bytes } = new SnapshotWriter(log.view).finish();
  assert.throws(() => readSnapshot(bytes.subarray(0, bytes.length - 5)), (e: Error) => e instanceof SnapshotError && /incomplete/.test(e.message));
  const junk = Buffer.from(bytes);
  junk.fill(0xc1, 4, 40); // 0xc1 is never valid msgpack
  assert.throws(() => readSnapshot(junk), (e: Error) => e instanceof SnapshotError);
  assert.throws(() => readSnapshot(Buffer.from('not a snapshot at all')), (e: Error) => e instanceof SnapshotError);
  // a peek at any of them says nothing (and throws nothing): the reader thread then begins once the view is read
  for (const b of [bytes.subarray(0, bytes.length - 5), junk, Buffer.from('not a snapshot at all'), new Uint8Array(0), Buffer.from([0xff, 0xff, 0xff, 0xff, 1])]) {
    assert.is(peekSnapshot(b, junk), undefined);
  }
  assert.equal(peekSnapshot(bytes, Buffer.from('junk journal')), { seq: log.view.seq, keys: { ...(log.view.keys ?? {}) } }, 'a junk journal: the snapshot\'s own place');
});

test('snapshot - a container given twice by the chunks before its last frame is refused (the count no longer adds up)', () => {
  const log = new MemLog();
  log.join('n1');
  lives(log, 1, 30);
  const w = new SnapshotWriter(log.view);
  assert.ok(w.step(), 'one chunk holds them all');
  const { bytes } = w.finish();
  const first = 4 + Buffer.from(bytes).readUInt32BE(0);
  assert.ok(first < bytes.length, 'a chunk frame, then the last one');
  assert.equal(plain(readSnapshot(bytes)), plain(log.view), 'as written, it reads');
  const n = Object.keys(log.view.containers).length;
  const twice = Buffer.concat([bytes.subarray(0, first), bytes]);
  assert.throws(() => readSnapshot(twice), (e: Error) => e instanceof SnapshotError && e.message.includes(`holds ${2 * n} containers, its last frame says ${n}`));
});

test('snapshot - containers of every mix of fields read back with their own fields only, in the tuple\'s order', () => {
  const log = new MemLog();
  for (const n of ['n1', 'n2']) log.join(n);
  lives(log, 1, 200);
  const v = log.view;
  // each container a different subset of the optional fields (a maker per mix, shared/snapshot.ts fastTuple)
  const optional = ['pid', 'ip', 'exitCode', 'signal', 'oomKilled', 'error', 'startedAt', 'finishedAt', 'paused'];
  Object.values(v.containers).forEach((c, i) => {
    const o = c as unknown as Record<string, unknown>;
    optional.forEach((k, b) => { if (i & (1 << b)) o[k] ??= k === 'signal' || k === 'error' || k === 'ip' ? `${k}${i % 3}` : k === 'oomKilled' || k === 'paused' ? true : i; else delete o[k]; });
    if (i % 7 === 0) o.restartCount = i;
  });
  const back = readSnapshot(new SnapshotWriter(v).finish().bytes);
  assert.equal(plain(back), plain(v));
  const order = ['id', 'name', 'node', 'spec', 'state', 'desired', 'createdAt', 'requestedBy', 'lastSeq', ...optional];
  for (const c of Object.values(back.containers)) {
    const keys = Object.keys(c);
    const slots = keys.filter((k) => order.includes(k));
    assert.equal(slots, order.filter((k) => slots.includes(k)), 'slot fields in slot order');
    assert.equal(keys.slice(slots.length), keys.filter((k) => !order.includes(k)), 'other fields after them');
    assert.ok(keys.every((k) => (c as unknown as Record<string, unknown>)[k] !== undefined), 'no field read as undefined');
  }
  // more mixes than makers kept (512 here, 256 kept): the rest read back the same, made a key at a time
  const many = emptyView();
  many.seq = v.seq; many.nodes = v.nodes;
  for (let i = 0; i < 600; i++) {
    const c = { ...Object.values(v.containers)[i % 100]! } as unknown as Record<string, unknown>;
    c.id = cid(10_000 + i);
    optional.forEach((k, b) => { if (i & (1 << b)) c[k] ??= k === 'signal' || k === 'error' || k === 'ip' ? 'x' : k === 'oomKilled' || k === 'paused' ? true : i; else delete c[k]; });
    many.containers[c.id as string] = c as unknown as ClusterView['containers'][string];
  }
  assert.equal(plain(readSnapshot(new SnapshotWriter(many).finish().bytes)), plain(many));
});

test('snapshot - compact containers: every field, of any kind, reads back equal; a version 1 snapshot still reads', () => {
  const log = new MemLog();
  for (const n of ['n1', 'n2', 'n3']) log.join(n);
  lives(log, 1, 300);
  const v = log.view;
  // fields the tuple's slots do not name, and slots holding what they do not expect
  const odd = v.containers[cid(2)]! as unknown as Record<string, unknown>;
  Object.assign(odd, { error: 'boom', signal: 'SIGKILL', paused: true, ip: '10.0.0.2', extra: { a: [1, 'x'] }, requestedBy: 7, lastSeq: null });
  Object.assign(odd.spec as object, { layers: ['sha256:1', 'sha256:2'], resources: { cpus: 1.5, memory: 1 << 20 }, ports: [{ host: 80, container: 8080, proto: 'tcp' }], args: ['a', 3], env: 'not a list' });
  const bare = v.containers[cid(4)]! as unknown as Record<string, unknown>;
  bare.spec = 'not a spec';
  const snap = new SnapshotWriter(v).finish();
  assert.equal(plain(readSnapshot(snap.bytes)), plain(v));
  // the same view as version 1 wrote it (containers as maps): still read
  const old = encode({ v: 1, c: Object.values(v.containers), d: [], meta: { ...v, containers: undefined, nodes: undefined }, nodes: v.nodes, count: Object.keys(v.containers).length }, { ignoreUndefined: true });
  const framed = Buffer.concat([Buffer.from([0, 0, 0, 0]), old]);
  framed.writeUInt32BE(old.length, 0);
  assert.equal(plain(readSnapshot(framed)), plain(v));
  assert.ok(snap.bytes.length < framed.length * 0.6, `compact ${snap.bytes.length} bytes, maps ${framed.length}`);
  // a tuple naming a string its frame's table does not have is refused, not read as something else
  const bad = encode({ v: 2, k: [[cid(1), 'x', 99]], t: ['n1'], d: [], meta: { seq: 1 }, nodes: {}, count: 1 });
  const fb = Buffer.concat([Buffer.alloc(4), bad]);
  fb.writeUInt32BE(bad.length, 0);
  assert.throws(() => readSnapshot(fb), (e: Error) => e instanceof SnapshotError && /not in the frame's table/.test(e.message));
});

test('snapshot - frames written straight are byte for byte what the msgpack encoder makes of the tuples, odd fields and all', () => {
  const log = new MemLog();
  for (const n of ['n1', 'n2', 'n3']) log.join(n);
  lives(log, 1, 400);
  const v = log.view;
  indexOf(v); // made before the odd fields: a spec of null is nothing its keys can read
  const ids = Object.keys(v.containers);
  const at = (k: number) => v.containers[ids[k]!]! as unknown as Record<string, unknown>;
  // every kind of value in every kind of slot: scalars at each msgpack width, non-ASCII and long
  // strings (a lone surrogate: the encoder's own UTF-8), nulls, objects, a number where a table
  // string goes, a spec that is not one, fields no slot names
  const long = 'x'.repeat(300), longer = 'y'.repeat(70_000);
  const odd: Record<string, unknown>[] = [
    { pid: 127, exitCode: -1, startedAt: 255, finishedAt: 65_535, lastSeq: 2 ** 32 - 1, createdAt: 2 ** 40 },
    { pid: -32, exitCode: -33, startedAt: -128, finishedAt: -129, lastSeq: -32_768, createdAt: -32_769, error: -(2 ** 31) - 1 },
    { pid: 1.5, exitCode: Number.MAX_SAFE_INTEGER + 2, startedAt: -0, oomKilled: true, paused: false, ip: '' },
    { name: 'dé-été', error: `fail ${'€'.repeat(40)} 🚀`, signal: 'SIGKILL\u00a0', requestedBy: long, node: longer },
    { error: null, node: 5, state: ['running'], extra: { a: [1, 'x', null], b: new Uint8Array([1, 2]) } },
    { spec: 'not a spec' },
    { spec: null, desired: undefined },
    { 7: 'an index-like key', restartCount: 2, dseq: 9, lastSeq: null },
  ];
  odd.forEach((o, k) => Object.assign(at(k), o));
  Object.assign(at(7).spec as object, { args: ['a', 3], env: 'not a list', layers: [], hostname: long, resources: { cpus: 1.5 } });
  Object.assign(at(8).spec as object, { image: 'ümage', args: Array.from({ length: 20 }, (_, j) => `arg${j}`), env: Array(16).fill('A=1') });
  // a lone surrogate: the encoder writes its own UTF-8 of it (the bytes compared, not read back)
  const lone = { ...at(9), error: 'a\ud800b' };
  const tracker = { containers: new Set(ids), nodes: new Set(['n1']) };
  const expected = (f: Record<string, unknown>) => {
    const body = encode(f, { ignoreUndefined: true });
    const b = Buffer.alloc(4 + body.length);
    b.writeUInt32BE(body.length, 0);
    b.set(body, 4);
    return b;
  };
  const { containers: _c, nodes, ...meta } = v;
  const cs = ids.map((id) => v.containers[id]!);
  assert.equal(Buffer.from(encodeDelta(v, tracker, 7)), expected({ base: 7, seq: v.seq, ...compact(cs), d: [], meta, nodes }));
  v.containers[ids[9]!] = lone as never;
  const one = { containers: new Set([ids[9]!, 'gone']), nodes: new Set<string>() };
  assert.equal(Buffer.from(encodeDelta(v, one, 7)), expected({ base: 7, seq: v.seq, ...compact([v.containers[ids[9]!]!]), d: ['gone'], meta }));
  v.containers[ids[9]!] = { ...lone, error: 'b' } as never;
  // a full snapshot's chunks and last frame: read back, the same view
  const snap = new SnapshotWriter(v).finish();
  assert.equal(plain(readSnapshot(snap.bytes)), plain(v));
});

// signed events, as the controller's fold sees them
const rootSeed = randomBytes(32);
const root = keyOf(rootSeed);
const regOf = (src: string, pub: string) => edSign(null, registration(src, pub), root.priv).toString('base64');

function signedLog(n: number): StoredEvent[] {
  const out: StoredEvent[] = [];
  const src = (name: string) => ({ s: signer(randomBytes(32)), chain: new SourceChain(name) });
  const ctl = src('controller'), n1 = src('node:n1'), mallory = signer(randomBytes(32));
  const put = <T extends EventType>(x: ReturnType<typeof src>, type: T, entity: string, data: EventData[T], forge = false) => {
    const { event, bytes, hash } = x.chain.next(type, entity, data);
    x.chain.commit(event.srcSeq, hash);
    out.push({ seq: out.length + 1, hash, event: decodeEvent(bytes), bytes, sig: (forge ? mallory : x.s).sign(bytes) });
  };
  put(ctl, 'KeyRegistered', 'controller', { key: ctl.s.pub, rootSig: regOf('controller', ctl.s.pub) });
  put(n1, 'KeyRegistered', 'n1', { key: n1.s.pub, rootSig: regOf('node:n1', n1.s.pub) });
  put(n1, 'NodeJoined', 'n1', { hostname: 'n1', cpus: 2, memory: 1 << 30, kernel: '6.1', features: [], version: 't' });
  for (let i = 1; i <= n; i++) {
    const id = cid(i);
    put(ctl, 'ContainerRequested', id, { node: 'n1', spec: spec(`c${i}`), user: 'u' });
    // every 50th start is signed by a key that is not n1's, one in the middle of a run, one at its end
    put(n1, 'ContainerStarted', id, { pid: 10, receivedAt: 1, runningAt: 2 }, i % 50 === 0);
  }
  // an unsigned one, and one whose bytes were changed after signing
  const last = out[out.length - 1]!;
  out.push({ ...last, seq: out.length + 1, sig: undefined });
  return out;
}

test('checked fold - a run at a time refuses exactly what one event at a time refuses, and folds the rest alike', () => {
  const events = signedLog(600);
  const one = new CheckedFold(emptyView(), new KeyRing(root.pub));
  for (const s of events) one.add(s, false);
  const batch = new CheckedFold(emptyView(), new KeyRing(root.pub));
  for (const s of events) batch.add(s, true);
  batch.flush();
  assert.is(one.refused, 13, '12 forged starts and one unsigned event');
  assert.is(batch.refused, one.refused);
  assert.equal(plain(batch.view), plain(one.view));
  assert.is(Object.values(one.view.containers).filter((c) => c.state === 'running').length, 588);
});

// Bursts (shared/signing.ts signBurst): the fold refuses exactly each attack's events, checked
// one at a time as followed or a batch at a time as replayed (batches small enough to split
// bursts), and folds the rest, including a killed writer's stored prefix of a burst.
for (const sc of scenarios()) {
  test(`checked fold - bursts: ${sc.name}: refuses ${sc.bad.length ? `#${sc.bad.join(', #')}` : 'nothing'}, one at a time and by runs`, () => {
    const refusedBy = (mode: 'one' | 'batch' | 'small') => {
      const got: number[] = [];
      const f = new CheckedFold(emptyView(), new KeyRing(rootKey.pub), (s) => got.push(s.seq));
      sc.msgs.forEach((s, i) => { f.add(s, mode !== 'one'); if (mode === 'small' && i % 3 === 2) f.flush(); });
      f.flush();
      return { got, view: plain(f.view) };
    };
    const one = refusedBy('one'), batch = refusedBy('batch'), small = refusedBy('small');
    assert.equal(one.got, sc.bad, 'one at a time');
    assert.equal(batch.got, sc.bad, 'a batch');
    assert.equal(small.got, sc.bad, 'batches of three');
    assert.equal(batch.view, one.view);
    assert.equal(small.view, one.view);
  });
}

test('checked fold - bursts: the rest of a burst whose signed first event was lost is folded by a replay (the next signature vouches for it), refused when followed', () => {
  const n1 = new Source('node:n1');
  const reg = n1.register(), before = n1.burst(3), b = n1.burst(4), after = n1.burst(2);
  const msgs = store([reg, ...before, ...b.slice(1), ...after]);
  const refused = (hold: boolean) => {
    const got: number[] = [];
    const f = new CheckedFold(emptyView(), new KeyRing(rootKey.pub), (s) => got.push(s.seq));
    for (const m of msgs) f.add(m, hold);
    f.flush();
    return got;
  };
  assert.equal(refused(true), []);
  assert.equal(refused(false), [5, 6, 7]);
});

test.run();
