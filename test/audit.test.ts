// The auditor and the key ring without a server: signed chains verify; an edit, a forged
// key, a reordering, a lost write, a deletion and a wrong writer are each found at their
// position. Also measures how many events a second the audit checks (signatures included).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes, sign as edSign } from 'node:crypto';
import { SourceChain, hashBytes, decodeEvent } from '../shared/codec.js';
import { keyOf, registration, signer, KeyRing } from '../shared/signing.js';
import { Auditor } from '../shared/audit.js';
import type { EventData, EventType } from '../shared/events.js';
import { rootKey, scenarios, Source, store, type Stamp } from './helpers/bursts.js';
import { createHash } from 'node:crypto';

const rootSeed = randomBytes(32);
const root = keyOf(rootSeed);
const regOf = (src: string, pub: string) => edSign(null, registration(src, pub), root.priv).toString('base64');

interface Msg { seq: number; subject: string; bytes: Uint8Array; sig?: string }

/** A source that appends signed events, its registration first. */
function source(src: string) {
  const s = signer(randomBytes(32));
  const chain = new SourceChain(src);
  return {
    s,
    next<T extends EventType>(subject: string, type: T, entity: string, data: EventData[T]): { bytes: Uint8Array; sig: string } {
      const { event, bytes, hash } = chain.next(type, entity, data);
      chain.commit(event.srcSeq, hash);
      return { bytes, sig: s.sign(bytes) };
    },
  };
}

function log(): Msg[] {
  const ctl = source('controller');
  const n1 = source('node:n1');
  const out: Msg[] = [];
  const push = (subject: string, m: { bytes: Uint8Array; sig: string }) => out.push({ seq: out.length + 1, subject, ...m });
  push('ev.keys.controller', ctl.next('ev.keys.controller', 'KeyRegistered', 'controller', { key: ctl.s.pub, rootSig: regOf('controller', ctl.s.pub) }));
  push('ev.keys.node-n1', n1.next('ev.keys.node-n1', 'KeyRegistered', 'n1', { key: n1.s.pub, rootSig: regOf('node:n1', n1.s.pub) }));
  for (let i = 0; i < 4; i++) {
    const id = String(i).repeat(64);
    push(`ev.desired.n1.${id}`, ctl.next('', 'ContainerStopRequested', id, { timeout: 1, user: 'alice' }));
    push(`ev.state.n1.${id}`, n1.next('', 'ContainerRemoved', id, { reason: 'x' }));
  }
  return out;
}

function run(msgs: Msg[], first = 1, last = msgs.length ? msgs[msgs.length - 1]!.seq : 0) {
  const a = new Auditor(root.pub, 1);
  a.head(first, last);
  for (const m of msgs) a.event(m.seq, m.subject, decodeEvent(m.bytes), m.bytes, hashBytes(m.bytes), m.sig);
  return a.end(last);
}

test('audit - a signed log verifies', () => {
  assert.equal(run(log()), []);
});

test('audit - an edited event is found (its signature, then its successor\'s link)', () => {
  const l = log();
  const m = l[2]!;
  m.bytes = new Uint8Array(m.bytes);
  m.bytes[m.bytes.length - 2] ^= 1; // inside "alice"
  const f = run(l);
  assert.ok(f.some((x) => x.kind === 'forged' && x.seq === 3), JSON.stringify(f));
});

test('audit - a key not signed by the root, an unsigned event and a wrong writer are forgeries', () => {
  const l = log();
  const mallory = source('controller');
  const fake = mallory.next('', 'KeyRegistered', 'controller', { key: mallory.s.pub, rootSig: Buffer.alloc(64).toString('base64') });
  const f = run([...l, { seq: l.length + 1, subject: 'ev.keys.controller', ...fake }, { seq: l.length + 2, subject: l[2]!.subject, bytes: l[2]!.bytes }]);
  assert.ok(f.some((x) => x.kind === 'forged' && x.seq === l.length + 1 && /root/.test(x.detail)), JSON.stringify(f));
  assert.ok(f.some((x) => x.kind === 'forged' && x.seq === l.length + 2 && /unsigned/.test(x.detail)), JSON.stringify(f));
  const wrong = run(l.map((m) => (m.seq === 4 ? { ...m, subject: m.subject.replace('ev.state.n1', 'ev.state.n2') } : m)));
  assert.ok(wrong.some((x) => x.kind === 'forged' && x.seq === 4 && /only node:n2 writes there/.test(x.detail)), JSON.stringify(wrong));
});

