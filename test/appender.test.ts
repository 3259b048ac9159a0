// The pipelined Appender against a scripted in-memory JetStream (stores in the order sent,
// drops a repeated msg id as the server's duplicate window does): many publishes in flight,
// results in chain order, and for each way one publish in the window can fail (its ack lost,
// the message lost with nothing after it stored, lost while a later one was stored, refused),
// the log that results is audited: no fork, no skip, each event stored once, or the one lost
// write reported where it is.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes, sign as edSign } from 'node:crypto';
import type { JetStreamClient, MsgHdrs } from 'nats';
import { SourceChain, hashBytes, decodeEvent } from '../shared/codec.js';
import { keyOf, registration, signer, SIG_HEADER } from '../shared/signing.js';
import { Auditor, type Finding } from '../shared/audit.js';
import { Appender, AppendError } from '../shared/nats/log.js';

const rootSeed = randomBytes(32);
const root = keyOf(rootSeed);

/** ackLostLate: stored, and its TIMEOUT comes 250 ms later, as a real one comes after the publish timeout (the later ones are answered meanwhile) */
type Fate = 'ok' | 'ackLost' | 'ackLostLate' | 'lost' | 'refused';
interface Stored { seq: number; subject: string; data: Uint8Array; sig?: string }

/** A stream that the Appender publishes to; `fate(n, attempt)` decides the n-th publish's outcome. */
function fakeStream(fate: (n: number, id: string) => Fate) {
  const msgs: Stored[] = [];
  const ids = new Map<string, number>();
  let n = 0, inFlight = 0, maxInFlight = 0;
  const js = {
    async publish(subject: string, data: Uint8Array, o: { msgID: string; headers: MsgHdrs }) {
      const k = n++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const f = fate(k, o.msgID);
      // the server sees publishes in the order they were sent: store now, answer later
      let seq = ids.get(o.msgID), duplicate = seq !== undefined;
      if (!duplicate && (f === 'ok' || f === 'ackLost' || f === 'ackLostLate')) {
        seq = msgs.length + 1;
        msgs.push({ seq, subject, data, sig: o.headers.get(SIG_HEADER) || undefined });
        ids.set(o.msgID, seq);
      }
      await new Promise((r) => setTimeout(r, f === 'ackLostLate' ? 250 : 1 + (k % 3)));
      inFlight--;
      if (f === 'refused') throw Object.assign(new Error('maximum message size exceeded'), { api_error: { err_code: 10054 } });
      if (f !== 'ok' && !duplicate) throw Object.assign(new Error('TIMEOUT'), { code: 'TIMEOUT' });
      return { seq: seq!, duplicate, stream: 'EVENTS' };
    },
    // a consumer filtered to one subject from a position (how the Appender looks an event up)
    consumers: {
      async get(_s: string, o: { filterSubjects: string; opt_start_seq: number }) {
        let from = o.opt_start_seq;
        return {
          async next() {
            const m = msgs.find((x) => x.seq >= from && x.subject === o.filterSubjects);
            if (!m) return null;
            from = m.seq + 1;
            return { seq: m.seq, data: m.data };
          },
          async delete() { return true; },
        };
      },
    },
  };
  return { js: js as unknown as JetStreamClient, msgs, get maxInFlight() { return maxInFlight; }, get published() { return n; } };
}

const SUBJ = (i: number) => `ev.state.n1.${(i % 7).toString().repeat(64)}`;

async function writer(fate: (n: number, id: string) => Fate, count: number, window = 32, onStop?: (err: Error) => void) {
  const s = fakeStream(fate);
  const sg = signer(randomBytes(32));
  const a = new Appender(s.js, new SourceChain('node:n1'), sg, { window, retryMs: 2000, ...(onStop ? { onStop } : {}) });
  const rootSig = edSign(null, registration('node:n1', sg.pub), root.priv).toString('base64');
  const results = await Promise.allSettled([
    a.append('ev.keys.node-n1', 'KeyRegistered', 'n1', { key: sg.pub, rootSig }),
    ...Array.from({ length: count }, (_, i) => a.append(SUBJ(i), 'ContainerRemoved', (i % 7).toString().repeat(64), { reason: `r${i}` })),
  ]);
  return { s, a, results };
}

