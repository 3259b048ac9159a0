// The pipelined Appender against a real nats-server, faults injected mid-window: the server
// frozen (SIGSTOP) while 64 publishes are in flight, so their acks time out and they are sent
// again; a writer process SIGKILLed mid-window and started again from the stream's head.
// Afterwards each event is in the log once and `tsctl audit verify` finds nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import { Cluster, ROOT, sleep, until } from './helpers/cluster.js';
import { Appender } from '../shared/nats/log.js';
import { SourceChain } from '../shared/codec.js';
import { subjects, STREAM } from '../shared/subjects.js';
import { readCreds, signerOf } from '../shared/nats/trust.js';

let c: Cluster;
test.before(async () => { c = await Cluster.start(); });
test.after(async () => { await c?.stop(); });

const natsPid = () => Number(readFileSync(join(c.dir, 'trust', 'nats-server.pid'), 'utf8').trim());

async function count(nc: NatsConnection, filter: string): Promise<number> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(STREAM, { subjects_filter: filter } as never);
  return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
}

async function auditClean(): Promise<void> {
  const r = await c.tsctl(['audit', 'verify', '--format', 'json'], { timeout: 120_000 });
  const rep = JSON.parse(r.stdout) as { findings: unknown[]; events: number };
  assert.equal(rep.findings, [], `audit findings: ${JSON.stringify(rep.findings).slice(0, 500)}`);
  assert.is(r.code, 0);
}

test('appender-e2e - the server frozen mid-window: acks time out, events are sent again, stored once, audit clean', async () => {
  const creds = readCreds(c.addIdentity('node-fz', 'agent', { node: 'fz' }));
  const nc = await c.connect('node-fz');
  try {
    const { signer, reg } = signerOf(creds);
    const a = new Appender(nc.jetstream(), new SourceChain('node:fz'), signer, { window: 64, timeoutMs: 400, nc });
    await a.append(subjects.keys('node-fz'), 'KeyRegistered', 'fz', { key: reg.key, rootSig: reg.rootSig });
    let acked = 0;
    const all = Array.from({ length: 3000 }, (_, i) => {
      const id = (i % 16).toString(16).repeat(64);
      return a.append(subjects.state('fz', id), 'ContainerExited', id, { exitCode: 0, oomKilled: false, exitedAt: Date.now() }).then((r) => { acked++; return r; });
    });
    await until(() => acked >= 500, 60_000, '500 acks');
    const pid = natsPid();
    process.kill(pid, 'SIGSTOP');
    await sleep(1200);
    process.kill(pid, 'SIGCONT');
    const res = await Promise.allSettled(all);
    const bad = res.filter((r) => r.status === 'rejected');
    assert.is(bad.length, 0, `rejected: ${bad.map((r) => String((r as PromiseRejectedResult).reason)).slice(0, 3).join('; ')}`);
    const seqs = res.map((r) => (r as PromiseFulfilledResult<{ seq: number }>).value.seq);
    assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), 'stored in chain order');
    assert.is(await count(nc, 'ev.state.fz.>'), 3000, 'each event once');
    assert.ok(a.stats.resent + a.stats.lookedUp > 0, `the freeze made publishes fail (${JSON.stringify(a.stats)})`);
    assert.is(a.stats.lost, 0);
  } finally { await nc.close(); }
  await auditClean();
});

test('appender-e2e - a writer SIGKILLed mid-window starts again from the stream and its chain audits clean', async () => {
  const f = c.addIdentity('node-kw', 'agent', { node: 'kw' });
  const run = () => spawn(process.execPath, [join(ROOT, 'dist/test/helpers/append-writer.js'), c.url, f, 'kw', '4000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const w = run();
  let out = '';
  w.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  await until(() => /acked 1[0-9]00/.test(out), 60_000, 'the writer to store 1000 events');
  const gone = new Promise((r) => w.once('exit', r));
  w.kill('SIGKILL');
  await gone;
  const w2 = run();
  let out2 = '';
  w2.stdout!.on('data', (d: Buffer) => { out2 += d.toString(); });
  const code = await new Promise<number | null>((r) => w2.once('exit', r));
  assert.is(code, 0);
  assert.match(out2, /done/);
  const nc = await c.connect();
  try {
    const n = await count(nc, 'ev.state.kw.>');
    assert.ok(n >= 4000 + 1000 && n <= 8000, `${n} events of the two runs`);
  } finally { await nc.close(); }
  await auditClean();
});

test.run();