test('audit - a source\'s event moved under a look-alike subject, right after its genuine ones, is a forgery', () => {
  // node:n1 writes on ev.state.n1.* (and ev.node.n1, ev.keys.node-n1); one of its events moved
  // under a look-alike prefix, right after genuine ones on the rightful subjects
  const l = log();
  const moved = (to: string) => run(l.map((m) => (m.seq === 6 ? { ...m, subject: m.subject.replace('ev.state.n1.', to) } : m)));
  for (const to of ['ev.state.n11.', 'ev.state.n.', 'ev.node.n2.', 'ev.desired.n1.', 'ev.state.n1x.', 'ev.stat.n1.', 'ev.keys.node-n2.', 'ev.keys.controller.']) {
    const f = moved(to);
    assert.ok(f.some((x) => x.kind === 'forged' && x.seq === 6 && /only .* writes there/.test(x.detail)), `${to}: ${JSON.stringify(f)}`);
  }
  // and still accepted where it belongs, after another writer's subjects
  assert.equal(run(l), []);
});

test('audit - a deleted message, a lost write and a reordering are found with their positions', () => {
  const l = log();
  const del = run(l.filter((m) => m.seq !== 5));
  assert.ok(del.some((x) => x.kind === 'deleted' && x.seq === 5), JSON.stringify(del));
  assert.ok(del.some((x) => x.kind === 'lost' && x.seq === 7), 'the controller\'s next event shows the gap in its chain');
  // the same two events of a source swapped (stream positions kept)
  const sw = l.map((m) => ({ ...m }));
  [sw[2]!.bytes, sw[4]!.bytes, sw[2]!.sig, sw[4]!.sig, sw[2]!.subject, sw[4]!.subject] = [sw[4]!.bytes, sw[2]!.bytes, sw[4]!.sig, sw[2]!.sig, sw[4]!.subject, sw[2]!.subject];
  const r = run(sw);
  assert.ok(r.some((x) => x.kind === 'reordered' && x.seq === 5), JSON.stringify(r));
  const head = run(l.slice(3), 4, l.length);
  assert.ok(head.some((x) => x.kind === 'truncated' && x.seq === 1), JSON.stringify(head));
});

test('audit - a forgery that links to the head is blamed, not the genuine event after it (runs checked by one signature)', () => {
  const l = log();
  // a "controller" event with the right srcSeq and prev but not its signature, before the real one
  const real = l[6]!; // the controller's 4th event (ContainerStopRequested)
  const e = decodeEvent(real.bytes);
  const mallory = new SourceChain('controller', e.srcSeq - 1, e.prev).next('ContainerStopRequested', e.entity, { timeout: 1, user: 'mallory' });
  const forged = { seq: 0, subject: real.subject, bytes: mallory.bytes, sig: signer(randomBytes(32)).sign(mallory.bytes) };
  const msgs = [...l.slice(0, 6), forged, ...l.slice(6)].map((m, i) => ({ ...m, seq: i + 1 }));
  const f = run(msgs);
  assert.equal(f.map((x) => [x.kind, x.seq]), [['forged', 7]], JSON.stringify(f));
});


// Signatures amortised over bursts (shared/signing.ts signBurst, the Appender): each attack on
// a bursty log is found at its position; the genuine log and one whose writer was killed
// mid-burst verify clean. Fed whole and in runs short enough to split bursts (--since aside).
for (const sc of scenarios()) {
  test(`audit - bursts: ${sc.name}: ${sc.bad.length ? `found at #${sc.bad.join(', #')}` : 'clean'}`, () => {
    const a = new Auditor(rootKey.pub, 1);
    const last = sc.msgs[sc.msgs.length - 1]!.seq;
    a.head(1, last);
    for (const m of sc.msgs) a.event(m.seq, m.subject, m.event, m.bytes, m.hash, m.sig);
    const f = a.end(last);
    for (const at of sc.bad) assert.ok(f.some((x) => x.seq === at && x.kind === 'forged'), `#${at} not reported as forged: ${JSON.stringify(f)}`);
    if (sc.bad.length === 0) assert.equal(f, []);
    // nothing blamed before the first bad one (genuine events are not reported)
    const first = sc.bad.length ? Math.min(...sc.bad) : Infinity;
    assert.equal(f.filter((x) => x.seq < first), [], JSON.stringify(f));
  });
}

