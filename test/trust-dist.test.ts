// The identities' record every server of a cluster mirrors (shared/nats/trust-dist.ts): the pure
// check of a record, and on a real server who may write and read its bucket. The multi-host
// behaviour (a user, a revocation, a join reaching h2 and h3; forged records refused there) is in
// up-cluster.test.ts.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { nkeys, type NatsConnection } from 'nats';
import { Cluster, until } from './helpers/cluster.js';
import { decide, encodeRecord, publicIds, verifyRecord, TrustPublisher, TRUST_KEY } from '../shared/nats/trust-dist.js';
import { addIdentity, mirrorMarker, identities, readCreds, rootKey, rootSigner, TRUST_BUCKET, type Identity } from '../shared/nats/trust.js';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signer } from '../shared/signing.js';
import { withRetry } from '../shared/nats/log.js';

const t = suite('trust-dist');
const root = signer(randomBytes(32));
const key = () => nkeys.createUser().getPublicKey();
const ids: Identity[] = [{ name: 'controller', kind: 'controller', key: key() }, { name: 'alice', kind: 'user', role: 'admin', key: key() },
  { name: 'node-a', kind: 'agent', node: 'a', key: key() }, { name: 'join-0123456789ab', kind: 'joiner', key: key(), expires: 1_900_000_000_000 }];

t('a record signed by the root verifies, with its generation and identities', () => {
  const r = verifyRecord(encodeRecord(42, ids, root), root.pub);
  assert.equal(r, { gen: 42, ids: publicIds(ids) });
});

t('secrets and unknown fields never go into a record', () => {
  const withSeed = ids.map((i) => ({ ...i, seed: 'SUAsecret', url: 'tls://x:1' }));
  const text = Buffer.from(encodeRecord(1, withSeed as never, root)).toString();
  assert.not.match(text, /seed|SUAsecret|url/);
});

t('forged, tampered, stale-looking and malformed records are refused with one line', () => {
  const good = JSON.parse(Buffer.from(encodeRecord(7, ids, root)).toString());
  const bad: [string, Uint8Array, RegExp][] = [
    ['another key', encodeRecord(7, ids, signer(randomBytes(32))), /not signed by the cluster root/],
    ['unsigned', Buffer.from(JSON.stringify({ ...good, sig: '' })), /not signed/],
    ['generation changed', Buffer.from(JSON.stringify({ ...good, gen: 8 })), /not signed/],
    ['identity added', Buffer.from(JSON.stringify({ ...good, ids: [...good.ids, { name: 'evil', kind: 'superuser', key: key() }] })), /not signed/],
    ['role raised', Buffer.from(JSON.stringify({ ...good, ids: good.ids.map((i: Identity) => (i.name === 'node-a' ? { ...i, kind: 'superuser' } : i)) })), /not signed/],
    ['junk', randomBytes(500), /not JSON|not a v1/],
    ['empty', new Uint8Array(0), /not JSON/],
    ['null', Buffer.from('null'), /not a v1/],
    ['no generation', Buffer.from(JSON.stringify({ ...good, gen: -1 })), /generation/],
    ['ids not a list', Buffer.from(JSON.stringify({ ...good, ids: {} })), /no identities/],
    ['config injection in a key', encodeRecord(7, [...ids, { name: 'x', kind: 'user', key: 'U" }\nauthorization { users = [] }' }] as never, root), /malformed/],
    ['bad kind', encodeRecord(7, [...ids, { name: 'x', kind: 'root', key: key() }] as never, root), /malformed/],
    ['bad name', encodeRecord(7, [...ids, { name: '../x', kind: 'user', key: key() }] as never, root), /malformed/],
    ['twice', encodeRecord(7, [...ids, ids[1]], root), /twice/],
    ['agent without node', encodeRecord(7, [...ids, { name: 'node-b', kind: 'agent', key: key() }], root), /without its node/],
    ['huge', Buffer.alloc(2 * 1024 * 1024, 0x20), /bytes/],
  ];
  for (const [what, bytes, re] of bad) {
    const r = verifyRecord(bytes, root.pub);
    assert.type(r, 'string', what);
    assert.match(r as string, re, what);
    assert.not.match(r as string, /\n/, what);
  }
});

t('a mirror applies only a newer generation', () => {
  assert.is(decide(5, 4), 'apply');
  assert.is(decide(5, 5), 'same');
  assert.is(decide(4, 5), 'stale');
  assert.is(decide(1, 0), 'apply');
});

