// Snapshots for time travel: the controller stores a full snapshot of its view (shared/snapshot.ts)
// every so many events in the object store bucket swarmlite-snapshots, named by the stream
// sequence it holds and the time of its last event, signed like the anchor (the controller's key,
// with the root's registration of it), so `tsctl view --at` folds only from the nearest one at or
// before the point asked. A reader that cannot verify one says so and folds the whole log.
import { createHash } from 'node:crypto';
import { StorageType, type NatsConnection } from 'nats';
import { registration, verifySig, type Signer } from '../signing.js';

export const SNAPSHOT_BUCKET = 'swarmlite-snapshots';

export interface StoredSnapshot { seq: number; ts: number; name: string }

interface Manifest { v: 1; seq: number; ts: number; sha256: string; sig: string; reg: { key: string; rootSig: string } }

const signed = (seq: number, ts: number, sha: string) => Buffer.from(`swarmlite-snapshot-v1\n${seq}\n${ts}\n${sha}`);
const nameOf = (seq: number, ts: number) => `seq-${String(seq).padStart(15, '0')}-ts-${ts}`;
const NAME_RE = /^seq-(\d{15})-ts-(\d{1,15})$/;

/** The controller's side: `[u32 manifest length][manifest JSON][snapshot bytes]`. */
export async function putSnapshot(nc: NatsConnection, s: { seq: number; ts: number; bytes: Uint8Array }, signer: Signer, reg: { key: string; rootSig: string }): Promise<void> {
  const os = await nc.jetstream().views.os(SNAPSHOT_BUCKET, { storage: StorageType.File });
  const sha256 = createHash('sha256').update(s.bytes).digest('hex');
  const m: Manifest = { v: 1, seq: s.seq, ts: s.ts, sha256, sig: signer.sign(signed(s.seq, s.ts, sha256)), reg };
  const head = Buffer.from(JSON.stringify(m));
  const out = new Uint8Array(4 + head.length + s.bytes.length);
  new DataView(out.buffer).setUint32(0, head.length);
  out.set(head, 4); out.set(s.bytes, 4 + head.length);
  await os.putBlob({ name: nameOf(s.seq, s.ts) }, out);
}

/** Every stored snapshot, oldest first (names only: nothing is fetched). */
export async function listSnapshots(nc: NatsConnection): Promise<StoredSnapshot[]> {
  let os;
  try { os = await nc.jetstream().views.os(SNAPSHOT_BUCKET); } catch { return []; } // none yet (a reader may not make it)
  const out: StoredSnapshot[] = [];
  for (const i of await os.list().catch(() => [])) {
    const m = NAME_RE.exec(i.name);
    if (m && !i.deleted) out.push({ seq: Number(m[1]), ts: Number(m[2]), name: i.name });
  }
  return out.sort((a, b) => a.seq - b.seq);
}

/** The snapshot's bytes if its signature, key and hash verify under `root`; else what is wrong. */
export async function getSnapshot(nc: NatsConnection, s: StoredSnapshot, root: string): Promise<Uint8Array | string> {
  const os = await nc.jetstream().views.os(SNAPSHOT_BUCKET);
  const info = await os.info(s.name);
  if (!info || info.deleted) return 'gone';
  const data = (info.options?.link ? undefined : await readChunks(nc, info.nuid, info.size, info.chunks)) ?? await os.getBlob(s.name);
  if (!data) return 'gone';
  return verifySnapshot(data, s, root);
}

/**
 * An object's chunks read straight from the bucket's stream, a big pull at a time, into one
 * buffer of its size. nats.js's get() pushes them through a flow-controlled consumer and hashes
 * them in JavaScript: most of view --at's time with a large snapshot, while the manifest's
 * sha256 (checked by verifySnapshot with node's crypto) already vouches for the bytes.
 * undefined when the chunks are not what the info says (the caller reads it the slow way).
 */
async function readChunks(nc: NatsConnection, nuid: string, size: number, chunks: number): Promise<Uint8Array | undefined> {
  if (chunks === 0) return new Uint8Array(0);
  const consumer = await nc.jetstream().consumers.get(`OBJ_${SNAPSHOT_BUCKET}`, { filterSubjects: `$O.${SNAPSHOT_BUCKET}.C.${nuid}` });
  const out = new Uint8Array(size);
  let at = 0, n = 0, bad = false;
  await new Promise<void>((resolve, reject) => {
    let msgs: { stop(): void } | undefined;
    const t = setTimeout(() => { bad = true; msgs?.stop(); resolve(); }, 30_000);
    const end = () => { clearTimeout(t); msgs?.stop(); resolve(); };
    consumer.consume({
      max_messages: 256,
      callback: (m) => {
        if (bad || n >= chunks) return;
        if (at + m.data.length > size) { bad = true; end(); return; }
        out.set(m.data, at); at += m.data.length; n += 1;
        if (n === chunks || m.info.pending === 0) end();
      },
    }).then((m) => { msgs = m; if (bad || n >= chunks) m.stop(); }, (err) => { clearTimeout(t); reject(err); });
  });
  return !bad && at === size && n === chunks ? out : undefined;
}

/** Pure: checks a stored snapshot object against its name and the root key. */
export function verifySnapshot(data: Uint8Array, s: { seq: number; ts: number }, root: string): Uint8Array | string {
  if (data.length < 4) return 'too short';
  const len = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
  if (4 + len > data.length) return 'truncated manifest';
  let m: Manifest;
  try { m = JSON.parse(Buffer.from(data.subarray(4, 4 + len)).toString()) as Manifest; } catch { return 'manifest is not JSON'; }
  if (m?.seq !== s.seq || m.ts !== s.ts) return `manifest says #${m?.seq}, the name #${s.seq}`;
  if (!verifySig(root, registration('controller', m.reg?.key ?? ''), m.reg?.rootSig)) return 'its key is not the controller\'s (root signature)';
  if (!verifySig(m.reg.key, signed(m.seq, m.ts, m.sha256), m.sig)) return 'bad signature';
  const bytes = data.subarray(4 + len);
  if (createHash('sha256').update(bytes).digest('hex') !== m.sha256) return 'its bytes are not the ones signed';
  return bytes;
}
