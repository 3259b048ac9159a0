// tsctl's C client (native/build/tsctl, what /usr/local/bin/tsctl links to): it finds the warm
// tsctl's socket under the same name as bin/tsctl.cjs, sends the same request, and answers each
// line of the warm process exactly as bin/tsctl.cjs does (output bytes, exit codes, signals,
// junk, a peer gone), against a fake warm process of the test's own; anywhere it could differ
// (another command, no socket, a directory not private, a decline) it runs bin/tsctl.cjs. A
// hostile peer overflows nothing: lines of any size, with no newline for megabytes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, renameSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ROOT, until } from './helpers/cluster.js';

const C = join(ROOT, 'native/build/tsctl');
const JS = join(ROOT, 'bin/tsctl.cjs');
const home = mkdtempSync(join(tmpdir(), 'swl-launch-c-'));
const runtime = join(home, 'run');
const dir = join(runtime, 'swarmlite');
mkdirSync(dir, { recursive: true, mode: 0o700 });
chmodSync(runtime, 0o700);
// tsctl run for itself (after a fallback) fails at once: nothing listens there
const base: Record<string, string> = { XDG_RUNTIME_DIR: runtime, SWARMLITE_NATS: 'nats://127.0.0.1:1', SWARMLITE_CREDS: '', TSCTL_WARM_IDLE: '1' };
for (const k of ['TSCTL_TRACE', 'TSCTL_WARM', 'TSCTL_WARM_SERVE', 'TSCTL_WARM_ASKED', 'NODE_OPTIONS']) delete process.env[k];

interface R { code: number | null; signal: NodeJS.Signals | null; stdout: Buffer; stderr: string }
function call(cmd: string, args: string[], env: Record<string, string> = {}, onSpawn?: (p: ReturnType<typeof spawn>) => void): Promise<R> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd: home, env: { ...process.env, ...base, ...env } });
    const out: Buffer[] = [];
    let stderr = '';
    p.stdin.end(); // --password-stdin reads it
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d) => (stderr += d));
    onSpawn?.(p);
    p.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr }));
  });
}

/** The socket name the C client computes (TSCTL_LAUNCH_PRINT_SOCKET: its tests' view). */
async function cName(env: Record<string, string> = {}): Promise<string> {
  const r = await call(C, ['run', 'x'], { ...env, TSCTL_LAUNCH_PRINT_SOCKET: '1' });
  assert.is(r.code, 0, r.stderr);
  return r.stdout.toString().trim();
}

/** A fake warm process on `sock`: `reply` answers each connection's request line. */
class Fake {
  requests: string[] = [];
  server!: Server;
  reply: (s: Socket, req: string) => void = (s) => s.end('{"exit":0}\n');
  async listen(sock: string): Promise<void> {
    rmSync(sock, { force: true });
    this.server = createServer((s) => {
      let buf = '';
      s.on('error', () => undefined);
      s.on('data', (d) => {
        const first = !buf.includes('\n');
        buf += d;
        const i = buf.indexOf('\n');
        if (first && i >= 0) { this.requests.push(buf.slice(0, i)); this.reply(s, buf.slice(0, i)); }
      });
    });
    await new Promise<void>((r) => this.server.listen(sock, r));
  }
  close(): Promise<void> { return new Promise((r) => this.server.close(() => r())); }
}

let sock = '';
const fake = new Fake();
test.before(async () => {
  sock = await cName();
  await fake.listen(sock);
});
test.after(async () => {
  await fake.close();
  rmSync(home, { recursive: true, force: true });
});

