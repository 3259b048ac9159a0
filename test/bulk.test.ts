// The bulk log reader (shared/nats/bulk.ts, bulk-parallel.ts): its parsing of what nats.js
// hands over (pure), then against a real server: every position in order with its signature,
// a deleted message a gap, the threaded reader the same sequence as the one-thread reader, and
// an audit over chunks that still finds a forgery, a deletion and a replayed (reordered) event
// exactly at a chunk's boundary, the same findings as one thread.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { headers as natsHeaders, MsgHdrsImpl, type NatsConnection } from 'nats';
import { Cluster, until } from './helpers/cluster.js';
import { ackInfo, readDecoded, readRange, sigOf, type AckInfo } from '../shared/nats/bulk.js';
import { readParallel, split } from '../shared/nats/bulk-parallel.js';
import { Appender, readLog, type ReadItem } from '../shared/nats/log.js';
import { SourceChain, decodeEvent } from '../shared/codec.js';
import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack';
import { subjects, STREAM } from '../shared/subjects.js';
import { readCreds, signerOf } from '../shared/nats/trust.js';
import { Auditor, type Finding } from '../shared/audit.js';
import { SIG_HEADER } from '../shared/signing.js';

const pure = suite('bulk - parsing');

pure('bulk - the signature header is read from the raw block as nats.js parses it', () => {
  const h = natsHeaders();
  h.set('Nats-Msg-Id', 'abc');
  h.set(SIG_HEADER, 'c2lnbmF0dXJl+/==');
  const raw = (h as unknown as { encode(): Uint8Array }).encode();
  assert.is(sigOf(raw), 'c2lnbmF0dXJl+/==');
  assert.is(sigOf(raw), MsgHdrsImpl.decode(raw).get(SIG_HEADER));
  const none = natsHeaders();
  none.set('Nats-Msg-Id', 'abc');
  assert.is(sigOf((none as unknown as { encode(): Uint8Array }).encode()), undefined);
  // only a header NAME counts: the name inside another header's value, or in the payload after
  // the block, is no signature
  const te = new TextEncoder();
  assert.is(sigOf(te.encode('NATS/1.0\r\nX-Note: a\r\nSwl-Sig:x y\r\n\r\n')), 'x y');
  assert.is(sigOf(te.encode('NATS/1.0\r\nX-Note: Swl-Sig: forged\r\n\r\n')), undefined);
  const withPayload = te.encode('NATS/1.0\r\nA: b\r\n\r\n\nSwl-Sig: in the payload\r\n');
  assert.is(sigOf(withPayload, 'NATS/1.0\r\nA: b\r\n\r\n'.length), undefined);
  assert.is(sigOf(te.encode('NATS/1.0\r\nSwl-Sig:\r\n\r\n')), undefined);
});

pure('bulk - stream and delivery sequences from both forms of the reply subject; anything else refused', () => {
  const a: AckInfo = { sseq: 0, dseq: 0, pending: 0 };
  const te = new TextEncoder();
  assert.ok(ackInfo(te.encode('$JS.ACK.EVENTS.bulk_1.1.4711.42.1732861234000000000.9'), a));
  assert.equal(a, { sseq: 4711, dseq: 42, pending: 9 });
  assert.ok(ackInfo(te.encode('$JS.ACK.dom.ACCHASH.EVENTS.bulk_1.1.12.3.1732861234000000000.0.tok'), a));
  assert.equal(a, { sseq: 12, dseq: 3, pending: 0 });
  for (const bad of ['', '$JS.ACK.EVENTS', '_INBOX.x.y', '$JS.ACK.EVENTS.c.1.x.2.3.4', '$JS.ACK.EVENTS.c.1.2.3.4', '$JS.ACK.EVENTS.c.1..3.4.5']) {
    assert.not.ok(ackInfo(te.encode(bad), a), bad);
  }
});

pure('bulk - the decoder\'s prev check (a loop) takes exactly what its regex takes', () => {
  const ok = new SourceChain('node:x').next('ContainerExited', 'a'.repeat(64), { exitCode: 0, oomKilled: false, exitedAt: 1 });
  const base = msgpackDecode(ok.bytes) as Record<string, unknown>;
  const re = /^(?:[0-9a-f]{64})?$/;
  const cands = ['', 'a'.repeat(64), '0123456789abcdef'.repeat(4), 'A'.repeat(64), 'g'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), `${'a'.repeat(63)}/`, `${'a'.repeat(63)}:`, `${'a'.repeat(63)}\``, `${'a'.repeat(63)}\n`, ' '.repeat(64)];
  for (const prev of cands) {
    let err: Error | undefined;
    try { decodeEvent(msgpackEncode({ ...base, prev })); } catch (e) { err = e as Error; }
    assert.is(err === undefined, re.test(prev) && prev.length <= 64, JSON.stringify(prev));
    if (err) assert.match(err.message, prev.length > 64 ? /longer than 64/ : `does not match ${re}`);
  }
});