function audit(msgs: Stored[]): Finding[] {
  const a = new Auditor(root.pub, 1);
  const last = msgs.length ? msgs[msgs.length - 1]!.seq : 0;
  a.head(1, last);
  for (const m of msgs) a.event(m.seq, m.subject, decodeEvent(m.data), m.data, hashBytes(m.data), m.sig);
  return a.end(last);
}

test('appender - publishes many at once, results in chain order, the log audits clean', async () => {
  const { s, results } = await writer(() => 'ok', 500);
  assert.ok(s.maxInFlight > 16 && s.maxInFlight <= 32, `${s.maxInFlight} in flight at most`);
  assert.ok(results.every((r) => r.status === 'fulfilled'));
  const seqs = results.map((r) => (r as PromiseFulfilledResult<{ seq: number }>).value.seq);
  assert.equal(seqs, seqs.map((_, i) => i + 1));
  assert.is(s.msgs.length, 501);
  assert.equal(audit(s.msgs), []);
});

test('appender - signatures amortised: the first of a burst is signed over all of it, an idle writer\'s append and desired events alone', async () => {
  // a controller: desired events are read by agents that see only their own node's, so each is signed alone
  const s = fakeStream(() => 'ok');
  const sg = signer(randomBytes(32));
  const a = new Appender(s.js, new SourceChain('controller'), sg, { window: 32 });
  const rootSig = edSign(null, registration('controller', sg.pub), root.priv).toString('base64');
  await a.append('ev.keys.controller', 'KeyRegistered', 'controller', { key: sg.pub, rootSig });
  const hex = (i: number) => (i % 16).toString(16).repeat(64);
  await a.append(`ev.image.${hex(0)}`, 'ImageRemoved', hex(0), { name: 'busybox', digest: `sha256:${hex(0)}`, user: 'u' }); // idle: alone
  await Promise.all(Array.from({ length: 300 }, (_, i) => (i % 10 === 5
    ? a.append(`ev.desired.n1.${hex(i)}`, 'ContainerStopRequested', hex(i), { timeout: 1, user: 'u' })
    : a.append(`ev.image.${hex(i)}`, 'ImageRemoved', hex(i), { name: 'busybox', digest: `sha256:${hex(i)}`, user: 'u' }))));
  assert.is(s.msgs.length, 302);
  const plainSig = (m: Stored) => m.sig !== undefined && !m.sig.includes(':');
  assert.ok(plainSig(s.msgs[0]!) && plainSig(s.msgs[1]!), 'the registration and an idle writer\'s append: signed alone');
  for (const m of s.msgs) if (m.subject.startsWith('ev.desired.')) assert.ok(plainSig(m), `desired #${m.seq} signed alone`);
  const bursts = s.msgs.filter((m) => m.sig?.includes(':')).length, unsigned = s.msgs.filter((m) => !m.sig).length;
  assert.ok(bursts > 0 && unsigned > 200, `${bursts} burst signatures, ${unsigned} unsigned`);
  assert.ok(s.msgs.filter((m) => m.sig).length < 302 / 3, 'most events carry no signature of their own');
  assert.equal(audit(s.msgs), [], 'each unsigned one is vouched for by its burst');
});

test('appender - acks lost mid-window (stored, no answer): sent again with the same id, stored once', async () => {
  // publishes 100..140 are stored but their acks never come (a paused server, a cut reply)
  const { s, results } = await writer((n) => (n >= 100 && n < 140 ? 'ackLost' : 'ok'), 400);
  assert.ok(results.every((r) => r.status === 'fulfilled'), 'every append succeeded');
  assert.is(s.msgs.length, 401, 'each event stored once');
  assert.ok(s.published > 401, 'some were sent again');
  assert.equal(audit(s.msgs), []);
});

test('appender - one ack lost while later ones were stored: found where it is, not sent again', async () => {
  // its TIMEOUT late, as a real one: with an immediate one, #60 could be the last of its burst
  // and fail before the next burst went out, nothing after it stored yet, and rightly be sent
  // again (CI, once: 302 publishes)
  const { s, a, results } = await writer((n) => (n === 60 ? 'ackLostLate' : 'ok'), 300);
  assert.ok(results.every((r) => r.status === 'fulfilled'), 'every append succeeded');
  assert.is(a.stats.lookedUp, 1, 'looked up where it is');
  assert.is((results[60] as PromiseFulfilledResult<{ seq: number }>).value.seq, 61);
  assert.is(s.msgs.length, 301);
  assert.is(s.published, 301, 'nothing sent twice');
  assert.equal(audit(s.msgs), []);
});