/** Both clients against the same script: their results and how many connections each made. */
async function both(args: string[], reply: Fake['reply'], env: Record<string, string> = {}): Promise<{ c: R; js: R; conns: [number, number] }> {
  fake.reply = reply;
  let n = fake.requests.length;
  const c = await call(C, args, env);
  const cConns = fake.requests.length - n;
  n = fake.requests.length;
  const js = await call(JS, args, env);
  return { c, js, conns: [cConns, fake.requests.length - n] };
}
const same = (r: { c: R; js: R }, what: string) => {
  assert.is(r.c.code, r.js.code, `${what}: code (C stderr ${r.c.stderr})`);
  assert.is(r.c.signal, r.js.signal, `${what}: signal`);
  assert.ok(r.c.stdout.equals(r.js.stdout), `${what}: stdout ${r.c.stdout.toString('hex').slice(0, 80)} vs ${r.js.stdout.toString('hex').slice(0, 80)}`);
  assert.is(r.c.stderr, r.js.stderr, `${what}: stderr`);
};
const lines = (...frames: unknown[]) => frames.map((f) => (typeof f === 'string' ? f : JSON.stringify(f))).join('\n') + '\n';

test('launch-c - the socket name is bin/tsctl.cjs\'s, and so is the request (argv, env as sh leaves it, cwd, ttys)', async () => {
  const env = { NODE_EXTRA_CA_CERTS: '/nonexistent.pem', 'BAD-NAME': 'dropped by sh', ODD: 'q"\\\n\t\u0001é\u{1F600}', PWD: '/nonexistent' };
  const args = ['run', '--rm', 'busybox', 'echo', 'a "b"', 'ü\\', ''];
  const r = await both(args, (s) => s.end(lines({ run: true }, { exit: 0 })), env);
  same(r, 'request');
  assert.equal(r.conns, [1, 1], 'each client connected to the one socket');
  const [c, js] = fake.requests.slice(-2).map((l) => JSON.parse(l));
  assert.equal(c, js);
  assert.equal(c.argv, args);
  assert.is(c.env.ODD, env.ODD);
  assert.is(c.env.NODE_EXTRA_CA_CERTS, undefined);
  assert.is(c.env.PWD, home);
  // node's flags are in the name: another socket, the same for both
  const bundled = await cName({ NODE_OPTIONS: '--use-bundled-ca' });
  assert.is.not(bundled, sock);
  const other = new Fake();
  await other.listen(bundled);
  try {
    for (const cmd of [C, JS]) {
      const o = await call(cmd, ['image', 'pull', 'x'], { NODE_OPTIONS: '--use-bundled-ca' });
      assert.is(o.code, 0, o.stderr);
    }
    assert.is(other.requests.length, 2);
  } finally { await other.close(); }
});

test('launch-c - output with every byte value, lenient base64, exit codes: as bin/tsctl.cjs', async () => {
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const frames = [{ run: true }, { o: all.toString('base64') }, { e: Buffer.from('err\n').toString('base64') }, { o: 'QUJD RA' }, { o: 'QQ=QUJD' },
    { o: '-_-_\u0141\u0142' }, '{"o":"\\u0051\\u0051==","e":"QQ=="}', { e: '' }, '[1,{"o":"QQ=="}]', { o: 5 }, { junk: 1, o: 'QkM=' }, { o: 'x', run: 0 }];
  const r = await both(['run', 'busybox'], (s) => s.end(lines(...frames, { exit: 7 })));
  same(r, 'output');
  assert.is(r.c.code, 7);
  assert.ok(r.c.stdout.subarray(0, 256).equals(all));
  for (const code of [0, 1, 255, 256, -1, 1e3, '-0', '2.0', '1E2']) {
    const e = await both(['run', 'x'], (s) => s.end(lines({ run: true }, `{"exit":${code}}`)));
    same(e, `exit ${code}`);
  }
  // not an integer: no exit, then the peer goes away; beyond a safe integer node throws (exit 1)
  same(await both(['run', 'x'], (s) => s.end(lines({ run: true }, '{"exit":2.5}', '{"exit":"3"}', '{"exit":1e400}'))), 'exit 2.5');
  const big = await both(['run', 'x'], (s) => s.end(lines({ run: true }, '{"exit":1e20}')));
  assert.is(big.c.code, 1);
  assert.is(big.js.code, 1);
});

