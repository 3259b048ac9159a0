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
import { headers } from 'nats';
import { Appender, chainHeadFromStream } from '../shared/nats/log.js';
import { SourceChain } from '../shared/codec.js';
import { subjects, STREAM } from '../shared/subjects.js';
import { readCreds, signerOf } from '../shared/nats/trust.js';
import { SIG_HEADER, signBurst } from '../shared/signing.js';
import { encodeBody } from '../shared/rpc.js';

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

type Info = { seq: number; forged?: number };
const info = async (nc: NatsConnection): Promise<Info> => JSON.parse(new TextDecoder().decode((await nc.request('api.tamper.info', encodeBody({}), { timeout: 5000 })).data)).ok as Info;

test('appender-e2e - a writer killed mid-burst: the stored part of its burst is vouched for (the controller folds it as it comes, the audit is clean), the restarted writer goes on; an unsigned event injected after it is refused and found at its position', async () => {
  const creds = readCreds(c.addIdentity('node-mb', 'agent', { node: 'mb' }));
  const nc = await c.connect('node-mb');
  const tamper = await c.connect('tamper');
  try {
    const forged0 = (await info(tamper)).forged ?? 0;
    const { signer, reg } = signerOf(creds);
    const a = new Appender(nc.jetstream(), new SourceChain('node:mb'), signer, { window: 64, nc });
    await a.append(subjects.keys('node-mb'), 'KeyRegistered', 'mb', { key: reg.key, rootSig: reg.rootSig });
    // the writer stamps a burst of 6 and signs its first over all 6, then dies after 3 have left
    const id = (i: number) => i.toString(16).repeat(64);
    const burst = Array.from({ length: 6 }, (_, i) => {
      const st = a.chain.next('ContainerExited', id(i), { exitCode: i, oomKilled: false, exitedAt: Date.now() });
      a.chain.commit(st.event.srcSeq, st.hash);
      return st;
    });
    const sig = signBurst(signer, burst.map((b) => b.hash));
    const js = nc.jetstream();
    for (const [i, b] of burst.slice(0, 3).entries()) {
      const h = headers();
      if (i === 0) h.set(SIG_HEADER, sig);
      await js.publish(subjects.state('mb', id(i)), b.bytes, { msgID: b.event.id, headers: h });
    }
    // started again: the chain goes on from what the stream holds
    const chain = await chainHeadFromStream(await nc.jetstreamManager(), nc, 'node:mb', [subjects.keys('node-mb'), 'ev.state.mb.>']);
    assert.is(chain.position.srcSeq, 4, 'the head is the third of the burst');
    const b = new Appender(js, chain, signer, { window: 64, nc });
    const done = await Promise.all(Array.from({ length: 300 }, (_, i) => b.append(subjects.state('mb', id(i % 16)), 'ContainerExited', id(i % 16), { exitCode: 0, oomKilled: false, exitedAt: Date.now() })));
    const lastSeq = done[done.length - 1]!.seq;
    await until(async () => (await info(tamper)).seq >= lastSeq, 10_000, 'the controller to fold the writer\'s events');
    assert.is((await info(tamper)).forged ?? 0, forged0, 'the controller refused none of them');
    // what went out unsigned: most of it
    const jsm = await tamper.jetstreamManager(); // a node may not get messages by position
    let unsigned = 0;
    for (let seq = lastSeq - 299; seq <= lastSeq; seq++) if (!(await jsm.streams.getMessage(STREAM, { seq })).header?.get(SIG_HEADER)) unsigned++;
    assert.ok(unsigned > 150, `${unsigned} of 300 unsigned`);
    await auditClean();
    // someone with the server's config appends an unsigned event that links to the writer's head
    const forged = new SourceChain('node:mb', b.chain.position.srcSeq, b.chain.position.hash).next('ContainerRemoved', id(1), { reason: 'forged' });
    const ack = await tamper.jetstream().publish(subjects.state('mb', id(1)), forged.bytes);
    await until(async () => (await info(tamper)).seq >= ack.seq, 10_000, 'the controller to see it');
    assert.is((await info(tamper)).forged ?? 0, forged0 + 1, 'the controller refused it');
    const r = await c.tsctl(['audit', 'verify', '--format', 'json'], { timeout: 120_000 });
    const rep = JSON.parse(r.stdout) as { findings: { kind: string; seq: number; detail: string }[] };
    assert.is(r.code, 1);
    assert.equal(rep.findings.map((f) => [f.kind, f.seq]), [['forged', ack.seq]], JSON.stringify(rep.findings));
    assert.match(rep.findings[0]!.detail, /unsigned/);
  } finally { await nc.close(); await tamper.close(); }
});

test.run();
