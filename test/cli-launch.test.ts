// tsctl's launcher (bin/tsctl.cjs, sh and JavaScript at once): run as a command it starts
// node without NODE_EXTRA_CA_CERTS and with --use-openssl-ca, passes every argument as
// given, and tsctl answers exactly as under `node bin/tsctl.cjs`; the cluster is still
// trusted through the CA of the credentials alone, whatever OpenSSL's paths name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { freePort, ROOT, sleep, until } from './helpers/cluster.js';
import { credsPath, initTrust } from '../shared/nats/trust.js';
import { clusterTls, rootStoreOf, serverIdentity } from '../tsctl/client.js';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';

const TSCTL = join(ROOT, 'bin/tsctl.cjs');
const dir = mkdtempSync(join(tmpdir(), 'swl-cli-launch-'));
const servers: ChildProcess[] = [];
let nc: NatsConnection;
let url = '';
let runs = 0;

interface R { code: number | null; stdout: string; stderr: string }
/** Runs tsctl as a command (the launcher itself, or `cmd`), or under node, without blocking the fake controller. */
function run(args: string[], o: { cmd?: string; node?: boolean; env?: Record<string, string> } = {}): Promise<R> {
  const [cmd, argv] = o.node ? [process.execPath, [TSCTL, ...args]] : [o.cmd ?? TSCTL, args];
  return new Promise((resolve) => {
    const p = spawn(cmd, argv, { env: { ...process.env, SWARMLITE_NATS: url, SWARMLITE_CREDS: '', HOME: dir, TSCTL_TRACE: '1', ...o.env } });
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, stdout: out, stderr: err }));
  });
}
/** node's own flags, from tsctl's trace line. */
const flags = (r: R): string | undefined => /^tsctl trace: node ([^;]*);/m.exec(r.stderr)?.[1];
const untraced = (r: R): string => r.stderr.replace(/^tsctl trace: .*\n/m, '');

async function natsServer(conf: string): Promise<void> {
  servers.push(spawn('nats-server', ['-c', conf], { stdio: 'ignore' }));
  await sleep(50);
}

test.before(async () => {
  const port = await freePort();
  url = `nats://127.0.0.1:${port}`;
  writeFileSync(join(dir, 'nats.conf'), `listen: 127.0.0.1:${port}\n`);
  await natsServer(join(dir, 'nats.conf'));
  for (let k = 0; k < 100 && !nc; k++) { try { nc = await connect({ servers: url }); } catch { await sleep(50); } }
  const enc = new TextEncoder();
  nc.subscribe('api.*.ps', { callback: (_e, m) => m.respond(enc.encode(JSON.stringify({ ok: { items: [] } }))) });
  nc.subscribe('api.*.run', { callback: (_e, m) => { runs++; m.respond(enc.encode(JSON.stringify({ ok: { id: 'x', name: 'x', node: 'n1' } }))); } });
});
test.after(async () => { await nc?.close(); for (const s of servers) s.kill('SIGTERM'); rmSync(dir, { recursive: true, force: true }); });

test('launch - as a command node runs tsctl with --use-openssl-ca, without NODE_EXTRA_CA_CERTS, through a symlink too', async () => {
  const missing = { NODE_EXTRA_CA_CERTS: join(dir, 'missing.pem') };
  const r = await run(['ps'], { env: missing });
  assert.is(r.code, 0, r.stderr);
  assert.is(flags(r), '--use-openssl-ca', r.stderr);
  assert.match(r.stdout, /^CONTAINER ID/);
  // node warns about an unreadable NODE_EXTRA_CA_CERTS before any code: only if it was passed on
  assert.not.match(r.stderr, /extra certs/i);
  const viaNode = await run(['ps'], { node: true, env: missing });
  assert.is(flags(viaNode), '');
  assert.match(viaNode.stderr, /extra certs/i, 'node itself still reads it: the launcher is what drops it');
  // node refuses --use-openssl-ca beside --use-bundled-ca: the user's choice wins
  const bundled = await run(['ps'], { env: { NODE_OPTIONS: '--use-bundled-ca' } });
  assert.is(bundled.code, 0, bundled.stderr);
  assert.is(flags(bundled), '', bundled.stderr);
  assert.is(bundled.stdout, r.stdout);
  const link = join(dir, 'tsctl');
  symlinkSync(TSCTL, link);
  const viaLink = await run(['ps'], { cmd: link });
  assert.is(flags(viaLink), '--use-openssl-ca', viaLink.stderr);
  assert.is(viaLink.stdout, r.stdout);
});