pure('bulk - a range is cut into chunks that tile it', () => {
  assert.equal(split(1, 10, 4), [[1, 4], [5, 8], [9, 10]]);
  assert.equal(split(5, 5, 4), [[5, 5]]);
  assert.equal(split(6, 5, 4), []);
});

pure.run();

const live = suite('bulk - against a server');
let c: Cluster;
let nc: NatsConnection;
let tamper: NatsConnection;
let last = 0;
const N = 3000;

live.before(async () => {
  c = await Cluster.start();
  const creds = readCreds(c.addIdentity('node-bulk', 'agent', { node: 'bulk' }));
  const w = await c.connect('node-bulk');
  const { signer, reg } = signerOf(creds);
  const a = new Appender(w.jetstream(), new SourceChain('node:bulk'), signer, { nc: w });
  await a.append(subjects.keys('node-bulk'), 'KeyRegistered', 'bulk', { key: reg.key, rootSig: reg.rootSig });
  const id = (i: number) => (i % 97).toString(16).padStart(64, '0');
  await Promise.all(Array.from({ length: N }, (_, i) => a.append(subjects.state('bulk', id(i)), 'ContainerExited', id(i), { exitCode: i % 3, oomKilled: false, exitedAt: 1_700_000_000_000 + i })));
  await w.close();
  nc = await c.connect();
  tamper = await c.connect('tamper');
  last = (await (await nc.jetstreamManager()).streams.info(STREAM)).state.last_seq;
});
live.after(async () => {
  await nc?.close().catch(() => undefined);
  await tamper?.close().catch(() => undefined);
  await c?.stop();
});

const collect = async (it: AsyncIterable<ReadItem[]>): Promise<ReadItem[]> => { const out: ReadItem[] = []; for await (const b of it) out.push(...b); return out; };
const seqOf = (i: ReadItem) => (i.ok ? i.stored.seq : i.seq);
const adminConn = () => ({ creds: readCreds(c.adminCreds), url: c.url });

live('bulk - every position in order, with the signature and bytes readLog gives, in small pulls too', async () => {
  const want: ReadItem[] = [];
  for await (const i of readLog(nc, {})) want.push(i);
  for (const batch of [64, 4096]) {
    const got: { seq: number; sig?: string; len: number }[] = [];
    for await (const b of readRange(nc, { from: 1, to: last, batch })) for (const m of b) got.push({ seq: m.seq, sig: m.sig, len: m.data.length });
    assert.is(got.length, want.length, `batch ${batch}`);
    got.forEach((g, k) => {
      const w = want[k]!;
      assert.ok(w.ok);
      assert.is(g.seq, w.stored.seq);
      assert.is(g.sig, w.stored.sig);
      assert.is(g.len, w.stored.bytes!.length);
    });
  }
  // a part of the range, and a range past the end
  const part = await collect(readDecoded(nc, { from: 100, to: 199 }));
  assert.equal(part.map(seqOf), Array.from({ length: 100 }, (_, i) => 100 + i));
  assert.equal(await collect(readDecoded(nc, { from: last + 1, to: last + 10 })), []);
});

live('bulk - a consumer deleted under the reader is made again from the next position: nothing lost, nothing twice', async () => {
  const jsm = await nc.jetstreamManager();
  const seqs: number[] = [];
  let killed = 0;
  for await (const b of readRange(nc, { from: 1, to: last, batch: 64, stallMs: 1500 })) {
    for (const m of b) seqs.push(m.seq);
    if (killed < 2 && seqs.length > (killed + 1) * 700) {
      // what a server that died with the consumer, or an operator's cleanup, does to it
      for await (const ci of jsm.consumers.list(STREAM)) if (ci.name.startsWith('bulk_')) { await jsm.consumers.delete(STREAM, ci.name); killed++; }
    }
  }
  assert.is(killed, 2);
  const all = (await collect(readDecoded(nc, { from: 1, to: last }))).map(seqOf);
  assert.equal(seqs, all);
  assert.is(new Set(seqs).size, seqs.length);
  // and no consumer of the readers is left behind (each deletes its own as it ends, not waiting)
  await until(async () => {
    const left: string[] = [];
    for await (const ci of jsm.consumers.list(STREAM)) if (ci.name.startsWith('bulk_')) left.push(ci.name);
    return left.length === 0;
  }, 5000, 'the readers\' consumers deleted');
});

