// Pure tests of the container log frame decoder (no root needed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeFrames, encodeFrame, readLogFrom, LogFormatError, FRAME_HEADER } from '../agent/runtime/logfile.js';

const a = encodeFrame('stdout', 1700000000000.123, Buffer.from('hello\n'));
const b = encodeFrame('stderr', 1700000000001.5, Buffer.from('oops\n'));

test('logfile - frame layout is stream, u32 LE length, u64 LE µs, payload', () => {
  assert.is(a[0], 1);
  assert.is(a.readUInt32LE(1), 6);
  assert.is(a.readBigUInt64LE(5), 1700000000000123n);
  assert.is(a.subarray(FRAME_HEADER).toString(), 'hello\n');
});

test('logfile - decodes frames in order with stream and time', () => {
  const { frames, consumed } = decodeFrames(Buffer.concat([a, b, a]));
  assert.equal(frames.map((f) => [f.stream, f.data.toString()]), [['stdout', 'hello\n'], ['stderr', 'oops\n'], ['stdout', 'hello\n']]);
  assert.is(frames[1].time, 1700000000001.5);
  assert.is(consumed, a.length * 2 + b.length);
});

test('logfile - a partial trailing frame is left unconsumed', () => {
  const buf = Buffer.concat([a, b.subarray(0, 7)]);
  const r = decodeFrames(buf);
  assert.is(r.frames.length, 1);
  assert.is(r.consumed, a.length);
  assert.is(decodeFrames(Buffer.concat([a, b.subarray(0, FRAME_HEADER + 2)])).consumed, a.length);
});

test('logfile - empty payload frames are fine', () => {
  const e = encodeFrame('stderr', 1, Buffer.alloc(0));
  assert.equal(decodeFrames(e).frames.map((f) => f.data.length), [0]);
});

test('logfile - a bad stream byte is an error with its offset', () => {
  const bad = Buffer.from(a);
  bad[0] = 9;
  try {
    decodeFrames(Buffer.concat([b, bad]), 100);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, LogFormatError);
    assert.is((e as LogFormatError).offset, 100 + b.length);
  }
});

test('logfile - readLogFrom tails from an offset and waits out a partial frame', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sl-log-'));
  try {
    const p = join(dir, 'c.log');
    assert.equal(await readLogFrom(p), { frames: [], next: 0 });
    writeFileSync(p, Buffer.concat([a, b.subarray(0, 5)]));
    const r1 = await readLogFrom(p);
    assert.is(r1.frames.length, 1);
    assert.is(r1.next, a.length);
    appendFileSync(p, b.subarray(5));
    const r2 = await readLogFrom(p, r1.next);
    assert.equal(r2.frames.map((f) => f.data.toString()), ['oops\n']);
    assert.is(r2.next, a.length + b.length);
    assert.equal((await readLogFrom(p, r2.next)).frames, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
