// Snapshots for time travel: the controller stores a full snapshot of its view (shared/snapshot.ts)
// every so many events in the object store bucket swarmlite-snapshots, named by the stream
// sequence it holds and the time of its last event, signed like the anchor (the controller's key,
// with the root's registration of it), so `tsctl view --at` folds only from the nearest one at or
// before the point asked. A reader that cannot verify one says so and folds the whole log.
// Between two full snapshots the controller stores small deltas (a journal frame of what changed,
// shared/snapshot.ts encodeDelta) every TRAVEL_EVERY/5 events, each naming the full it follows
// (`base`) and the position it follows (`prev`): view --at loads the nearest full, applies the
// unbroken chain of deltas after it up to the point asked, and folds only what is left (at most
// one delta's worth of events). Storage is bounded by thinning (thinPlan): the newest DENSE fulls
// keep their deltas; older fulls lose them, and at most SPARSE older fulls are kept, spread out.
import { createHash } from 'node:crypto';
import { StorageType, type NatsConnection } from 'nats';
import { registration, verifySig, type Signer } from '../signing.js';
import { putObject } from './object-put.js';
import { readRange } from './bulk.js';
import type { WireConn } from './wire-conn.js';

export const SNAPSHOT_BUCKET = 'swarmlite-snapshots';
/** The largest stored snapshot a reader takes (a view of 100,000 containers is ~15 MB). */
export const MAX_SNAPSHOT_BYTES = 1 << 30;

/** A stored full snapshot, or (with `base`) a delta: the view at `base` + deltas up to `prev` + this one is the view at `seq`. */
export interface StoredSnapshot { seq: number; ts: number; name: string; base?: number; prev?: number }

interface Manifest { v: 1; seq: number; ts: number; sha256: string; sig: string; reg: { key: string; rootSig: string }; base?: number; prev?: number }

// a delta's signature covers its place in the chain too: a delta cannot be passed off as another's
const signed = (s: { seq: number; ts: number; base?: number; prev?: number }, sha: string) => Buffer.from(s.base === undefined
  ? `swarmlite-snapshot-v1\n${s.seq}\n${s.ts}\n${sha}`
  : `swarmlite-snapshot-delta-v1\n${s.seq}\n${s.ts}\n${s.base}\n${s.prev}\n${sha}`);
const pad = (n: number) => String(n).padStart(15, '0');
/** The object's name for a full snapshot or a delta (what listSnapshots parses back). */
export const snapshotName = (s: { seq: number; ts: number; base?: number; prev?: number }): string => nameOf(s);
const nameOf = (s: { seq: number; ts: number; base?: number; prev?: number }) => s.base === undefined
  ? `seq-${pad(s.seq)}-ts-${s.ts}`
  : `delta-${pad(s.seq)}-base-${pad(s.base)}-prev-${pad(s.prev!)}-ts-${s.ts}`;
const NAME_RE = /^seq-(\d{15})-ts-(\d{1,15})$/;
const DELTA_RE = /^delta-(\d{15})-base-(\d{15})-prev-(\d{15})-ts-(\d{1,15})$/;

/** Fulls whose deltas are kept (the newest ones); older fulls keep none. */
export const DENSE = 8;
/** Older fulls kept at most, beyond the DENSE newest. */
export const SPARSE = 16;

/**
 * The controller's side: `[u32 manifest length][manifest JSON][snapshot bytes]`. With `base`
 * and `prev` the bytes are a delta (one journal frame) following the full at `base`.
 */
export async function putSnapshot(nc: NatsConnection, s: { seq: number; ts: number; bytes: Uint8Array; base?: number; prev?: number }, signer: Signer, reg: { key: string; rootSig: string }): Promise<void> {
  await nc.jetstream().views.os(SNAPSHOT_BUCKET, { storage: StorageType.File }); // made if missing
  const sha256 = createHash('sha256').update(s.bytes).digest('hex');
  const chain = s.base === undefined ? {} : { base: s.base, prev: s.prev! };
  const m: Manifest = { v: 1, seq: s.seq, ts: s.ts, sha256, sig: signer.sign(signed({ ...s, ...chain }, sha256)), reg, ...chain };
  const json = Buffer.from(JSON.stringify(m));
  const head = new Uint8Array(4 + json.length);
  new DataView(head.buffer).setUint32(0, json.length);
  head.set(json, 4);
  // not os.putBlob: its SHA-256 in JavaScript cost a replay ~1 s of CPU for these uploads (object-put.ts);
  // the manifest and the snapshot as two pieces, not copied into one (a full of 100,000 containers is 15 MB,
  // and the copy was alive in the controller's RSS at the end of a catch-up, beside the snapshot's own bytes)
  await putObject(nc, SNAPSHOT_BUCKET, { name: nameOf({ ...s, ...chain }) }, (async function* () { yield head; yield s.bytes; })());
}

