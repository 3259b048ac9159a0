// The head a new leader continues the controller chain from (controller/lease.ts takeOverHead).
// The fork seen after a partition: the standby's view had folded "up to the stream's end", but
// that end came from a replica that lagged, so the view lacked the old leader's last events and
// the new leader wrote controller#7 after controller#11. Here, against a real nats-server and
// the real controller chain: the old leader's last events are appended, a view stops short of
// them (it folded up to the stale end), and the new leader's head is taken (a) the old way, from
// that view, which is shown to be behind, and (b) through takeOverHead, whose append audits
// clean. Without takeOverHead the append is a fork (tsctl audit verify fails). Plus the pure
// cases: a head read that fails is read again, a view that never gets there ends in an error
// within its bound, a refused (forged) last event is passed. And the source of the late write
// seen in the fleet: the cut-off leader hears every node fall silent and appended NodeDown
// events, which reached the stream after the heal, behind the new leader's; a NodeDown now
// needs a lease renewed after the silence (Lease.confirm).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { NatsConnection } from 'nats';
import { Cluster } from './helpers/cluster.js';
import { Appender, readLog } from '../shared/nats/log.js';
import { SourceChain } from '../shared/codec.js';
import { subjects, STREAM } from '../shared/subjects.js';
import { credsPath, readCreds, signerOf } from '../shared/nats/trust.js';
import { emptyView, reduce } from '../shared/reducer.js';
import type { StoredEvent } from '../shared/events.js';
import { Membership } from '../controller/membership.js';
import { controllerHeadInStream, lastSeqOn, takeOverHead, type HeadPort, type StreamHead } from '../controller/lease.js';

const pure = suite('fleet-lease-head pure');

const port = (o: Partial<HeadPort> & { heads: (StreamHead | Error | undefined)[]; view: { srcSeq: number; hash: string }[] }): HeadPort & { reads: number } => {
  let r = 0, v = 0;
  const p = {
    reads: 0,
    streamHead: async () => { p.reads++; const h = o.heads[Math.min(r++, o.heads.length - 1)]; if (h instanceof Error) throw h; return h; },
    viewHead: () => o.view[Math.min(v, o.view.length - 1)],
    waitFor: async (_seq: number) => { v++; },
    refused: () => false,
    ...o,
  };
  return p;
};

pure('fleet-lease-head - a failed read of the stream head is read again; the head is the one the view and the stream agree on', async () => {
  const p = port({ heads: [new Error('TIMEOUT'), { seq: 40, srcSeq: 11, hash: 'h11' }], view: [{ srcSeq: 6, hash: 'h6' }, { srcSeq: 11, hash: 'h11' }] });
  assert.equal(await takeOverHead(p, 5000), { srcSeq: 11, hash: 'h11' });
  assert.is(p.reads, 2);
});