test('audit - bursts: a burst whose signed first event was lost: only the lost write is reported, the rest is vouched for by the next signature', () => {
  const n1 = new Source('node:n1');
  const reg = n1.register(), before = n1.burst(3), b = n1.burst(4), after = n1.burst(2);
  const msgs = store([reg, ...before, ...b.slice(1), ...after]);
  const a = new Auditor(rootKey.pub, 1);
  a.head(1, msgs.length);
  for (const m of msgs) a.event(m.seq, m.subject, m.event, m.bytes, m.hash, m.sig);
  const f = a.end(msgs.length);
  assert.equal(f.map((x) => [x.kind, x.seq]), [['lost', 5]], JSON.stringify(f));
  // and with nothing signed after them, they are what cannot be vouched for
  const cut = msgs.slice(0, 7);
  const a2 = new Auditor(rootKey.pub, 1);
  a2.head(1, cut.length);
  for (const m of cut) a2.event(m.seq, m.subject, m.event, m.bytes, m.hash, m.sig);
  assert.equal(a2.end(cut.length).map((x) => [x.kind, x.seq]), [['forged', 5], ['forged', 6], ['forged', 7]]);
});

test('audit - bursts across a run\'s cut (4096 events of one source): the burst\'s rest goes on into the next run; an edit there, or a rest nothing signs later, is still found', () => {
  // bursts of 200 after the registration: the run of 4096 is cut at the 96th event of the 21st
  // burst, whose 104 others follow; the cut's rest is #4003..#4097 (the registration is #1)
  const mk = (edit: number | undefined, tail: number) => {
    const n1 = new Source('node:n1');
    const list: (Stamp & { sig?: string })[] = [n1.register()];
    for (let b = 0; b < 20; b++) list.push(...n1.burst(200));
    list.push(...n1.burst(200).slice(0, tail));
    if (edit !== undefined) {
      const x = list[edit - 1]!, bytes = new Uint8Array(x.bytes);
      const i = Buffer.from(bytes).lastIndexOf('r') + 1; // the reason's first digit ("r<k>")
      bytes[i] = bytes[i] === 0x39 ? 0x38 : bytes[i]! + 1;
      list[edit - 1] = { ...x, bytes, hash: createHash('sha256').update(bytes).digest('hex') };
    }
    const msgs = store(list);
    const a = new Auditor(rootKey.pub, 1);
    a.head(1, msgs.length);
    for (const m of msgs) a.event(m.seq, m.subject, m.event, m.bytes, m.hash, m.sig);
    return a.end(msgs.length).map((f) => [f.kind, f.seq]);
  };
  assert.equal(mk(undefined, 200), []);
  assert.equal(mk(undefined, 96), []); // the rest vouched for by its burst's list at the end
  // the edited event refused; its successor then follows a gap in the chain, as anywhere in a run
  assert.equal(mk(4050, 200), [['forged', 4050], ['lost', 4051]]);
  assert.equal(mk(4097, 200), [['forged', 4097], ['lost', 4098]]);
  assert.equal(mk(4050, 96), [['forged', 4050], ['lost', 4051]]);
});

test('audit - the key ring refuses a registration signed by another key than the one it registers', () => {
  const ring = new KeyRing(root.pub);
  const a = source('controller'), b = signer(randomBytes(32));
  const m = a.next('', 'KeyRegistered', 'controller', { key: b.pub, rootSig: regOf('controller', b.pub) });
  assert.match(ring.check(decodeEvent(m.bytes), m.bytes, m.sig) ?? '', /not signed by the key it registers/);
});

test('audit - throughput: events a second, signatures checked (figure for the README)', () => {
  const ctl = source('controller');
  const msgs: Msg[] = [{ seq: 1, subject: 'ev.keys.controller', ...ctl.next('', 'KeyRegistered', 'controller', { key: ctl.s.pub, rootSig: regOf('controller', ctl.s.pub) }) }];
  const N = 20000;
  for (let i = 0; i < N; i++) {
    const id = (i % 1000).toString(16).padStart(64, '0');
    msgs.push({ seq: msgs.length + 1, subject: `ev.desired.n1.${id}`, ...ctl.next('', 'ContainerStopRequested', id, { timeout: 1, user: 'alice' }) });
  }
  const t0 = performance.now();
  const f = run(msgs);
  const s = (performance.now() - t0) / 1000;
  assert.equal(f, []);
  console.log(`  audit (pure, decode + hash + ed25519 verify + chain): ${Math.round(msgs.length / s)} events/s`);
});

test.run();