/** Removes stored snapshots (thinning); one that is already gone is no error. */
export async function dropSnapshots(nc: NatsConnection, names: string[]): Promise<void> {
  if (names.length === 0) return;
  const os = await nc.jetstream().views.os(SNAPSHOT_BUCKET);
  for (const n of names) await os.delete(n).catch(() => undefined);
}

/** Every stored snapshot and delta, oldest first (names only: nothing is fetched). */
export async function listSnapshots(nc: NatsConnection): Promise<StoredSnapshot[]> {
  let os;
  try { os = await nc.jetstream().views.os(SNAPSHOT_BUCKET); } catch { return []; } // none yet (a reader may not make it)
  const out: StoredSnapshot[] = [];
  for (const i of await os.list().catch(() => [])) {
    if (i.deleted) continue;
    const m = NAME_RE.exec(i.name);
    if (m) { out.push({ seq: Number(m[1]), ts: Number(m[2]), name: i.name }); continue; }
    const d = DELTA_RE.exec(i.name);
    // a delta names a position after its base and its prev: anything else is no delta of ours
    if (d && Number(d[2]) <= Number(d[3]) && Number(d[3]) < Number(d[1])) out.push({ seq: Number(d[1]), ts: Number(d[4]), name: i.name, base: Number(d[2]), prev: Number(d[3]) });
  }
  return out.sort((a, b) => a.seq - b.seq || (a.base === undefined ? -1 : 1));
}

/**
 * Pure: what view --at loads for a point (a sequence, or a time in ms): the nearest full
 * snapshot at or before it, then the unbroken chain of its deltas (each following the one
 * before) that stays at or before the point. undefined: no full snapshot before it.
 */
export function travelPlan(all: StoredSnapshot[], at: { seq: number } | { time: number }): { full: StoredSnapshot; deltas: StoredSnapshot[] } | undefined {
  const before = (s: StoredSnapshot) => ('seq' in at ? s.seq <= at.seq : s.ts <= at.time);
  const full = all.filter((s) => s.base === undefined && before(s)).pop();
  if (!full) return undefined;
  const next = new Map<number, StoredSnapshot>();
  for (const d of all) if (d.base === full.seq && before(d) && (next.get(d.prev!)?.seq ?? -1) < d.seq) next.set(d.prev!, d);
  const deltas: StoredSnapshot[] = [];
  for (let d = next.get(full.seq); d; d = next.get(d.seq)) deltas.push(d);
  return { full, deltas };
}

/**
 * Pure: the stored objects to remove so storage stays bounded. Kept: the DENSE newest fulls with
 * their deltas; of the older fulls at most `sparse`, the oldest always, and otherwise dropping
 * one at a time the one whose removal leaves the smallest gap (they stay spread over the log);
 * their deltas are removed, and so are deltas whose full is gone.
 */
export function thinPlan(all: StoredSnapshot[], dense = DENSE, sparse = SPARSE): string[] {
  const fulls = all.filter((s) => s.base === undefined);
  const keepDeltas = new Set(fulls.slice(-dense).map((s) => s.seq));
  const old = fulls.slice(0, Math.max(0, fulls.length - dense));
  const drop: string[] = [];
  while (old.length > sparse) {
    // never the oldest (index 0): the one whose neighbours are closest together
    let best = 1, gap = Infinity;
    const after = (i: number) => old[i + 1]?.seq ?? fulls[fulls.length - dense]?.seq ?? old[i]!.seq;
    for (let i = 1; i < old.length; i++) { const g = after(i) - old[i - 1]!.seq; if (g < gap) { gap = g; best = i; } }
    drop.push(old.splice(best, 1)[0]!.name);
  }
  for (const d of all) if (d.base !== undefined && !keepDeltas.has(d.base)) drop.push(d.name);
  return drop;
}

