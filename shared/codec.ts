// Wire form of an event: msgpack of the envelope, keys in a fixed order so that the
// same event always hashes the same. decode() validates everything or throws.
import { Encoder } from '@msgpack/msgpack';
import * as cryptoNs from 'node:crypto';
import { createHash, randomBytes } from 'node:crypto';
import { SCHEMA_VERSION, type AnyEvent, type Envelope, type EventData, type EventType } from './events.js';
import { payloadChecks } from './schema.js';
import { ValidationError, int, num, str, opt, readWith, within, type Check } from './validate.js';
import { KeyTable, Reader, WireError, byteSet, isNot } from './msgpack.js';
import { ENTITY_RE, EVENT_ID_RE, SOURCE_RE } from './ids.js';

export class DecodeError extends Error {
  constructor(message: string, readonly partial?: { id?: string; type?: string; entity?: string }) {
    super(message);
    this.name = 'DecodeError';
  }
}

// One encoder for every event: @msgpack/msgpack's per-call encode allocates a fresh one (and
// its buffer) each time. encode() returns a copy, so a reused encoder is safe.
const encoder = new Encoder({ ignoreUndefined: true });

export function encodeEvent(e: Envelope): Uint8Array {
  const ordered: Record<string, unknown> = {
    v: e.v, id: e.id, type: e.type, ts: e.ts, src: e.src, srcSeq: e.srcSeq, prev: e.prev, entity: e.entity,
  };
  if (e.cause !== undefined) ordered.cause = e.cause;
  ordered.data = e.data;
  return encoder.encode(ordered);
}

// crypto.hash (node >= 20.12) is one call instead of three objects: ~3x less per event here.
const oneShot = (cryptoNs as { hash?: (alg: string, data: Uint8Array, enc: 'hex') => string }).hash;

export function hashBytes(b: Uint8Array): string {
  return oneShot ? oneShot('sha256', b, 'hex') : createHash('sha256').update(b).digest('hex');
}

/**
 * /^(?:[0-9a-f]{64})?$/ (its text is what an error names), tested by a loop: every event has a
 * `prev`, and the regex was 3% of an audit's CPU.
 */
const HEX64_OR_EMPTY = Object.assign(/^(?:[0-9a-f]{64})?$/, {
  test(v: string): boolean {
    if (v.length === 0) return true;
    if (v.length !== 64) return false;
    for (let i = 0; i < 64; i++) {
      const c = v.charCodeAt(i);
      if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
    }
    return true;
  },
});

const envelope = {
  id: str(64, EVENT_ID_RE),
  ts: num(0, 1e14),
  src: str(80, SOURCE_RE),
  srcSeq: int(1, Number.MAX_SAFE_INTEGER),
  prev: str(64, HEX64_OR_EMPTY),
  entity: str(128, ENTITY_RE),
  cause: opt(str(64)),
};
const reader = new Reader();

// The envelope's ids as Reader.ascii matches them on the bytes, each exactly its check's rule:
// EVENT_ID_RE within str(64), HEX64_OR_EMPTY (64 digits; the empty prev of a chain's first event
// goes the checked way), ENTITY_RE within str(128). None holds NUL or a byte past ASCII.
const DIGITS_LOWER = '0123456789abcdefghijklmnopqrstuvwxyz';
const ID_BYTES = byteSet(DIGITS_LOWER);
const HEX_BYTES = byteSet('0123456789abcdef');
const ENTITY_FIRST = ID_BYTES;
const ENTITY_REST = byteSet(`${DIGITS_LOWER}_:-`);
/** Sources that passed envelope.src (a cluster has a few hundred at most; a hostile log may name more: then checked each time). */
const knownSources = new Set<string>();
const F_ID = 1, F_PREV = 2, F_ENTITY = 4;
/** The event types, matched on the bytes: the same few strings for every event, not made again each time. */
const TYPE_NAMES = Object.keys(payloadChecks);
const TYPES = new KeyTable(TYPE_NAMES);
/** What SOURCE_RE allows, as a superset to read a source's bytes by (its check still applies, once per source). */
const SOURCE_BYTES = byteSet(`${DIGITS_LOWER}_:-`);

/**
 * Decodes and validates one event in a single walk over its bytes (msgpack.ts): the envelope's
 * scalars are kept raw until the map ends, `data` is read by its type's checks as it passes
 * (after `type`, as encodeEvent writes it; a map that puts it first is read again at the end).
 * Errors are reported in the envelope's order, v and type first, as a DecodeError.
 */
export function decodeEvent(bytes: Uint8Array): AnyEvent {
  return decode(bytes, WHOLE);
}

/**
 * decodeEvent for bytes whose envelope decodeEnvelope (or decodeForChecks) already validated (the replay's reader
 * thread, over these same bytes): the envelope's fields are taken as read, the data is read and
 * validated in full. Any other bytes go through decodeEvent.
 */
export function decodeCheckedEnvelope(bytes: Uint8Array): AnyEvent {
  return decode(bytes, TRUSTED);
}

