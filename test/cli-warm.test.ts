// The warm tsctl (tsctl/warm.ts, bin/tsctl.cjs's client): `tsctl run` served by a per-user
// process that keeps its cluster connections answers exactly as tsctl in its own process
// (output, exit codes, errors, Ctrl-C forwarded to the container), records the same user, and
// is never a way in: another uid cannot reach it, junk on its socket changes nothing, a dead
// one's socket file and a directory not the user's own make tsctl run the call itself.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync as lstat, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Cluster, ROOT, sleep, until } from './helpers/cluster.js';
import { parseRequest } from '../tsctl/warm.js';
import { TSCTL, WarmHome, untraced, warmCall, type R } from './helpers/warm.js';

const home = mkdtempSync(join(tmpdir(), 'swl-warm-'));
chmodSync(home, 0o755);
const runtime = join(home, 'run'); // XDG_RUNTIME_DIR: the warm processes of this test live under it
let c: Cluster;
const w = new WarmHome(runtime, () => ({ SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds }));
const tsctl = w.tsctl.bind(w);
const sockets = w.sockets.bind(w);
const warmPids = () => w.pids();
const killWarm = () => w.kill();

/** A warm process up and answering (the first call starts one). */
async function warmUp(): Promise<void> {
  await tsctl(['run', '--rm', '--network', 'none', 'busybox', 'true']);
  await until(async () => warmCall(await tsctl(['run', '--rm', '--network', 'none', 'busybox', 'true'])), 20000, 'a call served warm');
}

test.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
});
test.after(async () => {
  await killWarm().catch(() => undefined);
  await c?.stop();
  rmSync(home, { recursive: true, force: true });
});

test('warm - request parsing refuses junk, whole', () => {
  const ok = { v: 1, argv: ['run', 'x'], env: { A: 'b' }, cwd: '/', tty: [false, true] };
  assert.equal(parseRequest(JSON.stringify(ok)), ok);
  for (const bad of ['', 'nope', 'null', '[]', '{"v":2}', JSON.stringify({ ...ok, v: 2 }), JSON.stringify({ ...ok, argv: [1] }), JSON.stringify({ ...ok, argv: 'run' }),
    JSON.stringify({ ...ok, env: { A: 1 } }), JSON.stringify({ ...ok, env: ['A=b'] }), JSON.stringify({ ...ok, cwd: 'rel' }), JSON.stringify({ ...ok, tty: [true] }), JSON.stringify({ ...ok, tty: ['yes', 1] })]) {
    assert.type(parseRequest(bad), 'string', bad);
  }
});

