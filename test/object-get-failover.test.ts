// An agent's layer read on a cluster that just lost the server leading the image store's
// stream (issue 11: a host cut). The read is direct gets (shared/nats/object-get.ts), which
// the surviving replicas answer while the stream has no leader: it does not wait out the
// election (4-9 s) nor a consumer's retries (the ordered consumer it replaced took ~17 s in
// the failover bench).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { connect, StorageType, type NatsConnection } from 'nats';
import { Cluster, SLOW, threeServers, until, type ThreeServers } from './helpers/cluster.js';
import { connectOptions, credsPath, readCreds } from '../shared/nats/trust.js';
import { putObject } from '../shared/nats/object-put.js';
import { objectInfo, readObject } from '../shared/nats/object-get.js';
import { withRetry } from '../shared/nats/log.js';
import { IMAGE_BUCKET } from '../shared/subjects.js';

const t = suite('object-get - failover');
let c: Cluster;
let three: ThreeServers | undefined;
const conns: NatsConnection[] = [];

t.before(async () => {
  c = await Cluster.start();
  c.addIdentity('node-ogf', 'agent', { node: 'ogf' });
  three = await threeServers(c.dir);
});
t.after(async () => {
  for (const nc of conns) await nc.close().catch(() => undefined);
  await three?.stop();
  await c?.stop();
});

async function on(name: string, url: string): Promise<NatsConnection> {
  const o = { ...connectOptions(readCreds(credsPath(c.dir, name)), url), name: `ogf-${name}` };
  const nc = await until(() => connect(o).catch(() => undefined), 15_000, `${name} on ${url}`);
  conns.push(nc);
  return nc;
}

async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of r) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

t('object-get - the server leading the store\'s stream killed: an agent on another reads a layer at once', async () => {
  const admin = await on('admin', three!.url);
  let why = '';
  await until(async () => {
    try { await admin.jetstream().views.os(IMAGE_BUCKET, { storage: StorageType.File, replicas: 3 }); return true; } catch (err) { why = (err as Error).message; return undefined; }
  }, 60_000, 'an R3 image store on the three servers').catch((err: Error) => { throw new Error(`${err.message} (${why})\n${three!.logs()}`); });
  const body = randomBytes((8 << 20) + 321);
  const put = await until(() => putObject(admin, IMAGE_BUCKET, { name: 'ogf-layer' }, Readable.from([body])).catch(() => undefined), 30_000, 'the put');
  const jsm = await admin.jetstreamManager();
  // every replica has every chunk: what a follower lacks is the retry path's, not this test's
  const si = await until(async () => {
    const s = await jsm.streams.info(`OBJ_${IMAGE_BUCKET}`).catch(() => undefined);
    return s?.cluster?.leader && s.cluster.replicas?.length === 2 && s.cluster.replicas.every((r) => r.current && !r.lag) && s.state.messages >= put.chunks + 1 ? s : undefined;
  }, 30_000, 'the replicas current');
  // a follower answers direct gets once nats-server has seen it current (~2 s after the stream
  // is made; a store an agent reads has long been there): the servers' own subscriptions
  const direct = `$JS.API.DIRECT.GET.OBJ_${IMAGE_BUCKET}`;
  await until(async () => (await Promise.all(three!.monitors.map(async (m) => {
    const r = await (await fetch(`${m}/subsz?subs=1&test=${encodeURIComponent(direct)}`)).json() as { subscriptions_list?: { subject: string }[] };
    return (r.subscriptions_list ?? []).some((x) => x.subject === direct);
  }))).every(Boolean), 15_000, 'every replica answering direct gets');
  const leader = Number(si.cluster!.leader!.replace('three', ''));
  const survivor = (leader + 1) % 3;
  const agent = await on('node-ogf', three!.urls[survivor]);
  const read = async () => {
    const t0 = Date.now();
    const info = await withRetry(() => objectInfo(agent, IMAGE_BUCKET, 'ogf-layer'));
    assert.ok(info, 'the meta');
    const got = await readAll(readObject(agent, IMAGE_BUCKET, info!));
    assert.ok(got.equals(body), 'the bytes');
    return { ms: Date.now() - t0, chunks: info!.chunks };
  };
  await three!.kill(leader);
  const first = await read();
  console.log(`object-get: ${body.length} bytes in ${first.chunks} chunks read ${first.ms} ms after the stream's leader (three${leader}) was killed`);
  // an election alone is 4-9 s on a busy cluster: the read did not wait for one
  assert.ok(first.ms < 3000 * SLOW, `${first.ms} ms`);
  // one server of three left: no leader can be elected, and the read still needs none
  await three!.kill((leader + 2) % 3);
  const second = await read();
  console.log(`object-get: read again in ${second.ms} ms with three${survivor} alone (no quorum)`);
  assert.ok(second.ms < 3000 * SLOW, `${second.ms} ms`);
});

t.run();
