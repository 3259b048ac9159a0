// The one-pass decoder (shared/msgpack.ts read by shared/validate.ts's checks) against the
// reference it replaced: @msgpack/msgpack's decode followed by the same checks as functions.
// Same values, same verdicts on 20,000 mutated events, and the attacks a length prefix or
// nesting invites: refused quickly with a one-line DecodeError, never a crash.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode, decode } from '@msgpack/msgpack';
import { decodeCheckedEnvelope, decodeEvent, decodeForChecks, DecodeError, SourceChain } from '../shared/codec.js';
import { Reader, WireError } from '../shared/msgpack.js';
import { Writer } from '../shared/msgpack-writer.js';
import { payloadChecks } from '../shared/schema.js';
import { SCHEMA_VERSION, type ContainerSpec, type EventType } from '../shared/events.js';
import { ENTITY_RE, EVENT_ID_RE, SOURCE_RE } from '../shared/ids.js';
import { int, num, obj, opt, readWith, str, ValidationError, type Check } from '../shared/validate.js';

let seed = 0xc0dec;
const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
const rint = (n: number) => Math.floor(rnd() * n);

/** The decoder as it was: a generic decode, then every check as a function. */
function reference(bytes: Uint8Array): unknown {
  let raw: unknown;
  try { raw = decode(bytes); } catch { return 'reject'; }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'reject';
  const r = raw as Record<string, unknown>;
  if (r.v !== SCHEMA_VERSION || typeof r.type !== 'string' || !Object.hasOwn(payloadChecks, r.type)) return 'reject';
  try {
    const e: Record<string, unknown> = {
      v: 1, id: str(64, EVENT_ID_RE)(r.id, 'id'), type: r.type, ts: num(0, 1e14)(r.ts, 'ts'), src: str(80, SOURCE_RE)(r.src, 'src'),
      srcSeq: int(1, Number.MAX_SAFE_INTEGER)(r.srcSeq, 'srcSeq'), prev: str(64, /^([0-9a-f]{64})?$/)(r.prev, 'prev'),
      entity: str(128, ENTITY_RE)(r.entity, 'entity'), cause: opt(str(64))(r.cause, 'cause'),
      data: (payloadChecks[r.type as EventType] as Check<unknown>)(r.data, 'data'),
    };
    if (e.cause === undefined) delete e.cause;
    return e;
  } catch (err) { if (err instanceof ValidationError) return 'reject'; throw err; }
}

const spec: ContainerSpec = {
  name: 'web', image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['sh', '-c', 'echo hello'],
  env: ['A=1', 'B=2'], hostname: 'web', workdir: '/', network: 'bridge', autoRemove: false,
  resources: { memory: 1 << 30, cpus: 1.5, pidsLimit: -1 }, ports: [{ host: 8080, container: 80, proto: 'tcp' }],
  security: { ulimits: [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 4096 }], capDrop: ['ALL'], oomScoreAdj: -500 },
  healthcheck: { Test: ['CMD-SHELL', 'wget -q localhost || exit 1'], Interval: 5e9, Timeout: 86_400e9, Retries: 3 },
};

function samples(): Uint8Array[] {
  const c = new SourceChain('controller');
  const n = new SourceChain('node:n1');
  const id = 'f'.repeat(64);
  return [
    c.next('ContainerRequested', id, { node: 'n1', spec, user: 'alice' }).bytes,
    c.next('ContainerStopRequested', id, { timeout: 10, user: 'alice' }, 'cause1').bytes,
    n.next('ContainerStarted', id, { pid: 4194304, receivedAt: Date.now(), runningAt: Date.now() + 0.5, ip: '10.0.0.2' }).bytes,
    n.next('ContainerExited', id, { exitCode: -1, signal: 'SIGKILL', oomKilled: true, exitedAt: 1.5e12 }).bytes,
    n.next('NodeJoined', 'n1', { hostname: 'h', cpus: 2, memory: 2 ** 40, kernel: '6.1', features: ['a', 'b'], version: '1', allocated: { cpus: 0.25, memory: 1 } }).bytes,
    n.next('ContainerHealthChanged', id, { status: 'unhealthy', failingStreak: 3, runningAt: 1.7e12 + 0.25, log: [{ start: 1.7e12, end: 1.7e12 + 30_000, exitCode: -1, output: 'Health check exceeded timeout (30s)' }, { start: 1, end: 2, exitCode: 127, output: 'x'.repeat(4096) }] }).bytes,
    n.next('EventRejected', id, { reason: 'x'.repeat(300), rejectedSeq: 2 ** 53 - 1, rejectedId: 'abc' }).bytes,
  ];
}

