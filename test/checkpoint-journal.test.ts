// The agent's checkpoint as a journal: replay, a torn last record, compaction (also with writes
// going on while it runs), junk bytes (a clear error, nothing changed on disk), migration from
// the older JSON file, and pruning of tombstones. No root, no nats-server.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpoint, type ContainerRecord, type PendingEvent } from '../agent/pipeline/checkpoint.js';
import { decodeRecords, encodeRecords, JournalError, MAGIC } from '../agent/pipeline/journal.js';

const t = suite('checkpoint-journal');
let root: string;
t.before.each(() => { root = mkdtempSync(join(tmpdir(), 'swl-ckpt-')); });
t.after.each(() => { rmSync(root, { recursive: true, force: true }); });

const dir = () => join(root, 'checkpoint');
const quiet = { warn: () => undefined };
const rec = (seq: number, reported: ContainerRecord['reported'] = 'running'): ContainerRecord => ({
  lastSeq: seq, requestId: `req${seq}`, reported, pid: 100 + seq,
  ...(reported === 'removed' ? {} : { spec: { name: `c${seq}`, image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['sleep', '1'], env: ['A=1'], hostname: 'h', workdir: '/', network: 'none' as const, autoRemove: false } }),
});
const started = (id: string, n: number): PendingEvent => ({ id: `ev-${id}-${n}`, type: 'ContainerStarted', entity: id, data: { pid: n, receivedAt: 1, runningAt: 2 }, cause: `req-${id}` });
const files = () => readdirSync(dir()).sort();
/** Everything the checkpoint answers, as plain data, to compare two opens. */
const state = (cp: Checkpoint) => ({
  all: cp.all().sort(([a], [b]) => a.localeCompare(b)),
  pending: cp.pending().sort(([a], [b]) => a.localeCompare(b)),
  seen: ['rejected:x', 'rejected:y', 'net-a'].map((k) => cp.seen(k)),
});

t('journal - records encode and decode; a cut-short tail is torn, not damage', () => {
  const buf = Buffer.concat([MAGIC, encodeRecords([{ a: 1 }, { b: 'x' }])]);
  assert.equal(decodeRecords(buf, 'f').records, [{ a: 1 }, { b: 'x' }]);
  for (let cut = MAGIC.length + 1; cut < buf.length; cut++) {
    if (cut === MAGIC.length + 8 + 7) continue; // exactly after the first record: whole
    const d = decodeRecords(buf.subarray(0, cut), 'f');
    assert.ok(d.torn, `cut at ${cut} is torn`);
    assert.ok(d.records.length <= 1);
  }
  assert.throws(() => decodeRecords(Buffer.from('{"containers":{}}'), 'f'), /not a swarmlite checkpoint file/);
});

t('checkpoint - every change is read back after a reopen', async () => {
  let cp = await Checkpoint.open(dir(), quiet);
  cp.set('c1', rec(1), [started('c1', 1)]);
  cp.set('c2', rec(2));
  cp.update('c2', { reported: 'exited', lastSeq: 3 });
  cp.markSeen('rejected:x', 7);
  cp.markSeen('net-a', 9);
  await cp.whenSaved();
  cp.kept('c1');
  cp.close();
  const before = state(cp);
  assert.is(before.pending.length, 0);
  cp = await Checkpoint.open(dir(), quiet);
  assert.equal(state(cp), before);
  assert.is(cp.get('c2')?.reported, 'exited');
  assert.equal(cp.seen('rejected:x'), 7);
  assert.equal(files(), ['journal.1']);
  cp.close();
});

t('checkpoint - a marked position waits for its batch; a kept promise does not hold an ack', async () => {
  const cp = await Checkpoint.open(dir(), quiet);
  cp.set('c1', rec(1), [started('c1', 1)]);
  let saved = false;
  cp.kept('c1', ['ev-c1-1']);
  await cp.whenSaved(); // resolves at once: nothing urgent
  const size = statSync(join(dir(), 'journal.1')).size;
  cp.markSeen('rejected:x', 3);
  void cp.whenSaved().then(() => { saved = true; });
  await new Promise((r) => setTimeout(r, 0));
  assert.is(saved, false, 'not before its batch is written');
  await new Promise((r) => setTimeout(r, 60));
  assert.is(saved, true);
  assert.ok(statSync(join(dir(), 'journal.1')).size > size, 'the batch carried the position and the kept promise');
  cp.close();
  const again = await Checkpoint.open(dir(), quiet);
  assert.equal(again.pending(), []);
  assert.is(again.seen('rejected:x'), 3);
  again.close();
});

