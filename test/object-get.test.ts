// The object-store reader (shared/nats/object-get.ts) against a real server, as an agent
// reads layers: the bytes of an object object-put.ts wrote and of one nats.js wrote (its
// 128 KiB chunks), an empty one; a meta that lies about the digest, the size or the chunk
// count fails the read (one line, no crash), and chunks purged under a reader fail it with
// a TIMEOUT the layer store retries.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { headers, StorageType, type NatsConnection, type ObjectStore } from 'nats';
import { Cluster } from './helpers/cluster.js';
import { putObject, purgeChunks } from '../shared/nats/object-put.js';
import { readObject, ObjectReadError } from '../shared/nats/object-get.js';
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
const agentInfo = async (name: string) => (await (await agent.jetstream().views.os(IMAGE_BUCKET)).info(name))!;

/** Republishes `name`'s meta with `change` applied (what a forger with write access could do). */
async function forgeMeta(name: string, change: Record<string, unknown>): Promise<void> {
  const info = (await os.info(name))!;
  const meta = { name, description: info.description, options: info.options, bucket: IMAGE_BUCKET, nuid: info.nuid, size: info.size, chunks: info.chunks, mtime: info.mtime, digest: info.digest, deleted: false, ...change };
  const h = headers();
  h.set('Nats-Rollup', 'sub');
  const subj = `$O.${IMAGE_BUCKET}.M.${Buffer.from(name).toString('base64').replace(/\+/g, '-').replace(/\//g, '_')}`;
  await admin.jetstream().publish(subj, new TextEncoder().encode(JSON.stringify(meta)), { headers: h });
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

live.run();
