// The archive's I/O (shared/archive.ts is the pure part): reading a range of the stream as
// stored, sealing it into segments in the object store `swarmlite-archive`, listing and
// reading them back. Only the controller writes the bucket (the server allows nobody else,
// and nobody purges it but an admin); auditors read it.
import { DeliverPolicy, StorageType, type NatsConnection, type ObjectStore } from 'nats';
import { decodeEvent, hashBytes } from '../codec.js';
import { ARCHIVE_BUCKET, STREAM } from '../subjects.js';
import { SIG_HEADER, type Signer } from '../signing.js';
import { orderedInfo } from './log.js';
import {
  encodeBody, digestOf, openSegment, seal, segmentName, SEGMENT_MAX_MSGS,
  type ArchivedMsg, type ArchiveMark, type SegmentBody,
} from '../archive.js';

/** Where the archive ends: its mark, and the heads and keys of its last segment (where the next one continues). */
export interface ArchiveState extends ArchiveMark { heads: SegmentBody['heads']; keys: SegmentBody['keys'] }
export const EMPTY_ARCHIVE: ArchiveState = { through: 0, segments: 0, digest: '', heads: {}, keys: {} };

/** The archive bucket; `create` only for the controller (others may not make it). */
export async function archiveStore(nc: NatsConnection, create = false): Promise<ObjectStore | undefined> {
  try {
    const js = nc.jetstream();
    if (!create) {
      // binding must not create it: an auditor without the grant would get a permissions error
      await (await nc.jetstreamManager()).streams.info(`OBJ_${ARCHIVE_BUCKET}`);
    }
    return await js.views.os(ARCHIVE_BUCKET, { storage: StorageType.File });
  } catch (err) {
    if (create || !/not found/i.test((err as Error).message)) throw err;
    return undefined;
  }
}

/** The segments' names in stream order (deleted objects are not listed). */
export async function segmentNames(os: ObjectStore): Promise<string[]> {
  return (await os.list()).filter((o) => !o.deleted && o.name.startsWith('seg-')).map((o) => o.name).sort();
}

/** One segment's sealed bytes, or undefined when the object is gone. */
export async function segmentBytes(os: ObjectStore, name: string): Promise<Uint8Array | undefined> {
  return (await os.getBlob(name)) ?? undefined;
}

/** Where the archive ends, from its last segment (it must verify: the next segment continues its chain). */
export async function archiveState(os: ObjectStore, root: string): Promise<ArchiveState> {
  const names = await segmentNames(os);
  if (names.length === 0) return EMPTY_ARCHIVE;
  const last = names[names.length - 1]!;
  const bytes = await segmentBytes(os, last);
  const o = bytes ? openSegment(bytes, root) : 'gone';
  if (typeof o === 'string') throw new Error(`archive segment ${last}: ${o}`);
  return { through: o.body.last, segments: names.length, digest: o.digest, heads: o.body.heads, keys: o.body.keys };
}

/** Stream positions from..to (inclusive) as stored, in order; stops early at the stream's end. */
export async function* readRange(nc: NatsConnection, from: number, to: number): AsyncGenerator<ArchivedMsg> {
  if (to < from) return;
  const consumer = await nc.jetstream().consumers.get(STREAM, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from });
  const info = await orderedInfo(consumer);
  if (info.num_pending === 0) return;
  const msgs = await consumer.consume({ max_messages: 4096 });
  try {
    for await (const m of msgs) {
      if (m.seq > to) return;
      const sig = m.headers?.get(SIG_HEADER) || undefined;
      yield { seq: m.seq, subject: m.subject, data: m.data, ...(sig ? { sig } : {}) };
      if (m.seq >= to || m.info.pending === 0) return;
    }
  } finally { msgs.stop(); }
}

/**
 * Seals positions `state.through+1 .. to` into segments of at most SEGMENT_MAX_MSGS positions
 * and puts them in the bucket. Each segment is read with its own consumer, closed before the
 * put (a consumer left idle across a put stalled on its heartbeats: ~30 s a segment). Heads and
 * keys carry over from the segment before; an undecodable message is archived as stored (the
 * audit reports it); positions deleted from the stream are simply absent. Returns the new state.
 */
export async function sealRange(nc: NatsConnection, os: ObjectStore, state: ArchiveState, to: number, signer: Signer, reg: { key: string; rootSig: string }): Promise<{ state: ArchiveState; names: string[] }> {
  let s: ArchiveState = { ...state, heads: { ...state.heads }, keys: { ...state.keys } };
  const names: string[] = [];
  while (s.through < to) {
    const first = s.through + 1, last = Math.min(to, s.through + SEGMENT_MAX_MSGS);
    const msgs: ArchivedMsg[] = [];
    for await (const m of readRange(nc, first, last)) {
      msgs.push(m);
      try {
        const e = decodeEvent(m.data);
        const h = s.heads[e.src];
        if (!h || e.srcSeq > h.srcSeq) s.heads[e.src] = { srcSeq: e.srcSeq, hash: hashBytes(m.data), seq: m.seq };
        if (e.type === 'KeyRegistered') s.keys[e.src] = { key: e.data.key, rootSig: e.data.rootSig };
      } catch { /* junk is archived as it is */ }
    }
    const bytes = encodeBody({ v: 1, first, last, prev: s.digest, heads: s.heads, keys: s.keys, msgs });
    const name = segmentName(first, last);
    await os.putBlob({ name }, seal(bytes, signer, reg));
    names.push(name);
    s = { through: last, segments: s.segments + 1, digest: digestOf(bytes), heads: { ...s.heads }, keys: { ...s.keys } };
  }
  return { state: s, names };
}

/**
 * Every archived message from `fromSeq` on, from segments that verify (a controller whose
 * snapshot is older than the stream's first position folds these before the stream).
 */
export async function* archivedFrom(os: ObjectStore, root: string, fromSeq: number): AsyncGenerator<ArchivedMsg> {
  for (const name of await segmentNames(os)) {
    const bytes = await segmentBytes(os, name);
    const o = bytes ? openSegment(bytes, root) : 'gone';
    if (typeof o === 'string') throw new Error(`archive segment ${name}: ${o}`);
    if (o.body.last < fromSeq) continue;
    for (const m of o.body.msgs) if (m.seq >= fromSeq) yield m;
  }
}