test('msgpack - Writer writes what @msgpack/msgpack encodes, value for value, also after a large buffer is let go', () => {
  const values: unknown[] = [
    0, 1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -32, -33, -128, -129, -32_768, -32_769,
    -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53) + 1, 0.5, -1.25, 2 ** 53, -0, Infinity, NaN, true, false, null, undefined,
    '', 'a', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(65_535), 'x'.repeat(65_536),
    'é', '€'.repeat(20), '🚀', 'a\ud800b', 'lone \udc00', { a: 1, b: [1, 'x', null] }, [1, 2, 3], new Uint8Array([1, 2, 3]),
  ];
  const w = new Writer();
  for (const v of values) {
    w.reset();
    w.value(v);
    assert.equal(Buffer.from(w.bytes()), Buffer.from(encode(v === undefined ? null : v, { ignoreUndefined: true })), String(v).slice(0, 40));
  }
  for (const n of [0, 15, 16, 65_535, 65_536]) {
    w.reset(); w.arrayHeader(n); w.mapHeader(n);
    const a = encode(new Array(n).fill(0)), m = encode(Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 0])));
    assert.equal(Buffer.from(w.bytes()), Buffer.concat([a.subarray(0, n < 16 ? 1 : n < 65_536 ? 3 : 5), m.subarray(0, n < 16 ? 1 : n < 65_536 ? 3 : 5)]), `headers of ${n}`);
  }
  // grown past what is kept, then let go: what follows is written into the new buffer whole
  w.reset(); w.value('y'.repeat(300_000));
  w.release(1 << 20);
  w.reset(); w.value(65_535); w.value(2 ** 32 - 1); w.value(-0.5);
  assert.equal(Buffer.from(w.bytes()), Buffer.concat([encode(65_535), encode(2 ** 32 - 1), encode(-0.5)]));
});

test('msgpack - Reader.value decodes what @msgpack/msgpack decodes', () => {
  const r = new Reader();
  const values: unknown[] = [
    0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53 - 1),
    0.5, -1.25, 1e300, Math.PI, Number.NaN, Infinity, -Infinity, '', 'a', 'x'.repeat(31), 'x'.repeat(32), 'y'.repeat(300), 'z'.repeat(70000), 'héllo ✓ 😀',
    null, true, false, [], [1, [2, [3]]], Array.from({ length: 20 }, (_, i) => i), {}, { a: 1, b: { c: [true, null] } },
    Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])), new Uint8Array([1, 2, 3]),
  ];
  for (const v of values) assert.equal(r.reset(encode(v)).value(), decode(encode(v)), `value ${String(v).slice(0, 20)}`);
  assert.equal(r.reset(encode(new Float32Array([1.5])[0], { forceFloat32: true })).value(), 1.5);
});

/** Whether a decoded value holds a non-ASCII character: from the ASCII samples, only a mutation into the high bytes makes one. */
const nonAscii = (v: unknown): boolean => typeof v === 'string' ? /[^\x00-\x7f]/.test(v)
  : Array.isArray(v) ? v.some(nonAscii) : typeof v === 'object' && v !== null ? Object.values(v).some(nonAscii) : false;

