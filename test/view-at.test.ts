// view --at from the controller's stored snapshots: the controller (here every 25 events) stores a
// signed full snapshot in the object store; `tsctl view --at SEQ` folds only from the nearest one at
// or before SEQ, and the result equals a fold of the whole log up to SEQ. A stored snapshot whose
// bytes were changed, or signed by a key that is not the controller's, is refused: tsctl says so
// and folds the whole log. The controller restarted from its own snapshot + journal has the view
// a fresh fold gives.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { Cluster, until } from './helpers/cluster.js';
import { Appender, readLog } from '../shared/nats/log.js';
import { SourceChain } from '../shared/codec.js';
import { subjects } from '../shared/subjects.js';
import { readCreds, signerOf } from '../shared/nats/trust.js';
import { KeyRing, signer } from '../shared/signing.js';
import { emptyView } from '../shared/reducer.js';
import { CheckedFold } from '../shared/fold.js';
import { listSnapshots, verifySnapshot, SNAPSHOT_BUCKET } from '../shared/nats/snapshots.js';
import type { NatsConnection } from 'nats';

process.env.SWARMLITE_SNAPSHOT_EVERY = '25';
const t = suite('view --at from snapshots');
let c: Cluster;
let admin: NatsConnection;
t.before(async () => {
  c = await Cluster.start();
  admin = await c.connect();
  // a node of its own that joins again and again with another cpu count: each position has its own view
  const creds = readCreds(c.addIdentity('node-fake', 'agent', { node: 'fake' }));
  const nc = await c.connect('node-fake');
  const { signer: s, reg } = signerOf(creds);
  const log = new Appender(nc.jetstream(), new SourceChain('node:fake'), s);
  await log.append(subjects.keys('node-fake'), 'KeyRegistered', 'fake', reg);
  for (let i = 1; i <= 200; i++) await log.append(subjects.node('fake'), 'NodeJoined', 'fake', { hostname: 'fake', cpus: i, memory: 1 << 30, kernel: '6.1', features: [], version: 't' });
  await nc.close();
});
t.after(async () => { await admin?.close(); await c?.stop(); });

/** The whole log folded from #1 up to `at`, signatures checked: what view --at must equal. */
async function fresh(at: number) {
  const v = emptyView();
  const fold = new CheckedFold(v, new KeyRing(readCreds(c.adminCreds).root, (v.keys ??= {})));
  for await (const item of readLog(admin)) {
    if (!item.ok) continue;
    if (item.stored.seq > at) break;
    fold.add(item.stored, true);
  }
  fold.flush();
  return { seq: v.seq, nodes: v.nodes, containers: v.containers, networks: v.networks, images: v.images };
}

const viewAt = async (at: number) => {
  const r = await c.tsctl(['view', '--at', String(at), '--format', 'json']);
  assert.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  return { fromSnapshot: j.fromSnapshot as number, stderr: r.stderr, view: { seq: j.seq, nodes: j.nodes, containers: j.containers, networks: j.networks, images: j.images } };
};

t('view --at - folds from the nearest stored snapshot and equals a fold of the whole log', async () => {
  const snaps = await until(async () => { const s = await listSnapshots(admin); return s.length >= 3 && s; }, 60000, 'three stored snapshots');
  const mid = snaps[1]!.seq + 3;
  const r = await viewAt(mid);
  assert.ok(r.fromSnapshot > 0 && r.fromSnapshot <= mid, `from snapshot #${r.fromSnapshot} for #${mid}`);
  assert.is(r.fromSnapshot, snaps.filter((s) => s.seq <= mid).pop()!.seq, 'the nearest one');
  assert.equal(r.view, await fresh(mid));
  assert.ok((r.view.nodes as Record<string, { cpus: number }>).fake.cpus > 1, 'a position inside the fake node\'s rejoins');
  // exactly at a snapshot: nothing to fold after it
  const exact = await viewAt(snaps[0]!.seq);
  assert.is(exact.fromSnapshot, snaps[0]!.seq);
  assert.equal(exact.view, await fresh(snaps[0]!.seq));
});

