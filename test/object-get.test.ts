// The object-store reader (shared/nats/object-get.ts) against a real server, as an agent
// reads layers: the bytes of an object object-put.ts wrote and of one nats.js wrote (its
// 128 KiB chunks), an empty one; a meta that lies about the digest, the size or the chunk
// count fails the read (one line, no crash), and chunks purged under a reader fail it with
// a TIMEOUT the layer store retries. The reads are direct gets (any replica answers): chunks
// of two objects interleaved in the stream, a chunk that comes late (a replica behind), a
// chunk whose bytes were swapped and one larger than the whole object.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { headers, StorageType, type NatsConnection, type ObjectStore } from 'nats';
import { Cluster, sleep } from './helpers/cluster.js';
import { putObject, purgeChunks } from '../shared/nats/object-put.js';
import { objectInfo, readObject, ObjectReadError } from '../shared/nats/object-get.js';
import { IMAGE_BUCKET } from '../shared/subjects.js';

const live = suite('object-get - against a server');
let c: Cluster;
let admin: NatsConnection;
let agent: NatsConnection;
let os: ObjectStore;

live.before(async () => {
  c = await Cluster.start();
  admin = await c.connect();
  os = await admin.jetstream().views.os(IMAGE_BUCKET, { storage: StorageType.File });
  c.addIdentity('node-og', 'agent', { node: 'og' });
  agent = await c.connect('node-og');
});
live.after(async () => {
  await agent?.close().catch(() => undefined);
  await admin?.close().catch(() => undefined);
  await c?.stop();
});

async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of r) parts.push(p as Buffer);
  return Buffer.concat(parts);
}
async function failure(r: Readable): Promise<ObjectReadError> {
  try { await readAll(r); } catch (err) { return err as ObjectReadError; }
  throw new Error('the read succeeded');
}
/** The meta as the agent reads it (direct gets), checked against nats.js's own read of it. */
async function agentInfo(name: string) {
  const mine = (await objectInfo(agent, IMAGE_BUCKET, name))!;
  const theirs = (await os.info(name))!;
  assert.equal([mine.name, mine.nuid, mine.size, mine.chunks, mine.digest, mine.deleted], [theirs.name, theirs.nuid, theirs.size, theirs.chunks, theirs.digest, theirs.deleted]);
  return mine;
}
const metaSubject = (name: string) => `$O.${IMAGE_BUCKET}.M.${Buffer.from(name).toString('base64').replace(/\+/g, '-').replace(/\//g, '_')}`;
const chunkSubject = (nuid: string) => `$O.${IMAGE_BUCKET}.C.${nuid}`;
/** Publishes a meta for `name` as a writer would (a rollup of the name's meta subject). */
async function publishMeta(name: string, meta: Record<string, unknown>): Promise<void> {
  const h = headers();
  h.set('Nats-Rollup', 'sub');
  await admin.jetstream().publish(metaSubject(name), new TextEncoder().encode(JSON.stringify({ name, bucket: IMAGE_BUCKET, deleted: false, mtime: new Date().toISOString(), ...meta })), { headers: h });
}
const sha = (b: Uint8Array) => `SHA-256=${createHash('sha256').update(b).digest('base64url')}=`;

/** Republishes `name`'s meta with `change` applied (what a forger with write access could do). */
async function forgeMeta(name: string, change: Record<string, unknown>): Promise<void> {
  const info = (await os.info(name))!;
  await publishMeta(name, { description: info.description, options: info.options, nuid: info.nuid, size: info.size, chunks: info.chunks, mtime: info.mtime, digest: info.digest, ...change });
}

live('object-get - an agent reads what object-put wrote, byte for byte, verified or not', async () => {
  const body = randomBytes((3 << 20) + 12345);
  await putObject(admin, IMAGE_BUCKET, { name: 'og-a' }, Readable.from([body.subarray(0, 1000), body.subarray(1000)]));
  const info = await agentInfo('og-a');
  assert.is(info.chunks, 4);
  assert.ok((await readAll(readObject(agent, IMAGE_BUCKET, info))).equals(body));
  assert.ok((await readAll(readObject(agent, IMAGE_BUCKET, info, { verify: false }))).equals(body));
});

