// Retention that keeps the audit honest: the stream's head is rolled into sealed archive
// segments before it is purged. A segment is the events' raw stored messages (subject, wire
// bytes, signature header) for stream positions first..last, every source's chain head and
// key registration after `last`, and the digest of the segment before it, so segments form
// one chain from #1. The controller seals a segment (ed25519 over its body, with the
// root-signed registration of its key), so it verifies with the cluster root's key alone.
// Pure: encoding, sealing, opening and checking; shared/nats/archive.ts does the I/O.
import { encode, decode } from '@msgpack/msgpack';
import { createHash } from 'node:crypto';
import { registration, verifySig, type Signer } from './signing.js';

/** One message as the stream stored it. */
export interface ArchivedMsg { seq: number; subject: string; data: Uint8Array; sig?: string }

export interface SegmentBody {
  v: 1;
  first: number;
  last: number;
  /** digest of the previous segment's body ('' for the segment that starts at #1) */
  prev: string;
  /** every source's chain head after `last` (the auditor checks its replay reaches them) */
  heads: Record<string, { srcSeq: number; hash: string; seq: number }>;
  /** every source's key registration known after `last`: an audit --since needs no older segment */
  keys: Record<string, { key: string; rootSig: string }>;
  msgs: ArchivedMsg[];
}

export interface Sealed { body: Uint8Array; sig: string; reg: { key: string; rootSig: string } }

/** What the anchor says of the archive (shared/audit.ts Anchor.archive). */
export interface ArchiveMark { through: number; segments: number; digest: string }

/** At most this many messages in one segment (a segment is read whole, ~300 B an event). */
export const SEGMENT_MAX_MSGS = 20_000;

export class ArchiveError extends Error {
  constructor(message: string) { super(message); this.name = 'ArchiveError'; }
}

/** The object's name: its first position, zero-padded so names sort in stream order. */
export const segmentName = (first: number, last: number): string => `seg-${String(first).padStart(15, '0')}-${String(last).padStart(15, '0')}`;

export const digestOf = (body: Uint8Array): string => createHash('sha256').update(body).digest('hex');

export function encodeBody(b: SegmentBody): Uint8Array {
  return encode({ v: b.v, first: b.first, last: b.last, prev: b.prev, heads: b.heads, keys: b.keys,
    msgs: b.msgs.map((m) => [m.seq, m.subject, m.data, m.sig ?? '']) });
}

/** Seals a body with the controller's key; `reg` is its root-signed registration. */
export function seal(body: Uint8Array, signer: Signer, reg: { key: string; rootSig: string }): Uint8Array {
  const s: Sealed = { body, sig: signer.sign(body), reg: { key: reg.key, rootSig: reg.rootSig } };
  return encode(s);
}

/**
 * Opens a sealed segment: its body if the seal verifies under the controller's key that the
 * root registered, else what is wrong (one line). Never throws on junk.
 */
export function openSegment(bytes: Uint8Array, root: string): { body: SegmentBody; digest: string } | string {
  let s: Sealed;
  try { s = decode(bytes) as Sealed; } catch (err) { return `not a sealed segment: ${(err as Error).message}`; }
  if (!s || !(s.body instanceof Uint8Array) || typeof s.sig !== 'string' || typeof s.reg?.key !== 'string' || typeof s.reg.rootSig !== 'string') return 'not a sealed segment';
  if (!verifySig(root, registration('controller', s.reg.key), s.reg.rootSig)) return 'sealed by a key the root did not register for the controller';
  if (!verifySig(s.reg.key, s.body, s.sig)) return 'the seal does not verify (the segment was modified)';
  let raw: { v: number; first: number; last: number; prev: string; heads: SegmentBody['heads']; keys: SegmentBody['keys']; msgs: [number, string, Uint8Array, string][] };
  try { raw = decode(s.body) as typeof raw; } catch (err) { return `sealed body is not msgpack: ${(err as Error).message}`; }
  if (raw?.v !== 1 || !Number.isSafeInteger(raw.first) || !Number.isSafeInteger(raw.last) || raw.first < 1 || raw.last < raw.first || !Array.isArray(raw.msgs)) return 'sealed body has an unknown shape';
  const msgs: ArchivedMsg[] = [];
  for (const m of raw.msgs) {
    if (!Array.isArray(m) || !Number.isSafeInteger(m[0]) || typeof m[1] !== 'string' || !(m[2] instanceof Uint8Array)) return 'sealed body has a malformed message';
    msgs.push({ seq: m[0], subject: m[1], data: m[2], ...(m[3] ? { sig: m[3] } : {}) });
  }
  return { body: { v: 1, first: raw.first, last: raw.last, prev: String(raw.prev ?? ''), heads: raw.heads ?? {}, keys: raw.keys ?? {}, msgs }, digest: digestOf(s.body) };
}

/** A problem with the archive itself (not with the events in it), at a stream position. */
export interface ArchiveProblem { seq: number; detail: string }

/**
 * Checks the chain of segments as listed (name order) against each other and the anchor's
 * mark: each starts right after the one before and names its digest, the first starts at #1,
 * and the last reaches what the anchor recorded. Pure.
 */
export function checkChain(segs: { name: string; first: number; last: number; prev: string; digest: string }[], mark?: ArchiveMark): ArchiveProblem[] {
  const out: ArchiveProblem[] = [];
  let next = 1, prev = '';
  for (const s of segs) {
    if (s.first !== next) out.push({ seq: next, detail: s.first > next ? `archive segment(s) for #${next}..#${s.first - 1} missing (next is ${s.name})` : `${s.name} overlaps the segment before it` });
    else if (s.prev !== prev) out.push({ seq: s.first, detail: `${s.name} does not name the segment before it (a segment was replaced)` });
    next = Math.max(next, s.last + 1);
    prev = s.digest;
  }
  if (mark && mark.through >= next) out.push({ seq: next, detail: `the anchor records the archive through #${mark.through} in ${mark.segments} segment(s); the archive ends at #${next - 1} (segments missing)` });
  else if (mark && mark.through > 0) {
    const at = segs.find((s) => s.last === mark.through);
    if (!at) out.push({ seq: mark.through, detail: `no segment ends at #${mark.through}, where the anchor says the archive ended` });
    else if (at.digest !== mark.digest) out.push({ seq: at.first, detail: `${at.name} is not the segment the anchor recorded (replaced)` });
  }
  return out;
}
