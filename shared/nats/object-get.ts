// One object out of a JetStream object store (the reader beside object-put.ts's writer),
// without nats.js's get, which an agent's first start of an image paid for every layer:
// - nats.js hashes every byte with its SHA-256 written in JavaScript (js-sha256); here the
//   hash is Node's native one, and a caller that hashes the bytes itself anyway (the layer
//   store checks each tar against its diff_id, which is the object's digest) skips it;
// - nats.js reads the meta with a stream MSG.GET and the chunks with an ordered push
//   consumer: both need the bucket stream's raft leader, so a read on a cluster whose
//   leader's host was just cut waited out the election and the consumer's own retries
//   (~17 s in the failover bench, issue 11). Here the meta and the chunks are DIRECT gets
//   (the store's stream has allow_direct, nats.js sets it when it makes the bucket), which
//   any replica answers;
// - nats.js queues every chunk into a web stream as it arrives, with no backpressure; here
//   at most WINDOW gets are in flight, and only while the Node stream's reader takes chunks.
// The chunks are walked with `{seq, next_by_subj}`: the get for seq x answers the object's
// first chunk at or after x. Chunks one put wrote are mostly consecutive in the stream, so
// the gets for x, x+1, ... go out together; one answered by an already taken chunk (another
// object's chunks lay between) is dropped. A replica that is behind may lack a chunk: its
// "not found" is asked again (another replica may answer) until idleMs passes with no new
// chunk, which fails the read with a TIMEOUT the caller may retry, as does a read whose
// chunks were purged (the object was replaced mid-read). The object's size, chunk count and
// digest are checked, so a short or forged answer is refused, never taken as the object.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Empty, type Msg, type NatsConnection } from 'nats';

export interface GetOptions {
  /** Check the bytes against the object's digest (default true); false when the caller hashes them itself. */
  verify?: boolean;
  /** No chunk for this long fails the read with code TIMEOUT (default 10 s). */
  idleMs?: number;
}

/** An object's meta as the store keeps it (nats.js's ObjectInfo is one too). */
export interface ObjectMeta {
  name: string;
  nuid: string;
  size: number;
  chunks: number;
  digest: string;
  deleted: boolean;
  metadata?: Record<string, string>;
}

export class ObjectReadError extends Error {
  constructor(message: string, readonly code: string | undefined) { super(message); this.name = 'ObjectReadError'; }
}

/** Gets in flight per read: with object-put's 1 MiB chunks, at most this many MiB held ahead of the reader. */
const WINDOW = 4;
/** One get's wait for its answer before it is asked again (the replica it went to may be gone). */
const ASK_MS = 2000;

const directGet = (bucket: string) => `$JS.API.DIRECT.GET.OBJ_${bucket}`;
const chunkSubject = (bucket: string, nuid: string) => `$O.${bucket}.C.${nuid}`;
/** nats.js's meta subject: the name in padded base64url. */
function metaSubject(bucket: string, name: string): string {
  const b = Buffer.from(name).toString('base64url');
  return `$O.${bucket}.M.${b}${'='.repeat((4 - (b.length % 4)) % 4)}`;
}

/**
 * The meta of object `name` from any replica of the store; null when there is none. A replica
 * that is behind may not have a meta just written: a "not found" is asked again twice.
 */
export async function objectInfo(nc: NatsConnection, bucket: string, name: string, o: { timeoutMs?: number } = {}): Promise<ObjectMeta | null> {
  const subject = metaSubject(bucket, name);
  for (let k = 0; ; k++) {
    const g = await get(nc, `${directGet(bucket)}.${subject}`, Empty, o.timeoutMs ?? ASK_MS);
    if ('failed' in g) throw new ObjectReadError(`object ${name}: its meta: ${g.failed}`, g.code);
    if ('missing' in g) {
      if (k === 2) return null;
      await sleep(150 * (k + 1));
      continue;
    }
    if (g.subject !== subject) throw new ObjectReadError(`object ${name}: a meta for another subject was answered: refused`, 'MALFORMED');
    const meta = parseMeta(g.data);
    if (typeof meta === 'string') throw new ObjectReadError(`object ${name}: ${meta}`, 'MALFORMED');
    return meta;
  }
}

function parseMeta(data: Uint8Array): ObjectMeta | string {
  let m: Record<string, unknown>;
  try { m = JSON.parse(Buffer.from(data).toString('utf8')) as Record<string, unknown>; } catch { return 'its meta is not JSON'; }
  if (m === null || typeof m !== 'object') return 'its meta is not an object';
  const count = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (typeof m.name !== 'string' || typeof m.digest !== 'string' || typeof m.nuid !== 'string') return 'its meta lacks a name, digest or chunk id';
  if (m.deleted !== true && (!count(m.size) || !count(m.chunks))) return 'its meta has no valid size or chunk count';
  const md = m.metadata;
  if (md !== undefined && md !== null && (typeof md !== 'object' || Object.values(md).some((v) => typeof v !== 'string'))) return 'its meta has malformed metadata';
  return {
    name: m.name, nuid: m.nuid, digest: m.digest, size: (m.size as number) ?? 0, chunks: (m.chunks as number) ?? 0, deleted: m.deleted === true,
    ...(md ? { metadata: md as Record<string, string> } : {}),
  };
}

