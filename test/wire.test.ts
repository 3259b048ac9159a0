// The bulk reader's own NATS connection (shared/nats/wire.ts, wire-conn.ts): the frame parser
// (pure: frames split at every byte give the same messages; junk, truncated frames, huge
// declared sizes, endless lines are one-line errors), the connection against hostile servers on
// loopback (junk, silence, a refusal, a close mid-frame: one line, never a hang), and against a
// real server: the audit's reader over it gives every position as nats.js's reader does, and a
// connection cut under it ends the read with one line.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server, type Socket } from 'node:net';
import type { NatsConnection } from 'nats';
import { WireError, WireParser, MAX_LINE, statusOf, pubFrame, type WireHandler } from '../shared/nats/wire.js';
import { WireConn } from '../shared/nats/wire-conn.js';
import { BulkReadError, readRange } from '../shared/nats/bulk.js';
import { Appender } from '../shared/nats/log.js';
import { SourceChain } from '../shared/codec.js';
import { subjects, STREAM } from '../shared/subjects.js';
import { readCreds, signerOf, type Creds } from '../shared/nats/trust.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from './helpers/cluster.js';

const te = new TextEncoder();
/** The one-line message a promise is rejected with (fails the test if it resolves). */
async function failure(p: Promise<{ close(): void }>): Promise<string> {
  try { (await p).close(); } catch (err) { assert.not.match((err as Error).message, /\n/); return (err as Error).message; }
  assert.unreachable('it was expected to fail');
  return '';
}
const td = new TextDecoder();

/** Everything a parser hands out, as text. */
function recorder(): { h: WireHandler; got: string[] } {
  const got: string[] = [];
  const s = (b: Uint8Array, a: number, e: number) => td.decode(b.subarray(a, e));
  return {
    got,
    h: {
      msg: (b, sid, s0, s1, r0, r1, h0, b0, e) => got.push(`msg ${s(b, s0, s1)} ${sid} ${r1 > r0 ? s(b, r0, r1) : '-'} [${s(b, h0, b0)}] [${s(b, b0, e)}]`),
      ping: () => got.push('ping'),
      pong: () => got.push('pong'),
      err: (t) => got.push(`err ${t}`),
      info: (j) => got.push(`info ${j}`),
    },
  };
}

/** An HMSG frame with its sizes counted ("\t" between the arguments when `tabs`). */
const hmsg = (args: string[], hdr: string, payload: string, tabs = false) =>
  `HMSG ${[...args, String(hdr.length), String(hdr.length + payload.length)].join(tabs ? '\t' : ' ')}\r\n${hdr}${payload}\r\n`;
const STREAM_TEXT = 'INFO {"server_id":"x","max_payload":1048576}\r\n' +
  'MSG ev.state.a.1 7 $JS.ACK.EVENTS.c.1.5.1.17.0 5\r\nhello\r\n' +
  'PING\r\n+OK\r\n' +
  hmsg(['_INBOX.x', '9'], 'NATS/1.0 100 Idle Heartbeat\r\n\r\n', '') +
  hmsg(['ev.state.a.2', '7', '$JS.ACK.EVENTS.c.1.6.2.17.0'], 'NATS/1.0\r\nSwl-Sig: abc=\r\n\r\n', '\r\n\nx', true) +
  'MSG a 1 0\r\n\r\n' +
  "-ERR 'Slow Consumer'\r\nPONG\r\n";

const pure = suite('wire - the frame parser');

pure('wire - frames give their subject, sid, reply, header block and payload; split at every byte the same', () => {
  const all = te.encode(STREAM_TEXT);
  const one = recorder();
  new WireParser(one.h).push(all);
  assert.equal(one.got, [
    'info {"server_id":"x","max_payload":1048576}',
    'msg ev.state.a.1 7 $JS.ACK.EVENTS.c.1.5.1.17.0 [] [hello]',
    'ping',
    'msg _INBOX.x 9 - [NATS/1.0 100 Idle Heartbeat\r\n\r\n] []',
    'msg ev.state.a.2 7 $JS.ACK.EVENTS.c.1.6.2.17.0 [NATS/1.0\r\nSwl-Sig: abc=\r\n\r\n] [\r\n\nx]',
    'msg a 1 - [] []',
    'err Slow Consumer',
    'pong',
  ]);
  for (let cut = 1; cut < all.length; cut++) {
    const r = recorder();
    const p = new WireParser(r.h);
    p.push(all.slice(0, cut));
    p.push(all.slice(cut));
    assert.equal(r.got, one.got, `cut at ${cut}`);
    assert.not.ok(p.midFrame);
  }
  // a byte at a time
  const r = recorder();
  const p = new WireParser(r.h);
  for (let i = 0; i < all.length; i++) {
    p.push(all.subarray(i, i + 1));
  }
  assert.equal(r.got, one.got);
  // the status line of a heartbeat
  const b = te.encode('NATS/1.0 408 Request Timeout\r\n\r\n');
  assert.equal(statusOf(b, 0, b.length), { code: 408, text: 'Request Timeout' });
  assert.equal(statusOf(te.encode('NATS/1.0\r\n\r\n'), 0, 12), { code: 0, text: '' });
});