test('warm - the first run starts a warm process; later runs are served by it with the same output, exit code and errors as a direct run', async () => {
  await warmUp();
  const [sock] = sockets();
  assert.ok(sock, 'a socket');
  assert.is(lstat(sock!).mode & 0o777, 0o600);
  assert.is(lstat(join(runtime, 'swarmlite')).mode & 0o777, 0o700);
  const script = ['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'echo out; echo err >&2; printf "\\001\\377"; exit 3'];
  const warm = await tsctl(script);
  const direct = await tsctl(script, { TSCTL_WARM: '0' });
  assert.ok(warmCall(warm), warm.stderr);
  assert.not.ok(warmCall(direct), direct.stderr);
  assert.is(warm.code, 3);
  assert.is(direct.code, 3);
  assert.is(Buffer.from(warm.stdout).toString('hex'), Buffer.from(direct.stdout).toString('hex'));
  assert.is(untraced(warm), untraced(direct));
  assert.is(untraced(warm), 'err\n');
  for (const args of [['run', '--rm', 'no-such-image:1', 'true'], ['run', '--bogus', 'busybox'], ['run', '--rm', '--security-opt', 'seccomp=missing.json', 'busybox', 'true']]) {
    const w = await tsctl(args), d = await tsctl(args, { TSCTL_WARM: '0' });
    assert.ok(warmCall(w), `${args.join(' ')}: ${w.stderr}`);
    assert.is(w.code, d.code, args.join(' '));
    assert.is(w.code, 125);
    assert.is(untraced(w), untraced(d), args.join(' '));
  }
  // -d prints the id, as a direct run does
  const d = await tsctl(['run', '-d', '--rm', '--network', 'none', 'busybox', 'true']);
  assert.ok(warmCall(d));
  assert.match(d.stdout, /^[0-9a-f]{64}\n$/);
});

test('warm - tsctl\'s C client (native/build/tsctl, the command users run) has the call served with no node started: the same output and exit code as a direct run', async () => {
  await warmUp();
  const script = ['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'echo out; echo err >&2; printf "\\001\\377"; exit 3'];
  const r = await w.client(script);
  assert.not.ok(r.nodeStarted, 'no node started for the call');
  const direct = await tsctl(script, { TSCTL_WARM: '0' });
  assert.is(r.code, 3, r.stderr);
  assert.is(r.stdout.toString('hex'), Buffer.from('out\n\x01\xff', 'latin1').toString('hex'), 'the bytes as the container wrote them');
  assert.is(r.stdout.toString(), direct.stdout); // WarmHome's stdout is a string (0xff: U+FFFD)
  assert.is(r.stderr, untraced(direct));
});

test('warm - rm is served by the warm process (bin/tsctl.cjs and the C client) with the same output, errors and exit code as a direct rm', async () => {
  await warmUp();
  const start = async (names: string[]) => { for (const n of names) await c.ok(['run', '-d', '--name', n, '--network', 'none', 'busybox', 'sleep', '100']); };
  const names = (p: string) => [`${p}-a`, `${p}-b`];
  await start([...names('w'), ...names('d')]);
  const warm = await tsctl(['rm', '-f', 'w-a', 'no-such-w', 'w-b']);
  const direct = await tsctl(['rm', '-f', 'd-a', 'no-such-d', 'd-b'], { TSCTL_WARM: '0' });
  assert.ok(warmCall(warm), warm.stderr);
  assert.not.ok(warmCall(direct), direct.stderr);
  assert.is(warm.code, direct.code);
  assert.is(warm.code, 125);
  assert.is(warm.stdout, 'w-a\nw-b\n');
  assert.is(direct.stdout, 'd-a\nd-b\n');
  assert.is(untraced(warm).replace('no-such-w', 'no-such-d'), untraced(direct));
  assert.match(untraced(warm), /^tsctl: no such container "no-such-w"/);
  // a running container without -f: refused alike
  await start(['w-run']);
  const refused = await tsctl(['rm', 'w-run']), refusedDirect = await tsctl(['rm', 'w-run'], { TSCTL_WARM: '0' });
  assert.ok(warmCall(refused));
  assert.is(refused.code, refusedDirect.code);
  assert.is(untraced(refused), untraced(refusedDirect));
  assert.match(untraced(refused), /cannot remove running container w-run/);
  // the C client, the command users run: served with no node started
  const r = await w.client(['rm', '-f', 'w-run']);
  assert.not.ok(r.nodeStarted, 'no node started for the call');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.toString(), 'w-run\n');
  const left = await c.ok(['ps', '-a', '--format', 'json']);
  for (const n of [...names('w'), ...names('d'), 'w-run']) assert.not.ok(left.includes(`"${n}"`), `${n} removed`);
});

test('warm - relative names are read from the call\'s own directory', async () => {
  await warmUp();
  const credsDir = dirname(c.adminCreds);
  const r = await tsctl(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'rel'], { SWARMLITE_CREDS: basename(c.adminCreds) }, undefined, credsDir);
  assert.is(r.code, 0, r.stderr);
  assert.ok(warmCall(r), r.stderr);
  assert.is(r.stdout, 'rel\n');
  writeFileSync(join(home, 'profile.json'), 'not json');
  const args = ['run', '--rm', '--security-opt', 'seccomp=profile.json', 'busybox', 'true'];
  const w = await tsctl(args, {}, undefined, home), d = await tsctl(args, { TSCTL_WARM: '0' }, undefined, home);
  assert.ok(warmCall(w), w.stderr);
  assert.is(w.code, d.code);
  assert.is(untraced(w), untraced(d));
  assert.not.match(untraced(w), /cannot read seccomp profile/);
});