test('msgpack - decodeEvent agrees with the decode + check path on 20,000 mutated events', () => {
  // Invalid UTF-8 is the one place they may differ: this decoder makes U+FFFD of it (as TextDecoder
  // does), @msgpack/msgpack's short-string decoder other characters (an overlong 0xc1 0x65 becomes
  // an ASCII "e" there, which a pattern then accepts); mutations into the high bytes are skipped.
  const base = samples();
  let accepted = 0, rejected = 0;
  for (let i = 0; i < 20_000; i++) {
    const b = Uint8Array.from(base[i % base.length]!);
    for (let k = 1 + rint(3); k > 0; k--) b[rint(b.length)] = rint(4) === 0 ? rint(256) : b[rint(b.length)]!;
    const want = reference(b);
    let raw: unknown;
    try { raw = new Reader().reset(b).value(); } catch { /* not msgpack */ }
    if (nonAscii(raw)) continue;
    let got: unknown;
    try { got = decodeEvent(b); } catch (err) {
      assert.instance(err, DecodeError, `mutation ${i}: ${(err as Error).message}`);
      assert.not.match((err as Error).message, /\n/);
      // stricter than the reference only where a map names a key twice (the reference keeps the last)
      if (want !== 'reject') assert.match((err as Error).message, /given twice/, `mutation ${i} accepted by the reference: ${(err as Error).message}`);
      rejected++;
      continue;
    }
    assert.equal(got, want, `mutation ${i}`);
    accepted++;
  }
  assert.ok(accepted > 100 && rejected > 1000, `${accepted} accepted, ${rejected} rejected`);
});

test('msgpack - skip steps over what value reads, with the same errors, on 20,000 mutated events', () => {
  // skip() reads its commonest forms by their first byte and a map's keys without making them
  // (the replay's reader thread steps over every event's data): where it ends, and what it refuses
  // with, must stay value()'s, also from inside an event (the data) and for keys that are no key
  const base = [...samples(), encode({ a: [1, null, true, { __proto_: 1, b: 'x' }], [2]: -1 }), new Uint8Array([0x81, 0xa9, ...new TextEncoder().encode('__proto__'), 1])];
  let ok = 0, refused = 0;
  const run = (b: Uint8Array, at: number, f: (r: Reader) => void): string => {
    const r = new Reader().reset(b).at(at);
    try { f(r); return `ends at ${r.pos}`; } catch (err) { assert.instance(err, WireError); return (err as Error).message; }
  };
  for (let i = 0; i < 20_000; i++) {
    const b = Uint8Array.from(base[i % base.length]!);
    for (let k = rint(4); k > 0; k--) b[rint(b.length)] = rint(4) === 0 ? rint(256) : b[rint(b.length)]!;
    for (const at of [0, rint(b.length)]) {
      const want = run(b, at, (r) => r.value());
      assert.is(run(b, at, (r) => r.skip()), want, `mutation ${i} from byte ${at}`);
      if (want.startsWith('ends at')) ok++; else refused++;
    }
  }
  assert.ok(ok > 1000 && refused > 1000, `${ok} read, ${refused} refused`);
});

test('msgpack - what decodeForChecks passes, decodeCheckedEnvelope makes as decodeEvent does (20,000 mutated events)', () => {
  // the replay's fold thread decodes with the envelope taken as validated (its ids read without
  // their byte checks): over bytes the reader thread's decodeForChecks passed, it must make the
  // same event as decodeEvent or refuse as decodeEvent refuses (its data)
  const base = samples();
  let same = 0;
  for (let i = 0; i < 20_000; i++) {
    const b = Uint8Array.from(base[i % base.length]!);
    for (let k = rint(3); k > 0; k--) b[rint(b.length)] = rint(4) === 0 ? rint(256) : b[rint(b.length)]!;
    try { decodeForChecks(b); } catch { continue; }
    let want: unknown, got: unknown;
    try { want = decodeEvent(b); } catch (err) { want = (err as Error).message; }
    try { got = decodeCheckedEnvelope(b); } catch (err) { got = (err as Error).message; }
    assert.equal(got, want, `mutation ${i}`);
    same++;
  }
  assert.ok(same > 5000, `${same} compared`);
});

