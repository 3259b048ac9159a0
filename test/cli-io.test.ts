// tsctl against a fake controller served by the test on its own (open, credential-less) nats-server: output through
// a slow pipe arrives whole, signals end it at every step, --timeout bounds every wait.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { freePort, ROOT, sleep, until } from './helpers/cluster.js';

let server: ChildProcess;
let nc: NatsConnection;
let url = '';
const dir = mkdtempSync(join(tmpdir(), 'swl-cli-io-'));
const TSCTL = join(ROOT, 'bin/tsctl.cjs');
let runs = 0;

/** Runs a command without blocking this process (it serves the fake controller). */
function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { ...process.env, SWARMLITE_NATS: url } });
    const out: Buffer[] = []; let err = '';
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
  });
}

const fakeContainer = (k: number) => ({
  id: k.toString(16).padStart(64, '0'), name: `c${k}`, node: 'n1', state: 'exited', desired: 'running', createdAt: 1e12 - k, requestedBy: 'u', lastSeq: k,
  spec: { name: `c${k}`, image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['sh', '-c', 'x'.repeat(900)], env: [], hostname: 'h', workdir: '/', network: 'none', autoRemove: false },
});

test.before(async () => {
  const port = await freePort();
  url = `nats://127.0.0.1:${port}`;
  writeFileSync(join(dir, 'nats.conf'), `listen: 127.0.0.1:${port}\n`);
  server = spawn('nats-server', ['-c', join(dir, 'nats.conf')], { stdio: 'ignore' });
  for (let k = 0; k < 100; k++) { try { nc = await connect({ servers: url }); break; } catch { await sleep(50); } }
  // the fake controller: 1,500 containers in pages of 200 (about 1.5 MB of JSON for ps), and
  // a run that is accepted but never started by any node
  const enc = new TextEncoder();
  nc.subscribe('api.*.ps', { callback: (_e, m) => {
    const r = JSON.parse(new TextDecoder().decode(m.data)) as { offset?: number };
    const from = r.offset ?? 0, to = Math.min(1500, from + 200);
    m.respond(enc.encode(JSON.stringify({ ok: { items: Array.from({ length: to - from }, (_, i) => fakeContainer(from + i)), ...(to < 1500 ? { next: to } : {}) } })));
  } });
  nc.subscribe('api.*.run', { callback: (_e, m) => { runs++; m.respond(enc.encode(JSON.stringify({ ok: { id: 'x', name: 'x', node: 'n1' } }))); } });
});
test.after(async () => { await nc?.close(); server?.kill('SIGTERM'); rmSync(dir, { recursive: true, force: true }); });

test('cli io - ps -a --format json through a slow pipe arrives whole (1.5 MB, paged)', async () => {
  const r = await run('bash', ['-c', `node ${TSCTL} ps -a --format json | (sleep 1; wc -c)`]);
  const full = await run(process.execPath, [TSCTL, 'ps', '-a', '--format', 'json']);
  assert.is(full.code, 0, full.stderr);
  const list = JSON.parse(String(full.stdout)) as unknown[];
  assert.is(list.length, 1500);
  assert.ok(full.stdout.length > 1024 * 1024, `${full.stdout.length} bytes`);
  assert.is(Number(String(r.stdout).trim()), full.stdout.length, 'every byte through the slow pipe');
});

test('cli io - SIGTERM and SIGINT end an attached run that has not started, with 128+n and a line saying what may happen', async () => {
  for (const [sig, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    const before = runs;
    const p = spawn(process.execPath, [TSCTL, 'run', 'busybox', 'sleep', '1'], { env: { ...process.env, SWARMLITE_NATS: url } });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    await until(() => runs > before, 10000, 'tsctl to ask for the run');
    await sleep(100);
    const t0 = Date.now();
    p.kill(sig);
    const exit = await new Promise<number | null>((r) => p.on('close', (c) => r(c)));
    assert.is(exit, code, err);
    assert.ok(Date.now() - t0 < 2000, 'promptly');
    assert.match(err, new RegExp(`${sig} before container [0-9a-f]{12} started; it may still start`));
  }
});

test('cli io - --timeout bounds the wait for a start; a bad value is one line', async () => {
  const t0 = Date.now();
  const r = await run(process.execPath, [TSCTL, '--timeout', '1', 'run', '-d', 'busybox', 'true']);
  assert.is(r.code, 125);
  assert.match(r.stderr, /the node did not report it started within 1 s \(tsctl ps -a shows it\)/, r.stderr);
  assert.ok(Date.now() - t0 < 5000, `${Date.now() - t0} ms`);
  const bad = await run(process.execPath, [TSCTL, '--timeout', 'soon', 'ps']);
  assert.is(bad.code, 125);
  assert.is(bad.stderr, 'tsctl: invalid --timeout "soon": a positive number of seconds\n');
});

test.run();