test('warm - the user is the call\'s own: another user\'s credentials through the same warm process are recorded as that user', async () => {
  await warmUp();
  await c.ok(['user', 'add', 'alice', '--role', 'operator', '--state-dir', c.dir]);
  const alice = join(c.dir, 'trust', 'creds', 'alice.creds');
  assert.ok(existsSync(alice), alice);
  const r = await tsctl(['run', '--name', 'by-alice', '--network', 'none', 'busybox', 'true'], { SWARMLITE_CREDS: alice });
  assert.is(r.code, 0, r.stderr);
  assert.ok(warmCall(r), r.stderr);
  const a = await tsctl(['run', '--name', 'by-admin', '--network', 'none', 'busybox', 'true']);
  assert.ok(warmCall(a));
  const events = (await c.ok(['events', '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l) as { type: string; data: { spec?: { name?: string }; requestedBy?: string; user?: string } });
  const by = (name: string) => events.find((e) => e.type === 'ContainerRequested' && e.data.spec?.name === name);
  assert.is(JSON.stringify(by('by-alice')).includes('"alice"'), true, JSON.stringify(by('by-alice')));
  assert.is(JSON.stringify(by('by-admin')).includes('"alice"'), false, JSON.stringify(by('by-admin')));
  await c.ok(['rm', 'by-alice', 'by-admin']);
});

test('warm - Ctrl-C during an attached run goes to the container, as in a direct run', async () => {
  await warmUp();
  for (const env of [{}, { TSCTL_WARM: '0' }] as Record<string, string>[]) {
    const r = await tsctl(['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'trap "echo got INT; exit 7" INT; echo ready; while true; do sleep 0.1; done'], env, (p) => {
      p.stdout!.on('data', (d) => { if (String(d).includes('ready')) setTimeout(() => p.kill('SIGINT'), 200); });
    });
    assert.is(r.code, 7, `${JSON.stringify(env)} ${r.stderr}`);
    assert.is(r.stdout, 'ready\ngot INT\n');
    assert.is(warmCall(r), !env.TSCTL_WARM);
  }
});

test('warm - concurrent calls each get their own output and exit code', async () => {
  await warmUp();
  const rs = await Promise.all(Array.from({ length: 6 }, (_, k) => tsctl(['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', `echo call${k}; exit ${k + 1}`])));
  rs.forEach((r, k) => {
    assert.is(r.code, k + 1, r.stderr);
    assert.is(r.stdout, `call${k}\n`);
  });
  assert.ok(rs.filter(warmCall).length >= 1, 'served warm');
});

test('warm - -i and -t are run by tsctl itself (the terminal is the client\'s)', async () => {
  await warmUp();
  const r = await new Promise<R>((resolve) => {
    const p = spawn(TSCTL, ['run', '-i', '--rm', '--network', 'none', 'busybox', 'cat'], { env: { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds, XDG_RUNTIME_DIR: runtime, TSCTL_TRACE: '1' } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => (stdout += d)); p.stderr.on('data', (d) => (stderr += d));
    p.stdin.end('through stdin\n');
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'through stdin\n');
  assert.not.ok(warmCall(r), r.stderr);
});

test('warm - junk, a silent client and an oversized line on the socket change nothing for the next call', async () => {
  await warmUp();
  const [sock] = sockets();
  const silent = createConnection(sock!);
  for (const junk of ['garbage\n', '{"v":1}\n', '\0\xff\n', `${'x'.repeat(2 << 20)}`, '{"v":1,"argv":["run","busybox","true"],"env":{},"cwd":"/","tty":[false,false]}\n{"sig":"SIGKILL"}\n']) {
    await new Promise<void>((resolve) => {
      const s = createConnection(sock!, () => s.write(junk));
      s.on('error', () => resolve()); s.on('close', () => resolve());
      s.resume();
      setTimeout(() => { s.destroy(); resolve(); }, 3000);
    });
  }
  const r = await tsctl(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'fine']);
  silent.destroy();
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'fine\n');
  assert.ok(warmCall(r), 'the same warm process serves on');
});

test('warm - another uid cannot reach the socket', async () => {
  await warmUp();
  const [sock] = sockets();
  chmodSync(home, 0o755); chmodSync(runtime, 0o755); // only the socket's own directory (0700) keeps the other uid out
  const probe = `require('net').createConnection(${JSON.stringify(sock)}).on('connect',()=>{console.log('connected');process.exit(0)}).on('error',(e)=>{console.log(e.code);process.exit(1)})`;
  const r = spawnSync(process.execPath, ['-e', probe], { uid: 65534, gid: 65534, encoding: 'utf8' });
  assert.is(r.stdout.trim(), 'EACCES', r.stderr);
  const self = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' });
  assert.is(self.stdout.trim(), 'connected', 'the check itself works');
});

test('warm - a dead warm process\'s socket file: the call runs directly and starts a new one', async () => {
  await warmUp();
  const [sock] = sockets();
  await killWarm();
  assert.ok(existsSync(sock!), 'the dead one left its socket');
  const r = await tsctl(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'direct']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'direct\n');
  assert.not.ok(warmCall(r));
  await until(async () => warmCall(await tsctl(['run', '--rm', '--network', 'none', 'busybox', 'true'])), 20000, 'a new warm process');
});

test('warm - the warm process killed during a call: the call ends with 125 and says so; the next call runs directly', async () => {
  await warmUp();
  const r = await tsctl(['run', '--name', 'cut-off', '--network', 'none', 'busybox', 'sh', '-c', 'echo ready; sleep 2'], {}, (p) => {
    p.stdout!.on('data', (d) => { if (String(d).includes('ready')) for (const w of warmPids()) process.kill(w, 'SIGKILL'); });
  });
  assert.is(r.code, 125);
  assert.is(r.stdout, 'ready\n');
  assert.match(untraced(r), /^tsctl: the warm tsctl process \(.*\) went away during the call; the container may still run \(tsctl ps -a\)\n$/);
  const next = await tsctl(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'again']);
  assert.is(next.code, 0, next.stderr);
  assert.is(next.stdout, 'again\n');
  assert.not.ok(warmCall(next));
  await c.ok(['rm', '-f', 'cut-off']);
});

test('warm - a directory that is not the user\'s own alone (or could be swapped) is never used: nothing is sent there, the call runs directly', async () => {
  await warmUp();
  const sockName = basename(sockets()[0]!); // the name a call of this build looks for
  await killWarm();
  // the socket's directory open to others, someone else's, or in a directory others could swap it out of
  for (const [name, fix] of [['open', (d: string) => chmodSync(d, 0o733)], ['other uid', (d: string) => chownSync(d, 65534, 65534)],
    ['parent open', (d: string) => chmodSync(dirname(d), 0o777)]] as const) {
    const rt = join(home, `rt-${name.replace(' ', '-')}`);
    mkdirSync(join(rt, 'swarmlite'), { recursive: true, mode: 0o700 });
    // someone else's listener where the call would look: it must never hear from tsctl
    let heard = 0;
    const trap = createServer((s) => { heard++; s.destroy(); });
    await new Promise<void>((r) => trap.listen(join(rt, 'swarmlite', sockName), r));
    fix(join(rt, 'swarmlite'));
    try {
      for (let k = 0; k < 2; k++) {
        const r = await tsctl(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'here'], { XDG_RUNTIME_DIR: rt });
        assert.is(r.code, 0, r.stderr);
        assert.is(r.stdout, 'here\n');
        assert.not.ok(warmCall(r), `${name}: ${r.stderr}`);
      }
      await sleep(1000);
      assert.is(heard, 0, `${name}: tsctl connected to a socket in that directory`);
      assert.equal(warmPids(), [], `${name}: no warm process started`);
    } finally { trap.close(); }
  }
});