live('object-get - what nats.js put (128 KiB chunks) reads the same; an empty object is empty', async () => {
  const body = randomBytes(700_000);
  await os.putBlob({ name: 'og-b' }, body);
  const info = await agentInfo('og-b');
  assert.ok(info.chunks > 1, `chunks ${info.chunks}`);
  assert.ok((await readAll(readObject(agent, IMAGE_BUCKET, info))).equals(body));
  await os.putBlob({ name: 'og-empty' }, new Uint8Array(0));
  assert.is((await readAll(readObject(agent, IMAGE_BUCKET, await agentInfo('og-empty')))).length, 0);
});

live('object-get - a meta that lies about the digest, size or chunk count fails the read in one line', async () => {
  const body = randomBytes(2 << 20);
  await putObject(admin, IMAGE_BUCKET, { name: 'og-c' }, Readable.from([body]));
  const good = (await os.info('og-c'))!;
  await forgeMeta('og-c', { digest: `SHA-256=${Buffer.alloc(32, 7).toString('base64url')}=` });
  let e = await failure(readObject(agent, IMAGE_BUCKET, await agentInfo('og-c')));
  assert.is(e.code, 'DIGEST');
  assert.not.match(e.message, /\n/);
  // without verification the digest is the caller's to check, but the size still is ours
  assert.ok((await readAll(readObject(agent, IMAGE_BUCKET, await agentInfo('og-c'), { verify: false }))).equals(body));
  await forgeMeta('og-c', { digest: good.digest, size: good.size + 1 });
  e = await failure(readObject(agent, IMAGE_BUCKET, await agentInfo('og-c'), { verify: false }));
  assert.is(e.code, 'SIZE');
  await forgeMeta('og-c', { digest: good.digest, size: good.size - 1 });
  e = await failure(readObject(agent, IMAGE_BUCKET, await agentInfo('og-c'), { verify: false }));
  assert.is(e.code, 'SIZE');
  await forgeMeta('og-c', { digest: good.digest, size: good.size, chunks: good.chunks + 1 });
  e = await failure(readObject(agent, IMAGE_BUCKET, await agentInfo('og-c')));
  assert.is(e.code, 'SIZE');
  await forgeMeta('og-c', { digest: 'MD5=abc' });
  e = await failure(readObject(agent, IMAGE_BUCKET, await agentInfo('og-c')));
  assert.is(e.code, 'MALFORMED');
  await forgeMeta('og-c', { digest: good.digest, nuid: '../x' });
  e = await failure(readObject(agent, IMAGE_BUCKET, await agentInfo('og-c')));
  assert.is(e.code, 'MALFORMED');
});

live('object-get - chunks purged under a reader fail it with a TIMEOUT, not a hang', async () => {
  await putObject(admin, IMAGE_BUCKET, { name: 'og-d' }, Readable.from([randomBytes(1 << 20)]));
  const info = await agentInfo('og-d');
  await purgeChunks(admin, IMAGE_BUCKET, info.nuid);
  const e = await failure(readObject(agent, IMAGE_BUCKET, info, { idleMs: 1500 }));
  assert.is(e.code, 'TIMEOUT');
  assert.match(e.message, /no chunk for 1.5 s/);
});

live('object-get - a put given the open store replaces an object as one without: new bytes read back, the old chunks purged', async () => {
  const first = randomBytes(300 << 10), second = randomBytes((1 << 20) + 7);
  await putObject(admin, IMAGE_BUCKET, { name: 'og-e' }, Readable.from([first]), { store: os });
  const old = await agentInfo('og-e');
  assert.equal(await readAll(readObject(agent, IMAGE_BUCKET, old)), first);
  await putObject(admin, IMAGE_BUCKET, { name: 'og-e' }, Readable.from([second]), { store: os });
  const now = await agentInfo('og-e');
  assert.is.not(now.nuid, old.nuid);
  assert.equal(await readAll(readObject(agent, IMAGE_BUCKET, now)), second);
  const si = await (await admin.jetstreamManager()).streams.info(`OBJ_${IMAGE_BUCKET}`, { subjects_filter: `$O.${IMAGE_BUCKET}.C.${old.nuid}` });
  assert.is(Object.keys(si.state.subjects ?? {}).length, 0, 'the replaced version\'s chunks are gone');
});