pure('fleet-lease-head - a view that stays behind the stream ends in an error within the bound, never in its old head', async () => {
  const p = port({ heads: [{ seq: 40, srcSeq: 11, hash: 'h11' }], view: [{ srcSeq: 6, hash: 'h6' }] });
  const t0 = Date.now();
  try { await takeOverHead(p, 600); assert.unreachable('continued from controller#6'); } catch (err) {
    assert.match((err as Error).message, /controller#6 is not the stream's last controller event \(controller#11/);
  }
  assert.ok(Date.now() - t0 < 5000);
  const slow = port({ heads: [{ seq: 40, srcSeq: 11, hash: 'h11' }], view: [{ srcSeq: 6, hash: 'h6' }], waitFor: () => Promise.reject(new Error('view did not reach seq 40 in 10 ms')) });
  try { await takeOverHead(slow, 300); assert.unreachable(); } catch (err) { assert.match((err as Error).message, /did not reach #40/); }
});

pure('fleet-lease-head - a last event the view refused (forged) is passed: the chain goes on from the view', async () => {
  const p = port({ heads: [{ seq: 40, srcSeq: 12, hash: 'forged' }], view: [{ srcSeq: 11, hash: 'h11' }], refused: (s) => s === 40 });
  assert.equal(await takeOverHead(p, 2000), { srcSeq: 11, hash: 'h11' });
  // a new log: nothing in the stream, nothing in the view
  assert.is(await takeOverHead(port({ heads: [undefined], view: [] }), 500), undefined);
});

pure('fleet-lease-head - a leader that cannot renew its lease appends no NodeDown: every node falls silent for a leader cut off', async () => {
  const view = emptyView();
  view.nodes = { a: { id: 'a' }, b: { id: 'b' } } as unknown as typeof view.nodes;
  const appended: string[] = [];
  let ok = false;
  const m = new Membership({ view: () => view, silenceMs: 100, confirm: async () => ok, append: async (_s, type, entity) => { appended.push(`${type} ${entity}`); } });
  await new Promise((r) => setTimeout(r, 250)); // both silent since the start
  const said: string[] = [];
  const err = console.error;
  console.error = (l: string) => { said.push(l); };
  try { await m.tick(); } finally { console.error = err; }
  assert.equal(appended, [], 'a NodeDown appended without a renewed lease');
  assert.match(said.join('\n'), /lease could not be renewed: no NodeDown/);
  ok = true;
  await m.tick();
  assert.equal(appended.sort(), ['NodeDown a', 'NodeDown b']);
});

pure.run();

const real = suite('fleet-lease-head real');
let c: Cluster | undefined;
real.before(async () => { c = await Cluster.start(); });
real.after(async () => { await c?.stop(); });

async function readAll(nc: NatsConnection): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  for await (const item of readLog(nc)) if (item.ok) out.push(item.stored);
  return out;
}

real('fleet-lease-head - a view short of the old leader\'s last events: takeOverHead continues from the stream\'s head, the audit is clean', async () => {
  // the old leader: the cluster's controller, gone (its last events are in the stream)
  const old = c!.controller();
  const gone = new Promise((r) => old.once('exit', r));
  old.kill('SIGKILL');
  await gone;
  const nc = await c!.connect('controller');
  try {
    const { signer } = signerOf(readCreds(credsPath(c!.dir, 'controller')));
    const before = await readAll(nc);
    const staleEnd = before[before.length - 1]!.seq; // what a lagging replica said the end was
    // the old leader's last writes, on ev.controller and on a claim's subject: after the end the new leader was told
    const h0 = (await controllerHeadInStream(nc))!;
    const w = new Appender(nc.jetstream(), new SourceChain('controller', h0.srcSeq, h0.hash), signer, { nc });
    await w.append(subjects.controller, 'ControllerStarted', 'controller', { version: 'old-leader' });
    await w.appendExpecting(subjects.claim('container', 'late'), 'Claimed', 'late-entity', { kind: 'container', key: 'late' }, 0);
    await w.append(subjects.controller, 'ControllerStarted', 'controller', { version: 'old-leader-2' });
    const all = await readAll(nc);
    // the new leader's view: folded up to the stale end; it folds the rest only when asked (and late)
    const view = emptyView();
    for (const s of all) if (s.seq <= staleEnd) reduce(view, s);
    const oldWay = view.sources.controller!; // what the controller continued from before the fix
    const streamHead = (await controllerHeadInStream(nc))!;
    assert.is(streamHead.srcSeq, h0.srcSeq + 3, 'the stream\'s head is the old leader\'s last write');
    assert.is(oldWay.srcSeq, h0.srcSeq, `the view that waited for the stale end is behind: controller#${oldWay.srcSeq}, the stream's controller#${streamHead.srcSeq}`);
    const head = await takeOverHead({
      streamHead: () => controllerHeadInStream(nc),
      viewHead: () => view.sources.controller,
      waitFor: async (seq) => { await new Promise((r) => setTimeout(r, 200)); for (const s of all) if (s.seq <= seq) reduce(view, s); },
      refused: () => false,
    }, 20_000);
    assert.equal(head, { srcSeq: streamHead.srcSeq, hash: streamHead.hash });
    // the new leader's first write, as controller/main.ts makes it: fenced on ev.controller
    const nw = new Appender(nc.jetstream(), new SourceChain('controller', head!.srcSeq, head!.hash), signer, { nc });
    await nw.appendExpecting(subjects.controller, 'ControllerLeading', 'controller', { host: 'new', term: 2, ttlMs: 5000 }, await lastSeqOn(nc, STREAM, subjects.controller));
  } finally { await nc.close(); }
  const audit = await c!.tsctl(['audit', 'verify'], { timeout: 60_000 });
  assert.is(audit.code, 0, audit.stdout + audit.stderr);
});

real.run();
