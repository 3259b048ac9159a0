// The controller's start-up replay (controller/view.ts ViewKeeper) against a real server: the
// catch-up through a reader thread (it reads and hashes, this thread decodes and folds) and the
// in-thread reader make the same view as a plain checked fold of the whole log, from an empty
// state dir and again from the snapshot + journal a stopped keeper left, with a forged event, an
// event of no registered key and junk bytes in the log.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, headers, type NatsConnection } from 'nats';
import { freePort } from './helpers/cluster.js';
import { addIdentity, connectOptions, credsPath, initTrust, readCreds, signerOf, type Creds } from '../shared/nats/trust.js';
import { ensureStream, DEFAULT_LIMITS, readLog } from '../shared/nats/log.js';
import { SourceChain, encodeEvent } from '../shared/codec.js';
import { SIG_HEADER, KeyRing, type Signer } from '../shared/signing.js';
import { subjects, STREAM } from '../shared/subjects.js';
import { emptyView, indexOf, ViewIndex, type ClusterView } from '../shared/reducer.js';
import { CheckedFold } from '../shared/fold.js';
import { ViewKeeper } from '../controller/view.js';
import { ReaderThread, readThreaded } from '../controller/replay-reader.js';
import type { EventData, EventType } from '../shared/events.js';
import { COLLECT_FROM, releaseMemory, trimMalloc } from '../native/malloc.js';

const dir = mkdtempSync(join(tmpdir(), 'swl-view-replay-'));
let nats: ChildProcess | undefined;
let nc: NatsConnection;
let url = '';
let ctlCreds: Creds;

interface Src { chain: SourceChain; signer: Signer; reg: { key: string; rootSig: string } }
const put = async <T extends EventType>(s: Src, subject: string, type: T, entity: string, data: EventData[T], sign: Signer | null = s.signer): Promise<void> => {
  const { event, bytes, hash } = s.chain.next(type, entity, data);
  s.chain.commit(event.srcSeq, hash);
  const h = headers();
  if (sign) h.set(SIG_HEADER, sign.sign(bytes));
  await nc.jetstream().publish(subject, bytes, { headers: h });
};
const spec = (name: string) => ({ name, image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['sleep', '9'], env: ['A=1'], hostname: name, workdir: '/', network: 'none', autoRemove: false });

/** Containers requested and started on the nodes; every third one exits and is removed. */
async function churn(ctl: Src, nodes: Src[], from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i++) {
    const k = i % nodes.length, node = `r${k}`, id = i.toString(16).padStart(64, '0');
    await put(ctl, subjects.desired(node, id), 'ContainerRequested', id, { node, spec: spec(`c${i}`), user: 'admin' });
    await put(nodes[k]!, subjects.state(node, id), 'ContainerStarted', id, { pid: 100 + i, receivedAt: 1, runningAt: 2 });
    if (i % 3) continue;
    await put(nodes[k]!, subjects.state(node, id), 'ContainerExited', id, { exitCode: 0, oomKilled: false, exitedAt: 3 });
    await put(ctl, subjects.desired(node, id), 'ContainerRemoveRequested', id, { force: false, user: 'admin' });
    await put(nodes[k]!, subjects.state(node, id), 'ContainerRemoved', id, { reason: 'rm' });
  }
}

/** The whole log folded by a plain checked fold (held a batch at a time, as any replay checks it). */
async function scratch(): Promise<ClusterView> {
  const v = emptyView();
  const f = new CheckedFold(v, new KeyRing(ctlCreds.root, (v.keys ??= {})));
  for await (const item of readLog(nc)) {
    if (!item.ok) f.flush();
    if (item.ok) f.add(item.stored, true);
    else v.seq = Math.max(v.seq, item.seq);
  }
  f.flush();
  return v;
}