/**
 * The envelope alone, validated as decodeEvent validates it (a key registration whole: its data
 * changes what the keys are). `data` must be well-formed msgpack but is not read: for the replay's
 * reader thread, whose signature checks read only the envelope while the fold decodes every event
 * whole again (and refuses one whose data does not validate). Half of a decode's cost is the data.
 */
export function decodeEnvelope(bytes: Uint8Array): AnyEvent {
  return decode(bytes, ENVELOPE_ONLY);
}

/**
 * decodeEnvelope for the replay's signature checks, which read src, srcSeq, prev, type and a
 * registration's data but never the id or the entity: those two are validated on the bytes as
 * decodeEnvelope validates them and not made ('' in the event when they pass there; made and
 * checked as decodeEvent does when they do not). Two 64-byte strings an event fewer in the thread.
 */
export function decodeForChecks(bytes: Uint8Array): AnyEvent {
  return decode(bytes, CHECKS);
}

const WHOLE = 0, ENVELOPE_ONLY = 1, TRUSTED = 2, CHECKS = 3;

function decode(bytes: Uint8Array, mode: number): AnyEvent {
  const envelopeOnly = mode === ENVELOPE_ONLY || mode === CHECKS;
  const unread = mode === CHECKS;
  // validated over these bytes already (decodeForChecks in the replay's reader thread): the ids are
  // ASCII (their patterns allow nothing else), so their bytes are taken as they are, not matched
  // byte by byte against their sets again; any other form goes to value()
  const trusted = mode === TRUSTED;
  const r = reader.reset(bytes);
  let v: unknown, id: unknown, type: unknown, ts: unknown, src: unknown, srcSeq: unknown, prev: unknown, entity: unknown, cause: unknown;
  let data: unknown;
  let dataAt = -1;
  let dataErr: ValidationError | undefined;
  let seen = 0;
  // the ids Reader.ascii matched (F_*): valid as read
  let fast = 0;
  try {
    const n = r.mapLen();
    if (isNot(n)) { r.value(); if (!r.done) throw new WireError(`extra bytes after the value at byte ${r.pos}`); throw new DecodeError('event is not a map'); }
    for (let j = 0; j < n; j++) {
      const k = r.keyIn(ENVELOPE);
      if (k < 0) { r.skip(); continue; }
      if (seen & (1 << k)) throw new DecodeError(`envelope key ${ENVELOPE.keys[k]} given twice`);
      seen |= 1 << k;
      switch (k) {
        case 0: v = r.value(); break;
        case 1:
          if (trusted) { id = r.asciiKnown(); if (isNot(id)) id = r.value(); break; }
          if (unread && r.asciiValid(1, 64, ID_BYTES, ID_BYTES) === true) { id = ''; fast |= F_ID; break; }
          id = r.ascii(1, 64, ID_BYTES, ID_BYTES); if (isNot(id)) id = r.value(); else fast |= F_ID; break;
        case 2: { const t = r.oneOf(TYPES); type = t < 0 ? r.value() : TYPE_NAMES[t]; break; }
        case 3: ts = r.value(); break;
        case 4: src = r.ascii(1, 80, SOURCE_BYTES, SOURCE_BYTES); if (isNot(src)) src = r.value(); break;
        case 5: srcSeq = r.value(); break;
        case 6:
          if (trusted) { prev = r.asciiKnown(); if (isNot(prev)) prev = r.value(); break; }
          prev = r.ascii(64, 64, HEX_BYTES, HEX_BYTES); if (isNot(prev)) prev = r.value(); else fast |= F_PREV; break;
        case 7:
          if (trusted) { entity = r.asciiKnown(); if (isNot(entity)) entity = r.value(); break; }
          if (unread && r.asciiValid(1, 128, ENTITY_FIRST, ENTITY_REST) === true) { entity = ''; fast |= F_ENTITY; break; }
          entity = r.ascii(1, 128, ENTITY_FIRST, ENTITY_REST); if (isNot(entity)) entity = r.value(); else fast |= F_ENTITY; break;
        case 8: cause = r.value(); break;
        default: {
          const check = v === SCHEMA_VERSION && typeof type === 'string' && Object.hasOwn(payloadChecks, type) && (!envelopeOnly || type === 'KeyRegistered') ? payloadChecks[type as EventType] : undefined;
          dataAt = r.pos;
          if (envelopeOnly && typeof type === 'string' && type !== 'KeyRegistered') { r.skip(); dataAt = -1; break; }
          if (!check) { r.skip(); break; }
          try { data = readWith(check as Check<unknown>, r); } catch (err) {
            if (!(err instanceof ValidationError)) throw err;
            // the rest of data must still be well-formed msgpack; the error waits for the envelope's
            dataErr = err;
            r.at(dataAt).skip();
          }
          dataAt = -1;
        }
      }
    }
    if (!r.done) throw new WireError(`extra bytes after the event at byte ${r.pos}`);
  } catch (err) {
    if (err instanceof DecodeError) throw err;
    throw new DecodeError(`not msgpack: ${(err as Error).message}`);
  }
  // what a rejection names (id, type, entity as far as they are strings): made only on an error
  const partial = () => ({
    id: typeof id === 'string' ? id.slice(0, 64) : undefined,
    type: typeof type === 'string' ? type.slice(0, 64) : undefined,
    entity: typeof entity === 'string' ? entity.slice(0, 128) : undefined,
  });
  if (v !== SCHEMA_VERSION) throw new DecodeError(`unsupported schema version ${JSON.stringify(v)} (this build reads v${SCHEMA_VERSION})`, partial());
  if (typeof type !== 'string' || !Object.hasOwn(payloadChecks, type)) throw new DecodeError(`unknown event type ${JSON.stringify(type)?.slice(0, 64)}`, partial());
  const t = type as EventType;
  try {
    let vId: string, vTs: number, vSrc: string, vSrcSeq: number, vPrev: string, vEntity: string, vCause: string | undefined;
    if (mode === TRUSTED) {
      // validated by decodeEnvelope over these bytes: the id, prev and entity patterns were a fifth of the decode
      vId = id as string; vTs = ts as number; vSrc = src as string; vSrcSeq = srcSeq as number; vPrev = prev as string; vEntity = entity as string; vCause = cause === null ? undefined : cause as string | undefined;
    } else {
      // in the envelope's order, so the first error is the one a field-by-field check names
      vId = fast & F_ID ? id as string : envelope.id(id, 'id'); vTs = envelope.ts(ts, 'ts');
      if (typeof src === 'string' && knownSources.has(src)) vSrc = src;
      else { vSrc = envelope.src(src, 'src'); if (knownSources.size < 4096) knownSources.add(vSrc); }
      vSrcSeq = envelope.srcSeq(srcSeq, 'srcSeq');
      vPrev = fast & F_PREV ? prev as string : envelope.prev(prev, 'prev'); vEntity = fast & F_ENTITY ? entity as string : envelope.entity(entity, 'entity'); vCause = envelope.cause(cause, 'cause');
    }
    if (dataErr) throw within('data', dataErr);
    if (envelopeOnly && t !== 'KeyRegistered') data = undefined;
    else if (dataAt >= 0) {
      // `data` came before `type`: read it now that the type is known
      r.reset(bytes).at(dataAt);
      try { data = readWith(payloadChecks[t] as Check<unknown>, r); } catch (err) { throw err instanceof ValidationError ? within('data', err) : new DecodeError(`not msgpack: ${(err as Error).message}`, partial()); }
    } else if (!(seen & (1 << 9))) {
      data = (payloadChecks[t] as Check<unknown>)(undefined, 'data');
    }
    // made whole with its final keys: a `delete` of cause would turn every event (most have none)
    // into a dictionary-mode object, slower to read and larger, on every replay
    return (vCause === undefined
      ? { v: SCHEMA_VERSION, id: vId, type: t, ts: vTs, src: vSrc, srcSeq: vSrcSeq, prev: vPrev, entity: vEntity, data }
      : { v: SCHEMA_VERSION, id: vId, type: t, ts: vTs, src: vSrc, srcSeq: vSrcSeq, prev: vPrev, entity: vEntity, cause: vCause, data }) as AnyEvent;
  } catch (err) {
    if (err instanceof ValidationError) throw new DecodeError(`invalid ${t}: ${err.message}`, partial());
    throw err;
  }
}