test('appender - a window lost in transit with nothing after it stored: sent again in order', async () => {
  const lost = new Set<string>();
  let down = false;
  const { s, results } = await writer((n, id) => {
    // the connection drops at the 50th publish: nothing sent reaches the server until the
    // writer sends again what was lost (publishes go out in bursts, so not by publish count)
    if (n === 50) down = true;
    if (lost.has(id)) { down = false; return 'ok'; }
    if (down) { lost.add(id); return 'lost'; }
    return 'ok';
  }, 300, 40);
  assert.ok(lost.size >= 1, 'some were lost');
  assert.ok(results.every((r) => r.status === 'fulfilled'), results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)).slice(0, 2).join('; '));
  assert.is(s.msgs.length, 301);
  assert.equal(audit(s.msgs), []);
});

test('appender - one lost while a later one was stored: rejected as lost, never stored out of order', async () => {
  let first = true;
  const { s, a, results } = await writer((n) => {
    if (n === 60 && first) { first = false; return 'lost'; }
    return 'ok';
  }, 200);
  const rejected = results.flatMap((r, i) => (r.status === 'rejected' ? [{ i, e: r.reason as AppendError }] : []));
  assert.is(rejected.length, 1);
  assert.instance(rejected[0]!.e, AppendError);
  assert.is(rejected[0]!.e.reason, 'lost');
  assert.is(s.msgs.length, 200);
  // the audit names the gap at the successor's position, and nothing else
  const f = audit(s.msgs);
  assert.is(f.length, 1, JSON.stringify(f));
  assert.is(f[0]!.kind, 'lost');
  assert.is(f[0]!.seq, 61);
  // the writer goes on from its chain: the next append links to the last one stamped
  const r = await a.append(SUBJ(1), 'ContainerRemoved', '1'.repeat(64), { reason: 'after' });
  assert.is(r.seq, 201);
  assert.is(audit(s.msgs).length, 1);
});

test('appender - a refused publish stops the writer instead of forking its chain', async () => {
  // the 31st publish is refused each time it is sent, and the ones in flight behind it are lost
  let refused = '';
  const stops: Error[] = [];
  const { s, a, results } = await writer((n, id) => {
    if (n === 30) refused = id;
    return id === refused ? 'refused' : n > 30 && n < 40 ? 'lost' : 'ok';
  }, 100, 8, (err) => stops.push(err));
  // the process is told once (controller and agent exit for their supervisor's restart)
  assert.is(stops.length, 1);
  assert.match(stops[0]!.message, /not stored/);
  const bad = results.filter((r) => r.status === 'rejected');
  assert.is(bad.length, 101 - 30, 'the refused one and every one after it');
  await a.append(SUBJ(0), 'ContainerRemoved', '0'.repeat(64), { reason: 'x' }).then(() => assert.unreachable('a stopped writer appended'), (e: Error) => assert.match(e.message, /not stored/));
  assert.equal(audit(s.msgs), [], 'what was stored is a clean prefix');
});

test('appender - refuses, before stamping, a subject its source may not write and an event too large', async () => {
  const s = fakeStream(() => 'ok');
  const chain = new SourceChain('node:n1');
  const a = new Appender(s.js, chain, undefined, { maxMsgSize: 2048 });
  await a.append('ev.state.n2.x', 'ContainerRemoved', 'x', { reason: 'x' }).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /node:n1 may not write on ev.state.n2.x \(node:n2 does\)/));
  await a.append('ev.desired.n1.x', 'ContainerRemoved', 'x', { reason: 'x' }).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /controller does/));
  await a.append('ev.state.n1.x', 'ContainerRemoved', 'x', { reason: 'y'.repeat(3000) }).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /the log takes at most/));
  assert.equal(chain.position, { srcSeq: 0, hash: '' });
  assert.is((await a.append('ev.state.n1.x', 'ContainerRemoved', 'x', { reason: 'ok' })).seq, 1);
});

test.run();