/** The object `info` names (objectInfo's or nats.js's) as a byte stream; it errors if the bytes are not the object's. */
export function readObject(nc: NatsConnection, bucket: string, info: Pick<ObjectMeta, 'name' | 'nuid' | 'size' | 'chunks' | 'digest'>, o: GetOptions = {}): Readable {
  if (info.size === 0) return Readable.from([]);
  if (!/^[A-Za-z0-9]{1,64}$/.test(info.nuid)) return failed(`object ${info.name}: malformed chunk id`);
  if (!Number.isSafeInteger(info.chunks) || info.chunks < 1 || !Number.isSafeInteger(info.size) || info.size < 0) return failed(`object ${info.name}: malformed size or chunk count`);
  const want = o.verify === false ? undefined : parseDigest(info.digest);
  if (want === null) return failed(`object ${info.name}: unknown digest ${info.digest.slice(0, 80)}`);
  return Readable.from(chunks(nc, bucket, info, want, o.idleMs ?? 10000), { objectMode: false });
}

type Got = { seq: number; subject: string; data: Uint8Array } | { missing: true } | { failed: string; code: string };

async function* chunks(nc: NatsConnection, bucket: string, info: Pick<ObjectMeta, 'name' | 'nuid' | 'size' | 'chunks'>, want: Buffer | undefined, idleMs: number): AsyncGenerator<Uint8Array> {
  const api = directGet(bucket), subj = chunkSubject(bucket, info.nuid);
  const hash = want ? createHash('sha256') : undefined;
  const ask = (seq: number) => get(nc, api, JSON.stringify({ seq, next_by_subj: subj }), Math.min(ASK_MS, idleMs));
  let size = 0, count = 0, last = 0, next = 1, progress = Date.now(), pause = 50;
  let asked: Promise<Got>[] = [];
  while (count < info.chunks) {
    while (asked.length < Math.min(WINDOW, info.chunks - count)) asked.push(ask(next++));
    const g = await asked.shift()!;
    if ('seq' in g) {
      if (g.subject !== subj) throw new ObjectReadError(`object ${info.name}: a chunk of another subject was answered: refused`, 'MALFORMED');
      if (g.seq <= last) continue; // a chunk already taken: the get asked inside a gap
      count++;
      size += g.data.length;
      if (size > info.size) throw new ObjectReadError(`object ${info.name}: more than the ${info.size} bytes its meta says: refused`, 'SIZE');
      last = g.seq;
      next = Math.max(next, last + 1);
      progress = Date.now();
      pause = 50;
      if (g.data.length) {
        hash?.update(g.data);
        yield g.data;
      }
      continue;
    }
    // every byte is here but the meta counts more chunks: no replica will have them
    if ('missing' in g && size === info.size) {
      throw new ObjectReadError(`object ${info.name}: ${size} bytes in ${count} chunks, but its meta says ${info.size} in ${info.chunks}: refused`, 'SIZE');
    }
    // not there (a replica behind, or the chunks purged), or no answer (the replica went away):
    // the gets after it asked past the same hole, so all are asked again from the last chunk taken
    if (Date.now() - progress >= idleMs) {
      throw new ObjectReadError(`object ${info.name}: no chunk for ${idleMs / 1000} s (${count} of ${info.chunks} read${'failed' in g ? `; ${g.failed}` : ''})`, 'TIMEOUT');
    }
    asked = [];
    await sleep(Math.min(pause, Math.max(0, idleMs - (Date.now() - progress))));
    pause = Math.min(pause * 2, 1000);
    next = last + 1;
  }
  if (size !== info.size) {
    throw new ObjectReadError(`object ${info.name}: ${size} bytes in ${count} chunks, but its meta says ${info.size} in ${info.chunks}: refused`, 'SIZE');
  }
  if (hash && want && !hash.digest().equals(want)) throw new ObjectReadError(`object ${info.name}: its bytes do not match its digest: refused`, 'DIGEST');
}

/** One direct get; never rejects (a get not answered is one more to ask again). */
async function get(nc: NatsConnection, subject: string, body: string | Uint8Array, timeout: number): Promise<Got> {
  let m: Msg;
  try { m = await nc.request(subject, body, { timeout }); } catch (err) {
    return { failed: (err as Error).message, code: (err as { code?: string }).code === 'TIMEOUT' ? 'TIMEOUT' : 'UNAVAILABLE' };
  }
  const h = m.headers;
  if (h?.hasError) return h.code === 404 ? { missing: true } : { failed: `${h.code} ${h.description}`, code: 'UNAVAILABLE' };
  const seq = Number(h?.get('Nats-Sequence'));
  if (!h || !Number.isSafeInteger(seq) || seq < 1) return { failed: 'an answer without its sequence', code: 'UNAVAILABLE' };
  return { seq, subject: h.get('Nats-Subject'), data: m.data };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `SHA-256=<base64url, padded or not>` (nats.js writes it padded, object-put.ts too); null otherwise. */
function parseDigest(d: string): Buffer | null {
  if (!d.startsWith('SHA-256=')) return null;
  const b = Buffer.from(d.slice(8).replace(/\+/g, '-').replace(/\//g, '_'), 'base64url');
  return b.length === 32 ? b : null;
}

function failed(message: string): Readable {
  const r = new Readable({ read() { /* fails at once */ } });
  process.nextTick(() => r.destroy(new ObjectReadError(message, 'MALFORMED')));
  return r;
}
