// A renew stored although its answer was lost (a timeout on a loaded server) must not end the
// term: the next renew, naming the revision the controller last knew, is refused for a wrong
// last sequence, and the controller took that for another writer, exited and came back as a
// standby (seen in fleet-loss runs: "the lease was taken (wrong last sequence: 192)", five times
// in a minute), each restart a new silence for every node. Another writer's record still ends it.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { NatsConnection } from 'nats';
import { Cluster, sleep, until } from './helpers/cluster.js';
import { Lease, LEASE_BUCKET, LEASE_KEY, ownLostRenew, streamApi } from '../controller/lease.js';

const t = suite('lease-renew');
let c: Cluster | undefined;
let nc: NatsConnection | undefined;
t.before(async () => { c = await Cluster.start(); nc = await c.connect('controller'); });
t.after(async () => { await nc?.close(); await c?.stop(); });

t('lease - only a record of this process, newer than its revision, is a lost renew of its own', () => {
  assert.ok(ownLostRenew({ held: true, host: 'h1', revision: 8, id: 'me' }, 'h1', 'me', 7));
  assert.not.ok(ownLostRenew({ held: true, host: 'h1', revision: 8, id: 'other' }, 'h1', 'me', 7), 'the same host\'s next process');
  assert.not.ok(ownLostRenew({ held: true, host: 'h1', revision: 8 }, 'h1', 'me', 7), 'a record without a token');
  assert.not.ok(ownLostRenew({ held: true, host: 'h2', revision: 8, id: 'me' }, 'h1', 'me', 7), 'another host');
  assert.not.ok(ownLostRenew({ held: true, host: 'h1', revision: 7, id: 'me' }, 'h1', 'me', 7), 'not newer');
  assert.not.ok(ownLostRenew({ held: false, revision: 9 }, 'h1', 'me', 7), 'deleted or expired');
});

/** Stores the key's last record again, unchanged: what a renew whose answer was lost leaves. */
async function storeAgain(data?: (d: Uint8Array) => Uint8Array): Promise<void> {
  const jsm = await streamApi(nc!, 2000);
  const m = await jsm.streams.getMessage(`KV_${LEASE_BUCKET}`, { last_by_subj: `$KV.${LEASE_BUCKET}.${LEASE_KEY}` });
  await nc!.jetstream().publish(`$KV.${LEASE_BUCKET}.${LEASE_KEY}`, data ? data(m.data) : m.data);
}

t('lease - a renew of its own stored without an answer: the term goes on; another process\'s record ends it', async () => {
  const lost: string[] = [];
  const lines: string[] = [];
  const lease = await Lease.open(nc!, { host: 'hrenew', ttlMs: 2000, onLost: (why) => lost.push(why), log: (l) => lines.push(l) });
  try {
    await lease.acquire();
    await storeAgain();
    // three renews (every 500 ms): the first is refused, the key is read, the next ones go through
    await sleep(1600);
    assert.equal(lost, [], 'the term ended on its own renew');
    assert.ok(lease.leading, 'not leading');
    assert.ok(lines.some((l) => /answer was lost was stored/.test(l)), lines.join('\n'));
    // the same host's next process (another token): the lease was taken
    await storeAgain((d) => new TextEncoder().encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(d)), id: 'another' })));
    await until(() => lost.length > 0, 3000, 'the term to end');
    assert.match(lost[0]!, /the lease was taken/);
  } finally { await lease.release(); }
});

t.run();