t('view --at - a tampered snapshot is refused: said on stderr, the whole log folded instead, same view', async () => {
  const snaps = await listSnapshots(admin);
  const target = snaps[snaps.length - 1]!;
  const tamper = await c.connect('tamper');
  try {
    const os = await tamper.jetstream().views.os(SNAPSHOT_BUCKET);
    const data = (await os.getBlob(target.name))!;
    assert.ok(typeof verifySnapshot(data, target, readCreds(c.adminCreds).root) !== 'string', 'the stored one verifies');
    const bad = Uint8Array.from(data);
    bad[bad.length - 10] ^= 0xff; // a byte of the view itself
    await os.putBlob({ name: target.name }, bad);
  } finally { await tamper.close(); }
  const r = await viewAt(target.seq + 1);
  assert.match(r.stderr, new RegExp(`snapshot #${target.seq} refused \\(its bytes are not the ones signed\\): folding the whole log`));
  assert.is(r.fromSnapshot, 0);
  assert.equal(r.view, await fresh(target.seq + 1));
});

t('view --at - a snapshot signed by another key, or under another name, does not verify', () => {
  const root = readCreds(c.adminCreds).root;
  const other = signer(randomBytes(32));
  const head = Buffer.from(JSON.stringify({ v: 1, seq: 5, ts: 1, sha256: '0'.repeat(64), sig: other.sign(Buffer.from('x')), reg: { key: other.pub, rootSig: 'AAAA' } }));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(head.length);
  const obj = Buffer.concat([len, head, Buffer.from('view')]);
  assert.is(verifySnapshot(obj, { seq: 5, ts: 1 }, root), 'its key is not the controller\'s (root signature)');
  assert.match(String(verifySnapshot(obj, { seq: 6, ts: 1 }, root)), /manifest says #5/);
  assert.is(verifySnapshot(Buffer.from('junk'), { seq: 5, ts: 1 }, root), 'truncated manifest');
});

t('controller - restarted from its snapshot and journal, its view is the fresh fold\'s', async () => {
  // a quiet second: the last changes are in the journal (or a snapshot)
  await new Promise((r) => setTimeout(r, 1500));
  await c.restartController();
  const info = JSON.parse((await c.ok(['nodes', '--format', 'json'])));
  const fake = (info as { id: string; cpus: number }[]).find((n) => n.id === 'fake');
  assert.is(fake?.cpus, 200);
  const live = await viewAt(999999999);
  const f = await fresh(live.view.seq);
  assert.equal(live.view, f);
  const ps = JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])) as { id: string }[];
  assert.equal(ps.map((p) => p.id).sort(), Object.keys(f.containers).sort());
});

t('controller - a catch-up over thousands of events written while it was down (several batches) has the fresh fold\'s view', async () => {
  const p = (c as unknown as { procs: { controller?: import('node:child_process').ChildProcess } }).procs.controller!;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
  const creds = readCreds(c.addIdentity('node-many', 'agent', { node: 'many' }));
  const nc = await c.connect('node-many');
  const { signer: s, reg } = signerOf(creds);
  const log = new Appender(nc.jetstream(), new SourceChain('node:many'), s);
  await log.append(subjects.keys('node-many'), 'KeyRegistered', 'many', reg);
  const N = 5000; // more than a signature batch (4,096): runs checked across batches
  for (let i = 0; i < N; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, N - i) }, (_, k) => log.append(subjects.node('many'), 'NodeJoined', 'many', { hostname: 'many', cpus: 2, memory: i + k + 1, kernel: '6.1', features: [], version: 't' })));
  }
  await nc.close();
  c.startController();
  await until(async () => (await c.tsctl(['ps'])).code === 0, 60000, 'controller answering');
  const nodes = JSON.parse(await c.ok(['nodes', '--format', 'json'])) as { id: string; memory: number }[];
  assert.is(nodes.find((n) => n.id === 'many')?.memory, N, 'every event folded');
  const live = await viewAt(999999999);
  assert.equal(live.view, await fresh(live.view.seq));
});

t.run();