test('launch-c - junk after the call was taken: one line and 125; the peer gone: the same message as bin/tsctl.cjs', async () => {
  for (const junk of ['nope', '"str"', '1', 'null', 'true', '{"o":1', '{"o":"QQ=="}}', '{"a":1,}', '{"a":01}', '{"a":"\u0001"}', '{"a":"\\x"}', '\u0000', '', '[', '{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}']) {
    const r = await both(['run', 'x'], (s) => s.end(lines({ run: true }, { o: 'QQ==' }, junk, { exit: 0 })));
    same(r, `junk ${JSON.stringify(junk)}`);
    if (!junk.startsWith('{"a":[')) assert.is(r.c.code, 125, junk);
  }
  const gone = await both(['run', 'x'], (s) => s.end(lines({ run: true }, { o: 'QQ==' })));
  same(gone, 'gone');
  assert.match(gone.c.stderr, /went away during the call; the container may still run/);
  const pull = await both(['image', 'pull', 'r/x'], (s) => s.end(lines({ e: 'QQ==' })));
  same(pull, 'gone, pull');
  assert.match(pull.c.stderr, /the image was not recorded/);
  const rm = await both(['rm', '-f', 'x', 'y'], (s) => s.end(lines({ run: true }, { o: 'eAo=' })));
  same(rm, 'gone, rm');
  assert.match(rm.c.stderr, /went away during the call; some containers may not be removed \(tsctl ps -a\)/);
  // deep nesting is followed without recursion
  const deep = await both(['run', 'x'], (s) => s.end(lines({ run: true }, `{"a":${'['.repeat(1 << 20)}${']'.repeat(1 << 20)}}`, { exit: 4 })));
  same(deep, 'deep');
  assert.is(deep.c.code, 4);
});

test('launch-c - kill: the client dies of the signal; a signal after run is forwarded as a line', async () => {
  same(await both(['run', 'x'], (s) => s.end(lines({ run: true }, { kill: 'SIGTERM' }))), 'kill');
  assert.is((await call(C, ['run', 'x'])).signal, 'SIGTERM');
  same(await both(['run', 'x'], (s) => s.end(lines({ run: true }, { kill: 'SIGKILL' }, { exit: 2 }))), 'kill of another signal');
  const forward: Fake['reply'] = (s) => {
    s.write(lines({ run: true }, { o: Buffer.from('ready\n').toString('base64') }));
    let buf = '';
    s.on('data', (d) => {
      buf += d;
      const m = /\{"sig":"(SIG[A-Z]+)"\}\n/.exec(buf); // the request line went to Fake before this listener
      if (m) s.end(lines({ e: Buffer.from(`got ${m[1]}\n`).toString('base64') }, { exit: 130 }));
    });
  };
  fake.reply = forward;
  for (const cmd of [C, JS]) {
    const r = await call(cmd, ['run', 'x'], {}, (p) => {
      let out = '';
      p.stdout!.on('data', (d) => { out += d; if (out.includes('ready')) p.kill('SIGINT'); });
    });
    assert.is(r.code, 130, `${cmd}: ${r.stderr}`);
    assert.is(r.stderr, 'got SIGINT\n', cmd);
  }
});

test('launch-c - a closed stdout: exit 1, as bin/tsctl.cjs (node\'s EPIPE), not death by SIGPIPE', async () => {
  fake.reply = (s) => { s.on('error', () => undefined); s.end(lines({ run: true }, ...Array.from({ length: 64 }, () => ({ o: Buffer.alloc(1 << 16, 0x79).toString('base64') })), { exit: 0 })); };
  for (const cmd of [C, JS]) {
    const r = await call(cmd, ['run', 'x'], {}, (p) => p.stdout!.destroy());
    assert.is(r.signal, null, cmd);
    assert.is(r.code, 1, `${cmd}: ${r.stderr}`);
  }
});

test('launch-c - before the call is taken, direct, junk or a close make the client run it itself, asking no second time', async () => {
  for (const reply of [lines({ direct: true }), lines('junk'), '', lines({ direct: 1 }, { exit: 0 })] as string[]) {
    const r = await both(['run', 'x'], (s) => s.end(reply));
    same(r, `before taken: ${JSON.stringify(reply)}`);
    assert.equal(r.conns, [1, 1], JSON.stringify(reply));
    assert.match(r.c.stderr, /nats|connect/i, 'tsctl ran the call itself');
  }
  // an oversized line before the call is taken: the same
  const r = await both(['run', 'x'], (s) => s.end('x'.repeat(17 << 20)));
  same(r, 'oversized before taken');
  assert.equal(r.conns, [1, 1]);
});