test('launch - as a command and under node tsctl answers alike: output, errors, exit codes, arguments node would take for its own', async () => {
  const cases = [['--help'], ['run', '--help'], ['--version'], ['nope'], ['run'], ['--timeout', 'soon', 'ps'], ['--', 'ps'], ['-e', '1'],
    ['--nats', 'nats://127.0.0.1:1', 'ps'], ['inspect', 'a b', '--format', 'json', '--use-openssl-ca', '$0']];
  for (const args of cases) {
    const [s, b] = await Promise.all([run(args), run(args, { node: true })]);
    assert.is(s.code, b.code, args.join(' '));
    assert.is(s.stdout, b.stdout, args.join(' '));
    assert.is(untraced(s), untraced(b), args.join(' '));
  }
});

test('launch - a signal reaches tsctl itself (the launcher execs node): 143 before the start', async () => {
  const before = runs;
  const p = spawn(TSCTL, ['run', 'busybox', 'sleep', '1'], { env: { ...process.env, SWARMLITE_NATS: url, SWARMLITE_CREDS: '', HOME: dir } });
  let err = '';
  p.stderr.on('data', (d) => (err += d));
  await until(() => runs > before, 10000, 'tsctl to ask for the run');
  await sleep(100);
  p.kill('SIGTERM');
  const exit = await new Promise<number | null>((r) => p.on('close', (c) => r(c)));
  assert.is(exit, 143, err);
  assert.match(err, /SIGTERM before container [0-9a-f]{12} started; it may still start/);
});

test('launch - only the credentials\' CA is trusted: another CA is refused even when OpenSSL\'s paths name the right one', async () => {
  // a TLS, nkey-only server as ops/up makes it (no controller: getting past TLS and the
  // nkey challenge shows as "no controller is answering")
  const state = join(dir, 'cluster'), other = join(dir, 'other');
  const port = await freePort();
  initTrust(state, { port });
  initTrust(other, { port: await freePort() });
  await natsServer(join(state, 'nats.conf'));
  const admin = credsPath(state, 'admin');
  const wrong = join(dir, 'wrong-ca.creds');
  writeFileSync(wrong, JSON.stringify({ ...JSON.parse(readFileSync(admin, 'utf8')), ca: join(other, 'trust/ca.pem') }), { mode: 0o600 });
  const realCa = join(state, 'trust/ca.pem');
  const env = (creds: string, extra: Record<string, string> = {}) => ({ SWARMLITE_NATS: `tls://127.0.0.1:${port}`, SWARMLITE_CREDS: creds, ...extra });
  const t0 = Date.now();
  let ok: R;
  do { ok = await run(['--timeout', '1', 'ps'], { env: env(admin) }); } while (/cannot reach/.test(ok.stderr) && Date.now() - t0 < 5000);
  assert.is(ok.code, 125);
  assert.match(ok.stderr, /no controller is answering/, 'TLS and the nkey challenge passed with the right CA');
  for (const extra of [{} as Record<string, string>, { SSL_CERT_FILE: realCa, SSL_CERT_DIR: join(state, 'trust') }, { NODE_EXTRA_CA_CERTS: realCa }]) {
    for (const node of [false, true]) {
      const r = await run(['--timeout', '1', 'ps'], { env: env(wrong, extra), node });
      assert.is(r.code, 125);
      assert.match(r.stderr, /cannot reach the cluster.*(certificate|verify|issuer)/i, `${JSON.stringify(extra)} node=${node}: ${r.stderr}`);
    }
  }
});

