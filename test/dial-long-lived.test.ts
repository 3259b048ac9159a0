// dialLongLived: a long-lived process's first dial that times out or is refused is tried
// again (the controller exited "TIMEOUT" in the cgroup v2 lane's VM, where a TLS handshake
// under start-up load took over the 2 s dial limit); bad credentials end it at once.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dialLongLived } from '../shared/nats/trust.js';
import { freePort, sleep } from './helpers/cluster.js';
import { fatalLine } from '../shared/fatal.js';

test('dial - a server that starts 1.5 s after the first dial: connected, and the wait said once', async () => {
  const port = await freePort();
  const lines: string[] = [];
  let srv: ReturnType<typeof spawn> | undefined;
  const later = sleep(1500).then(() => { srv = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' }); });
  try {
    const t0 = Date.now();
    const nc = await dialLongLived({ servers: `nats://127.0.0.1:${port}`, timeout: 300 }, 'tester', 20_000, (l) => lines.push(l));
    assert.ok(Date.now() - t0 >= 1400, `connected after ${Date.now() - t0} ms, before the server started`);
    await nc.flush();
    await nc.close();
    assert.is(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, new RegExp(`^tester: no connection to nats://127\\.0\\.0\\.1:${port} yet \\(CONNECTION_REFUSED\\); trying again for up to \\d+ s$`));
  } finally {
    await later;
    srv?.kill();
  }
});

test('dial - a server that accepts and never speaks: dials again until the limit, then its TIMEOUT', async () => {
  const port = await freePort();
  const conns: Socket[] = [];
  const silent = createServer((s) => { conns.push(s); });
  await new Promise<void>((r) => silent.listen(port, '127.0.0.1', r));
  const lines: string[] = [];
  try {
    const t0 = Date.now();
    const err = await dialLongLived({ servers: `nats://127.0.0.1:${port}`, timeout: 300 }, 'tester', 1500, (l) => lines.push(l)).then(
      () => assert.unreachable('connected to a server that never spoke'), (e: Error & { code?: string }) => e);
    const ms = Date.now() - t0;
    assert.is((err as { code?: string }).code, 'TIMEOUT');
    assert.ok(ms >= 1500 && ms < 6000, `gave up after ${ms} ms`);
    assert.ok(conns.length >= 3, `dialled ${conns.length} time(s)`);
    assert.match(lines[0] ?? '', /\(TIMEOUT\); trying again/);
  } finally {
    for (const s of conns) s.destroy();
    silent.close();
  }
});

test('dial - refused credentials end the dial at once, not after the limit', async () => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'swl-dial-'));
  writeFileSync(join(dir, 'auth.conf'), `listen: 127.0.0.1:${port}\nauthorization { user: a, password: right }\n`);
  const srv = spawn('nats-server', ['-c', join(dir, 'auth.conf')], { stdio: 'ignore' });
  try {
    const nc = await dialLongLived({ servers: `nats://127.0.0.1:${port}`, user: 'a', pass: 'right' }, 'probe', 20_000, () => undefined);
    await nc.close();
    const t0 = Date.now();
    const err = await dialLongLived({ servers: `nats://127.0.0.1:${port}`, user: 'a', pass: 'wrong' }, 'tester', 20_000, () => undefined).then(
      () => assert.unreachable('connected with a wrong password'), (e: Error & { code?: string }) => e);
    assert.is((err as { code?: string }).code, 'AUTHORIZATION_VIOLATION');
    assert.ok(Date.now() - t0 < 3000, `gave up after ${Date.now() - t0} ms`);
  } finally {
    srv.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fatal line - a bare NATS code names where in the project it was made; other messages stay as they are', async () => {
  const nc = await dialLongLived({ servers: 'nats://127.0.0.1:1', timeout: 200 }, 'x', 0, () => undefined).then(() => undefined, (e: Error) => e);
  assert.match(fatalLine('agent', nc), /^agent: CONNECTION_REFUSED( \(at [^)]+:\d+\))?$/);
  const made = new Error('TIMEOUT');
  assert.match(fatalLine('agent', made), /^agent: TIMEOUT \(at test\/dial-long-lived\.test\.js:\d+\)$/);
  assert.is(fatalLine('controller', new Error('stream EVENTS not there\n after 60 s')), 'controller: stream EVENTS not there after 60 s');
  assert.is(fatalLine('agent', 'plain'), 'agent: plain');
  assert.is(fatalLine('agent', new Error('')), 'agent: Error');
});

test.run();