live('bulk - the threaded reader gives the same items as one thread, across many chunks', async () => {
  const one = await collect(readDecoded(nc, { from: 1, to: last }));
  for (const decodeHere of [false, true]) {
  const par = await collect(readParallel(adminConn(), { from: 1, to: last, decodeHere }, 2, undefined, 257));
  assert.is(par.length, one.length);
  par.forEach((p, k) => {
    const o = one[k]!;
    assert.is(seqOf(p), seqOf(o));
    assert.ok(p.ok && o.ok);
    assert.is(p.stored.hash, o.stored.hash);
    assert.is(p.stored.sig, o.stored.sig);
    assert.equal(p.stored.event, o.stored.event);
    assert.equal([...p.stored.bytes!], [...o.stored.bytes!]);
  });
  }
});

/** What tsctl audit verify finds, over items from one reader or the other. */
async function audit(items: AsyncIterable<ReadItem[]>, to: number): Promise<Finding[]> {
  const a = new Auditor(readCreds(c.adminCreds).root, 1);
  const info = await (await nc.jetstreamManager()).streams.info(STREAM);
  a.head(info.state.first_seq, to);
  for await (const b of items) {
    for (const i of b) {
      if (!i.ok) a.junk(i.seq, i.subject, i.error.message);
      else a.event(i.stored.seq, i.stored.subject!, i.stored.event, i.stored.bytes!, i.stored.hash, i.stored.sig);
    }
  }
  return a.end(to);
}

live('bulk - a forgery, a deletion and a replayed event exactly at a chunk boundary are found, as by one thread', async () => {
  const jsm = await nc.jetstreamManager();
  // a replayed event: an old event's exact bytes and signature published again (reordered)
  // one that carries its own signature: a burst's later events are vouched for by its first only,
  // so a copy of one of those would be an unsigned stranger (forged), not a replay (reordered)
  let old = await jsm.streams.getMessage(STREAM, { seq: 10 });
  for (let s = 11; !old.header?.get(SIG_HEADER) && s < 1000; s++) old = await jsm.streams.getMessage(STREAM, { seq: s });
  const h = natsHeaders();
  h.set(SIG_HEADER, old.header.get(SIG_HEADER));
  const replayed = (await tamper.jetstream().publish(old.subject, old.data, { headers: h })).seq;
  // a forged event in the node's chain: next link, but signed by nobody
  const tip = (await collect(readDecoded(nc, { from: 1, to: replayed - 1 }))).filter((i) => i.ok && i.stored.event.src === 'node:bulk').pop()!;
  assert.ok(tip?.ok);
  const forgedBytes = new SourceChain('node:bulk', tip.stored.event.srcSeq, tip.stored.hash).next('ContainerExited', '1'.repeat(64), { exitCode: 9, oomKilled: false, exitedAt: 1 }).bytes;
  const forged = (await tamper.jetstream().publish(subjects.state('bulk', '1'.repeat(64)), forgedBytes)).seq;
  // junk on a node's subject: undecodable, found by every reader
  const junk = (await tamper.jetstream().publish(subjects.state('bulk', '2'.repeat(64)), new Uint8Array([0x93, 0xc1]))).seq;
  // a deletion in the middle of the original events
  const deleted = 1500;
  await jsm.streams.deleteMessage(STREAM, deleted, false);
  const to = (await jsm.streams.info(STREAM)).state.last_seq;

  const base = await audit(readDecoded(nc, { from: 1, to }), to);
  assert.ok(base.some((f) => f.kind === 'reordered' && f.seq === replayed), JSON.stringify(base));
  assert.ok(base.some((f) => f.kind === 'forged' && f.seq === forged), JSON.stringify(base));
  assert.ok(base.some((f) => f.kind === 'deleted' && f.seq === deleted), JSON.stringify(base));
  assert.ok(base.some((f) => f.kind === 'undecodable' && f.seq === junk), JSON.stringify(base));
  // the chunk boundary right before, and right after, each tampered position
  for (const at of [replayed, forged, deleted]) {
    for (const first of [at, at + 1]) {
      const size = first - 1; // chunks [1, size], [size + 1, ...]: `first` opens the second
      const got = await audit(readParallel(adminConn(), { from: 1, to }, 2, undefined, size), to);
      assert.equal(got, base, `chunk boundary before #${first}`);
    }
  }
  // tsctl's own reader threads (their bundle beside tsctl.cjs) find the same as its one thread
  const runs = await Promise.all(['0', '2'].map((n) => c.tsctl(['audit', 'verify', '--threads', n, '--format', 'json'])));
  const [t0, t2] = runs.map((r) => { assert.is(r.code, 1, r.stderr); return JSON.parse(r.stdout) as { events: number; findings: Finding[] }; });
  for (const [kind, seq] of [['forged', forged], ['reordered', replayed], ['deleted', deleted], ['undecodable', junk]] as const) {
    assert.ok(t0!.findings.some((f) => f.kind === kind && f.seq === seq), `${kind} #${seq}: ${JSON.stringify(t0!.findings)}`);
  }
  assert.equal(t2!.findings, t0!.findings);
  assert.is(t2!.events, t0!.events);
});

live.run();