t('checkpoint - promises add up until kept by id (a failed append stays promised)', async () => {
  const cp = await Checkpoint.open(dir(), quiet);
  cp.set('c1', rec(1), [started('c1', 1)]);
  cp.update('c1', { lastSeq: 2 }, [started('c1', 2)]);
  assert.equal(cp.pending()[0][1].map((e) => e.id), ['ev-c1-1', 'ev-c1-2']);
  cp.kept('c1', ['ev-c1-2']);
  cp.close();
  const again = await Checkpoint.open(dir(), quiet);
  assert.equal(again.pending()[0][1].map((e) => e.id), ['ev-c1-1']);
  again.close();
});

t('checkpoint - a torn last record is dropped with a warning; the file is cut and goes on', async () => {
  let cp = await Checkpoint.open(dir(), quiet);
  cp.set('c1', rec(1));
  cp.set('c2', rec(2));
  cp.close();
  const p = join(dir(), 'journal.1');
  const whole = statSync(p).size;
  // the last record, half written
  const frame = encodeRecords([{ c: 'c3', r: rec(3) }]);
  appendFileSync(p, frame.subarray(0, frame.length - 5));
  const warnings: string[] = [];
  cp = await Checkpoint.open(dir(), { warn: (m) => warnings.push(m) });
  assert.is(cp.get('c3'), undefined);
  assert.is(cp.get('c2')?.lastSeq, 2);
  assert.is(warnings.length, 1);
  assert.match(warnings[0], /torn last record at byte \d+/);
  assert.is(statSync(p).size, whole, 'cut back to the last whole record');
  cp.set('c3', rec(3));
  cp.close();
  warnings.length = 0;
  cp = await Checkpoint.open(dir(), { warn: (m) => warnings.push(m) });
  assert.is(cp.get('c3')?.lastSeq, 3);
  assert.equal(warnings, []);
  cp.close();
});

t('checkpoint - zeros at the end (a power loss) are a torn tail', async () => {
  let cp = await Checkpoint.open(dir(), quiet);
  cp.set('c1', rec(1));
  cp.close();
  appendFileSync(join(dir(), 'journal.1'), Buffer.alloc(4096));
  cp = await Checkpoint.open(dir(), quiet);
  assert.is(cp.get('c1')?.lastSeq, 1);
  cp.close();
});

t('checkpoint - junk in the middle is a clear error naming file and byte, and nothing on disk changes', async () => {
  const cp = await Checkpoint.open(dir(), quiet);
  for (let i = 1; i <= 5; i++) cp.set(`c${i}`, rec(i));
  cp.close();
  const p = join(dir(), 'journal.1');
  const buf = readFileSync(p);
  const at = MAGIC.length + 8 + 20; // inside the first record's JSON
  buf[at] ^= 0xff;
  writeFileSync(p, buf);
  const err = await Checkpoint.open(dir(), quiet).then(() => undefined, (e) => e as Error);
  assert.instance(err, JournalError);
  assert.match(err!.message, new RegExp(`checkpoint ${p}: a record does not match its checksum \\(damaged\\) at byte ${MAGIC.length}`));
  assert.not.match(err!.message, /\n/, 'one line');
  assert.equal(readFileSync(p), buf, 'the damaged file is left as it was');
  assert.equal(files(), ['journal.1']);
  // the same on the next try: a restart is refused the same way, never acts on half a memory
  await Checkpoint.open(dir(), quiet).then(() => assert.unreachable('opened'), (e) => assert.instance(e, JournalError));
});

