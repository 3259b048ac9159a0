import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode } from '@msgpack/msgpack';
import { decodeCheckedEnvelope, decodeEnvelope, decodeEvent, decodeForChecks, encodeEvent, hashBytes, SourceChain, DecodeError } from '../shared/codec.js';
import type { ContainerSpec } from '../shared/events.js';

const spec: ContainerSpec = {
  name: 'web', image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['sh', '-c', 'echo hi'],
  env: ['A=1'], hostname: 'web', workdir: '/', network: 'none', autoRemove: false,
};

test('codec - round trip keeps every field', () => {
  const chain = new SourceChain('controller');
  const { event, bytes } = chain.next('ContainerRequested', 'c1', { node: 'n1', spec, user: 'root@h' });
  const back = decodeEvent(bytes);
  assert.equal(back, event);
  assert.is(back.type, 'ContainerRequested');
});

test('codec - the same event encodes to the same bytes (hashable)', () => {
  const chain = new SourceChain('controller');
  const { event, bytes } = chain.next('ContainerStopRequested', 'c1', { timeout: 3, user: 'u' });
  assert.equal(encodeEvent(event), bytes);
  assert.is(hashBytes(encodeEvent(event)), hashBytes(bytes));
});

test('codec - chain links each event to the previous one', () => {
  const chain = new SourceChain('node:n1');
  const a = chain.next('ContainerRemoved', 'c1', { reason: 'x' });
  chain.commit(a.event.srcSeq, a.hash);
  const b = chain.next('ContainerRemoved', 'c2', { reason: 'y' });
  assert.is(a.event.srcSeq, 1);
  assert.is(a.event.prev, '');
  assert.is(b.event.srcSeq, 2);
  assert.is(b.event.prev, a.hash);
});

const base = { v: 1, id: 'abc123', type: 'ContainerStopRequested', ts: 1, src: 'controller', srcSeq: 1, prev: '', entity: 'c1', data: { timeout: 1, user: 'u' } };
const bad = (over: Record<string, unknown>, re: RegExp) => {
  const err = (() => { try { decodeEvent(encode({ ...base, ...over })); } catch (e) { return e; } return undefined; })();
  assert.instance(err, DecodeError);
  assert.match((err as Error).message, re);
};

test('codec - decodeEnvelope: the envelope as decodeEvent makes it, the data stepped over unread (a key registration\'s read and checked)', () => {
  const chain = new SourceChain('controller');
  const { event, bytes } = chain.next('ContainerRequested', 'c1', { node: 'n1', spec, user: 'root@h' });
  assert.equal({ ...decodeEnvelope(bytes), data: event.data }, decodeEvent(bytes));
  assert.is(decodeEnvelope(bytes).data, undefined);
  // data that does not validate passes (the fold's whole decode refuses it); data that is not msgpack does not
  assert.is(decodeEnvelope(encode({ ...base, data: { timeout: -5, user: 'u' } })).type, 'ContainerStopRequested');
  const wrecked = encode({ ...base, data: 'x'.repeat(40) });
  wrecked[wrecked.length - 30] = 0xc1;
  assert.throws(() => decodeEnvelope(wrecked.subarray(0, wrecked.length - 5)), (e: unknown) => e instanceof DecodeError);
  // the envelope is validated in full: a bad src, an unknown version or type is refused as by decodeEvent
  for (const over of [{ src: 'mallory' }, { v: 2 }, { type: 'Nope' }, { entity: '../etc' }, { prev: 'zz' }]) {
    assert.throws(() => decodeEnvelope(encode({ ...base, ...over })), (e: unknown) => e instanceof DecodeError, JSON.stringify(over));
  }
  // a key registration is read whole and checked (its data changes what the keys are)
  const reg = { ...base, type: 'KeyRegistered', entity: 'controller', data: { key: 'b'.repeat(64), rootSig: 's' } };
  assert.equal(decodeEnvelope(encode(reg)).data, decodeEvent(encode(reg)).data);
  assert.throws(() => decodeEnvelope(encode({ ...reg, data: { key: 5 } })), (e: unknown) => e instanceof DecodeError);
  // data before type (another writer's key order) is stepped over too
  const { data, ...rest } = reg;
  assert.equal(decodeEnvelope(encode({ data, ...rest })).data, data);
  const { data: stop, ...envelope } = base;
  assert.is(decodeEnvelope(encode({ data: stop, ...envelope })).data, undefined);
});