test('warm - idle, it exits and removes its socket', async () => {
  await killWarm();
  await tsctl(['run', '--rm', '--network', 'none', 'busybox', 'true'], { TSCTL_WARM_IDLE: '1' });
  await until(() => warmPids().length === 1, 10000, 'a warm process');
  await until(() => warmPids().length === 0 && sockets().length === 0, 15000, 'the idle warm process gone with its socket');
});

test('warm - a server gone silent: the call dials afresh, as a direct one does, instead of waiting on the old connection', async () => {
  await warmUp();
  const nats = c.natsServer();
  const args = ['run', '--rm', '--network', 'none', 'busybox', 'true'];
  process.kill(nats.pid!, 'SIGSTOP');
  try {
    const t0 = Date.now();
    const w = await tsctl(args);
    const ms = Date.now() - t0;
    const d = await tsctl(args, { TSCTL_WARM: '0' });
    assert.ok(warmCall(w), w.stderr);
    assert.is(w.code, 125);
    assert.is(d.code, 125);
    assert.is(untraced(w), untraced(d));
    assert.match(untraced(w), /^tsctl: cannot reach the cluster at /);
    assert.ok(ms < 8000, `${ms} ms`);
  } finally { process.kill(nats.pid!, 'SIGCONT'); }
  await until(async () => (await tsctl(args)).code === 0, 30000, 'the cluster back');
});

test.run();