/** The envelope's keys; decodeEvent's switch goes by these indices. */
const ENVELOPE = new KeyTable(['v', 'id', 'type', 'ts', 'src', 'srcSeq', 'prev', 'entity', 'cause', 'data']);

/** Ids sort by creation time (base36 ms) and are unique (80 random bits). */
export function newId(): string {
  return Date.now().toString(36).padStart(9, '0') + randomBytes(10).toString('hex');
}

/** A 64-hex container id, as Docker's. */
export function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

/**
 * One writer's hash chain. Each event names its predecessor's hash, so deleting,
 * reordering or editing any of a source's events is visible to audit.
 */
export class SourceChain {
  constructor(readonly src: string, private seq = 0, private head = '') {}

  get position(): { srcSeq: number; hash: string } { return { srcSeq: this.seq, hash: this.head }; }

  /** Stamps and encodes the next event; call commit() once the stream has stored it. */
  /** `id`: an id chosen before (an event promised in a checkpoint and appended after a crash). */
  next<T extends EventType>(type: T, entity: string, data: EventData[T], cause?: string, id = newId()): { event: Envelope<T>; bytes: Uint8Array; hash: string } {
    const event: Envelope<T> = {
      v: SCHEMA_VERSION, id, type, ts: Date.now(), src: this.src,
      srcSeq: this.seq + 1, prev: this.head, entity, ...(cause ? { cause } : {}), data,
    };
    const bytes = encodeEvent(event);
    return { event, bytes, hash: hashBytes(bytes) };
  }

  commit(srcSeq: number, hash: string): void {
    this.seq = srcSeq;
    this.head = hash;
  }
}
