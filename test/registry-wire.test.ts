// The blob GET's own HTTP/1.1 reader (tsctl/registry/wire.ts) against tiny servers on
// loopback: Content-Length, chunked and until-close bodies, split at awkward places, a
// kept socket reused, and hostile replies (junk and oversize heads, bodies shorter or
// longer than said, bad chunk sizes, early closes, silence): each a one-line error, the
// socket dropped, never a hang. Then the registry client over it: a blob redirected to
// another port, a Basic challenge, a Range request.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { get, parseHead } from '../tsctl/registry/wire.js';
import { HttpError } from '../tsctl/registry/http.js';
import { RegistryClient } from '../tsctl/registry/client.js';

interface Tiny { port: number; conns: number; requests: string[]; open: Set<net.Socket>; close(): Promise<void> }

/** A server that answers each request (its head) with `reply(head, n)`: the pieces to write, in turn. */
async function tiny(reply: (head: string, n: number, s: net.Socket) => (string | Buffer)[] | 'hang' | 'close'): Promise<Tiny> {
  const t: Tiny = { port: 0, conns: 0, requests: [], open: new Set(), close: async () => { for (const s of t.open) s.destroy(); await new Promise((r) => srv.close(r)); } };
  const srv = net.createServer((s) => {
    t.conns++;
    t.open.add(s);
    s.on('close', () => t.open.delete(s));
    s.on('error', () => undefined);
    let buf = '';
    s.on('data', async (d) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        t.requests.push(head);
        const out = reply(head, t.requests.length, s);
        if (out === 'close') { s.destroy(); return; }
        if (out === 'hang') return;
        for (const p of out) { s.write(p); await new Promise((r) => setImmediate(r)); }
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.port = (srv.address() as net.AddressInfo).port;
  return t;
}

const GET = { method: 'GET' as const, headers: {}, timeoutMs: 3000 };
async function readAll(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c);
  return Buffer.concat(parts);
}
/** The body's error: one line, an HttpError. */
async function bodyFails(body: AsyncIterable<Buffer>, re: RegExp): Promise<void> {
  let err: Error | undefined;
  try { await readAll(body); } catch (e) { err = e as Error; }
  assert.ok(err, 'the body should fail');
  assert.instance(err, HttpError);
  assert.match(err!.message, re);
  assert.not.match(err!.message, /\n/);
}
const settle = () => new Promise((r) => setTimeout(r, 50));

test('head - status, reason, headers joined; junk refused', () => {
  const h = parseHead('HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 5') as Exclude<ReturnType<typeof parseHead>, string>;
  assert.equal([h.status, h.statusText, h.headers.get('content-length'), h.headers.get('x-a')], [206, 'Partial Content', '5', '1, 2']);
  assert.is((parseHead('HTTP/1.0 200') as { status: number }).status, 200);
  for (const bad of ['HTTP/2 200 OK', 'ICY 200 OK', 'HTTP/1.1 20 OK', 'HTTP/1.1 200 OK\r\nno colon', 'HTTP/1.1 200 OK\r\n folded: x', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6', 'HTTP/1.1 200 OK\r\nBad Name: x']) {
    assert.type(parseHead(bad), 'string', bad);
  }
});

test('wire - a Content-Length body split across writes, then the same socket for the next GET', async () => {
  const body = Buffer.alloc(3 << 20, 7);
  body[12345] = 1;
  const s = await tiny(() => [`HTTP/1.1 200 OK\r\nContent-Le`, `ngth: ${body.length}\r\n\r`, `\n${body.subarray(0, 10).toString('latin1')}`, body.subarray(10, 1 << 20), body.subarray(1 << 20)]);
  try {
    for (let i = 0; i < 3; i++) {
      const r = await get(`http://127.0.0.1:${s.port}/v2/x/blobs/a?b=1`, { ...GET, headers: { range: 'bytes=0-' } });
      assert.is(r.status, 200);
      assert.is(r.headers.get('Content-Length'), String(body.length));
      assert.ok((await readAll(r.body)).equals(body));
    }
    assert.is(s.conns, 1, 'the kept socket is reused');
    assert.match(s.requests[0], /^GET \/v2\/x\/blobs\/a\?b=1 HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\nrange: bytes=0-$/);
  } finally { await s.close(); }
});

test('wire - chunked bodies split at every byte, with extensions and trailers; until-close bodies; HEAD and 204 have none', async () => {
  const wire = '5;name=x\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n';
  const s = await tiny((head) => {
    if (head.includes('/chunked')) return [`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n`, ...wire.split('')];
    if (head.includes('/close')) return [`HTTP/1.0 200 OK\r\n\r\nall of it`, ''];
    if (head.startsWith('HEAD')) return [`HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n`];
    return [`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n`];
  });
  try {
    const r = await get(`http://127.0.0.1:${s.port}/chunked`, GET);
    assert.is((await readAll(r.body)).toString(), 'helloabcdefghijklmnopqrstuvwxyz');
    const again = await get(`http://127.0.0.1:${s.port}/chunked`, GET);
    assert.is((await readAll(again.body)).toString(), 'helloabcdefghijklmnopqrstuvwxyz');
    assert.is(s.conns, 1, 'a clean chunked end keeps the socket');
    const c = await get(`http://127.0.0.1:${s.port}/close`, GET);
    setTimeout(() => { for (const x of s.open) x.end(); }, 50);
    assert.is((await readAll(c.body)).toString(), 'all of it');
    const h = await get(`http://127.0.0.1:${s.port}/h`, { ...GET, method: 'HEAD' });
    assert.equal([h.status, (await readAll(h.body)).length], [200, 0]);
    const n = await get(`http://127.0.0.1:${s.port}/n`, GET);
    assert.equal([n.status, (await readAll(n.body)).length], [204, 0]);
  } finally { await s.close(); }
});

test('wire - junk, oversize or contradictory heads: one line, the socket dropped', async () => {
  const cases: [string | Buffer, RegExp][] = [
    ['SSH-2.0-OpenSSH_9.2\r\n\r\n', /not HTTP\/1\.x/],
    ['HTTP/1.1 200 OK\r\nX: ' + 'a'.repeat(70 << 10), /headers over 64 KiB/],
    ['HTTP/1.1 200 OK\r\nX: ' + 'a'.repeat(70 << 10) + '\r\n\r\n', /headers over 64 KiB/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', /both Transfer-Encoding and Content-Length/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n', /Transfer-Encoding "gzip"/],
    ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', /Content-Length that is not a number/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n', /Content-Length that is not a number/],
    [Buffer.from([0, 1, 2, 0xff, 13, 10, 13, 10]), /not HTTP\/1\.x/],
    // a line a backtracking parse of "name: value" takes hours over (on the event loop)
    ['HTTP/1.1 200 OK\r\nX:' + ' '.repeat(60000) + '\x01\r\n\r\n', /header that is not "name: value"/],
    ['HTTP/1.1 200 OK\r\nX: a' + '\t '.repeat(20000) + '\x01 \r\n\r\n', /header that is not "name: value"/],
    // interim replies without end: refused, not a call (and a stack frame) per reply
    ['HTTP/1.1 100 Continue\r\n\r\n'.repeat(65536), /more than 8 interim replies/],
  ];
  for (const [reply, re] of cases) {
    const s = await tiny(() => [reply]);
    try {
      const t0 = Date.now();
      const err = await get(`http://127.0.0.1:${s.port}/x`, GET).then(() => undefined, (e: Error) => e);
      assert.ok(Date.now() - t0 < 2000, `${re} took ${Date.now() - t0} ms`);
      assert.instance(err, HttpError, String(re));
      assert.is((err as HttpError).code, 'BADREPLY');
      assert.match(err!.message, re);
      assert.not.match(err!.message, /[\r\n]/);
      await settle();
      assert.is(s.open.size, 0, `the socket is closed after ${re}`);
    } finally { await s.close(); }
  }
});

test('wire - bodies shorter or longer than said, bad chunks, early closes, silence: one line, no hang', async () => {
  const body = 'x'.repeat(1000);
  const s = await tiny((head, _n, sock) => {
    const p = head.split(' ')[1];
    if (p === '/short') { setTimeout(() => sock.destroy(), 30); return [`HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n${body}`]; }
    if (p === '/long') return [`HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n${body}`];
    if (p === '/badsize') return [`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n`];
    if (p === '/hugesize') return [`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000\r\n`];
    if (p === '/overrun') return [`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n`];
    if (p === '/endless') return [`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5`, ';'.repeat(5000)];
    if (p === '/midchunk') { setTimeout(() => sock.destroy(), 30); return [`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nabc`]; }
    if (p === '/early') return 'close';
    return 'hang';
  });
  const url = (p: string) => `http://127.0.0.1:${s.port}${p}`;
  try {
    await bodyFails((await get(url('/short'), GET)).body, /^the connection closed after 1000 of 5000 bytes$/);
    const long = await get(url('/long'), GET);
    assert.is((await readAll(long.body)).toString(), 'x'.repeat(10), 'no byte past Content-Length');
    await bodyFails((await get(url('/badsize'), GET)).body, /bad chunk size \("zz"\)/);
    await bodyFails((await get(url('/hugesize'), GET)).body, /bad chunk size/);
    await bodyFails((await get(url('/overrun'), GET)).body, /chunk longer than its size/);
    await bodyFails((await get(url('/endless'), GET)).body, /chunk size line over 4 KiB/);
    await bodyFails((await get(url('/midchunk'), GET)).body, /^the connection closed after 3 bytes, before the last chunk$/);
    const early = await get(url('/early'), GET).then(() => undefined, (e: Error) => e);
    assert.match(early!.message, /closed the connection before its reply/);
    const t0 = Date.now();
    const silent = await get(url('/silent'), { ...GET, timeoutMs: 300 }).then(() => undefined, (e: Error) => e);
    assert.match(silent!.message, /^no reply within 0\.3 s$/);
    assert.ok(Date.now() - t0 < 2000);
    await settle();
    assert.is(s.open.size, 0, 'every socket of a failed reply is closed');
  } finally { await s.close(); }
});

test('wire - a kept socket the server closed is retried once on a new one; a dropped body is not reused', async () => {
  const s = await tiny((head, n, sock) => {
    if (n === 2) { sock.destroy(); return 'hang'; }
    if (n === 4) return [`HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na`];
    return [`HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc`];
  });
  try {
    const a = await get(`http://127.0.0.1:${s.port}/a`, GET);
    assert.is((await readAll(a.body)).toString(), 'abc');
    // the server drops the kept socket as the second request arrives: the GET is made again
    const b = await get(`http://127.0.0.1:${s.port}/b`, GET);
    assert.is((await readAll(b.body)).toString(), 'abc');
    assert.is(s.conns, 2);
    const c = await get(`http://127.0.0.1:${s.port}/c`, GET);
    c.body.destroy();
    await settle();
    const d = await get(`http://127.0.0.1:${s.port}/d`, GET);
    assert.is((await readAll(d.body)).toString(), 'abc');
    assert.is(s.conns, 3, 'a body dropped unread does not leave its socket to the next GET');
  } finally { await s.close(); }
});

test('client - a blob over wire.ts: a 401 answered, a redirect to another loopback port followed, a Range sent', async () => {
  const blob = Buffer.from('the blob bytes');
  const store = await tiny((head) => {
    const range = /\r\nrange: bytes=(\d+)-/i.exec(head);
    if (range) return [`HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${range[1]}-${blob.length - 1}/${blob.length}\r\nContent-Length: ${blob.length - Number(range[1])}\r\n\r\n`, blob.subarray(Number(range[1]))];
    return [`HTTP/1.1 200 OK\r\nContent-Length: ${blob.length}\r\n\r\n`, blob];
  });
  const reg = await tiny((head) => {
    if (!/\r\nauthorization: Basic /i.test(head)) return [`HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="r"\r\nContent-Length: 2\r\n\r\n{}`];
    return [`HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:${store.port}/data?sig=1\r\nContent-Length: 0\r\n\r\n`];
  });
  try {
    const rc = new RegistryClient(`127.0.0.1:${reg.port}`, 'team/app', { username: 'u', password: 'p', timeoutMs: 3000 });
    const d = `sha256:${'a'.repeat(64)}`;
    const whole = await rc.blob(d);
    assert.is((await readAll(whole.body)).toString(), 'the blob bytes');
    const rest = await rc.blob(d, 4);
    assert.is(rest.status, 206);
    assert.is((await readAll(rest.body)).toString(), 'blob bytes');
    assert.not.match(store.requests.join('\n'), /authorization/i, 'the credentials stay with the registry');
    assert.match(reg.requests[0], new RegExp(`^GET /v2/team/app/blobs/${d} HTTP/1.1`));
    assert.is(reg.conns, 1, 'the 401 and the retry share a socket');
  } finally { await store.close(); await reg.close(); }
});

test('client - a junk reply to a blob GET is one RegistryError line', async () => {
  const s = await tiny(() => ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n']);
  try {
    const rc = new RegistryClient(`127.0.0.1:${s.port}`, 'team/app', { timeoutMs: 3000 });
    const err = await rc.blob(`sha256:${'b'.repeat(64)}`).then(() => undefined, (e: Error) => e);
    assert.match(err!.message, new RegExp(`^registry 127\\.0\\.0\\.1:${s.port}: blob sha256:b+: http://127\\.0\\.0\\.1:${s.port} sent a reply with both Transfer-Encoding and Content-Length: refused$`));
  } finally { await s.close(); }
});

test.run();