test('codec - decodeForChecks: decodeEnvelope\'s event without the id and the entity (validated, not made), and every envelope decodeEnvelope refuses refused', () => {
  const chain = new SourceChain('controller');
  const { bytes } = chain.next('ContainerRequested', 'c1', { node: 'n1', spec, user: 'root@h' });
  assert.equal(decodeForChecks(bytes), { ...decodeEnvelope(bytes), id: '', entity: '' });
  const reg = { ...base, type: 'KeyRegistered', entity: 'controller', data: { key: 'b'.repeat(64), rootSig: 's' } };
  assert.equal(decodeForChecks(encode(reg)), { ...decodeEnvelope(encode(reg)), id: '', entity: '' });
  // junk ids and entities (bad bytes, too long, empty, not strings, NUL, past ASCII) are refused as decodeEnvelope refuses them
  const junk = [{ entity: '../etc' }, { entity: 'e'.repeat(129) }, { entity: '' }, { entity: 5 }, { entity: 'Ab' }, { entity: 'a\u0000' }, { entity: 'é' },
    { id: 'ABC' }, { id: 'a'.repeat(65) }, { id: '' }, { id: null }, { id: 'a-b' }, { id: 'a\u0000' }, { src: 'mallory' }, { prev: 'zz' }, { v: 2 }, { type: 'Nope' }];
  for (const over of junk) {
    const bytes = encode({ ...base, ...over });
    assert.throws(() => decodeEnvelope(bytes), (e: unknown) => e instanceof DecodeError, `decodeEnvelope ${JSON.stringify(over)}`);
    assert.throws(() => decodeForChecks(bytes), (e: unknown) => e instanceof DecodeError, JSON.stringify(over));
  }
  // what decodeForChecks passes, decodeCheckedEnvelope reads as decodeEvent does (the fold's decode after the thread's)
  for (const over of [{ id: 'z'.repeat(64) }, { entity: 'a' + ':_-'.repeat(42) }, { entity: 'x'.repeat(128) }]) {
    const bytes = encode({ ...base, ...over });
    assert.is(decodeForChecks(bytes).srcSeq, 1);
    assert.equal(decodeCheckedEnvelope(bytes), decodeEvent(bytes));
  }
});

test('codec - decodeCheckedEnvelope (an envelope validated by decodeEnvelope): the same event as decodeEvent, its data still checked', () => {
  const chain = new SourceChain('controller');
  const a = chain.next('ContainerRequested', 'c1', { node: 'n1', spec, user: 'root@h' });
  assert.equal(decodeCheckedEnvelope(a.bytes), decodeEvent(a.bytes));
  const b = chain.next('ContainerStopRequested', 'c1', { timeout: 3, user: 'u' }, 'abc');
  assert.equal(decodeCheckedEnvelope(b.bytes), decodeEvent(b.bytes));
  assert.is(decodeCheckedEnvelope(encode({ ...base, cause: null })).cause, undefined);
  assert.not.ok('cause' in decodeCheckedEnvelope(encode({ ...base, cause: null })));
  assert.throws(() => decodeCheckedEnvelope(encode({ ...base, data: { timeout: -5, user: 'u' } })), /data.timeout: -5 is out of range/);
  assert.throws(() => decodeCheckedEnvelope(encode({ ...base, v: 2 })), /unsupported schema version/);
});

