// A controller alone (no lease, the log's only replica) continues its chain from its view's head
// after catching up, without reading the head from the stream (controller/main.ts `alone`): its
// events written while it was down by another run of it (this test, as the controller) are
// caught up and continued, never forked, restart after restart. The real controller process
// against a real nats-server; the chain is checked by a plain checked fold of the whole log.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, headers, type NatsConnection } from 'nats';
import { CONTROLLER_NODE_FLAGS, freePort, ROOT } from './helpers/cluster.js';
import { connectOptions, credsPath, initTrust, readCreds, signerOf } from '../shared/nats/trust.js';
import { ensureStream, DEFAULT_LIMITS, readLog } from '../shared/nats/log.js';
import { SourceChain } from '../shared/codec.js';
import { SIG_HEADER, KeyRing } from '../shared/signing.js';
import { subjects } from '../shared/subjects.js';
import { emptyView, type ClusterView } from '../shared/reducer.js';
import { CheckedFold } from '../shared/fold.js';
import { controllerHeadInStream } from '../controller/lease.js';

const dir = mkdtempSync(join(tmpdir(), 'swl-ctl-head-'));
let nats: ChildProcess | undefined;
let ctl: ChildProcess | undefined;
let nc: NatsConnection;
let url = '';

const stop = async (p: ChildProcess | undefined) => {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await gone;
};

/** The controller started on `dir` (alone: no --lease, one replica), resolved once it says it is ready. */
async function startController(): Promise<ChildProcess> {
  const env = { ...process.env };
  delete env.SWARMLITE_TEST_NO_LEASE;
  delete env.SWARMLITE_LEASE;
  const p = spawn(process.execPath, [...CONTROLLER_NODE_FLAGS, join(ROOT, 'dist/controller/main.js'), '--nats', url, '--state-dir', dir, '--replicas', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '', err = '';
  p.stderr!.on('data', (d) => { err += d; });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`controller not ready in 30 s: ${err.slice(-1000)}`)), 30_000);
    p.stdout!.on('data', (d) => { out += d; if (/controller ready at seq \d+/.test(out)) { clearTimeout(t); resolve(); } });
    p.once('exit', (code) => { clearTimeout(t); reject(new Error(`controller exited ${code}: ${err.slice(-1000)}`)); });
  });
  // its SIGTERM handler is set once its anchor is written, just after "ready"
  await new Promise((r) => setTimeout(r, 300));
  return p;
}

/** The whole log folded with signatures, as any replay checks it. */
async function scratch(root: string): Promise<ClusterView> {
  const v = emptyView();
  const f = new CheckedFold(v, new KeyRing(root, (v.keys ??= {})));
  for await (const item of readLog(nc)) {
    if (item.ok) f.add(item.stored, true);
    else { f.flush(); v.seq = Math.max(v.seq, item.seq); }
  }
  f.flush();
  return v;
}

test.before(async () => {
  const port = await freePort();
  url = `nats://127.0.0.1:${port}`;
  initTrust(dir, { port });
  nats = spawn('nats-server', ['-c', join(dir, 'nats.conf'), '-l', join(dir, 'nats.log')], { stdio: 'ignore' });
  for (let k = 0; ; k++) {
    try { nc = await connect({ ...connectOptions(readCreds(credsPath(dir, 'admin')), url), name: 'ctl-head' }); break; } catch (err) { if (k > 100) throw err; await new Promise((r) => setTimeout(r, 100)); }
  }
  await ensureStream(await nc.jetstreamManager(), DEFAULT_LIMITS);
});

test.after(async () => {
  await stop(ctl);
  await nc?.close().catch(() => undefined);
  await stop(nats);
  rmSync(dir, { recursive: true, force: true });
});

test('controller head - alone, a restart continues the chain from the view it caught up, including events its chain gained while it was down', async () => {
  const creds = readCreds(credsPath(dir, 'controller'));
  const { signer } = signerOf(creds);
  // only the controller's identity may write desired events
  const as = await connect({ ...connectOptions(creds, url), name: 'ctl-head-writer' });
  for (let round = 0; round < 3; round++) {
    ctl = await startController();
    await stop(ctl);
    // while it is down, its chain goes on (as a run of it killed after writing would leave it):
    // the next start's view must fold these and continue after them
    const head = await controllerHeadInStream(nc);
    assert.ok(head, 'the controller wrote its chain');
    const chain = new SourceChain('controller', head!.srcSeq, head!.hash);
    for (let i = 0; i < 5; i++) {
      const id = `${round}${i}`.padStart(64, '0');
      const { event, bytes, hash } = chain.next('ContainerRemoveRequested', id, { force: true, user: 'admin' });
      chain.commit(event.srcSeq, hash);
      const h = headers();
      h.set(SIG_HEADER, signer.sign(bytes));
      await as.jetstream().publish(subjects.desired('n1', id), bytes, { headers: h });
    }
  }
  await as.close();
  ctl = await startController();
  const v = await scratch(creds.root);
  assert.equal(v.chainIssues.filter((c) => c.src === 'controller'), [], 'no gap nor fork in the controller chain');
  assert.is(v.forgedCount ?? 0, 0);
  // the last start wrote after the events of the rounds: its head is the stream's, and the view's
  const head = await controllerHeadInStream(nc);
  assert.equal({ srcSeq: v.sources.controller!.srcSeq, hash: v.sources.controller!.hash }, { srcSeq: head!.srcSeq, hash: head!.hash });
  assert.ok(head!.srcSeq >= 3 * 5 + 4 * 2, `the chain holds every round's events (controller#${head!.srcSeq})`);
});

test.run();
