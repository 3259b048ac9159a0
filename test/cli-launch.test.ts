// tsctl's launcher (bin/tsctl.cjs, sh and JavaScript at once): run as a command it starts
// node from tsctl's startup snapshot, only in the node that made it, with every argument as
// given; the snapshot behaves as the bundle does (same output, codes, signals) and each
// process from it has its own inboxes. Against an open nats-server the test serves.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { freePort, ROOT, sleep, until } from './helpers/cluster.js';

const TSCTL = join(ROOT, 'bin/tsctl.cjs');
const dir = mkdtempSync(join(tmpdir(), 'swl-cli-launch-'));
let server: ChildProcess;
let nc: NatsConnection;
let url = '';
const replies: string[] = [];
let runs = 0;

interface R { code: number | null; stdout: string; stderr: string }
/** Runs `cmd` (the launcher itself unless given) with tsctl's arguments, without blocking the fake controller. */
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
const mode = (r: R): string | undefined => /tsctl trace: mode=(\w+)/.exec(r.stderr)?.[1];
const untraced = (r: R): string => r.stderr.replace(/^tsctl trace: .*\n/m, '');

test.before(async () => {
  const port = await freePort();
  url = `nats://127.0.0.1:${port}`;
  writeFileSync(join(dir, 'nats.conf'), `listen: 127.0.0.1:${port}\n`);
  server = spawn('nats-server', ['-c', join(dir, 'nats.conf')], { stdio: 'ignore' });
  for (let k = 0; k < 100; k++) { try { nc = await connect({ servers: url }); break; } catch { await sleep(50); } }
  const enc = new TextEncoder();
  nc.subscribe('api.*.ps', { callback: (_e, m) => { replies.push(m.reply ?? ''); m.respond(enc.encode(JSON.stringify({ ok: { items: [] } }))); } });
  nc.subscribe('api.*.run', { callback: (_e, m) => { runs++; m.respond(enc.encode(JSON.stringify({ ok: { id: 'x', name: 'x', node: 'n1' } }))); } });
});
test.after(async () => { await nc?.close(); server?.kill('SIGTERM'); rmSync(dir, { recursive: true, force: true }); });

test('launch - as a command tsctl starts from its snapshot, through a symlink too, and drops NODE_EXTRA_CA_CERTS', async () => {
  const r = await run(['ps'], { env: { NODE_EXTRA_CA_CERTS: join(dir, 'missing.pem') } });
  assert.is(mode(r), 'snapshot', `the launcher did not use dist/tsctl.blob (was it built by the node on PATH? npm run build): ${r.stderr}`);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^CONTAINER ID/);
  // node warns about an unreadable NODE_EXTRA_CA_CERTS before any code: only if it was passed on
  assert.not.match(r.stderr, /extra certs/i);
  const viaNode = await run(['ps'], { node: true, env: { NODE_EXTRA_CA_CERTS: join(dir, 'missing.pem') } });
  assert.is(mode(viaNode), 'bundle');
  assert.match(viaNode.stderr, /extra certs/i, 'node itself still reads it: the launcher is what drops it');
  const link = join(dir, 'tsctl');
  symlinkSync(TSCTL, link);
  const viaLink = await run(['ps'], { cmd: link });
  assert.is(mode(viaLink), 'snapshot', viaLink.stderr);
  assert.is(viaLink.stdout, r.stdout);
});

test('launch - the snapshot and the bundle answer alike: output, errors, exit codes, arguments node would take for its own', async () => {
  const cases = [['--help'], ['run', '--help'], ['--version'], ['nope'], ['run'], ['--timeout', 'soon', 'ps'], ['--', 'ps'], ['-e', '1'],
    ['--nats', 'nats://127.0.0.1:1', 'ps'], ['inspect', 'a b', '--format', 'json', '--snapshot-blob', 'x']];
  for (const args of cases) {
    const [s, b] = await Promise.all([run(args), run(args, { node: true })]);
    assert.is(mode(s), 'snapshot', `${args.join(' ')}: ${s.stderr}`);
    assert.is(mode(b), 'bundle');
    assert.is(s.code, b.code, args.join(' '));
    assert.is(s.stdout, b.stdout, args.join(' '));
    assert.is(untraced(s), untraced(b), args.join(' '));
  }
});

test('launch - every process from the snapshot has its own inboxes (nats ids are reseeded)', async () => {
  replies.length = 0;
  const rs = await Promise.all([run(['ps']), run(['ps']), run(['ps'])]);
  for (const r of rs) { assert.is(r.code, 0, r.stderr); assert.is(mode(r), 'snapshot'); }
  assert.is(replies.length, 3);
  const inbox = (s: string) => s.split('.').slice(0, 2).join('.');
  assert.is(new Set(replies.map(inbox)).size, 3, replies.join(' '));
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

test('launch - a blob is used only with the node that made it; otherwise, or without one, the bundle runs', async () => {
  // a copy of the launcher and the build, beside a blob "made" by another file
  const t = join(dir, 'tree');
  mkdirSync(join(t, 'bin'), { recursive: true }); mkdirSync(join(t, 'dist'));
  copyFileSync(TSCTL, join(t, 'bin/tsctl.cjs'));
  for (const f of ['tsctl.cjs', 'tsctl.blob']) copyFileSync(join(ROOT, 'dist', f), join(t, 'dist', f));
  const launcher = join(t, 'bin/tsctl.cjs');
  writeFileSync(join(t, 'dist/tsctl.blob.node'), 'another node');
  const other = await run(['ps'], { cmd: launcher });
  assert.is(mode(other), 'bundle', other.stderr);
  assert.is(other.code, 0, other.stderr);
  rmSync(join(t, 'dist/tsctl.blob.node'));
  const none = await run(['ps'], { cmd: launcher });
  assert.is(mode(none), 'bundle', none.stderr);
  assert.is(none.code, 0, none.stderr);
  try { linkSync(realpathSync(process.execPath), join(t, 'dist/tsctl.blob.node')); } catch (err) {
    console.log(`  (the same-node case is checked on the real tree only: cannot hard-link node into ${t}: ${(err as NodeJS.ErrnoException).code})`);
    return;
  }
  const same = await run(['ps'], { cmd: launcher });
  assert.is(mode(same), 'snapshot', same.stderr);
  const forced = await run(['ps'], { cmd: launcher, env: { TSCTL_NO_SNAPSHOT: '1' } });
  assert.is(mode(forced), 'bundle', forced.stderr);
});

test.run();
