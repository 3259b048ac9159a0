// tsctl between two controllers: a request that finds no controller at all ("no responders":
// nobody got it) is sent again while one is expected, the log existing (a cluster re-electing
// after a healed host, test/bench/fleet-loss.ts), and fails at once on an install that never
// had one. A plain JetStream server and a fake controller that starts serving late.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { freePort, sleep } from './helpers/cluster.js';
import { api, apiAgain, CliError, controllerExpected } from '../tsctl/client.js';
import { controllerApi } from '../shared/api/controller.js';
import { STREAM, subjects } from '../shared/subjects.js';

const dir = mkdtempSync(join(tmpdir(), 'swl-no-leader-'));
let server: ChildProcess | undefined;
let nc: NatsConnection;
const enc = new TextEncoder();

test.before(async () => {
  const port = await freePort();
  server = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });
  for (let k = 0; k < 200 && !nc; k++) { try { nc = await connect({ servers: `nats://127.0.0.1:${port}` }); } catch { await sleep(50); } }
  if (!nc) throw new Error('nats-server did not start');
});
test.after(async () => { await nc?.close(); server?.kill('SIGTERM'); rmSync(dir, { recursive: true, force: true }); });

const rejection = (p: Promise<unknown>) => p.then(() => undefined, (e: Error) => e);

test('no-leader - an install without a log (no controller ever) fails at once, not after the timeout', async () => {
  assert.is(await controllerExpected(nc), false);
  const t0 = Date.now();
  const err = await rejection(api(nc, controllerApi.nodes, {}, 60_000));
  assert.ok(err instanceof CliError, String(err));
  assert.match(err!.message, /no controller is answering/);
  assert.ok(Date.now() - t0 < 30_000, 'waited for a controller that was never there');
});

test('no-leader - with the log there, a request is sent again until a controller serves it, and done once', async () => {
  await (await nc.jetstreamManager()).streams.add({ name: STREAM, subjects: ['ev.>'] });
  assert.is(await controllerExpected(nc), true);
  let served = 0;
  // the next leader starts serving 1.5 s after the request was first sent
  let sub: ReturnType<NatsConnection['subscribe']> | undefined;
  const late = setTimeout(() => { sub = nc.subscribe(`${subjects.api}.*.nodes`, { callback: (_e, m) => { served++; m.respond(enc.encode(JSON.stringify({ ok: [] }))); } }); }, 1500);
  try {
    const nodes = await api(nc, controllerApi.nodes, {}, 60_000);
    assert.equal(nodes, []);
    assert.is(served, 1);
  } finally { clearTimeout(late); sub?.unsubscribe(); }
});

test('no-leader - a repeatable request answered "unavailable" by a deposed leader is sent again and the new leader\'s answer returned', async () => {
  let asked = 0;
  // the first answer is the deposed controller's (it lost its lease while the request was on its way)
  const sub = nc.subscribe(`${subjects.api}.*.nodes`, { callback: (_e, m) => {
    asked++;
    m.respond(enc.encode(JSON.stringify(asked === 1 ? { error: 'this controller no longer leads: try again (the new leader answers)', code: 'unavailable' } : { ok: [] })));
  } });
  try {
    assert.equal(await apiAgain(nc, controllerApi.nodes, {}, 10_000), []);
    assert.is(asked, 2);
    // any other refusal is the answer, not tried again
    asked = 10;
    const sub2 = nc.subscribe(`${subjects.api}.*.inspect`, { callback: (_e, m) => { asked++; m.respond(enc.encode(JSON.stringify({ error: 'no such container "x"', code: 'not_found' }))); } });
    try {
      const err = await rejection(apiAgain(nc, controllerApi.inspect, { ref: 'x' }, 10_000));
      assert.ok(err instanceof CliError, String(err));
      assert.match(err!.message, /no such container/);
      assert.is(asked, 11);
    } finally { sub2.unsubscribe(); }
  } finally { sub.unsubscribe(); }
});

test('no-leader - a log and still no controller: the timeout\'s one line', async () => {
  const err = await rejection(api(nc, controllerApi.inspect, { ref: 'x' }, 1500));
  assert.ok(err instanceof CliError, String(err));
  assert.match(err!.message, /no controller is answering/);
});

test.run();