/** A keeper started on `state` (threaded or not) up to the stream's end, stopped (snapshot and journal written). */
async function replay(state: string, threaded: boolean): Promise<{ view: ClusterView; loaded: number; errors: number; replayed: number; from: number }> {
  // the reader thread starts before the snapshot is read, as the controller starts it; in-thread,
  // the one started is left unused (the catch-up is shorter than threadFrom) and closed
  const thread = ReaderThread.start({ creds: ctlCreds, url });
  // threaded, it begins where a peek at the snapshot says the view stands (as the controller's does);
  // in-thread, it begins on a range that does not fit (from #1) and is dropped unread
  const at = ViewKeeper.peek(state);
  const end = (await (await nc.jetstreamManager()).streams.info(STREAM)).state.last_seq;
  if (threaded && at) thread.begin({ from: at.seq + 1, to: end, check: { root: ctlCreds.root, keys: at.keys } });
  if (!threaded) thread.begin({ from: 1, to: end, check: { root: ctlCreds.root, keys: {} } });
  const k = await ViewKeeper.open(state, ctlCreds.root, 1000);
  if (at) assert.is(at.seq, k.view.seq, 'the peek says where the loaded view stands');
  k.reader = { creds: ctlCreds, url }; k.thread = thread;
  k.threadFrom = threaded ? 0 : Number.MAX_SAFE_INTEGER;
  // a threaded catch-up gives the C heap back once, after its thread is gone and before the view is ready
  let gone = false, trims = 0, goneAtTrim = false;
  void thread.closed.then(() => { gone = true; });
  k.trim = async () => { trims += 1; goneAtTrim = gone; return true; };
  const from = k.view.seq; // the snapshot's and its journal's
  await k.start(nc);
  assert.is(trims, threaded && from < end ? 1 : 0, 'trimmed after a threaded catch-up only');
  if (trims) assert.ok(goneAtTrim, 'the reader thread was gone when the heap was trimmed');
  // the catch-up deferred the index's maps: ready means they were built, equal to ones made from the containers
  const ix = indexOf(k.view);
  assert.not.ok(ix.deferred, 'the index is complete once the keeper is ready');
  assert.equal(indexDump(ix, k.view), indexDump(new ViewIndex(k.view), k.view), 'the index equals one rebuilt from the containers');
  const last = (await (await nc.jetstreamManager()).streams.info(STREAM)).state.last_seq;
  await k.waitFor(last);
  await k.stop();
  // the catch-up read it all (a failed one leaves the rest to the following read, which would hide it)
  assert.is(k.replay.problem, undefined, 'the catch-up failed');
  // from a snapshot, the thread begun on the peek was the one read (the in-thread case dropped its own)
  assert.is(k.replay.began, threaded && from > 0 && from < last, 'the thread begun before open read the catch-up');
  return { view: k.view, loaded: k.loaded.snapshot, errors: k.decodeErrors, replayed: k.replay.events, from };
}

/** What an index holds, in plain data. */
function indexDump(ix: ViewIndex, view: ClusterView) {
  const sets = (m: ReadonlyMap<string, Set<string>>) => [...m].filter(([, s]) => s.size).map(([k, s]) => [k, [...s].sort()]).sort();
  return { byNode: sets(ix.byNode), byState: sets(ix.byState), load: [...ix.load].filter(([, l]) => l.count !== 0).sort(), size: ix.size, names: Object.values(view.containers).map((c) => ix.named(c.name)).sort() };
}

// the keeper's journal and snapshots differ in what they leave out of a view only by undefined
const plain = (v: ClusterView) => JSON.parse(JSON.stringify(v)) as unknown;

test.before(async () => {
  const port = await freePort();
  url = `nats://127.0.0.1:${port}`;
  initTrust(dir, { port });
  addIdentity(dir, { name: 'writer', kind: 'superuser' }, undefined, false);
  for (let k = 0; k < 3; k++) addIdentity(dir, { name: `node-r${k}`, kind: 'agent', node: `r${k}` }, undefined, k === 2);
  nats = spawn('nats-server', ['-c', join(dir, 'nats.conf'), '-l', join(dir, 'nats.log')], { stdio: 'ignore' });
  for (let k = 0; ; k++) {
    try { nc = await connect({ ...connectOptions(readCreds(credsPath(dir, 'writer')), url), name: 'view-replay' }); break; } catch (err) { if (k > 100) throw err; await new Promise((r) => setTimeout(r, 100)); }
  }
  await ensureStream(await nc.jetstreamManager(), DEFAULT_LIMITS);
  ctlCreds = readCreds(credsPath(dir, 'controller'));
});

