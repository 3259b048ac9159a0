// Wire form of an event: msgpack of the envelope, keys in a fixed order so that the
// same event always hashes the same. decode() validates everything or throws.
import { encode as mpEncode, decode as mpDecode } from '@msgpack/msgpack';
import { createHash, randomBytes } from 'node:crypto';
import { SCHEMA_VERSION, type AnyEvent, type Envelope, type EventData, type EventType } from './events.js';
import { payloadChecks } from './schema.js';
import { ValidationError, int, num, str, opt } from './validate.js';
import { ENTITY_RE, EVENT_ID_RE, SOURCE_RE } from './ids.js';

export class DecodeError extends Error {
  constructor(message: string, readonly partial?: { id?: string; type?: string; entity?: string }) {
    super(message);
    this.name = 'DecodeError';
  }
}

export function encodeEvent(e: Envelope): Uint8Array {
  const ordered: Record<string, unknown> = {
    v: e.v, id: e.id, type: e.type, ts: e.ts, src: e.src, srcSeq: e.srcSeq, prev: e.prev, entity: e.entity,
  };
  if (e.cause !== undefined) ordered.cause = e.cause;
  ordered.data = e.data;
  return mpEncode(ordered, { ignoreUndefined: true });
}

export function hashBytes(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export function decodeEvent(bytes: Uint8Array): AnyEvent {
  let raw: unknown;
  try {
    raw = mpDecode(bytes);
  } catch (err) {
    throw new DecodeError(`not msgpack: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new DecodeError('event is not a map');
  const r = raw as Record<string, unknown>;
  const partial = {
    id: typeof r.id === 'string' ? r.id.slice(0, 64) : undefined,
    type: typeof r.type === 'string' ? r.type.slice(0, 64) : undefined,
    entity: typeof r.entity === 'string' ? r.entity.slice(0, 128) : undefined,
  };
  if (r.v !== SCHEMA_VERSION) throw new DecodeError(`unsupported schema version ${JSON.stringify(r.v)} (this build reads v${SCHEMA_VERSION})`, partial);
  if (typeof r.type !== 'string' || !Object.hasOwn(payloadChecks, r.type)) throw new DecodeError(`unknown event type ${JSON.stringify(r.type)?.slice(0, 64)}`, partial);
  try {
    const type = r.type as EventType;
    const env = {
      v: SCHEMA_VERSION,
      id: str(64, EVENT_ID_RE)(r.id, 'id'),
      type,
      ts: num(0, 1e14)(r.ts, 'ts'),
      src: str(80, SOURCE_RE)(r.src, 'src'),
      srcSeq: int(1, Number.MAX_SAFE_INTEGER)(r.srcSeq, 'srcSeq'),
      prev: str(64, /^([0-9a-f]{64})?$/)(r.prev, 'prev'),
      entity: str(128, ENTITY_RE)(r.entity, 'entity'),
      cause: opt(str(64))(r.cause, 'cause'),
      data: (payloadChecks[type] as (v: unknown, f: string) => unknown)(r.data, 'data'),
    };
    if (env.cause === undefined) delete (env as { cause?: string }).cause;
    return env as AnyEvent;
  } catch (err) {
    if (err instanceof ValidationError) throw new DecodeError(`invalid ${r.type}: ${err.message}`, partial);
    throw err;
  }
}

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
