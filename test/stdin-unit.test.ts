// The pure parts of a container's stdin (agent/attach.ts): the attach FIFO's records and what a
// message on a stdin subject asks; and the launch's attach key.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ATTACH_DATA_MAX, ATTACH_HDR, dataRecords, eofRecord, resizeRecord, stdinMessage } from '../agent/attach.js';
import { decodeLaunch, encodeLaunch } from '../agent/runtime/launch.js';
import { createSpec } from '../agent/runtime/spec.js';

const t = suite('stdin-unit');

t('records: data in pieces of at most one atomic pipe write, in order; end; resize little endian', () => {
  const data = Buffer.alloc(ATTACH_DATA_MAX * 2 + 5, 7);
  const recs = dataRecords(data);
  assert.is(recs.length, 3);
  for (const r of recs) { assert.ok(r.length <= 4096); assert.is(r[0], 'd'.charCodeAt(0)); assert.is(r[1], 0); assert.is(r.readUInt16LE(2), r.length - ATTACH_HDR); }
  assert.equal(Buffer.concat(recs.map((r) => r.subarray(ATTACH_HDR))), data);
  assert.equal([...eofRecord()], ['e'.charCodeAt(0), 0, 0, 0]);
  assert.equal([...resizeRecord(300, 4096)], ['r'.charCodeAt(0), 0, 4, 0, 300 & 255, 300 >> 8, 0, 16]);
  assert.equal(dataRecords(new Uint8Array(0)), []);
});

t('a stdin message: bytes, an eof header or an empty body, a resize header; a bad size is one line', () => {
  const none = () => undefined;
  const m = stdinMessage(none, Buffer.from('ls\r'));
  assert.is(m.kind, 'data');
  assert.is(stdinMessage((k) => (k === 'eof' ? '1' : undefined), Buffer.from('x')).kind, 'eof');
  assert.is(stdinMessage(none, new Uint8Array(0)).kind, 'eof');
  const r = stdinMessage((k) => (k === 'resize' ? '24 80' : undefined), new Uint8Array(0));
  assert.equal(r, { kind: 'resize', record: resizeRecord(24, 80) });
  for (const bad of ['99999 1', 'junk', '-1 -1', '0 0', '\u00ff']) {
    const e = stdinMessage((k) => (k === 'resize' ? bad : undefined), new Uint8Array(0));
    assert.is(e.kind, 'error', bad);
    assert.not.match((e as { line: string }).line, /\n/);
  }
});

t('launch: -i and -t of the agent\'s containers ask the monitor for the attach FIFO; sl-runtime\'s do not', () => {
  const spec = (o: { tty?: boolean; stdin?: boolean }) => createSpec({ id: 'c1', hostname: 'h', args: ['sh'], env: [], cwd: '/', network: { mode: 'none' }, rootfsPath: '/tmp/r',
    ...(o.tty ? { tty: { rows: 24, cols: 80 } } : {}), ...(o.stdin ? { stdin: true } : {}) });
  const opts = { stateDir: '/run/s', logPath: '/run/s/container.log', cgroupProcs: [] };
  assert.is(spec({ stdin: true }).process.stdinOpen, true);
  assert.is(spec({}).process.stdinOpen, undefined);
  assert.is(decodeLaunch(encodeLaunch(spec({ stdin: true }), { ...opts, attach: 1 })).attach, 1);
  assert.is(decodeLaunch(encodeLaunch(spec({ tty: true }), { ...opts, attach: 0 })).attach, 0);
  assert.is(decodeLaunch(encodeLaunch(spec({ tty: true }), opts)).attach, undefined);
});

t.run();