test('launch - the bundle loads tls, child_process, dns, webcrypto and web streams only when used: --help none of them, a run only tls', async () => {
  const list = join(dir, 'modules.txt');
  const preload = join(dir, 'modules.cjs');
  // tweetnacl (under nats.js's nkeys.js) reads crypto.randomBytes as it is evaluated; tsctl's own
  // code reads it only to call it, which --help never does: a read counted at --help is nkeys.js
  // evaluated at load, which the bundle defers to its first use (tsctl/bundle.mjs lazy-nkeys)
  writeFileSync(preload, `const c = require('crypto'), rb = c.randomBytes; let reads = 0;
Object.defineProperty(c, 'randomBytes', { get() { reads++; return rb; }, configurable: true, enumerable: true });
process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(list)}, [...process.moduleLoadList, \`randomBytes read \${reads}\`].join('\\n')));\n`);
  const loaded = async (args: string[]) => {
    const r = await run(args, { node: true, env: { NODE_OPTIONS: `--require ${preload}` } });
    return { r, mods: new Set(readFileSync(list, 'utf8').split('\n').map((m) => m.replace(/^NativeModule /, ''))) };
  };
  const help = await loaded(['--help']);
  assert.is(help.r.code, 0, help.r.stderr);
  for (const m of ['tls', 'child_process', 'dns', 'internal/crypto/webcrypto', 'internal/webstreams/readablestream']) assert.not.ok(help.mods.has(m), `--help loaded ${m}`);
  assert.ok(help.mods.has('randomBytes read 0'), `--help evaluated nkeys.js (tweetnacl read crypto.randomBytes): ${[...help.mods].filter((m) => m.startsWith('randomBytes'))}`);
  // the fake controller accepts the run and no node ever starts it: -d gives up after --timeout
  const before = runs;
  const { r, mods } = await loaded(['--timeout', '1', 'run', '-d', 'busybox', 'true']);
  assert.is(r.code, 125, r.stderr);
  assert.ok(runs > before, 'it asked for the run');
  for (const m of ['child_process', 'dns', 'internal/crypto/webcrypto', 'internal/webstreams/readablestream']) assert.not.ok(mods.has(m), `run loaded ${m}`);
  assert.ok(mods.has('tls'), 'the module list is real: a run loads tls');
});

test('launch - the code cache: none from --help; a stale or corrupt one replaced without a word; one someone else could have written never loaded', async () => {
  const dist = join(ROOT, 'dist'), cache = join(dist, 'tsctl.cjs.ps.cache');
  const ps = async () => { const r = await run(['ps']); assert.is(r.code, 0, r.stderr); assert.is(untraced(r), '', r.stderr); return r.stdout; };
  const inode = () => statSync(cache).ino;
  const distMode = statSync(dist).mode & 0o7777;
  try {
    rmSync(cache, { force: true });
    assert.is((await run(['ps', '--help'])).code, 0);
    assert.not.ok(existsSync(cache), 'ps --help wrote the ps cache');
    const want = await ps();
    assert.ok(existsSync(cache), 'a successful ps writes its cache');
    assert.is(statSync(cache).mode & 0o022, 0, 'written for its owner alone');
    const used = inode();
    assert.is(await ps(), want);
    assert.is(inode(), used, 'a good cache is loaded, not rewritten');

    // older than the bundle: V8 would take it for a rebuild of the same length and run the old code
    utimesSync(cache, 0, 0);
    const stale = inode();
    assert.is(await ps(), want);
    assert.is.not(inode(), stale, 'a cache older than the bundle was loaded');

    writeFileSync(cache, Buffer.from('junk, not a V8 code cache'), { mode: 0o644 });
    assert.is(await ps(), want, 'a corrupt cache: same answer, nothing said');
    assert.not.equal(readFileSync(cache).subarray(0, 4).toString(), 'junk', 'and replaced');

    // written by someone else: ignored (so V8 never runs it) and replaced by this user's own
    for (const [what, spoil] of [['group-writable', () => chmodSync(cache, 0o664)], ['world-writable', () => chmodSync(cache, 0o646)],
      ['owned by another user', () => chownSync(cache, 54321, 54321)]] as const) {
      spoil();
      const before = inode();
      assert.is(await ps(), want, what);
      assert.is.not(inode(), before, `${what}: it was loaded, not replaced`);
      assert.is(statSync(cache).uid, process.getuid!(), what);
      assert.is(statSync(cache).mode & 0o022, 0, what);
    }
    // a good cache behind the link: loaded through it, it would have stayed
    const junk = join(dir, 'elsewhere.cache'), junkBytes = readFileSync(cache);
    writeFileSync(junk, junkBytes);
    rmSync(cache);
    symlinkSync(junk, cache);
    assert.is(await ps(), want);
    assert.ok(lstatSync(cache).isFile(), 'a symlink in its place is not followed: replaced by a file');
    assert.ok(readFileSync(junk).equals(junkBytes), 'its target is left as it was');

    // a directory others may write: no cache is read or written there
    rmSync(cache);
    chmodSync(dist, distMode | 0o002);
    assert.is(await ps(), want);
    assert.not.ok(existsSync(cache), 'a cache written into a world-writable directory');
  } finally {
    chmodSync(dist, distMode);
  }
});