test('msgpack - every sample round-trips, and the checks name the same field as before', () => {
  for (const b of samples()) assert.equal(decodeEvent(b), reference(b));
  const ev = (data: unknown) => encode({ v: 1, id: 'a1', type: 'ContainerRequested', ts: 1, src: 'controller', srcSeq: 1, prev: '', entity: 'c1', data });
  assert.throws(() => decodeEvent(ev({ node: 'n1', user: 'u', spec: { ...spec, ports: [{ host: 1, container: 0, proto: 'tcp' }] } })), /invalid ContainerRequested: data\.spec\.ports\[0\]\.container: 0 is out of range 1\.\.65535/);
  assert.throws(() => decodeEvent(ev({ node: 'n1', user: 'u', spec: { ...spec, env: ['A=1', 'nope'] } })), /data\.spec\.env\[1\]: "nope" does not match/);
  assert.throws(() => decodeEvent(ev({ node: 'n1', user: 'u', spec: { ...spec, security: { ulimits: [{ type: 'RLIMIT_NOFILE', soft: 'x', hard: 1 }] } } })), /data\.spec\.security\.ulimits\[0\]\.soft: expected an integer, got string/);
  assert.throws(() => decodeEvent(ev({ node: 'n1', user: 'u' })), /data\.spec: expected an object, got undefined/);
  assert.throws(() => decodeEvent(ev('str')), /data: expected an object, got string/);
});

test('msgpack - data before type, unknown keys, nil optionals', () => {
  const e = decodeEvent(encode({ data: { timeout: 1, user: 'u', extra: { deep: [1, 2] } }, x: 1, v: 1, id: 'a1', type: 'ContainerStopRequested', ts: 1, src: 'controller', srcSeq: 1, prev: '', entity: 'c1', cause: null }));
  assert.equal(e, { v: 1, id: 'a1', type: 'ContainerStopRequested', ts: 1, src: 'controller', srcSeq: 1, prev: '', entity: 'c1', data: { timeout: 1, user: 'u' } });
  assert.throws(() => decodeEvent(encode({ data: { timeout: -1, user: 'u' }, v: 1, id: 'a1', type: 'ContainerStopRequested', ts: 1, src: 'controller', srcSeq: 1, prev: '', entity: 'c1' })), /data\.timeout: -1 is out of range/);
});

const env = (data: Uint8Array) => {
  // an envelope whose data is the given raw msgpack
  const head = encode({ v: 1, id: 'a1', type: 'ContainerStopRequested', ts: 1, src: 'controller', srcSeq: 1, prev: '', entity: 'c1' });
  const out = new Uint8Array(head.length + 5 + data.length);
  out.set(head);
  out[0] = 0x89; // 8 keys + data
  out.set([0xa4, 0x64, 0x61, 0x74, 0x61], head.length); // "data"
  out.set(data, head.length + 5);
  return out;
};

