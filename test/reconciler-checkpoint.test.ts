// The reconciler over a real checkpoint journal and fake ports (no root, no nats-server): a
// container event is acked without waiting for a batch, its promise is kept without a write
// of its own, and tombstones go by the stream's first sequence, not the ack floor.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subject } from 'rxjs';
import type { JsMsg } from 'nats';
import { Reconciler } from '../agent/pipeline/reconciler.js';
import { Checkpoint } from '../agent/pipeline/checkpoint.js';
import { SourceChain, encodeEvent } from '../shared/codec.js';
import type { ContainerSpec } from '../shared/events.js';

const t = suite('reconciler-checkpoint');
let root: string;
t.before.each(() => { root = mkdtempSync(join(tmpdir(), 'swl-rec-')); });
t.after.each(() => { rmSync(root, { recursive: true, force: true }); });

const NODE = 'n1';
const spec: ContainerSpec = { name: 'web', image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['true'], env: [], hostname: 'h', workdir: '/', network: 'none', autoRemove: false };

function fakeMsg(seq: number, bytes: Uint8Array, entity: string) {
  const m = { seq, subject: `ev.desired.${NODE}.${entity}`, data: bytes, headers: undefined, acked: false, ack() { m.acked = true; }, nak() { /* not here */ }, working() { /* */ } };
  return m;
}

async function harness(o: { firstSeq: number; ackFloor: number }) {
  const cp = await Checkpoint.open(join(root, 'checkpoint'), { warn: () => undefined });
  const appended: string[] = [];
  const log = { append: async (_s: string, type: string) => { appended.push(type); } };
  const running = new Set<string>();
  const host = {
    status: (id: string) => (running.has(id) ? { state: 'running' as const, pid: 7 } : { state: 'unknown' as const }),
    create: async (id: string) => { running.add(id); return { pid: 7, runningAt: 1 }; },
    stop: async () => undefined, kill: () => undefined, killNow: async () => ({ code: 0, exitedAt: 1 }),
    remove: async (id: string) => { running.delete(id); }, update: async () => undefined, oomKilled: () => false,
    waitExit: () => new Promise<never>(() => undefined),
  };
  const firstSeqAsked: number[] = [];
  const rec = new Reconciler({
    node: NODE, log: log as never, checkpoint: cp, host: host as never, networks: {} as never,
    logs: { follow: () => undefined, finish: () => undefined },
    ackFloor: async () => o.ackFloor,
    firstSeq: async () => { firstSeqAsked.push(o.firstSeq); return o.firstSeq; },
  });
  const msgs = new Subject<JsMsg>();
  rec.start(msgs);
  const chain = new SourceChain('controller');
  const send = (seq: number, entity: string, type: 'ContainerRequested' | 'ContainerRemoveRequested', data: unknown) => {
    const { event, hash } = chain.next(type, entity, data as never);
    chain.commit(event.srcSeq, hash);
    const m = fakeMsg(seq, encodeEvent(event), entity);
    msgs.next(m as unknown as JsMsg);
    return m;
  };
  return { cp, appended, send, rec, firstSeqAsked };
}

const settle = () => new Promise((r) => setTimeout(r, 5));

t('reconciler - a container event is acked at once: its record was written before the append, the kept promise waits', async () => {
  const h = await harness({ firstSeq: 1, ackFloor: 0 });
  const id = 'a'.repeat(64);
  const m = h.send(1, id, 'ContainerRequested', { node: NODE, spec, user: 'u' });
  await settle();
  assert.ok(m.acked, 'acked without a 20 ms batch');
  assert.equal(h.appended, ['ContainerStarted']);
  assert.equal(h.cp.pending(), [], 'the promise is kept in memory');
  const journal = join(root, 'checkpoint', 'journal.1');
  const size = statSync(journal).size;
  h.cp.flush();
  assert.ok(statSync(journal).size > size, 'the kept promise is written with the next write');
  h.rec.stop();
  h.cp.close();
});

t('reconciler - tombstones go once the stream\'s first sequence is past them (asked at the first message)', async () => {
  const h = await harness({ firstSeq: 3, ackFloor: 100 });
  const [a, b] = ['a'.repeat(64), 'b'.repeat(64)];
  // seeded as an earlier run left them: a removed at seq 2 (gone from the stream), b at 5
  h.cp.set(a, { lastSeq: 2, requestId: 'r1', reported: 'removed' });
  h.cp.set(b, { lastSeq: 5, requestId: 'r2', reported: 'removed' });
  h.send(10, 'c'.repeat(64), 'ContainerRequested', { node: NODE, spec, user: 'u' });
  await settle();
  assert.equal(h.firstSeqAsked, [3]);
  assert.is(h.cp.get(a), undefined, 'below the stream: pruned');
  assert.is(h.cp.get(b)?.reported, 'removed', 'its events are still in the stream (a fresh consumer would replay them): kept, whatever the ack floor');
  h.rec.stop();
  h.cp.close();
  const again = await Checkpoint.open(join(root, 'checkpoint'), { warn: () => undefined });
  assert.is(again.get(a), undefined);
  again.close();
});

t.run();
