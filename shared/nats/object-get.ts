// One object out of a JetStream object store (the reader beside object-put.ts's writer),
// without nats.js's get, which an agent's first start of an image paid for every layer:
// - nats.js hashes every byte with its SHA-256 written in JavaScript (js-sha256); here the
//   hash is Node's native one, and a caller that hashes the bytes itself anyway (the layer
//   store checks each tar against its diff_id, which is the object's digest) skips it;
// - nats.js queues every chunk into a web stream as it arrives, with no backpressure (a
//   slow disk holds the whole layer in memory); here the same ordered push consumer is
//   read as the Node stream's reader takes chunks (its flow control then holds the
//   server back), with no web-stream hop.
// The object's size and chunk count are checked too; a read that stalls (the chunks were
// purged: the object was replaced mid-read) fails with a TIMEOUT the caller may retry.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { consumerOpts, type NatsConnection, type ObjectInfo } from 'nats';

export interface GetOptions {
  /** Check the bytes against the object's digest (default true); false when the caller hashes them itself. */
  verify?: boolean;
  /** No chunk for this long fails the read with code TIMEOUT (default 10 s). */
  idleMs?: number;
}

export class ObjectReadError extends Error {
  constructor(message: string, readonly code: string | undefined) { super(message); this.name = 'ObjectReadError'; }
}

/** The object `info` names (from ObjectStore.info) as a byte stream; it errors if the bytes are not the object's. */
export function readObject(nc: NatsConnection, bucket: string, info: ObjectInfo, o: GetOptions = {}): Readable {
  if (info.size === 0) return Readable.from([]);
  if (!/^[A-Za-z0-9]{1,64}$/.test(info.nuid)) return failed(`object ${info.name}: malformed chunk id`);
  const want = o.verify === false ? undefined : parseDigest(info.digest);
  if (want === null) return failed(`object ${info.name}: unknown digest ${info.digest.slice(0, 80)}`);
  return Readable.from(chunks(nc, bucket, info, want, o.idleMs ?? 10000), { objectMode: false });
}

async function* chunks(nc: NatsConnection, bucket: string, info: ObjectInfo, want: Buffer | undefined, idleMs: number): AsyncGenerator<Uint8Array> {
  const oc = consumerOpts();
  oc.orderedConsumer();
  const msgs = await nc.jetstream().subscribe(`$O.${bucket}.C.${info.nuid}`, oc);
  const it = msgs[Symbol.asyncIterator]();
  const hash = want ? createHash('sha256') : undefined;
  let size = 0, count = 0, timer: NodeJS.Timeout | undefined;
  try {
    for (;;) {
      const r = await Promise.race([
        it.next(),
        new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new ObjectReadError(`object ${info.name}: no chunk for ${idleMs / 1000} s (${count} of ${info.chunks} read)`, 'TIMEOUT')), idleMs); }),
      ]).finally(() => clearTimeout(timer));
      if (r.done) throw new ObjectReadError(`object ${info.name}: the read ended after ${count} of ${info.chunks} chunks`, 'TIMEOUT');
      const m = r.value;
      count++;
      size += m.data.length;
      if (size > info.size) throw new ObjectReadError(`object ${info.name}: more than the ${info.size} bytes its meta says: refused`, 'SIZE');
      if (m.data.length) {
        hash?.update(m.data);
        yield m.data;
      }
      if (m.info.pending === 0) break;
    }
    if (size !== info.size || count !== info.chunks) {
      throw new ObjectReadError(`object ${info.name}: ${size} bytes in ${count} chunks, but its meta says ${info.size} in ${info.chunks}: refused`, 'SIZE');
    }
    if (hash && want && !hash.digest().equals(want)) throw new ObjectReadError(`object ${info.name}: its bytes do not match its digest: refused`, 'DIGEST');
  } finally {
    clearTimeout(timer);
    msgs.unsubscribe();
  }
}

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