test.after(async () => {
  await nc?.close().catch(() => undefined);
  if (nats && nats.exitCode === null) { const gone = new Promise((r) => nats!.once('exit', r)); nats.kill('SIGTERM'); await gone; }
  rmSync(dir, { recursive: true, force: true });
});

test('view replay - the memory release the controller makes after a catch-up works here (glibc), again, and exposes no global gc', async () => {
  let garbage: unknown[] | undefined = Array.from({ length: 2000 }, () => Buffer.alloc(64 * 1024, 1));
  const held = process.memoryUsage().arrayBuffers;
  garbage = undefined;
  void garbage;
  assert.ok(held >= COLLECT_FROM);
  assert.is(await releaseMemory(), true);
  // V8 frees a collected buffer's backing store on a sweeper thread of its own: give it a moment
  for (let k = 0; k < 100 && process.memoryUsage().arrayBuffers >= held - 100 * 1024 * 1024; k++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(process.memoryUsage().arrayBuffers < held - 100 * 1024 * 1024, 'the buffers let go were collected');
  assert.is(await trimMalloc(), true);
  assert.is(await releaseMemory(), true);
  assert.is((globalThis as Record<string, unknown>).gc, undefined);
});

test('view replay - threaded and in-thread catch-ups equal a fold from scratch, from empty and from their snapshot', async () => {
  const src = (name: string, source: string): Src => ({ chain: new SourceChain(source), ...signerOf(readCreds(credsPath(dir, name))) });
  const ctl = src('controller', 'controller');
  const nodes = [0, 1, 2].map((k) => src(`node-r${k}`, `node:r${k}`));
  await put(ctl, subjects.keys('controller'), 'KeyRegistered', 'controller', ctl.reg);
  for (let k = 0; k < 3; k++) {
    await put(nodes[k]!, subjects.keys(`node-r${k}`), 'KeyRegistered', `r${k}`, nodes[k]!.reg);
    await put(nodes[k]!, subjects.node(`r${k}`), 'NodeJoined', `r${k}`, { hostname: `r${k}`, cpus: 4, memory: 2 ** 30, kernel: '6.1', features: [], version: 't' });
  }
  await churn(ctl, nodes, 0, 700);
  // a node's event signed by another node's key, and one with no signature: refused, not folded
  const id = 'f'.repeat(64);
  await put(nodes[0]!, subjects.state('r0', id), 'ContainerStarted', 'c'.repeat(64), { pid: 1, receivedAt: 1, runningAt: 1 }, nodes[1]!.signer);
  await put(nodes[1]!, subjects.state('r1', id), 'ContainerStarted', 'c'.repeat(64), { pid: 1, receivedAt: 1, runningAt: 1 }, null);
  // junk bytes: a decode error, its position passed
  await nc.jetstream().publish(subjects.state('r2', id), new Uint8Array([0xc1, 0x00]));
  await churn(ctl, nodes, 700, 300);
  // signed by its source, its envelope sound, its data not valid (pid 0): the reader thread checks
  // only envelopes, so the fold's whole decode must refuse it (its chain then has a gap after it)
  await put(nodes[2]!, subjects.state('r2', id), 'ContainerStarted', 'c'.repeat(64), { pid: 0, receivedAt: 1, runningAt: 1 });
  await churn(ctl, nodes, 1000, 300);

  const want = await scratch();
  assert.ok(want.forgedCount! >= 2, `forged ${want.forgedCount}`);
  assert.ok(Object.keys(want.containers).length > 500);
  const threaded = await replay(join(dir, 'state-t'), true);
  const here = await replay(join(dir, 'state-h'), false);
  assert.is(threaded.loaded, 0);
  assert.is(threaded.errors, 2, 'the junk event and the one whose data is not valid counted as decode errors');
  assert.is(here.errors, 2);
  assert.ok(want.chainIssues.some((c) => c.src === 'node:r2'), 'the refused event left a gap in its chain');
  assert.is(threaded.replayed, want.seq, 'every position came through the catch-up');
  assert.equal(plain(threaded.view), plain(want));
  assert.equal(plain(here.view), plain(want));

  // more events after the snapshot and journal the stopped keepers left: both start from them
  await churn(ctl, nodes, 1300, 500);
  const want2 = await scratch();
  const t2 = await replay(join(dir, 'state-t'), true);
  const h2 = await replay(join(dir, 'state-h'), false);
  assert.ok(t2.loaded > 0, 'the threaded keeper started from its snapshot');
  assert.ok(t2.from >= t2.loaded && t2.from < want2.seq);
  assert.is(t2.replayed, want2.seq - t2.from, 'the events after the snapshot came through the catch-up');
  assert.equal(plain(t2.view), plain(want2));
  assert.equal(plain(h2.view), plain(want2));
});

test('view replay - the reader thread checks every signature: a forged event in the middle of the log is refused by its verdict, and its keys are the fold\'s', async () => {
  // the log the first test wrote: a forged and an unsigned event in the middle of ~9,000
  const want = await scratch();
  const last = want.seq;
  const refused: { seq: number; problem: string }[] = [];
  let keys: Record<string, string> | undefined;
  const undecoded: number[] = [];
  let n = 0, posts = 0;
  for await (const post of readThreaded({ creds: ctlCreds, url }, { from: 1, to: last, check: { root: ctlCreds.root, keys: {} } })) {
    assert.ok(post.problem && post.keys, 'a checking thread posts verdicts and keys');
    assert.is(post.problem.length, post.msgs.length);
    post.msgs.forEach((m, i) => { if (post.problem![i]) refused.push({ seq: m.seq, problem: post.problem![i] as string }); if (post.problem![i] === false) undecoded.push(m.seq); });
    n += post.msgs.length; posts += 1;
    keys = post.keys;
  }
  assert.is(n, last, 'every position came through');
  assert.ok(posts > 1, 'the log spans several posts');
  assert.ok(refused.length >= 2 && refused.length === want.forgedCount, `refused ${JSON.stringify(refused)}`);
  assert.equal(refused, want.forged!.map((f) => ({ seq: f.seq, problem: f.problem })));
  assert.ok(refused.some((r) => /bad signature/.test(r.problem)) && refused.some((r) => /unsigned/.test(r.problem)));
  assert.ok(refused[0]!.seq > 1000 && refused[0]!.seq < last - 1000, 'in the middle of the log');
  assert.equal(keys, want.keys);
  // the junk bytes' envelope did not decode (the fold decodes it whole and refuses it); the event whose
  // data is not valid has a sound envelope (its verdict is the signature's; the fold's decode refuses it)
  assert.is(undecoded.length, 1, `undecoded ${JSON.stringify(undecoded)}`);
  assert.is(undecoded[0], refused[refused.length - 1]!.seq + 1, 'the junk bytes come right after the forged and the unsigned event');
  // without the keys of its start (a thread given none) the same events are refused, not folded
  const none: string[] = [];
  for await (const post of readThreaded({ creds: ctlCreds, url }, { from: 100, to: 200, check: { root: ctlCreds.root, keys: {} } })) for (const p of post.problem!) if (p) none.push(p);
  assert.is(none.length, 101, 'no key registered in the range: every event refused');
});

test('view replay - the reader thread is torn down once it posted its end, while the caller still holds posts, and those posts are whole', async () => {
  const want = await scratch();
  const last = want.seq;
  const thread = ReaderThread.start({ creds: ctlCreds, url });
  let gone = false;
  void thread.closed.then(() => { gone = true; });
  const it = thread.read({ from: 1, to: last, check: { root: ctlCreds.root, keys: {} } });
  const first = await it.next();
  if (first.done) throw new Error('no post came');
  let n = first.value.msgs.length, keys = first.value.keys, refused = first.value.problem!.filter((p) => p).length;
  // the log spans more posts than the thread's credit ahead: taking one lets it post the rest and its end
  const before = await Promise.race([thread.closed.then(() => 'gone'), new Promise((r) => setTimeout(() => r('still there'), 10_000))]);
  assert.is(before, 'gone', 'the thread is gone before the caller took its last post');
  let after = 0;
  for (let r = await it.next(); !r.done; r = await it.next()) {
    after += 1;
    for (const m of r.value.msgs) { assert.ok(m.data.length > 0, 'a payload survives the thread'); }
    n += r.value.msgs.length; keys = r.value.keys; refused += r.value.problem!.filter((p) => p).length;
  }
  assert.ok(gone && after > 0, 'posts were still to take when the thread was gone');
  assert.is(n, last, 'every position came through');
  assert.is(refused, want.forgedCount);
  assert.equal(keys, want.keys);
});

test('view replay - a forged fork and a tampered event are refused though their sources\' later events are signed (the check verifies a run by its last signature)', async () => {
  const src = (name: string, source: string): Src => ({ chain: new SourceChain(source), ...signerOf(readCreds(credsPath(dir, name))) });
  // the writers go on from their chains' heads as the log has them
  const heads = (await scratch()).sources;
  const ctl = src('controller', 'controller');
  const nodes = [0, 1, 2].map((k) => src(`node-r${k}`, `node:r${k}`));
  for (const x of [ctl, ...nodes]) x.chain.commit(heads[x.chain.src]!.srcSeq, heads[x.chain.src]!.hash);
  await churn(ctl, nodes, 5000, 200);
  const before = (await (await nc.jetstreamManager()).streams.info(STREAM)).state.last_seq;
  // a fork: node:r1's container 5002 (running) said to have exited, linked to node:r1's head but
  // signed by node:r2's key; node:r1's next event links to the same head
  const live = (5002).toString(16).padStart(64, '0');
  const fork = new SourceChain('node:r1', nodes[1]!.chain.position.srcSeq, nodes[1]!.chain.position.hash);
  const forged = fork.next('ContainerExited', live, { exitCode: 1, oomKilled: false, exitedAt: 3 });
  const h = headers();
  h.set(SIG_HEADER, nodes[2]!.signer.sign(forged.bytes));
  await nc.jetstream().publish(subjects.state('r1', live), forged.bytes, { headers: h });
  await churn(ctl, nodes, 5200, 100);
  // tampered: node:r2's event as it signed it, stored with other data (its successor names the signed one's hash)
  const id = (5300).toString(16).padStart(64, '0');
  const real = nodes[2]!.chain.next('ContainerStarted', id, { pid: 8, receivedAt: 1, runningAt: 1 });
  nodes[2]!.chain.commit(real.event.srcSeq, real.hash);
  const t = headers();
  t.set(SIG_HEADER, nodes[2]!.signer.sign(real.bytes));
  await nc.jetstream().publish(subjects.state('r2', id), encodeEvent({ ...real.event, data: { pid: 9, receivedAt: 1, runningAt: 1 } }), { headers: t });
  await churn(ctl, nodes, 5301, 200);

  const want = await scratch();
  const late = (want.forged ?? []).filter((f) => f.seq > before);
  assert.is(late.length, 2, `refused after #${before}: ${JSON.stringify(late)}`);
  assert.ok(late.every((f) => /bad signature/.test(f.problem)));
  assert.is(want.containers[live]?.state, 'running', 'the plain fold did not take the forged exit');
  // the reader thread's verdicts are the plain fold's
  const got: { seq: number; problem: string }[] = [];
  for await (const post of readThreaded({ creds: ctlCreds, url }, { from: 1, to: want.seq, check: { root: ctlCreds.root, keys: {} } })) {
    post.msgs.forEach((m, i) => { if (post.problem![i]) got.push({ seq: m.seq, problem: post.problem![i] as string }); });
  }
  assert.equal(got, want.forged!.map((f) => ({ seq: f.seq, problem: f.problem })));
  // and the controller's threaded catch-up folds neither
  const view = (await replay(join(dir, 'state-fork'), true)).view;
  assert.equal(plain(view), plain(want));
  assert.is(view.containers[live]?.state, 'running', 'the forged exit is not in the view');
});

test.run();