test('attacks - lines of every size, and megabytes with no newline: no overflow, the same answer as bin/tsctl.cjs', async () => {
  for (const n of [1, 4095, 65535, 65536, 65537, 1 << 20, 3 << 20]) {
    const bytes = randomBytes(n).toString('latin1').replace(/\n/g, ' ');
    for (const tail of ['\n', '']) {
      const r = await both(['run', 'x'], (s) => s.end(lines({ run: true }) + bytes + tail));
      same(r, `${n} random bytes${tail ? ' and a newline' : ''}`);
      assert.is(r.c.code, 125);
    }
    // a valid frame of that size
    const o = randomBytes(n);
    const big = await both(['run', 'x'], (s) => s.end(lines({ run: true }, { o: o.toString('base64') }, { exit: 0 })));
    same(big, `an output frame of ${n} bytes`);
    assert.ok(big.c.stdout.equals(o));
  }
  // past the line limit without a newline: junk, not memory without end
  const huge = await both(['run', 'x'], (s) => {
    s.write(lines({ run: true }));
    const chunk = Buffer.alloc(1 << 20, 0x41);
    let sent = 0;
    const more = () => { while (sent < 40 && !s.destroyed) { sent++; if (!s.write(chunk)) return s.once('drain', more); } s.end(); };
    s.on('error', () => undefined);
    more();
  });
  same(huge, 'no newline for 40 MB');
  assert.is(huge.c.stderr, 'tsctl: the warm tsctl process sent junk\n');
});

test('launch-c - no socket, another command, TSCTL_WARM=0, --help, a directory not private: no connection, bin/tsctl.cjs runs the call', async () => {
  const n = fake.requests.length;
  for (const [args, env] of [[['ps'], {}], [['run', 'x'], { TSCTL_WARM: '0' }], [['run', '--help'], {}], [['image', 'pull', '--password-stdin', 'x'], {}],
    [['image', 'ls'], {}]] as [string[], Record<string, string>][]) {
    const c = await call(C, args, env), js = await call(JS, args, env);
    assert.is(c.code, js.code, args.join(' '));
    assert.is(c.stdout.toString(), js.stdout.toString(), args.join(' '));
  }
  assert.is(fake.requests.length, n, 'nothing sent');
  // a traced call is bin/tsctl.cjs's (its trace line says how the warm process served it)
  fake.reply = (s) => s.end(lines({ run: true }, { exit: 0 }));
  const traced = await call(C, ['run', 'x'], { TSCTL_TRACE: '1' });
  assert.match(traced.stderr, /^tsctl trace: node --use-openssl-ca \(warm\);/m);
  assert.is(fake.requests.length, n + 1);
  for (const mode of [0o755, 0o770]) {
    chmodSync(dir, mode);
    try {
      const r = await call(C, ['run', 'x']);
      assert.match(r.stderr, /nats|connect/i, 'ran the call itself');
    } finally { chmodSync(dir, 0o700); }
  }
  chmodSync(runtime, 0o777);
  try { await call(C, ['run', 'x']); } finally { chmodSync(runtime, 0o700); }
  // a link in place of the directory
  renameSync(dir, `${dir}.real`);
  symlinkSync(`${dir}.real`, dir);
  try { await call(C, ['run', 'x']); } finally { rmSync(dir); renameSync(`${dir}.real`, dir); }
  assert.is(fake.requests.length, n + 1, 'nothing sent to a directory not private');
  // no socket at all: the launcher runs it and starts a warm process for the next call (on the same name)
  await fake.close();
  try {
    const r = await call(C, ['run', 'x']);
    assert.match(r.stderr, /nats|connect/i);
  } finally { await fake.listen(sock); }
});
test.run();