t('checkpoint - junk of every kind: never a crash, always a JournalError or a torn tail', async () => {
  const cp = await Checkpoint.open(dir(), quiet);
  for (let i = 1; i <= 3; i++) cp.set(`c${i}`, rec(i), [started(`c${i}`, i)]);
  cp.close();
  const p = join(dir(), 'journal.1');
  const good = readFileSync(p);
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const cases: Buffer[] = [
    Buffer.from('not a journal at all'),
    Buffer.concat([MAGIC, encodeRecords([{ c: 'x' }, { nope: 1 }])]),
    Buffer.concat([MAGIC, encodeRecords([{ c: 'x', r: { lastSeq: 'one' } }])]),
    Buffer.concat([MAGIC, encodeRecords([{ c: 'x', r: rec(1) }, { p: 'x', e: [{ id: 1 }] }, { c: 'y' }])]),
    Buffer.concat([MAGIC, encodeRecords([[1, 2]])]),
    Buffer.concat([MAGIC, Buffer.from([0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]), Buffer.alloc(64, 1)]),
  ];
  for (let k = 0; k < 40; k++) {
    const b = Buffer.from(good);
    const at = MAGIC.length + Math.floor(rnd() * (b.length - MAGIC.length));
    for (let n = 0; n < 1 + rnd() * 8; n++) b[Math.min(b.length - 1, at + n)] = Math.floor(rnd() * 256);
    cases.push(b);
  }
  for (const b of cases) {
    writeFileSync(p, b);
    try {
      const again = await Checkpoint.open(dir(), quiet);
      again.close();
    } catch (e) {
      assert.instance(e, JournalError, (e as Error).stack);
    }
  }
});

t('checkpoint - compaction folds the journal into a snapshot; the state reads back the same', async () => {
  let cp = await Checkpoint.open(dir(), { ...quiet, minCompactBytes: 64 << 10 });
  for (let i = 1; i <= 2000; i++) {
    cp.set(`c${i % 300}`, rec(i), [started(`c${i % 300}`, i)]);
    if (i % 3) cp.kept(`c${i % 300}`); // some stay promised (and add up) until the next time
    if (i % 7 === 0) cp.markSeen(`rejected:${i % 5 ? 'x' : 'y'}`, i);
    if (i % 50 === 0) await new Promise((r) => setImmediate(r)); // lets a compaction run between writes
  }
  await cp.compact();
  await cp.compact(); // the first may have been one already running
  const before = state(cp);
  const { gen, journal, snapshot } = cp.files;
  assert.ok(gen > 2, `compacted more than once (gen ${gen})`);
  assert.ok(snapshot > 0 && journal < 64 << 10, `journal ${journal} B after a snapshot of ${snapshot} B`);
  assert.equal(files(), [`journal.${gen}`, `snapshot.${gen}`], 'older files are gone');
  cp.close();
  cp = await Checkpoint.open(dir(), quiet);
  assert.equal(state(cp), before);
  cp.close();
});

t('checkpoint - writes during a compaction land in the new segment and survive it', async () => {
  let cp = await Checkpoint.open(dir(), { ...quiet, minCompactBytes: 1 << 30 });
  for (let i = 1; i <= 5000; i++) cp.set(`c${i}`, rec(i));
  const running = cp.compact(); // rotates now, writes the snapshot a chunk at a time
  for (let i = 1; i <= 5000; i += 2) cp.update(`c${i}`, { reported: 'exited', lastSeq: i + 10_000 });
  cp.set('late', rec(1));
  await running;
  cp.close();
  const before = state(cp);
  cp = await Checkpoint.open(dir(), quiet);
  assert.equal(state(cp), before);
  assert.is(cp.get('c1')?.reported, 'exited');
  assert.is(cp.get('c2')?.reported, 'running');
  assert.ok(cp.get('late'));
  cp.close();
});

t('checkpoint - a compaction cut short (old snapshot, a .tmp, two segments) replays to the same state', async () => {
  let cp = await Checkpoint.open(dir(), { ...quiet, minCompactBytes: 1 << 30 });
  for (let i = 1; i <= 100; i++) cp.set(`c${i}`, rec(i));
  await cp.compact(); // snapshot.2 + journal.2
  for (let i = 1; i <= 100; i++) cp.update(`c${i}`, { lastSeq: 500 + i });
  cp.close();
  const before = state(cp);
  // what a crash during the next compaction leaves: journal.3 made, snapshot.3 half written
  writeFileSync(join(dir(), 'journal.3'), Buffer.concat([MAGIC, encodeRecords([{ c: 'c1', r: { ...rec(1), lastSeq: 999 } }])]));
  writeFileSync(join(dir(), 'snapshot.3.tmp'), Buffer.concat([MAGIC, encodeRecords([{ c: 'c1', r: rec(1) }])]));
  cp = await Checkpoint.open(dir(), quiet);
  assert.is(cp.get('c1')?.lastSeq, 999);
  assert.equal(state(cp).all.filter(([id]) => id !== 'c1'), before.all.filter(([id]) => id !== 'c1'));
  assert.equal(files(), ['journal.2', 'journal.3', 'snapshot.2'], 'the .tmp is gone');
  cp.close();
});