pure('wire - junk, bad sizes, a payload not ended by CRLF, a header over the frame: one-line errors, and the parser stays dead', () => {
  const cases: [string, RegExp][] = [
    ['HELLO world\r\n', /unknown operation: "HELLO world"/],
    ['\x00\x01\x02\r\n', /unknown operation/],
    ['PING\n', /not ended by CRLF/],
    ['MSG a 1\r\n', /MSG with 2 arguments/],
    ['MSG a 1 b c 5\r\n', /MSG with 5 arguments/],
    ['MSG a x 5\r\nhello\r\n', /not a number/],
    ['MSG a 1 -5\r\n', /not a number/],
    ['MSG a 1 99999999999999999999\r\n', /not a number/],
    ['MSG a 1 5\r\nhelloXY', /not followed by CRLF/],
    ['HMSG a 1 9 5\r\nNATS/1.0\r\n', /a header of 9 bytes in a frame of 5/],
    ['HMSG a 1 5 5\r\nHTTP/\r\n', /does not start with NATS\//],
    ['MSG a 1 2000000\r\n', /declaring 2000000 bytes \(the limit is 1048576\)/],
    ['MSGX a 1 2\r\n', /unknown operation/],
  ];
  for (const [text, re] of cases) {
    const p = new WireParser(recorder().h);
    let err: unknown;
    try { p.push(te.encode(text)); } catch (e) { err = e; }
    assert.instance(err, WireError, text);
    assert.match((err as Error).message, re, text);
    assert.not.match((err as Error).message, /\n/, 'one line');
    // dead: the next bytes, even good ones, get the same error
    assert.throws(() => p.push(te.encode('PING\r\n')), (e: Error) => e === err);
  }
});

pure('wire - an endless control line is refused past MAX_LINE, a cut-off frame is held (midFrame) and bounded by its declared size', () => {
  const p = new WireParser(recorder().h);
  const chunk = new Uint8Array(8192).fill(0x41);
  let err: Error | undefined;
  let pushed = 0;
  try { for (; pushed < 100; pushed++) p.push(chunk); } catch (e) { err = e as Error; }
  assert.instance(err, WireError);
  assert.match(err!.message, new RegExp(`longer than ${MAX_LINE} bytes`));
  assert.ok(pushed * 8192 <= MAX_LINE + 8192, `refused after ${pushed} chunks`);
  // a frame cut off: nothing handed out, midFrame until the rest comes
  const r = recorder();
  const q = new WireParser(r.h);
  q.push(te.encode('MSG a 1 10\r\n01234'));
  assert.ok(q.midFrame);
  assert.equal(r.got, []);
  q.push(te.encode('56789\r\nPING\r\n'));
  assert.not.ok(q.midFrame);
  assert.equal(r.got, ['msg a 1 - [] [0123456789]', 'ping']);
  // the frame limit follows the server's max_payload
  const small = new WireParser(recorder().h, 16);
  assert.throws(() => small.push(te.encode('MSG a 1 17\r\n')), /declaring 17 bytes \(the limit is 16\)/);
});

pure('wire - what we send: subjects with spaces or control bytes are refused', () => {
  assert.is(pubFrame('$JS.API.X', '{"a":1}', '_INBOX.me.1'), 'PUB $JS.API.X _INBOX.me.1 7\r\n{"a":1}\r\n');
  assert.throws(() => pubFrame('a b', ''), /invalid subject/);
  assert.throws(() => pubFrame('a', '', 'x\r\nPUB evil 1'), /invalid reply subject/);
});

pure.run();

// ---- hostile servers on loopback ----

const hostile = suite('wire - hostile servers');
const servers: Server[] = [];
const sockets: Socket[] = [];

/** A server on 127.0.0.1 that does `on` with each connection. */
async function serve(on: (s: Socket) => void): Promise<string> {
  const srv = createServer((s) => { sockets.push(s); s.on('error', () => undefined); on(s); });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const a = srv.address();
  return `nats://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
}
hostile.after.each(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

/** Opening must fail with one line matching `re`, well within the bound (no hang). */
async function refused(url: string, re: RegExp, timeoutMs = 2000): Promise<void> {
  const t0 = Date.now();
  let err: Error | undefined;
  try { const w = await WireConn.open(null, url, { timeoutMs }); w.close(); } catch (e) { err = e as Error; }
  assert.instance(err, WireError, `expected a refusal matching ${re}`);
  assert.match(err!.message, re);
  assert.not.match(err!.message, /\n/);
  assert.ok(Date.now() - t0 < timeoutMs + 30_000, 'bounded');
}

/** A server that answers the handshake, then does `after` with the socket. */
const friendly = (after: (s: Socket) => void) => (s: Socket) => {
  s.write('INFO {"server_id":"fake","max_payload":1024}\r\n');
  let buf = '';
  let done = false;
  s.on('data', (b) => {
    buf += b.toString('latin1');
    if (!done && buf.includes('PING\r\n')) { done = true; s.write('PONG\r\n'); after(s); }
  });
};

hostile('wire - junk, silence, a close, a refusal, a bad INFO: the connection fails with one line', async () => {
  await refused(await serve((s) => s.write('HTTP/1.1 400 Bad Request\r\n\r\n')), /unknown operation/);
  await refused(await serve((s) => s.write(Buffer.from([0xff, 0x00, 0x13, 0x0d, 0x0a]))), /unknown operation/);
  await refused(await serve(() => undefined), /no answer within 500 ms/, 500);
  await refused(await serve((s) => s.end()), /closed the connection/);
  await refused(await serve((s) => s.write('INFO {not json\r\n')), /INFO that is not JSON/);
  await refused(await serve((s) => s.write('INFO 7\r\n')), /INFO that is not an object/);
  await refused(await serve((s) => { s.write('INFO {}\r\n'); s.on('data', () => s.write("-ERR 'Authorization Violation'\r\n")); }), /refused: Authorization Violation/);
  await refused(await serve((s) => { s.write('INFO {}\r\n'); s.on('data', () => s.end()); }), /closed the connection/);
  await refused(await serve((s) => s.write(`INFO ${'x'.repeat(MAX_LINE + 10)}`)), /longer than/);
  await refused('nats://127.0.0.1:1', /connecting to 127\.0\.0\.1:1/);
  await refused('http://x', /not a NATS server address/);
  // credentials are never sent in clear: a server offering no TLS is refused before CONNECT
  const dir = mkdtempSync(join(tmpdir(), 'wire-'));
  writeFileSync(join(dir, 'ca.pem'), 'not read: the refusal comes first');
  const c: Creds = { name: 'x', kind: 'user', seed: 'SUAX', nkey: 'U'.padEnd(56, 'A'), url: '', ca: join(dir, 'ca.pem'), root: '' };
  let sawConnect = false;
  const url = await serve((s) => { s.write('INFO {"nonce":"abc"}\r\n'); s.on('data', (b) => { if (b.toString().includes('CONNECT')) sawConnect = true; }); });
  assert.match(await failure(WireConn.open(c, url, { timeoutMs: 2000 })), /offers no TLS/);
  assert.not.ok(sawConnect);
  rmSync(dir, { recursive: true, force: true });
});

/** Connects to a friendly server whose `after` misbehaves; resolves with how the connection ended. */
async function endsWith(after: (s: Socket) => void): Promise<Error | undefined> {
  const w = await WireConn.open(null, await serve(friendly(after)), { timeoutMs: 2000 });
  w.subscribe('_INBOX.t', () => undefined);
  return await new Promise((r) => w.onClose(r));
}

hostile('wire - after the handshake: a huge declared size, junk, a frame cut off by a close end the connection with one line', async () => {
  let e = await endsWith((s) => s.write('MSG _INBOX.t 1 999999999\r\n'));
  assert.match(e!.message, /declaring 999999999 bytes \(the limit is 1024\)/);
  e = await endsWith((s) => s.write('MSG _INBOX.t 1 5\r\nhello\r\n\x00\x00garbage\r\n'));
  assert.match(e!.message, /unknown operation/);
  e = await endsWith((s) => s.end('MSG _INBOX.t 1 100\r\nonly a part'));
  assert.match(e!.message, /closed the connection in the middle of a frame/);
  e = await endsWith((s) => s.end());
  assert.match(e!.message, /closed the connection$/);
  e = await endsWith((s) => s.write("-ERR 'Permissions Violation for Subscription to \"_INBOX.t\"'\r\n"));
  assert.match(e!.message, /the server said: Permissions Violation/);
  // the server's PINGs are answered
  let pong = false;
  const w = await WireConn.open(null, await serve(friendly((s) => { s.on('data', (b) => { if (b.toString().includes('PONG')) pong = true; }); s.write('PING\r\n'); })), { timeoutMs: 2000 });
  for (let i = 0; i < 100 && !pong; i++) await new Promise((r) => setTimeout(r, 50));
  w.close();
  assert.ok(pong, 'PONG sent');
});

hostile.run();

// ---- a real server ----

const live = suite('wire - against a server');
let c: Cluster;
let nc: NatsConnection;
let last = 0;
let wireCreds: Creds;

live.before(async () => {
  c = await Cluster.start();
  const creds = (wireCreds = readCreds(c.addIdentity('node-wire', 'agent', { node: 'wire' })));
  const w = await c.connect('node-wire');
  const { signer, reg } = signerOf(creds);
  const a = new Appender(w.jetstream(), new SourceChain('node:wire'), signer, { nc: w });
  await a.append(subjects.keys('node-wire'), 'KeyRegistered', 'wire', { key: reg.key, rootSig: reg.rootSig });
  const id = (i: number) => (i % 31).toString(16).padStart(64, '0');
  await Promise.all(Array.from({ length: 2000 }, (_, i) => a.append(subjects.state('wire', id(i)), 'ContainerExited', id(i), { exitCode: i % 3, oomKilled: false, exitedAt: 1_700_000_000_000 + i })));
  await w.close();
  nc = await c.connect();
  last = (await (await nc.jetstreamManager()).streams.info(STREAM)).state.last_seq;
});
live.after(async () => {
  await nc?.close().catch(() => undefined);
  await c?.stop();
});

live('wire - the reader over our own connection gives every position, subject, signature and payload nats.js\'s gives', async () => {
  const want: { seq: number; subject: string; sig?: string; data: number[] }[] = [];
  for await (const b of readRange(nc, { from: 1, to: last })) for (const m of b) want.push({ seq: m.seq, subject: m.subject, sig: m.sig, data: [...m.data] });
  assert.is(want.length, last);
  assert.ok(want.some((m) => m.sig) && want.some((m) => !m.sig), 'signed and unsigned (burst) events both read');
  const wire = await WireConn.open(readCreds(c.adminCreds), c.url);
  try {
    for (const batch of [64, 4096]) {
      const got: typeof want = [];
      for await (const b of readRange(nc, { from: 1, to: last, batch, wire })) for (const m of b) got.push({ seq: m.seq, subject: m.subject, sig: m.sig, data: [...m.data] });
      assert.equal(got, want, `batch ${batch}`);
    }
    assert.not.ok(wire.isClosed);
  } finally {
    wire.close();
  }
  // a wrong key is refused by the server: one line
  const bad = { ...readCreds(c.adminCreds), seed: wireCreds.seed };
  assert.match(await failure(WireConn.open(bad, c.url, { timeoutMs: 5000 })), /refused|closed/);
});

live('wire - a connection cut under the reader ends the read with one line, not a hang', async () => {
  const wire = await WireConn.open(readCreds(c.adminCreds), c.url);
  let n = 0;
  let err: Error | undefined;
  try {
    for await (const b of readRange(nc, { from: 1, to: last, batch: 64, wire })) {
      n += b.length;
      if (n > 100) (wire as unknown as { sock: Socket }).sock.destroy();
    }
  } catch (e) { err = e as Error; }
  assert.instance(err, BulkReadError);
  assert.match(err!.message, /closed the connection/);
  assert.not.match(err!.message, /\n/);
});

live.run();