let c: Cluster | undefined;
const conns: NatsConnection[] = [];
t('on a real server: the controller publishes the identities, signed; nobody else may write the bucket', async () => {
  c = await Cluster.start();
  const admin = await c.connect('admin');
  conns.push(admin);
  const kv = await admin.jetstream().views.kv(TRUST_BUCKET, { bindOnly: true });
  // a direct get may meet the server's reload (SIGHUP after each identity added): 503, tried again
  const get = () => withRetry(() => kv.get(TRUST_KEY), 10);
  const r = verifyRecord((await get())!.value, rootKey(c.dir));
  assert.type(r, 'object');
  assert.equal((r as { ids: Identity[] }).ids, publicIds(identities(c.dir)));
  // a change on this host is published within a second
  c.addIdentity('olive', 'user', { role: 'viewer' });
  await until(async () => { const x = verifyRecord((await get())!.value, rootKey(c!.dir)); return typeof x === 'object' && x.ids.some((i) => i.name === 'olive'); }, 3000, 'olive published');
  const validGen = Date.now() + 1e9;
  const valid = encodeRecord(validGen, identities(c.dir), rootSigner(c.dir));
  c.addIdentity('ozzy', 'user', { role: 'operator' });
  // even a validly signed record may be put by the controller alone: the agent, an admin, an operator are refused by the server
  for (const who of ['admin', 'ozzy', `node-${c.node}`]) {
    const nc = who === 'admin' ? admin : await c.connect(who);
    if (nc !== admin) conns.push(nc);
    const err = await nc.jetstream().publish(`$KV.${TRUST_BUCKET}.${TRUST_KEY}`, valid, { timeout: 2000 }).then(() => undefined, (e: Error) => e);
    assert.ok(err, `${who} wrote the trust bucket`);
    assert.match(err!.message, /permission|timeout|no responders/i, `${who}: ${err!.message}`);
  }
  const now = verifyRecord((await get())!.value, rootKey(c.dir));
  assert.ok(typeof now === 'object' && now.gen !== validGen, 'a refused writer\'s record is in the bucket');
  // an agent may read it (what a mirror does); a viewer may not
  const agent = conns[conns.length - 1];
  const akv = await agent.jetstream().views.kv(TRUST_BUCKET, { bindOnly: true });
  assert.ok(await withRetry(() => akv.get(TRUST_KEY), 10));
  const olive = await c.connect('olive');
  conns.push(olive);
  const no = await olive.jetstream().views.kv(TRUST_BUCKET, { bindOnly: true }).then((k) => k.get(TRUST_KEY)).then(() => undefined, (e: Error) => e);
  assert.ok(no, 'a viewer read the trust bucket');
});

t('tsctl killed between identities.json and auth.conf: the controller renders auth.conf and reloads the server', async () => {
  // what addIdentity leaves when its process dies right after writing identities.json (the
  // controller frozen meanwhile: it would repair it before the check below could see it)
  c!.controller().kill('SIGSTOP');
  let f = '';
  try {
    f = addIdentity(c!.dir, { name: 'kim', kind: 'user', role: 'operator' }, undefined, false);
    assert.not.match(readFileSync(join(c!.dir, 'trust/auth.conf'), 'utf8'), new RegExp(readCreds(f).nkey!));
  } finally { c!.controller().kill('SIGCONT'); }
  const t0 = Date.now();
  const nc = await c!.connect('kim'); // retried for 2 s
  conns.push(nc);
  console.log(`trust-dist: the interrupted user add was repaired in ${Date.now() - t0} ms`);
  assert.match(readFileSync(join(c!.dir, 'trust/auth.conf'), 'utf8'), new RegExp(readCreds(f).nkey!));
});

t('a controller on a mirror host (a standby) does not publish its copy over the truth', () => {
  mkdirSync(join(c!.dir, 'run'), { recursive: true });
  writeFileSync(mirrorMarker(c!.dir), '');
  try {
    assert.throws(() => new TrustPublisher({ nc: conns[0], state: c!.dir, replicas: 1 }), /mirrors the identities/);
  } finally { rmSync(mirrorMarker(c!.dir)); }
});

t.after(async () => {
  for (const nc of conns) await nc.close().catch(() => undefined);
  await c?.stop();
});

t.run();
