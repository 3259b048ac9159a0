// The pure parts of terminals: detach-key scanning, the resize header, the launch's tty tokens.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DetachScanner, parseDetachKeys } from '../tsctl/terminal.js';
import { CliError } from '../tsctl/client.js';
import { parseResize } from '../agent/tty.js';
import { decodeLaunch, ttyTokens, LaunchError } from '../agent/runtime/launch.js';
import { encodeExecLaunch } from '../agent/runtime/exec-launch.js';
import { resizeRecord } from '../native/spawn.js';

const t = suite('tty-unit');

t('detach keys: ctrl-p ctrl-q detaches and is not sent; across chunks too', () => {
  const s = new DetachScanner();
  assert.equal(s.feed(Buffer.from('ab\x10\x11cd')), { forward: Buffer.from('ab'), detach: true });
  const s2 = new DetachScanner();
  assert.equal(s2.feed(Buffer.from('x\x10')), { forward: Buffer.from('x'), detach: false });
  assert.equal(s2.feed(Buffer.from('\x11')), { forward: Buffer.alloc(0), detach: true });
});

t('detach keys: ctrl-p then another key sends both; ctrl-p ctrl-p ctrl-q still detaches', () => {
  const s = new DetachScanner();
  assert.equal(s.feed(Buffer.from('\x10a')), { forward: Buffer.from('\x10a'), detach: false });
  assert.equal(s.feed(Buffer.from('\x10\x10\x11')), { forward: Buffer.from('\x10'), detach: true });
  assert.equal(new DetachScanner().feed(Buffer.from('\x03\x11')), { forward: Buffer.from('\x03\x11'), detach: false });
});

t('--detach-keys: docker\'s ctrl-X and single characters; anything else one line naming the key', () => {
  assert.equal(parseDetachKeys('ctrl-p,ctrl-q'), Buffer.from([0x10, 0x11]));
  assert.equal(parseDetachKeys('ctrl-a,x,ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_,CTRL-Z'), Buffer.from([1, 0x78, 0, 27, 28, 29, 30, 31, 26]));
  for (const bad of ['', 'ctrl-', 'ctrl-1', 'ctrl-pq', 'ab', 'ctrl-p,,ctrl-q', '\u00e9', 'ctrl-p,' + 'y'.repeat(300)]) {
    let err: unknown;
    try { parseDetachKeys(bad); } catch (e) { err = e; }
    assert.ok(err instanceof CliError, `refused: ${JSON.stringify(bad)}`);
    assert.not.match((err as Error).message, /\n/);
  }
});

t('detach keys: any sequence, one that repeats its own start (a,a,b) included; the default then passes', () => {
  const s = new DetachScanner(parseDetachKeys('a,a,b'));
  assert.equal(s.feed(Buffer.from('xaaab')), { forward: Buffer.from('xa'), detach: true });
  const s2 = new DetachScanner(parseDetachKeys('ctrl-x,x'));
  assert.equal(s2.feed(Buffer.from('\x10\x11ab\x18')), { forward: Buffer.from('\x10\x11ab'), detach: false });
  assert.equal(s2.feed(Buffer.from('y\x18')), { forward: Buffer.from('\x18y'), detach: false });
  assert.equal(s2.feed(Buffer.from('x')), { forward: Buffer.alloc(0), detach: true });
  // one key alone
  assert.equal(new DetachScanner(parseDetachKeys('ctrl-e')).feed(Buffer.from('ab\x05cd')), { forward: Buffer.from('ab'), detach: true });
});

t('resize header: "ROWS COLS" in 1..4096, anything else one line', () => {
  assert.equal(parseResize('24 80'), { rows: 24, cols: 80 });
  assert.equal(parseResize('4096 4096'), { rows: 4096, cols: 4096 });
  for (const bad of ['99999999 99999999', '4097 1', '0 80', '-1 -1', '1e9 1', 'junk', '24 80 1', '', ' 24 80', '24  80', '9'.repeat(400) + ' 1']) {
    const r = parseResize(bad);
    assert.type(r, 'string', bad);
    assert.not.match(r as string, /\n/);
    assert.ok((r as string).length < 120, r as string);
  }
});

t('launch: tty ROWS COLS round-trips, out of range is a LaunchError', () => {
  assert.equal(ttyTokens({ rows: 30, cols: 100 }), ['30', '100']);
  assert.throws(() => ttyTokens({ rows: 70000, cols: 1 }), (e: unknown) => e instanceof LaunchError);
  assert.throws(() => ttyTokens({ rows: 1.5, cols: 1 }), (e: unknown) => e instanceof LaunchError);
  const buf = encodeExecLaunch({ ociVersion: '1.0.2', process: { cwd: '/', args: ['sh'], env: [] } } as never,
    { args: ['sh'], stdin: true, tty: { rows: 30, cols: 100 } }, { stateDir: '/s', logPath: '/l', pid: 10, pidStart: 1, cgroupProcs: [] });
  const l = decodeLaunch(buf);
  assert.equal(l.tty, { rows: 30, cols: 100 });
  assert.is(l.stdin, true);
});

t('resize record: 4 bytes, u16 rows then u16 cols in host order', () => {
  const r = resizeRecord(41, 133);
  assert.is(r.length, 4);
  const u = new Uint16Array(r.buffer.slice(r.byteOffset, r.byteOffset + 4));
  assert.equal([...u], [41, 133]);
});

t.run();