t('checkpoint - a missing segment or an incomplete snapshot is damage, not an empty memory', async () => {
  let cp = await Checkpoint.open(dir(), { ...quiet, minCompactBytes: 1 << 30 });
  cp.set('c1', rec(1));
  await cp.compact();
  cp.set('c2', rec(2));
  cp.close();
  writeFileSync(join(dir(), 'journal.4'), MAGIC);
  await Checkpoint.open(dir(), quiet).then(() => assert.unreachable('opened'), (e) => assert.match((e as Error).message, /journal\.3: the segment is missing/));
  rmSync(join(dir(), 'journal.4'));
  const seg = readFileSync(join(dir(), 'journal.2'));
  rmSync(join(dir(), 'journal.2'));
  await Checkpoint.open(dir(), quiet).then(() => assert.unreachable('opened'), (e) => assert.match((e as Error).message, /journal\.2: the segment is missing/));
  writeFileSync(join(dir(), 'journal.2'), seg);
  truncateSync(join(dir(), 'snapshot.2'), statSync(join(dir(), 'snapshot.2')).size - 3);
  await Checkpoint.open(dir(), quiet).then(() => assert.unreachable('opened'), (e) => assert.match((e as Error).message, /snapshot\.2: the snapshot is incomplete/));
  cp = undefined as never;
});

t('checkpoint - the older JSON file is migrated once, then deleted', async () => {
  const legacy = join(root, 'checkpoint.json');
  writeFileSync(legacy, JSON.stringify({
    containers: { a: rec(1), gone: rec(2, 'removed') }, seen: { 'rejected:x': 4 }, pending: { a: [started('a', 1)] },
  }));
  let cp = await Checkpoint.open(dir(), { ...quiet, legacy });
  assert.is(cp.get('a')?.lastSeq, 1);
  assert.is(cp.get('gone')?.reported, 'removed');
  assert.is(cp.seen('rejected:x'), 4);
  assert.is(cp.pending().length, 1);
  assert.not.ok(existsSync(legacy));
  assert.ok(files().some((f) => f.startsWith('snapshot.')));
  cp.close();
  cp = await Checkpoint.open(dir(), { ...quiet, legacy });
  assert.is(cp.get('a')?.lastSeq, 1);
  cp.close();
  writeFileSync(legacy, '{"containers": {');
  rmSync(dir(), { recursive: true });
  await Checkpoint.open(dir(), { ...quiet, legacy }).then(() => assert.unreachable('opened'), (e) => {
    assert.match((e as Error).message, /checkpoint\.json: not JSON/);
    assert.match((e as Error).message, new RegExp(`move ${legacy} aside`), 'the hint names the file, not the node\'s folder');
  });
});

t('checkpoint - tombstones go once the stream no longer holds their events, and stay gone', async () => {
  let cp = await Checkpoint.open(dir(), quiet);
  cp.set('old', rec(10, 'removed'));
  cp.set('recent', rec(50, 'removed'));
  cp.set('promised', rec(11, 'removed'), [{ id: 'ev-r', type: 'ContainerRemoved', entity: 'promised', data: { reason: 'x' } }]);
  cp.set('live', rec(5));
  assert.is(cp.pruneRemoved(11), 1, 'only lastSeq below the first sequence, nothing still promised');
  assert.is(cp.get('old'), undefined);
  assert.ok(cp.get('recent') && cp.get('promised') && cp.get('live'));
  cp.kept('promised');
  assert.is(cp.pruneRemoved(100), 2);
  assert.equal(cp.all().map(([id]) => id), ['live']);
  cp.close();
  cp = await Checkpoint.open(dir(), quiet);
  assert.equal(cp.all().map(([id]) => id), ['live']);
  cp.close();
});

t.run();