test('msgpack - attacks: lying lengths, deep nesting, __proto__, twice-given keys, trailing bytes', () => {
  const quick = (b: Uint8Array, re: RegExp) => {
    const t0 = performance.now();
    assert.throws(() => decodeEvent(b), (e: Error) => e instanceof DecodeError && re.test(e.message) && !e.message.includes('\n'));
    assert.ok(performance.now() - t0 < 50, 'refused quickly');
  };
  quick(env(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff])), /not msgpack: a length of 4294967295/);
  quick(env(new Uint8Array([0xdf, 0xff, 0xff, 0xff, 0xff])), /not msgpack: a length of 4294967295/);
  quick(env(new Uint8Array([0xdb, 0x7f, 0xff, 0xff, 0xff, 0x41])), /not msgpack: insufficient data/);
  quick(env(new Uint8Array(100_000).fill(0x91)), /not msgpack: nested deeper than 32/);
  quick(env(new Uint8Array(100_000).fill(0x81, 0).map((x, i) => (i % 2 ? 0xa0 : 0x81))), /not msgpack: nested deeper than 32/);
  // a long array is refused by its header, before any item is read
  const many = encode({ v: 1, id: 'a1', type: 'ContainerRequested', ts: 1, src: 'controller', srcSeq: 1, prev: '', entity: 'c1', data: { node: 'n1', user: 'u', spec: { ...spec, args: Array.from({ length: 200_000 }, () => 'x') } } });
  quick(many, /data\.spec\.args: more than 4096 items/);
  const proto = new Uint8Array([0x81, 0xa9, ...new TextEncoder().encode('__proto__'), 0x81, 0xa1, 0x61, 0x01]);
  quick(env(new Uint8Array([0x81, 0xa1, 0x78, ...proto])), /not msgpack: the key __proto__ is not allowed/);
  assert.equal(({} as Record<string, unknown>).a, undefined);
  quick(env(new Uint8Array([0x82, 0xa7, ...new TextEncoder().encode('timeout'), 0x01, 0xa7, ...new TextEncoder().encode('timeout'), 0x02])), /timeout: given twice/);
  const twice = encode({ v: 1, id: 'a1', type: 'ContainerStopRequested', ts: 1, src: 'controller', srcSeq: 1, prev: '', entity: 'c1', data: { timeout: 1, user: 'u' } });
  const t2 = Uint8Array.from(twice);
  t2[0] = 0x8a;
  quick(new Uint8Array([...t2, 0xa2, 0x69, 0x64, 0xa2, 0x62, 0x32]), /envelope key id given twice/);
  quick(new Uint8Array([...twice, 0x00]), /not msgpack: extra bytes/);
  quick(new Uint8Array([0xc1]), /not msgpack: byte 0xc1/);
  quick(new Uint8Array([]), /not msgpack: insufficient data/);
  quick(encode([1, 2]), /event is not a map/);
  quick(encode(7), /event is not a map/);
  assert.throws(() => new Reader().reset(new Uint8Array([0xc1])).value(), (e: Error) => e instanceof WireError);
  // an overlong encoding is not the ASCII letter it spells
  assert.is(new Reader().reset(new Uint8Array([0xa2, 0xc1, 0xa5])).value(), '\ufffd\ufffd');
});

test('msgpack - an object shape reads the same with up to 30 keys (bits) and beyond (an array): absent keys checked, a key given twice refused', () => {
  for (const size of [3, 30, 31, 40]) {
    const shape: Record<string, ReturnType<typeof int>> = {};
    for (let k = 0; k < size; k++) shape[`k${k}`] = k % 2 ? int(0, 9) : (opt(int(0, 9)) as ReturnType<typeof int>);
    const check = obj(shape);
    const full = Object.fromEntries(Object.keys(shape).map((k, i) => [k, i % 10]));
    assert.equal(readWith(check, new Reader().reset(encode(full))), full, `${size} keys`);
    const some = Object.fromEntries(Object.entries(full).filter((_, i) => i % 2));
    assert.equal(readWith(check, new Reader().reset(encode(some))), some, `${size} keys, the optional ones absent`);
    assert.throws(() => readWith(check, new Reader().reset(encode({ k0: 1 }))), /k1: expected an integer/, `${size} keys, a required one absent`);
    const last = `k${size - 1}`;
    const b = encode({ [last]: 1 });
    const twice = new Uint8Array([0x82, ...b.subarray(1), ...b.subarray(1)]);
    assert.throws(() => readWith(check, new Reader().reset(twice)), new RegExp(`${last}: given twice`), `${size} keys`);
  }
});

test.run();