test('launch - OpenSSL\'s paths name the cluster\'s CA only while connecting, then are the user\'s again', () => {
  const saved = { f: process.env.SSL_CERT_FILE, d: process.env.SSL_CERT_DIR };
  try {
    process.env.SSL_CERT_FILE = '/users/own.pem';
    delete process.env.SSL_CERT_DIR;
    const restore = rootStoreOf('/cluster/ca.pem');
    assert.is(process.env.SSL_CERT_FILE, '/cluster/ca.pem');
    assert.is(process.env.SSL_CERT_DIR, '');
    restore();
    assert.is(process.env.SSL_CERT_FILE, '/users/own.pem');
    assert.not.ok('SSL_CERT_DIR' in process.env);
  } finally {
    if (saved.f === undefined) delete process.env.SSL_CERT_FILE; else process.env.SSL_CERT_FILE = saved.f;
    if (saved.d === undefined) delete process.env.SSL_CERT_DIR; else process.env.SSL_CERT_DIR = saved.d;
  }
});

test('launch - the server name check accepts only what node\'s accepts, and says node\'s words when it refuses', () => {
  const hosts = ['localhost', 'LOCALHOST', 'localhost.', 'node1', 'node1.example', 'a.b.example', 'x.example', '127.0.0.1', '::1', '10.0.0.1', '1.2.3', '', 'local host', 'lo..cal', 'ünï', '*.example', 'x-1', '-', 'a.-'];
  const sans = [undefined, '', 'DNS:localhost', 'DNS:localhost, IP Address:127.0.0.1', 'IP Address:127.0.0.1', 'DNS:LOCALHOST', 'DNS:*.example', 'DNS:node1.example, DNS:localhost',
    'DNS:127.0.0.1', 'DNS:10.0.0.1', 'DNS:1.2.3', 'DNS:lo..cal', 'DNS:"localhost"', 'DNS:x, DNS:"a, b", DNS:localhost', 'DNS:x-1', 'DNS:-', 'DNS:a.-', 'DNS:', 'DNS:localhost.'];
  let accepted = 0;
  for (const host of hosts) {
    for (const san of sans) {
      const cert = { subject: { CN: 'localhost' }, ...(san === undefined ? {} : { subjectaltname: san }) } as unknown as PeerCertificate;
      const ours = serverIdentity(host, cert), node = checkServerIdentity(host, cert);
      const what = `${JSON.stringify(host)} against ${JSON.stringify(san)}`;
      if (ours === undefined) assert.is(node, undefined, `accepted ${what}, which node refuses: ${node?.message}`);
      else assert.is(ours.message, node?.message, `refused ${what}: node's own error`);
      if (ours === undefined && node === undefined) accepted++;
    }
  }
  // what tsctl meets (nats.js names an address's server "localhost"): no detour through node's check
  assert.is(serverIdentity('localhost', { subjectaltname: 'DNS:localhost, IP Address:127.0.0.1' } as PeerCertificate), undefined);
  assert.ok(accepted > 5, `${accepted} pairs accepted: the grid has cases that pass`);
  assert.instance(serverIdentity('localhost', { subjectaltname: 'DNS:other.example, IP Address:127.0.0.1' } as PeerCertificate), Error, 'a certificate for another name is refused');
  assert.instance(serverIdentity('127.0.0.1', { subjectaltname: 'DNS:127.0.0.1' } as PeerCertificate), Error, 'an address must be an IP Address name, as node says');
});