live('object-get - a name with no meta is null; a meta that is not JSON is refused in one line', async () => {
  assert.is(await objectInfo(agent, IMAGE_BUCKET, 'og-none'), null);
  const h = headers();
  h.set('Nats-Rollup', 'sub');
  await admin.jetstream().publish(metaSubject('og-junk'), new TextEncoder().encode('{"name":'), { headers: h });
  const e = await objectInfo(agent, IMAGE_BUCKET, 'og-junk').then(() => undefined, (err: ObjectReadError) => err);
  assert.is(e?.code, 'MALFORMED');
  assert.not.match(e!.message, /\n/);
});

live('object-get - chunks of two objects interleaved in the stream, with a gap of others, read back whole', async () => {
  const a = [randomBytes(5000), randomBytes(7000), randomBytes(3)], b = [randomBytes(100), randomBytes(200000)];
  const js = admin.jetstream();
  await js.publish(chunkSubject('ogInterA'), a[0]);
  await js.publish(chunkSubject('ogInterB'), b[0]);
  for (let k = 0; k < 30; k++) await js.publish(chunkSubject('ogInterOther'), randomBytes(10));
  await js.publish(chunkSubject('ogInterA'), a[1]);
  await js.publish(chunkSubject('ogInterB'), b[1]);
  await js.publish(chunkSubject('ogInterA'), a[2]);
  const A = Buffer.concat(a), B = Buffer.concat(b);
  await publishMeta('og-inter-a', { nuid: 'ogInterA', size: A.length, chunks: 3, digest: sha(A) });
  await publishMeta('og-inter-b', { nuid: 'ogInterB', size: B.length, chunks: 2, digest: sha(B) });
  assert.equal(await readAll(readObject(agent, IMAGE_BUCKET, await agentInfo('og-inter-a'))), A);
  assert.equal(await readAll(readObject(agent, IMAGE_BUCKET, await agentInfo('og-inter-b'))), B);
});

live('object-get - a chunk not there yet (a replica behind) is asked again, and the read completes', async () => {
  const parts = [randomBytes(60000), randomBytes(60000), randomBytes(60000)];
  const all = Buffer.concat(parts);
  const js = admin.jetstream();
  await js.publish(chunkSubject('ogLate'), parts[0]);
  await publishMeta('og-late', { nuid: 'ogLate', size: all.length, chunks: 3, digest: sha(all) });
  const reading = readAll(readObject(agent, IMAGE_BUCKET, await agentInfo('og-late'), { idleMs: 8000 }));
  await sleep(700);
  await js.publish(chunkSubject('ogLate'), parts[1]);
  await js.publish(chunkSubject('ogLate'), parts[2]);
  assert.equal(await reading, all);
});

live('object-get - a chunk whose bytes were swapped fails the digest; one larger than the object is refused before a byte of it is given', async () => {
  const body = randomBytes(3 << 20);
  await putObject(admin, IMAGE_BUCKET, { name: 'og-f' }, Readable.from([body]));
  const good = await agentInfo('og-f');
  // the same meta over chunks a forger wrote: the second one's bytes differ
  const js = admin.jetstream();
  for (let off = 0; off < body.length; off += 1 << 20) {
    const part = Buffer.from(body.subarray(off, off + (1 << 20)));
    if (off === 1 << 20) part[12345] ^= 1;
    await js.publish(chunkSubject('ogSwapped'), part);
  }
  await publishMeta('og-f-swapped', { nuid: 'ogSwapped', size: good.size, chunks: good.chunks, digest: good.digest });
  const e = await failure(readObject(agent, IMAGE_BUCKET, await agentInfo('og-f-swapped')));
  assert.is(e.code, 'DIGEST');
  assert.not.match(e.message, /\n/);
  // a meta of 10 bytes over a chunk of 1 MiB: nothing of it reaches the reader
  await js.publish(chunkSubject('ogHuge'), randomBytes(1 << 20));
  await publishMeta('og-huge', { nuid: 'ogHuge', size: 10, chunks: 1, digest: sha(Buffer.alloc(10)) });
  const got: Buffer[] = [];
  const r = readObject(agent, IMAGE_BUCKET, await agentInfo('og-huge'), { verify: false });
  const e2 = await (async () => { try { for await (const p of r) got.push(p as Buffer); } catch (err) { return err as ObjectReadError; } return undefined; })();
  assert.is(e2?.code, 'SIZE');
  assert.is(got.length, 0);
});

live.run();
