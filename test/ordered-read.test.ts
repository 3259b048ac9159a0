// The short reads a writer makes at start (its chain head, its key, the events a crash left
// unreported) through nats.js's ordered consumer, with the server frozen (SIGSTOP): nats.js
// tries a failed first create up to 30 times, 30 s apart, and these reads took a failure for
// "nothing there". Now a create is tried once, within a bound: a refusal is its error, no answer
// a TIMEOUT (which withRetry tries again), and with the server back they give the truth.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import { Cluster } from './helpers/cluster.js';
import { Appender, chainHeadFromStream, lastOn, orderedInfo, readRaw, withRetry } from '../shared/nats/log.js';
import { SourceChain } from '../shared/codec.js';
import { subjects } from '../shared/subjects.js';
import { readCreds, signerOf } from '../shared/nats/trust.js';

let c: Cluster;
let nc: NatsConnection | undefined;
test.before(async () => { c = await Cluster.start(); });
test.after(async () => { await nc?.close(); await c?.stop(); });

const natsPid = () => Number(readFileSync(join(c.dir, 'trust', 'nats-server.pid'), 'utf8').trim());

test('ordered-read - orderedInfo: a create that never answers is a TIMEOUT at its bound; one that answers late is deleted', async () => {
  let deleted = 0;
  let answer!: (ci: never) => void;
  const slow = { info: () => new Promise<never>((r) => (answer = r)), delete: async () => { deleted++; return true; } };
  const t0 = Date.now();
  const err = await orderedInfo(slow, 300).then(() => undefined, (e: Error) => e);
  assert.match(String(err?.message), /^TIMEOUT: the consumer was not made within 300 ms/);
  assert.ok(Date.now() - t0 < 2000, `ended after ${Date.now() - t0} ms`);
  answer({ name: 'late' } as never);
  await new Promise((r) => setTimeout(r, 10));
  assert.is(deleted, 1, 'the late consumer was deleted');
  const refused = { info: () => Promise.reject(new Error('permissions violation')), delete: async () => true };
  assert.match(String(await orderedInfo(refused, 300).then(() => 'resolved', (e: Error) => e.message)), /permissions violation/);
});

test('ordered-read - with the server frozen, lastOn and readRaw end in a TIMEOUT, not "nothing there"; thawed, they and the chain head tell the truth', async () => {
  const creds = readCreds(c.addIdentity('node-or', 'agent', { node: 'or' }));
  nc = await c.connect('node-or');
  const { signer, reg } = signerOf(creds);
  const a = new Appender(nc.jetstream(), new SourceChain('node:or'), signer, { nc });
  await a.append(subjects.keys('node-or'), 'KeyRegistered', 'or', { key: reg.key, rootSig: reg.rootSig });
  const id = 'e'.repeat(64);
  const last = await a.append(subjects.state('or', id), 'ContainerExited', id, { exitCode: 0, oomKilled: false, exitedAt: Date.now() });
  const filter = subjects.state('or', id);
  assert.is((await lastOn(nc, filter))?.seq, last.seq);

  // a create the server refuses (another node's subjects) while the stream's info answers:
  // nats.js would make it again, 30 s apart, for a quarter of an hour, then say "nothing there"
  const t1 = Date.now();
  const other = await lastOn(nc, subjects.state('or2', id), 1000).then((r) => (r === undefined ? 'nothing there' : 'found'), (e: Error) => e.message);
  assert.match(other, /Permissions Violation for Publish to "\$JS\.API\.CONSUMER\.CREATE\./, `lastOn of another node's subject answered: ${other}`);
  assert.ok(Date.now() - t1 < 4000, `it ended after ${Date.now() - t1} ms`);

  const pid = natsPid();
  process.kill(pid, 'SIGSTOP');
  try {
    const t0 = Date.now();
    const l = await lastOn(nc, filter, 1000).then((r) => (r === undefined ? 'nothing there' : 'found'), (e: Error) => e.message);
    assert.match(l, /TIMEOUT/, `lastOn answered: ${l}`);
    const raw = await (async () => { for await (const _ of readRaw(nc!, filter, 1000)) return 'read'; return 'nothing there'; })().catch((e: Error) => e.message);
    assert.match(raw, /TIMEOUT/, `readRaw answered: ${raw}`);
    // each within nats.js's API timeout (5 s: the stream's info it asks first) or its own bound
    assert.ok(Date.now() - t0 < 15000, `both ended after ${Date.now() - t0} ms`);
  } finally { process.kill(pid, 'SIGCONT'); }

  // thawed: the same reads (tried again as the agent's start does) find what is there
  assert.is((await withRetry(() => lastOn(nc!, filter), 15))?.seq, last.seq);
  const ids: number[] = [];
  for await (const m of readRaw(nc, filter)) ids.push(m.seq);
  assert.equal(ids, [last.seq]);
  const head = await withRetry(() => chainHeadFromStream(undefined as never, nc!, 'node:or', [subjects.stateFor('or'), subjects.node('or')]), 15);
  assert.is(head.position.srcSeq, 2, 'the chain goes on from its second event');
});

test.run();