/** The snapshot's bytes if its signature, key and hash verify under `root`; else what is wrong. */
export async function getSnapshot(nc: NatsConnection, s: StoredSnapshot, root: string, wire?: WireConn): Promise<Uint8Array | string> {
  const os = await nc.jetstream().views.os(SNAPSHOT_BUCKET);
  const info = await os.info(s.name);
  if (!info || info.deleted) return 'gone';
  // the object's description is as hostile as its bytes: a link would read another bucket's
  // object, a size of terabytes would be allocated before the first chunk arrives
  if (info.options?.link) return 'a link, not a snapshot';
  if (!Number.isSafeInteger(info.size) || info.size < 0 || info.size > MAX_SNAPSHOT_BYTES) return `its size ${info.size} is not that of a snapshot (at most ${MAX_SNAPSHOT_BYTES} bytes)`;
  if (!Number.isSafeInteger(info.chunks) || info.chunks < 0 || info.chunks > info.size + 1) return `its ${info.chunks} chunks are not that of a snapshot of ${info.size} bytes`;
  let data;
  // a read that fails (chunks that are not what the description says, a digest that does not match) is a refusal, not the end of view --at
  try { data = (wire && !wire.isClosed ? await readChunksWire(nc, wire, info.nuid, info.size, info.chunks) : undefined) ?? (await readChunks(nc, info.nuid, info.size, info.chunks)) ?? await os.getBlob(s.name); } catch (err) { return `unreadable: ${(err as Error).message}`; }
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
/** An object's chunks put together at the size its info gives: never more bytes, never another count. */
class Assembly {
  private at = 0;
  private n = 0;
  private readonly out: Uint8Array;
  constructor(private readonly size: number, private readonly chunks: number) { this.out = new Uint8Array(size); }
  /** false: the chunk goes past the size the info gives (the object is not the one named) */
  add(data: Uint8Array): boolean {
    if (this.at + data.length > this.size) return false;
    this.out.set(data, this.at);
    this.at += data.length;
    this.n += 1;
    return true;
  }
  get full(): boolean { return this.n >= this.chunks; }
  result(): Uint8Array | undefined { return this.at === this.size && this.n === this.chunks ? this.out : undefined; }
}

async function readChunks(nc: NatsConnection, nuid: string, size: number, chunks: number): Promise<Uint8Array | undefined> {
  if (chunks === 0) return new Uint8Array(0);
  const consumer = await nc.jetstream().consumers.get(`OBJ_${SNAPSHOT_BUCKET}`, { filterSubjects: `$O.${SNAPSHOT_BUCKET}.C.${nuid}` });
  const a = new Assembly(size, chunks);
  let bad = false;
  await new Promise<void>((resolve, reject) => {
    let msgs: { stop(): void } | undefined;
    const t = setTimeout(() => { bad = true; msgs?.stop(); resolve(); }, 30_000);
    const end = () => { clearTimeout(t); msgs?.stop(); resolve(); };
    consumer.consume({
      max_messages: 256,
      callback: (m) => {
        if (bad || a.full) return;
        if (!a.add(m.data)) { bad = true; end(); return; }
        if (a.full || m.info.pending === 0) end();
      },
    }).then((m) => { msgs = m; if (bad || a.full) m.stop(); }, (err) => { clearTimeout(t); reject(err); });
  });
  return bad ? undefined : a.result();
}

/**
 * readChunks over a connection of the reader's own (wire-conn.ts: frames parsed in place, each
 * chunk copied once into the frame the parser holds and once here): nats.js's parser grows a
 * buffer per 1 MiB chunk as its TLS records arrive, copying it again at each doubling, a third
 * of view --at's time fetching a 14.5 MiB snapshot. The bulk reader's pull consumer, filtered to
 * the object's chunks. undefined, as readChunks, when the chunks are not what the info says.
 */
async function readChunksWire(nc: NatsConnection, wire: WireConn, nuid: string, size: number, chunks: number): Promise<Uint8Array | undefined> {
  if (chunks === 0) return new Uint8Array(0);
  const subject = `$O.${SNAPSHOT_BUCKET}.C.${nuid}`;
  const a = new Assembly(size, chunks);
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), 30_000);
  try {
    // 16 chunks a pull, two pulls ahead: at most 32 MiB on the way (a server cuts off a reader 64 MiB behind)
    read: for await (const batch of readRange(nc, { stream: `OBJ_${SNAPSHOT_BUCKET}`, filter: subject, to: Number.MAX_SAFE_INTEGER, wire, signal: ac.signal, batch: 16 })) {
      for (const m of batch) {
        if (m.subject !== subject || !a.add(m.data)) return undefined;
        if (a.full) break read;
      }
    }
  } catch {
    return undefined; // the connection or the consumer failed: nats.js's reader is asked instead
  } finally {
    clearTimeout(t);
  }
  return a.result();
}

/** Pure: checks a stored snapshot object against its name and the root key. */
export function verifySnapshot(data: Uint8Array, s: { seq: number; ts: number; base?: number; prev?: number }, root: string): Uint8Array | string {
  if (data.length < 4) return 'too short';
  const len = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
  if (4 + len > data.length) return 'truncated manifest';
  let m: Manifest;
  try { m = JSON.parse(Buffer.from(data.subarray(4, 4 + len)).toString()) as Manifest; } catch { return 'manifest is not JSON'; }
  if (m?.seq !== s.seq || m.ts !== s.ts) return `manifest says #${m?.seq}, the name #${s.seq}`;
  if (m.base !== s.base || m.prev !== s.prev) return `manifest says it follows #${m.base}/#${m.prev}, the name #${s.base}/#${s.prev}`;
  if (!verifySig(root, registration('controller', m.reg?.key ?? ''), m.reg?.rootSig)) return 'its key is not the controller\'s (root signature)';
  if (!verifySig(m.reg.key, signed(m, m.sha256), m.sig)) return 'bad signature';
  const bytes = data.subarray(4 + len);
  if (createHash('sha256').update(bytes).digest('hex') !== m.sha256) return 'its bytes are not the ones signed';
  return bytes;
}