test('codec - rejects an unknown schema version with a clear message', () => bad({ v: 2 }, /unsupported schema version 2/));
test('codec - rejects an unknown type', () => bad({ type: 'Nope' }, /unknown event type "Nope"/));
test('codec - rejects out-of-range numbers', () => bad({ data: { timeout: -5, user: 'u' } }, /data.timeout: -5 is out of range/));
test('codec - rejects a wrong field type', () => bad({ data: { timeout: '5', user: 'u' } }, /expected an integer, got string/));
test('codec - rejects a malformed entity', () => bad({ entity: '../etc' }, /entity/));
test('codec - rejects bad src', () => bad({ src: 'mallory' }, /src/));
test('codec - rejects nested spec errors by path', () => bad({ type: 'ContainerRequested', data: { node: 'n1', user: 'u', spec: { ...spec, workdir: 'relative' } } }, /data.spec.workdir/));
test('codec - rejects forged container labels: a bad key, a value too long, too many, not strings', () => {
  const req = (labels: unknown) => ({ type: 'ContainerRequested', data: { node: 'n1', user: 'u', spec: { ...spec, labels } } });
  bad(req({ '../x': 'y' }), /data.spec.labels.key/);
  bad(req({ k: 'v'.repeat(4097) }), /data.spec.labels.k/);
  bad(req(Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`k${i}`, 'v']))), /more than 128 labels/);
  bad(req({ k: 1 }), /data.spec.labels.k/);
  bad(req(['k=v']), /expected an object of labels/);
});
test('codec - rejects a forged placed container whose host port is 0 (only a request may leave it to the controller)', () => {
  bad({ type: 'ContainerRequested', data: { node: 'n1', user: 'u', spec: { ...spec, ports: [{ host: 0, container: 80, proto: 'tcp' }] } } }, /data.spec.ports\[0\].host: 0 is out of range/);
});
test('codec - rejects bytes that are not msgpack', () => {
  assert.throws(() => decodeEvent(new Uint8Array([0xc1, 0xff])), (e: Error) => e instanceof DecodeError && /not msgpack|not a map/.test(e.message));
});
test('codec - keeps id, type and entity of a rejected event for the rejection', () => {
  try { decodeEvent(encode({ ...base, data: {} })); assert.unreachable(); } catch (e) {
    assert.equal((e as DecodeError).partial, { id: 'abc123', type: 'ContainerStopRequested', entity: 'c1' });
  }
});
test('codec - the envelope\'s ids matched on their bytes: every near miss is refused with its check\'s own message', () => {
  const hex = 'a'.repeat(64);
  // accepted as read (also at their limits, and the empty prev of a chain's first event)
  for (const over of [{ id: 'z'.repeat(64), prev: hex, entity: `a${'_:-9'.repeat(31)}xyz` }, { id: '0', prev: '', entity: 'n' }]) {
    const e = decodeEvent(encode({ ...base, ...over }));
    assert.equal([e.id, e.prev, e.entity], [over.id, over.prev, over.entity]);
  }
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ id: '' }, /^invalid ContainerStopRequested: id: "" does not match/],
    [{ id: 'A1' }, /id: "A1" does not match/],
    [{ id: 'a'.repeat(65) }, /id: longer than 64 characters/],
    [{ id: 'ab\0c' }, /id: contains a NUL byte/],
    [{ id: 'abé' }, /id: "abé" does not match/],
    [{ id: 7 }, /id: expected a string, got number/],
    [{ prev: 'A'.repeat(64) }, /prev: "A{64}" does not match/],
    [{ prev: `${'a'.repeat(63)}g` }, /prev: "a{63}g" does not match/],
    [{ prev: 'a'.repeat(63) }, /prev: "a{63}" does not match/],
    [{ prev: 'a'.repeat(65) }, /prev: longer than 64 characters/],
    [{ entity: '_c1' }, /entity: "_c1" does not match/],
    [{ entity: 'c1.x' }, /entity: "c1.x" does not match/],
    [{ entity: 'a'.repeat(129) }, /entity: longer than 128 characters/],
    [{ entity: ['c1'] }, /entity: expected a string, got array/],
    [{ src: 'node:Bad' }, /src: "node:Bad" does not match/],
  ];
  for (const [over, re] of cases) bad(over, re);
  // a valid id in a longer string encoding (str16) than the packer's shortest reads the same
  const bytes = encode({ ...base, id: 'abc123' });
  const at = bytes.indexOf(0xa6, bytes.indexOf(0xa2) + 3); // fixstr(6) of the id's value, after the key "id"
  assert.is(String.fromCharCode(...bytes.subarray(at + 1, at + 7)), 'abc123');
  const wide = new Uint8Array([...bytes.subarray(0, at), 0xda, 0, 6, ...bytes.subarray(at + 1)]);
  assert.is(decodeEvent(wide).id, 'abc123');
  // a string whose length runs past the end is still bytes that are not msgpack
  assert.throws(() => decodeEvent(bytes.subarray(0, at + 3)), (e: Error) => e instanceof DecodeError && /not msgpack/.test(e.message));
});
test('codec - drops unknown payload keys', () => {
  const e = decodeEvent(encode({ ...base, data: { timeout: 1, user: 'u', evil: 1 } }));
  assert.equal(e.data, { timeout: 1, user: 'u' });
});

test.run();