test('launch - the cluster\'s TLS options: the CA read at once, one context made from it alone, a missing CA named', () => {
  const state = join(dir, 'tls-opts');
  initTrust(state, { port: 1 });
  const t = clusterTls(join(state, 'trust/ca.pem'));
  const made = t.prepare();
  assert.is(t.options.secureContext, made, 'the context nats.js copies is the one made early');
  assert.is(t.prepare(), made, 'made once');
  assert.is(t.options.checkServerIdentity, serverIdentity);
  assert.ok(Object.keys(t.options).includes('secureContext'), 'nats.js copies the options by their keys: the context must be one');
  assert.throws(() => clusterTls(join(state, 'trust/missing.pem')), /CA .*missing\.pem.*cannot be read: ENOENT/);
});

test('launch - `tsctl run` loads a bundle of its own, smaller, and answers as the whole tsctl does: help, usage errors, modules', async () => {
  const seen = join(dir, 'seen.json'), preload = join(dir, 'seen.cjs');
  // the bundles the launcher reads (dist/*.cjs), and node's module list at exit
  writeFileSync(preload, `const fs = require('fs'), read = fs.readFileSync, files = [];
fs.readFileSync = function (p, ...rest) { if (typeof p === 'string' && /[\\/]dist[\\/][^\\/]*\\.cjs$/.test(p)) files.push(require('path').basename(p)); return read.call(this, p, ...rest); };
process.on('exit', () => fs.writeFileSync(${JSON.stringify(seen)}, JSON.stringify({ files, mods: process.moduleLoadList })));\n`);
  const traced = async (args: string[]) => {
    const r = await run(args, { node: true, env: { NODE_OPTIONS: `--require ${preload}` } });
    return { r, ...(JSON.parse(readFileSync(seen, 'utf8')) as { files: string[]; mods: string[] }) };
  };
  const own = await traced(['run', '--help']);
  const whole = await traced(['--timeout', '30', 'run', '--help']); // a global flag first: the whole bundle
  assert.equal(own.files, ['tsctl-run.cjs']);
  assert.equal(whole.files, ['tsctl.cjs']);
  assert.is(own.r.code, 0, own.r.stderr);
  assert.is(own.r.stdout, whole.r.stdout, 'run --help is the same text');
  assert.match(own.r.stdout, /--network <mode>/);
  for (const m of ['NativeModule tls', 'NativeModule child_process', 'NativeModule dns']) assert.not.ok(own.mods.includes(m), `run --help loaded ${m}`);
  assert.ok(statSync(join(ROOT, 'dist/tsctl-run.cjs')).size < 0.7 * statSync(join(ROOT, 'dist/tsctl.cjs')).size, 'run\'s bundle is smaller');
  for (const args of [['run'], ['run', '--bogus', 'x'], ['run', '--nework', 'none', 'busybox'], ['run', '-d', '--cpus'], ['run', '-h']]) {
    const [a, b] = await Promise.all([run(args), run(['--timeout', '30', ...args])]);
    assert.is(a.code, 125, args.join(' '));
    assert.is(a.code, b.code, args.join(' '));
    assert.is(untraced(a), untraced(b), args.join(' '));
    assert.is(a.stdout, b.stdout, args.join(' '));
  }
});

test.run();
